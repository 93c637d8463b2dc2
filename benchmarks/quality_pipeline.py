"""Model quality measured through the product itself, on one data regime (benchmarks/regimes.py).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_quality.py --regime customers
    PYTHONPATH=. .venv/bin/python benchmarks/bench_quality.py --all
    PYTHONPATH=. .venv/bin/python benchmarks/bench_quality.py --dataset gaming_d120 --rows 240000

1. generate the regime's data with the generator its spec names (cached under
   ``.bench/quality-<regime>-<rows>-seed<seed>/data``), with its oracle;
2. run every stage of the product (``python -m ltv_core run``, the spec's own windows, the product's
   configs unchanged) into a fresh store;
3. read what the run committed: the holdout table of ``evaluate`` (the shipped model vs the
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from regimes import ALL, REGIMES, Regime, logical_date, regime_for_dataset  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench_quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _generate(regime: Regime, out: Path, rows: int, seed: int) -> dict[str, Any]:
    """Generate once; the marker records the arguments so a stale cache is not reused."""
    from ltv_core.synthetic import generate

    args = {"seed": seed, **regime.generator_args(rows)}
    marker = out / "generated.json"
    if marker.exists() and json.loads(marker.read_text()).get("args") == args:
        log(f"{regime.name}: data from cache {out}")
        return json.loads(marker.read_text())
    log(f"{regime.name}: generating ~{rows} rows into {out} ({args})")
    summary = generate(out, spec_path=regime.spec, log=log, **args)
    marker.write_text(json.dumps({"args": args, "summary": summary}, default=str))
    return {"args": args, "summary": summary}


def _run(regime: Regime, data: Path, store: Path) -> dict[str, Any]:
    from ltv_core import cli

    shutil.rmtree(store, ignore_errors=True)
    out = io.StringIO()
    logical = logical_date(regime, str(data)).isoformat()
    log(f"{regime.name}: running the pipeline (logical date {logical}); stage progress below")
    with contextlib.redirect_stdout(out):
        rc = cli.main(["run", "--spec", regime.spec, "--data-root", str(data), "--store-root", str(store),
                       "--logical-date", logical, "--run-id", "bench"])
    if rc != 0:
        raise SystemExit(f"the pipeline run failed (exit {rc}); its log is above")
    return json.loads(out.getvalue())


def _verdict(ci: list[float], higher_is_better: bool) -> str:
    """shipped - best baseline: 'better' / 'worse' beyond the paired 95% interval, else 'tie'."""
    lo, hi = ci
    if (hi < 0 and not higher_is_better) or (lo > 0 and higher_is_better):
        return "better"
    if (lo > 0 and not higher_is_better) or (hi < 0 and higher_is_better):
        return "worse"
    return "tie"


def _shape(store: Path, rows: dict[str, Any]) -> dict[str, Any]:
    """The holdout's own shape: zero share, the top 1%'s revenue share, and how much of the
    zero->oracle RMSLE gap the best plain LightGBM closes (the low_signal definition)."""
    import numpy as np

    from ltv_core import catalog
    from ltv_core.store import ArtifactStore

    y = np.sort(catalog.load_holdout(ArtifactStore(str(store)), "bench")["y"].to_numpy(np.float64))[::-1]
    top = max(1, int(round(0.01 * len(y))))
    lgbm = min((n for n in rows if n.startswith("lgbm_")), key=lambda n: rows[n]["rmsle"], default=None)
    zero, orc = rows.get("zero", {}).get("rmsle"), rows.get("oracle_point", {}).get("rmsle")
    closed = None if None in (lgbm, zero, orc) or zero == orc else (zero - rows[lgbm]["rmsle"]) / (zero - orc)
    return {"zero_share": float(np.mean(y == 0)), "top1_share": float(y[:top].sum() / max(y.sum(), 1e-12)),
            "baseline_gap_closed_from_zero": closed}


def _check(regime: Regime, result: dict[str, Any]) -> dict[str, Any] | None:
    """The regime's defining property, evaluated on this run (None: the regime has none)."""
    if not regime.check:
        return None
    name, op, *rest = regime.check.split(" ", 2)
    value = result.get(name)
    if value is None:
        return {"check": regime.check, "value": None, "holds": False}
    if op == "in":
        lo, hi = json.loads(rest[0])
        holds = lo <= value <= hi
    else:
        bound = float(rest[0])
        holds = {"<": value < bound, "<=": value <= bound, ">": value > bound}[op]
    return {"check": regime.check, "value": value, "holds": bool(holds)}


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
    rmsle_ci = [ev["rmsle_diff_ci"]["lo"], ev["rmsle_diff_ci"]["hi"]]
    gini_ci = [ev["gini_diff_ci"]["lo"], ev["gini_diff_ci"]["hi"]]
    return {
        "holdout_rows": ev["rows"], "train_rows": ingest["train"]["rows"],
        # shipped - best baseline on the holdout, by its paired 95% interval
        "verdict": {"rmsle": _verdict(rmsle_ci, False), "gini": _verdict(gini_ci, True)},
        "rmsle": model, "gini": rows["stack_value"]["gini"],
        "best_baseline": b_r, "best_baseline_rmsle": base,
        "best_baseline_gini_name": b_g, "best_baseline_gini": rows[b_g]["gini"],
        "oracle_rmsle": orc, "oracle_gini": rows.get("oracle_mean", {}).get("gini"),
        "gap_closed": None if orc is None or base == orc else (base - model) / (base - orc),
        "rmsle_diff_ci": rmsle_ci, "gini_diff_ci": gini_ci,
        "race": race["winners"], **_shape(store, rows),
        "interval_coverage": (ev.get("intervals") or {}).get("coverage"),
        "whale": (ev.get("intervals") or {}).get("whale"),
        "candidates": {n: {"rmsle": rows[f"{n}_point"]["rmsle"], "gini": rows[f"{n}_value"]["gini"],
                           "stack_minus_rmsle_ci": [c["rmsle_diff_ci"]["lo"], c["rmsle_diff_ci"]["hi"]],
                           "stack_minus_gini_ci": [c["gini_diff_ci"]["lo"], c["gini_diff_ci"]["hi"]]}
                       for n, c in ev.get("candidates", {}).items()},
        "seconds": {**secs, "training_total": round(sum(v or 0 for v in secs.values()), 1),
                    "total": round(seconds, 1)},
    }


def run_regime(regime: Regime, rows: int, seed: int, cache_root: str) -> dict[str, Any]:
    """Generate (cached), run the product, summarise: one regime's JSON."""
    cache = Path(cache_root) / f"quality-{regime.name}-{rows}-seed{seed}"
    t0 = time.perf_counter()
    gen = _generate(regime, cache / "data", rows, seed)
    _run(regime, cache / "data", cache / "store")
    result = {"regime": regime.name, "spec": regime.spec, "generated_rows": gen["summary"].get("rows"),
              "seed": seed, **_summary(cache / "store", time.perf_counter() - t0)}
    result["regime_check"] = _check(regime, result)
    return result


def main(args: argparse.Namespace) -> int:
    """``bench_quality.py --regime NAME`` / ``--all`` / ``--dataset NAME`` (a spec with its own
    generator): one JSON line per regime; with ``--all`` a summary object last."""
    if args.all:
        names = list(ALL)
    elif args.regime:
        if args.regime not in REGIMES:
            raise SystemExit(f"unknown regime {args.regime!r}; regimes: {sorted(REGIMES)}")
        names = [args.regime]
    else:
        names = [regime_for_dataset(args.dataset).name]
    results = []
    for name in names:
        regime = REGIMES[name]
        rows = args.rows if args.rows and not args.all else regime.rows
        result = run_regime(regime, rows, args.seed, args.cache)
        results.append(result)
        print(json.dumps(result, default=float), flush=True)
    if args.all:
        better = [r["regime"] for r in results if set(r["verdict"].values()) == {"better"}]
        worse = [r["regime"] for r in results if "worse" in r["verdict"].values()]
        print(json.dumps({"regimes": names, "significantly_better_on_both": better,
                          "significantly_worse_on_either": worse,
                          "gap_closed": {r["regime"]: r["gap_closed"] for r in results},
                          "checks_hold": {r["regime"]: (r["regime_check"] or {}).get("holds") for r in results},
                          "training_seconds": {r["regime"]: r["seconds"]["training_total"] for r in results}},
                         default=float))
    return 0
