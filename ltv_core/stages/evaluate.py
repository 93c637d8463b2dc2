"""evaluate: the run's stack, its baselines, the champion and (synthetic data) the oracle, all
scored on the run's holdout window, which tuned nothing.

Writes ``evaluate/evaluation.json`` (every metric per horizon and column, classifier metrics, the
side-by-side table, paired bootstrap CIs against the best baseline), ``evaluate/baselines.md`` /
``baselines.json`` (the table, also printed to the task log) and ``evaluate/holdout.parquet`` (one
row per holdout row: truth, model, baselines, champion, oracle), which the report is drawn from.

The champion is applied to the same raw holdout rows through its *own* feature state, so the
promotion compares two models on identical data that neither was tuned on.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.models import artefacts
from ltv_core.models.stack import candidate_columns
from ltv_core.pipeline import Split, Stage
from ltv_core.promotion import read_champion
from ltv_core.report import score as headline
from ltv_core.scoring import Scorer, stream_predictions
from ltv_core.spec import DatasetSpec
from ltv_core.store import fs_for

log = logging.getLogger(__name__)

STAGE = Stage.EVALUATE


def oracle_predictions(spec: DatasetSpec, data_root: str | None, ids: pd.Series,
                       partitions: list[str]) -> dict[str, np.ndarray] | None:
    """The generator's Bayes-optimal predictions for these rows, when the data set has them."""
    root = spec.optional_path("oracle", data_root)
    h = spec.labels.primary
    if root is None:
        return None
    fs, base = fs_for(f"{root}/{spec.roots.train.split('/')[0]}")
    key = spec.partition.key
    dirs = [f"{base}/{key}={p}" for p in partitions]
    paths = [f for d in dirs for f in sorted(fs.glob(f"{d}/*.parquet"))]
    if not all(fs.exists(d) for d in dirs) or not paths:
        log.info("no oracle files for every holdout partition under %s: oracle not reported", root)
        return None
    cols = [spec.id_column, f"oracle_log1p_{h}", f"oracle_mean_{h}"]
    try:
        t = ds.dataset(paths, filesystem=fs, format="parquet").to_table(columns=cols).to_pandas()
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        log.warning("oracle files under %s unreadable (%s): oracle not reported", root, exc)
        return None
    t = t.drop_duplicates(spec.id_column).set_index(spec.id_column)
    missing = ~ids.isin(t.index)
    if missing.any():
        log.warning("oracle lacks %d holdout rows: oracle not reported", int(missing.sum()))
        return None
    o = t.loc[ids.to_numpy()]
    return {"oracle_point": np.expm1(o[f"oracle_log1p_{h}"].to_numpy()), "oracle_mean": o[f"oracle_mean_{h}"].to_numpy()}


def _champion_on_holdout(ctx: RunContext, ids: pd.Series) -> tuple[str | None, pd.DataFrame | None]:
    """The current champion's predictions of this run's staged holdout rows (None when there is no
    champion, or it is this very run)."""
    pointer = read_champion(ctx.store)
    if pointer is None or pointer["run_id"] == ctx.run_id:
        return (None, None) if pointer is None else (pointer["run_id"], None)
    champ = str(pointer["run_id"])
    try:
        scorer = Scorer.champion(ctx.store, pointer, ctx.spec)
    except DataError as exc:
        raise DataError(f"champion {champ!r} cannot be loaded to compare against: {exc}") from exc
    pred = pd.concat([p for _, p in stream_predictions(ctx.store, ctx.run_id, scorer, Split.HOLDOUT)],
                     ignore_index=True)
    pred = pred.set_index(ctx.spec.id_column).loc[ids.to_numpy()].reset_index()
    return champ, pred


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    store, spec, run_id = ctx.store, ctx.spec, ctx.run_id
    X, meta = catalog.training_matrix(store, run_id, Split.HOLDOUT)
    stack = artefacts.load_stack(store, run_id)
    baselines = artefacts.load_baselines(store, run_id)
    candidates = artefacts.load_candidates(store, run_id)
    h, key, idc = spec.labels.primary, spec.partition.key, spec.id_column
    ids = meta[idc]
    oracle = oracle_predictions(spec, ctx.config.data_root, ids, sorted(meta[key].astype(str).unique()))
    ev = ctx.models.evaluation
    evaluation = stack.evaluate_on(X, meta, oracle, baselines, n_boot=ev.n_boot, level=ev.level, seed=ctx.models.seed,
                                   candidates=candidates)
    pred = stack.predict(X)
    y = meta[spec.primary.revenue].to_numpy(np.float64)
    frame = pd.DataFrame({idc: ids.to_numpy(), key: meta[key].to_numpy(), "y": y,
                          "point": pred[f"pred_{h}"].to_numpy(), "value": pred[f"value_{h}"].to_numpy(),
                          "p_buyer": pred["p_buyer"].to_numpy()})
    for name, model in baselines.items():
        frame[f"baseline_{name}"] = model.predict(X)
    for name, arr in candidate_columns(candidates, X).items():
        frame[f"candidate_{name}"] = arr
    for name, arr in (oracle or {}).items():
        frame[name] = arr
    champ_id, champ_pred = _champion_on_holdout(ctx, ids)
    champion_metrics = None
    if champ_pred is not None:
        frame["champion_point"] = champ_pred[f"pred_{h}"].to_numpy()
        frame["champion_value"] = champ_pred[f"value_{h}"].to_numpy()
        champion_metrics = headline(y, frame["champion_point"].to_numpy(), frame["champion_value"].to_numpy())
    model_metrics = headline(y, frame["point"].to_numpy(), frame["value"].to_numpy())

    store.begin_stage(run_id, STAGE)
    store.write_json(ctx.path(STAGE, catalog.EVALUATION), evaluation)
    store.write_json(ctx.path(STAGE, "baselines.json"), evaluation["comparison"])
    store.write_text(ctx.path(STAGE, "baselines.md"), evaluation["comparison_markdown"] + "\n")
    store.write_parquet(ctx.path(STAGE, catalog.HOLDOUT), pa.Table.from_pandas(frame, preserve_index=False))
    log.info("holdout (%d rows, primary %s), model vs baselines%s:\n%s", len(frame), h,
             " vs oracle" if oracle else "", evaluation["comparison_markdown"])
    if champion_metrics:
        log.info("champion %s on this holdout: %s", champ_id, champion_metrics)
    timer.inputs.update({"holdout_rows": len(frame), "oracle": oracle is not None,
                         "logical_date": ctx.logical_date.isoformat()})
    kinds = evaluation["comparison"]["kinds"]
    return ctx.committed(timer, {
        "model": model_metrics, "champion": champion_metrics, "champion_run_id": champ_id,
        "baselines": {n: r for n, r in evaluation["comparison"]["rows"].items() if kinds[n] not in ("model", "candidate")},
        "candidates": {n: {"point": evaluation["comparison"]["rows"][f"{n}_point"],
                           "value": evaluation["comparison"]["rows"][f"{n}_value"], **evaluation.get("candidates", {}).get(n, {})}
                       for n in candidates},
        "best_baseline_rmsle": evaluation["best_baseline_rmsle"], "best_baseline_gini": evaluation["best_baseline_gini"],
        "rmsle_diff_ci": evaluation["rmsle_diff_ci"], "gini_diff_ci": evaluation["gini_diff_ci"],
        "rmsle": model_metrics["rmsle"], "gini": model_metrics["gini"],
        "intervals_max_coverage_error": (evaluation.get("intervals") or {}).get("max_abs_error"),
        # which fitted model ships each output (the candidates race on validation, models/race.py)
        "shipped": {"point": stack.race.get("point", "stack"), "value": stack.race.get("value", "stack")}})
