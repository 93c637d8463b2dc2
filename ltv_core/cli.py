"""``python -m ltv_core``: the pipeline's stages without Airflow, for notebooks, debugging and demos.

Each subcommand imports its code when it runs: ``generate`` and ``demo`` need none of the modelling
stack, which takes seconds to import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ltv_core import jsonutil, params, pipeline
from ltv_core.errors import LtvError
from ltv_core.pipeline import STAGES, TRAINING_STAGES, Stage

if TYPE_CHECKING:
    from ltv_core.context import RunContext


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-id", default=None, type=params.non_empty("--run-id"),
                   help="run id (default: cli__<logical date>)")
    p.add_argument("--logical-date", default=None,
                   help="ISO date/time of the run (default: now, UTC); windows derive from it")
    params.add_arguments(p)


def _context(args: argparse.Namespace) -> RunContext:
    from ltv_core.context import make_context

    logical = args.logical_date or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()
    return make_context(args.run_id or f"cli__{logical}", logical, params.from_namespace(args))


def _cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from ltv_core.errors import SpecError
    from ltv_core.synthetic import GENERATOR_ARGS, generate

    # only the flags given: each generator has its own defaults (Smadex hours, gaming days)
    given = {k: getattr(args, k) for k in sorted({a for names in GENERATOR_ARGS.values() for a in names})
             if getattr(args, k, None) is not None}
    try:
        return generate(args.out, spec_path=args.spec, log=lambda m: print(m, file=sys.stderr), **given)
    except SpecError:
        raise
    except ValueError as exc:  # the generator's argument checks: a one-line error, exit 2
        raise SpecError(f"generate: {exc}") from None


def _cmd_stages(stages: tuple[Stage, ...]):
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from ltv_core.inprocess import run_stages

        ctx = _context(args)
        if args.until is not None:
            stages_ = STAGES[: STAGES.index(pipeline.stage(args.until)) + 1]
        else:
            stages_ = stages
        results = run_stages(ctx, stages_)
        return results if len(stages_) > 1 else results[stages_[0].value]

    return run


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from ltv_core.demo import run_demo

    return run_demo(rows_per_partition=args.rows_per_partition, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ltv_core", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic data set of a spec's shape (Smadex, gaming)",
                       description="The spec's `generator:` field chooses the generator (none: Smadex). "
                                   "Smadex flags are in hours, the gaming generator's in days.")
    g.add_argument("--out", required=True, help="output folder (gets the spec's train/test roots and oracle)")
    g.add_argument("--spec", default="config/datasets/smadex_d7.yaml",
                   help="dataset spec (config/datasets/gaming_d120.yaml for the gaming data set)")
    g.add_argument("--seed", type=int, default=None, help="default 7")
    g.add_argument("--rows-per-partition", type=int, default=None,
                   help="rows per hour (Smadex, default 2000) or installs per day (gaming, default 1000)")
    g.add_argument("--start", default=None, help="first train hour (Smadex, default 2025-10-01) or install "
                                                 "date (gaming: instead of --as-of)")
    g.add_argument("--train-hours", type=int, default=None, help="Smadex: labelled hours (default 144)")
    g.add_argument("--test-hours", type=int, default=None, help="Smadex: unlabelled hours (default 96)")
    g.add_argument("--test-start", default=None, help="Smadex: first test hour (default: 24 h after the last "
                                                      "train hour)")
    g.add_argument("--as-of", default=None, help="gaming: export date ending the test days (default 2024-03-13)")
    g.add_argument("--train-days", type=int, default=None, help="gaming: install days of the train root "
                                                                "(default 240)")
    g.add_argument("--test-days", type=int, default=None, help="gaming: newest install days, features only "
                                                               "(default 7)")
    g.add_argument("--files-per-partition", type=int, default=None, help="default 1")
    g.set_defaults(func=_cmd_generate)

    help_ = {
        Stage.INGEST: "stage the run's windows", Stage.VALIDATE: "validate staged splits with GX",
        Stage.BUILD_FEATURES: "fit the feature state on train, transform every split",
        Stage.EVALUATE: "holdout metrics vs baselines, champion and oracle; the side-by-side table",
        Stage.PROMOTE: "champion/challenger decision, the HTML report, the champion pointer",
        Stage.SCORE: "score the run's scoring partitions with the champion",
    }
    commands = [(s.value, (s,), help_.get(s, f"only the {s.value} stage")) for s in STAGES]
    commands.insert(3, ("train", TRAINING_STAGES, "every training stage: " + ", ".join(TRAINING_STAGES)))
    commands.append(("run", STAGES, "every stage in order, as the DAG does"))
    for name, stages, text in commands:
        p = sub.add_parser(name, help=text)
        _add_run_args(p)
        p.add_argument("--until", default=None, help="run every stage from ingest up to this one (e.g. build_features)"
                       if name == "run" else argparse.SUPPRESS)
        p.set_defaults(func=_cmd_stages(stages))

    d = sub.add_parser("demo", help="generate sample data if needed and run the DAG once with `airflow dags test`")
    d.add_argument("--rows-per-partition", type=int, default=400)
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("distributed", "great_expectations", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = args.func(args)
    except LtvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file system refusal no stage translated: still one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=jsonutil.default))
    return 0
