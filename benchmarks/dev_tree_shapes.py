"""Development-set study behind ``param_search`` in config/models.yaml (NOT the benchmark holdout).

    PYTHONPATH=. .venv/bin/python benchmarks/dev_tree_shapes.py --seed 3 --rows 1000000

On a development data set (generator seed 3 by default; the quality benchmark uses seed 7), with
the same time split and features as ``bench_quality.py``, fits LightGBM candidates for

* the buyer classifier (binary log loss on the buyer flag),
* the buyers' revenue regressor (L2 on log1p revenue of buyers, value = p x exp(m) with p from the
  ``--classifier-for-regressor`` candidate),
* the ``lgbm_log1p`` baseline (L2 on log1p revenue),

each early-stopped on the validation window, and reports for each candidate its own validation
loss (what ``param_search`` decides on in the product) and two oracle-based ranking scores that
only a synthetic set has: ``gini_exp``, the normalized Gini of the ranking measured against the
generator's expected revenue E[y | x] instead of the noisy realised revenue (a low-variance
estimate of the expected Gini; 1 = the Bayes-optimal order), and the AUC of the buyer flag.
These oracle scores explain the choice; they never make it. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_quality as bq  # noqa: E402
from ltv_core import metrics  # noqa: E402
from ltv_core.models.lgb import lgb_params, train_booster  # noqa: E402
from ltv_core.models.config import load_models_config  # noqa: E402
from ltv_core.spec import load_spec  # noqa: E402

CANDIDATES: dict[str, dict[str, Any]] = {
    "shared": {},
    "leaves2": {"num_leaves": 2, "learning_rate": 0.1},
    "leaves4": {"num_leaves": 4, "learning_rate": 0.05},
    "leaves7": {"num_leaves": 7, "learning_rate": 0.05},
    "depth3": {"num_leaves": 8, "max_depth": 3, "learning_rate": 0.05},
}


def log(msg: str) -> None:
    print(f"[dev_tree_shapes {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cache", default=str(ROOT / ".bench"))
    ap.add_argument("--config", default="config/models.yaml")
    ap.add_argument("--classifier", default="shared,leaves2,leaves4,leaves7,depth3")
    ap.add_argument("--regressor", default="shared,leaves4,leaves7")
    ap.add_argument("--baseline", default="shared,leaves2,leaves4,leaves7")
    ap.add_argument("--classifier-for-regressor", default="leaves2")
    ap.add_argument("--val-hours", type=int, default=24)
    ap.add_argument("--hold-hours", type=int, default=24)
    args = ap.parse_args(argv)
    if args.seed == 7:
        raise SystemExit("seed 7 is the quality benchmark's data set: tune on another seed")
    spec = load_spec(ROOT / "config/datasets/smadex_d7.yaml")
    cache = Path(args.cache) / f"dev-s{args.seed}-{args.rows}"
    data = cache / "data"
    bq.generate(data, args.rows, args.seed)
    splits = bq.build_features(spec, data, cache, args.val_hours, args.hold_hours)
    cfg = load_models_config(args.config)
    (Xt, Mt), (Xv, Mv), (Xh, Mh) = (splits[s] for s in bq.SPLITS)
    yt, yv, yh = (M[spec.primary.revenue].to_numpy(float) for M in (Mt, Mv, Mh))
    orc = ds.dataset(data / (spec.oracle or "oracle") / "train", format="parquet", partitioning="hive").to_table(
        columns=[spec.id_column, "oracle_mean_d7"]).to_pandas().set_index(spec.id_column)
    ev, eh = (orc.loc[M[spec.id_column].to_numpy(), "oracle_mean_d7"].to_numpy() for M in (Mv, Mh))

    def ranking(score_v: np.ndarray, score_h: np.ndarray) -> dict[str, float]:
        return {"val_gini_exp": metrics.normalized_gini(ev, score_v), "hold_gini_exp": metrics.normalized_gini(eh, score_h)}

    def fit(kind: str, extra: dict[str, Any], X, y, X_val, y_val, seed_offset: int):  # type: ignore[no-untyped-def]
        objective = {"binary": ("binary", "binary_logloss"), "l2": ("regression", "l2")}[kind]
        params = lgb_params(cfg.lgb(extra), cfg.seed + seed_offset, objective=objective[0], metric=objective[1])
        return train_booster(params, X, y, X_val=X_val, y_val=y_val, num_boost_round=cfg.num_boost_round,
                             early_stopping_rounds=cfg.early_stopping_rounds)

    out: dict[str, Any] = {"seed": args.seed, "rows": int(len(Xt) + len(Xv) + len(Xh)), "classifier": {},
                           "regressor": {}, "baseline": {}}
    bt, bv = (yt > 0).astype(float), (yv > 0).astype(float)
    probs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in args.classifier.split(","):
        t0 = time.perf_counter()
        b = fit("binary", CANDIDATES[name], Xt, bt, Xv, bv, 0)
        pv, ph = b.predict(Xv), b.predict(Xh)
        probs[name] = (pv, ph)
        out["classifier"][name] = {"val_log_loss": metrics.log_loss(bv, pv), "val_auc": metrics.roc_auc(bv, pv),
                                   **ranking(pv, ph), "trees": b.current_iteration(),
                                   "seconds": round(time.perf_counter() - t0, 1)}
        log(f"classifier {name}: {out['classifier'][name]}")
    pv, ph = probs.get(args.classifier_for_regressor) or next(iter(probs.values()))
    buy_t, buy_v = yt > 0, yv > 0
    for name in args.regressor.split(","):
        t0 = time.perf_counter()
        b = fit("l2", {**cfg.regressor.params, **CANDIDATES[name]}, Xt[buy_t], np.log1p(yt[buy_t]),
                Xv[buy_v], np.log1p(yv[buy_v]), 0)
        mv, mh = b.predict(Xv), b.predict(Xh)
        out["regressor"][name] = {"val_rmse_log1p_buyers": float(np.sqrt(np.mean((mv[buy_v] - np.log1p(yv[buy_v])) ** 2))),
                                  **ranking(pv * np.exp(mv), ph * np.exp(mh)), "trees": b.current_iteration(),
                                  "seconds": round(time.perf_counter() - t0, 1)}
        log(f"regressor {name}: {out['regressor'][name]}")
    for name in args.baseline.split(","):
        t0 = time.perf_counter()
        b = fit("l2", CANDIDATES[name], Xt, np.log1p(yt), Xv, np.log1p(yv), 0)
        sv, sh = b.predict(Xv), b.predict(Xh)
        out["baseline"][name] = {"val_l2_log1p": float(np.mean((sv - np.log1p(yv)) ** 2)),
                                 **ranking(np.maximum(sv, 1e-9), np.maximum(sh, 1e-9)), "trees": b.current_iteration(),
                                 "seconds": round(time.perf_counter() - t0, 1)}
        log(f"baseline {name}: {out['baseline'][name]}")
    out = json.loads(json.dumps(out), parse_float=lambda x: round(float(x), 6))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
