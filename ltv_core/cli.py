"""``python -m ltv_core``: the pipeline's stages without Airflow, for notebooks, debugging and demos."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from ltv_core.errors import LtvError


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-id", default=None, help="run id (default: cli__<logical date>)")
    p.add_argument("--logical-date", default=None,
                   help="ISO date/time of the run (default: now, UTC); windows derive from it")
    p.add_argument("--config", default=None, help="pipeline config YAML (default config/pipeline.yaml)")
    p.add_argument("--spec", dest="dataset_spec", default=None, help="dataset spec YAML")
    p.add_argument("--store-root", default=None, help="artefact store root (local path or s3://...)")
    p.add_argument("--data-root", default=None, help="raw data root (local path or s3://...)")
    p.add_argument("--models-config", default=None, help="models config YAML (default config/models.yaml)")
    p.add_argument("--submission-csv", action="store_const", const=True, default=None,
                   help="score: also write score/submission.csv")
    p.add_argument("--dask-scheduler", default=None, help="existing Dask scheduler (tcp://host:8786)")
    for split in ("train", "validation", "holdout", "scoring"):
        for edge in ("start", "end"):
            p.add_argument(f"--{split}-{edge}", default=None, help=f"explicit {split} window {edge} (ISO, UTC)")


def _run_params(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    from ltv_core.runner import PARAM_KEYS

    logical = args.logical_date or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()
    run_id = args.run_id or f"cli__{logical}"
    params = {k: getattr(args, k) for k in PARAM_KEYS if getattr(args, k, None) is not None}
    return run_id, logical, params


def _cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from ltv_core.synthetic import generate_dataset

    return generate_dataset(
        args.out, seed=args.seed, rows_per_partition=args.rows_per_partition, start=args.start,
        train_hours=args.train_hours, test_hours=args.test_hours, test_start=args.test_start,
        files_per_partition=args.files_per_partition, spec_path=args.spec, log=lambda m: print(m, file=sys.stderr),
    )


def _cmd_stage(name: str):
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from ltv_core import runner

        run_id, logical, params = _run_params(args)
        if name == "run":
            return runner.run_all(run_id, logical, params, until=args.until)
        return getattr(runner, name)(run_id, logical, params)

    return run


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from ltv_core.demo import run_demo

    return run_demo(rows_per_partition=args.rows_per_partition, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ltv_core", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic Smadex-shaped data set")
    g.add_argument("--out", required=True, help="output folder (gets train/train, test/test, oracle, sample_submission.csv)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--rows-per-partition", type=int, default=2000)
    g.add_argument("--start", default="2025-10-01", help="first train hour (YYYY-MM-DD or YYYY-MM-DDTHH)")
    g.add_argument("--train-hours", type=int, default=144)
    g.add_argument("--test-hours", type=int, default=96)
    g.add_argument("--test-start", default=None, help="first test hour (default: 24 h after the last train hour)")
    g.add_argument("--files-per-partition", type=int, default=1)
    g.add_argument("--spec", default="config/datasets/smadex_d7.yaml")
    g.set_defaults(func=_cmd_generate)

    stages = (
        ("ingest", "stage the run's windows"), ("validate", "validate staged splits with GX"),
        ("build_features", "fit the feature state on train, transform every split"),
        ("train", "every training stage: resample, classifier, regressor, baselines, stacker, gate"),
        *((s, f"only the {s} stage") for s in ("resample", "train_classifier", "train_regressor",
                                               "train_baselines", "fit_stacker", "optimize_gate")),
        ("evaluate", "holdout metrics vs baselines, champion and oracle; the side-by-side table"),
        ("promote", "champion/challenger decision, the HTML report, the champion pointer"),
        ("score", "score the run's scoring partitions with the champion"),
        ("run", "every stage in order, as the DAG does"),
    )
    for name, help_ in stages:
        p = sub.add_parser(name, help=help_)
        _add_run_args(p)
        if name == "run":
            p.add_argument("--until", default=None, help="stop after this stage (e.g. build_features)")
        p.set_defaults(func=_cmd_stage(name))

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
    print(json.dumps(result, indent=2, default=str))
    return 0
