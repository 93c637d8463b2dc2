"""Development study (VALIDATION window of a development seed only): does the revenue-cohort
strategy help, alone or as a stacker base learner?

    PYTHONPATH=. .venv/bin/python benchmarks/dev_cohorts.py --rows 200000 --seed 3

Uses bench_quality's generator cache and feature build (same splits), fits the baselines, the
cohort model, and the stack twice (stacker learners without / with ``cohorts``), and prints the
validation metrics the decisions are taken on: never the holdout (docs/MODELS.md "Cohorts").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_quality import SPLITS, build_features, generate, log  # noqa: E402

from ltv_core.spec import load_spec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--cache", default=str(ROOT / ".bench"))
    args = ap.parse_args(argv)

    from ltv_core import metrics
    from ltv_core.models.config import load_models_config
    from ltv_core.models.training import fit_baseline_models, fit_candidates, train_stack

    spec = load_spec("config/datasets/smadex_d7.yaml")
    cache = Path(args.cache) / f"dev-{args.rows}-seed{args.seed}"
    generate(cache / "data", args.rows, args.seed)
    splits = build_features(spec, cache / "data", cache)
    rev = [h.revenue for h in spec.labels.horizons]
    (Xt, Mt), (Xv, Mv), _ = (splits[s] for s in SPLITS)
    Lt, Lv = (m[rev].reset_index(drop=True) for m in (Mt, Mv))
    k = rev.index(spec.primary.revenue)
    y, y_val = Lt.iloc[:, k].to_numpy(), Lv.iloc[:, k].to_numpy()
    cfg = load_models_config()
    out: dict = {"rows": args.rows, "seed": args.seed, "train_rows": len(Xt), "validation_rows": len(Xv)}

    t0 = time.perf_counter()
    base, _ = fit_baseline_models(Xt, y, Xv, y_val, cfg)
    out["baselines_seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    cand = fit_candidates(Xt, y, Xv, y_val, cfg)
    out["cohorts_seconds"] = round(time.perf_counter() - t0, 1)
    coh = cand["cohorts"]
    out["validation"] = {n: {"rmsle": metrics.rmsle(y_val, b.predict(Xv)), "gini": metrics.normalized_gini(y_val, b.predict(Xv))}
                         for n, b in base.items() if b.is_lgbm}
    out["validation"]["cohorts"] = {"rmsle": metrics.rmsle(y_val, coh.predict(Xv)),
                                    "gini": metrics.normalized_gini(y_val, coh.predict_value(Xv)),
                                    "gini_routed": metrics.normalized_gini(y_val, coh.predict_routed(Xv))}
    for tag, learners in (("stack", list(cfg.stacker.learners)),
                          ("stack+cohorts", [*cfg.stacker.learners, "cohorts"])):
        c = cfg.model_copy(update={"stacker": cfg.stacker.model_copy(update={"learners": learners})})
        t0 = time.perf_counter()
        stack = train_stack(Xt, Lt, Xv, Lv, spec, c, base_models={**base, **cand})
        info = stack.decisions["stacker"]
        out[tag] = {k2: info.get(k2) for k2 in ("chosen", "value", "hurdle_val_rmsle", "stacker_val_rmsle",
                                                "hurdle_value_val_gini", "value_head_val_gini")}
        out[tag]["race"] = stack.decisions["race"]["winners"]
        out[tag]["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{tag}: {out[tag]}")
    print(json.dumps(out, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
