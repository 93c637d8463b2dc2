"""Model quality on a data set other than Smadex, measured through the product itself.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_quality.py --dataset gaming_d120 --rows 240000

1. generate the data set its spec names a generator for (cached under
   ``.bench/quality-<dataset>-<rows>-seed<seed>/data``), with its oracle;
2. run every stage of the product (``python -m ltv_core run``, the spec's own windows, the product's
   configs unchanged) on the export date as logical date, into a fresh store;
3. read what the run committed: the holdout table of ``evaluate`` (the shipped stack vs the
   baselines, the candidate strategies and the oracle, with the paired 95% intervals), the candidates
   race of ``fit_stacker`` (decided on validation), and each stage's seconds;
4. print one JSON object on the last line.

The holdout is only read here, never used to choose anything (the race and every other choice are
taken on the validation window inside the run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2024-03-13"  # the gaming generator's default export date


def _generate(spec_path: str, out: Path, rows: int, seed: int) -> dict[str, Any]:
    from ltv_core.synthetic.gaming import generate_gaming_dataset

    days = 247  # 240 train + 7 test install days (the generator's defaults)
    args = {"seed": seed, "rows_per_partition": max(1, round(rows / days)), "train_days": 240, "test_days": 7,
            "as_of": AS_OF}
    marker = out / "generated.json"
    if marker.exists() and json.loads(marker.read_text()).get("args") == args:
        return json.loads(marker.read_text())
    summary = generate_gaming_dataset(out, spec_path=spec_path, **args)
    marker.write_text(json.dumps({"args": args, "summary": summary}, default=str))
    return {"args": args, "summary": summary}


def _run(spec_path: str, data: Path, store: Path) -> dict[str, Any]:
    from ltv_core import cli

    shutil.rmtree(store, ignore_errors=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["run", "--spec", spec_path, "--data-root", str(data), "--store-root", str(store),
                       "--logical-date", f"{AS_OF}T00:00:00+00:00", "--run-id", "bench"])
    if rc != 0:
        raise SystemExit(f"the pipeline run failed (exit {rc}); its log is above")
    return json.loads(out.getvalue())


def _summary(store: Path, seconds: float) -> dict[str, Any]:
    from ltv_core.store import ArtifactStore

    st = ArtifactStore(str(store))
    ev = json.loads(Path(st.stage_dir("bench", "evaluate"), "evaluation.json").read_text())
    rows = ev["comparison"]["rows"]
    b_r, b_g = ev["best_baseline_rmsle"], ev["best_baseline_gini"]
    model, base, orc = rows["stack_point"]["rmsle"], rows[b_r]["rmsle"], rows.get("oracle_point", {}).get("rmsle")
    race = st.read_manifest("bench", "fit_stacker")["race"]
    stages = ("train_classifier", "train_regressor", "train_baselines", "fit_stacker", "optimize_gate")
    secs = {s: st.read_manifest("bench", s).get("seconds") for s in stages}
    ingest = st.read_manifest("bench", "ingest")["outputs"]
    return {
        "holdout_rows": ev["rows"], "train_rows": ingest["train"]["rows"],
        "rmsle": model, "gini": rows["stack_value"]["gini"],
        "best_baseline": b_r, "best_baseline_rmsle": base,
        "best_baseline_gini_name": b_g, "best_baseline_gini": rows[b_g]["gini"],
        "oracle_rmsle": orc, "oracle_gini": rows.get("oracle_mean", {}).get("gini"),
        "gap_closed": None if orc is None or base == orc else (base - model) / (base - orc),
        "rmsle_diff_ci": [ev["rmsle_diff_ci"]["lo"], ev["rmsle_diff_ci"]["hi"]],
        "gini_diff_ci": [ev["gini_diff_ci"]["lo"], ev["gini_diff_ci"]["hi"]],
        "race": race["winners"],
        "interval_coverage": (ev.get("intervals") or {}).get("coverage"),
        "whale": (ev.get("intervals") or {}).get("whale"),
        "candidates": {n: {"rmsle": rows[f"{n}_point"]["rmsle"], "gini": rows[f"{n}_value"]["gini"],
                           "stack_minus_rmsle_ci": [c["rmsle_diff_ci"]["lo"], c["rmsle_diff_ci"]["hi"]],
                           "stack_minus_gini_ci": [c["gini_diff_ci"]["lo"], c["gini_diff_ci"]["hi"]]}
                       for n, c in ev.get("candidates", {}).items()},
        "seconds": {**secs, "training_total": round(sum(v or 0 for v in secs.values()), 1),
                    "total": round(seconds, 1)},
    }


def main(args: argparse.Namespace) -> int:
    """``bench_quality.py --dataset NAME`` for a spec with a generator other than Smadex's."""
    from ltv_core.spec import load_spec

    spec_path = f"config/datasets/{args.dataset}.yaml"
    spec = load_spec(spec_path)
    if spec.generator != "gaming":
        raise SystemExit(f"no pipeline quality benchmark for generator {spec.generator!r} (spec {spec_path})")
    cache = Path(args.cache) / f"quality-{args.dataset}-{args.rows}-seed{args.seed}"
    t0 = time.perf_counter()
    gen = _generate(spec_path, cache / "data", args.rows, args.seed)
    _run(spec_path, cache / "data", cache / "store")
    result = {"dataset": args.dataset, "generated_rows": gen["summary"]["rows"], "seed": args.seed,
              **_summary(cache / "store", time.perf_counter() - t0)}
    print(json.dumps(result, default=float), file=sys.stdout)
    return 0
