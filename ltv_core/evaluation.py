"""The evaluate stage: the run's stack, its baselines, the champion and (synthetic data) the oracle,
all scored on the run's holdout window, which tuned nothing.

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

from ltv_core import metrics
from ltv_core.errors import DataError
from ltv_core.model_stages import ModelRun, load_baselines, load_stack
from ltv_core.promotion import read_champion
from ltv_core.scoring import Scorer, stream_predictions
from ltv_core.store import StageTimer, fs_for

log = logging.getLogger(__name__)

STAGE = "evaluate"
def headline(y: np.ndarray, point: np.ndarray, value: np.ndarray | None = None) -> dict[str, Any]:
    """The metrics promotion and the UI read: the very block the report shows (losses on the RMSLE
    point pred_<h>, ranking and totals on the expected value value_<h>, the column bids rank by)."""
    from ltv_core.report import score

    return score(y, point, value)


def _oracle(run: ModelRun, data_root: str | None, ids: pd.Series, partitions: list[str]) -> dict[str, np.ndarray] | None:
    """The generator's Bayes-optimal predictions for these rows, when the data set has them."""
    root = run.spec.optional_path("oracle", data_root)
    h = run.spec.labels.primary
    if root is None:
        return None
    fs, base = fs_for(f"{root}/{run.spec.roots.train.split('/')[0]}")
    key = run.spec.partition.key
    dirs = [f"{base}/{key}={p}" for p in partitions]
    paths = [f for d in dirs for f in sorted(fs.glob(f"{d}/*.parquet"))]
    if not all(fs.exists(d) for d in dirs) or not paths:
        log.info("no oracle files for every holdout partition under %s: oracle not reported", root)
        return None
    cols = [run.spec.id_column, f"oracle_log1p_{h}", f"oracle_mean_{h}"]
    try:
        t = ds.dataset(paths, filesystem=fs, format="parquet").to_table(columns=cols).to_pandas()
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        log.warning("oracle files under %s unreadable (%s): oracle not reported", root, exc)
        return None
    t = t.drop_duplicates(run.spec.id_column).set_index(run.spec.id_column)
    missing = ~ids.isin(t.index)
    if missing.any():
        log.warning("oracle lacks %d holdout rows: oracle not reported", int(missing.sum()))
        return None
    o = t.loc[ids.to_numpy()]
    return {"oracle_point": np.expm1(o[f"oracle_log1p_{h}"].to_numpy()), "oracle_mean": o[f"oracle_mean_{h}"].to_numpy()}


def _champion_on_holdout(run: ModelRun, ids: pd.Series) -> tuple[str | None, pd.DataFrame | None]:
    pointer = read_champion(run.store)
    if pointer is None or pointer["run_id"] == run.run_id:
        return (None, None) if pointer is None else (pointer["run_id"], None)
    champ = str(pointer["run_id"])
    try:
        scorer = Scorer.load(run.store, champ, run.spec)
    except DataError as exc:
        raise DataError(f"champion {champ!r} cannot be loaded to compare against: {exc}") from exc
    pred = pd.concat([p for _, p in stream_predictions(run.store, run.run_id, scorer, "holdout")], ignore_index=True)
    pred = pred.set_index(run.spec.id_column).loc[ids.to_numpy()].reset_index()
    return champ, pred


def run_evaluate_stage(run: ModelRun, data_root: str | None = None, logical_date: str | None = None) -> dict[str, Any]:
    timer = StageTimer(STAGE, run.run_id)
    X, meta = run.split("holdout")
    stack = load_stack(run.store, run.run_id)
    baselines = load_baselines(run.store, run.run_id)
    h, key, idc = run.spec.labels.primary, run.spec.partition.key, run.spec.id_column
    ids = meta[idc]
    oracle = _oracle(run, data_root, ids, sorted(meta[key].astype(str).unique()))
    ev = run.config.evaluation
    evaluation = stack.evaluate_on(X, meta, oracle, baselines, n_boot=ev.n_boot, level=ev.level, seed=run.config.seed)
    pred = stack.predict(X)
    y = meta[run.spec.primary.revenue].to_numpy(np.float64)
    frame = pd.DataFrame({idc: ids.to_numpy(), key: meta[key].to_numpy(), "y": y,
                          "point": pred[f"pred_{h}"].to_numpy(), "value": pred[f"value_{h}"].to_numpy(),
                          "p_buyer": pred["p_buyer"].to_numpy()})
    for name, model in baselines.items():
        frame[f"baseline_{name}"] = model.predict(X)
    for name, arr in (oracle or {}).items():
        frame[name] = arr
    champ_id, champ_pred = _champion_on_holdout(run, ids)
    champion_metrics = None
    if champ_pred is not None:
        frame["champion_point"] = champ_pred[f"pred_{h}"].to_numpy()
        frame["champion_value"] = champ_pred[f"value_{h}"].to_numpy()
        champion_metrics = headline(y, frame["champion_point"].to_numpy(), frame["champion_value"].to_numpy())
    model_metrics = headline(y, frame["point"].to_numpy(), frame["value"].to_numpy())

    stage_dir = run.store.begin_stage(run.run_id, STAGE)
    run.store.write_json(f"{stage_dir}/evaluation.json", evaluation)
    run.store.write_json(f"{stage_dir}/baselines.json", evaluation["comparison"])
    run.store.write_text(f"{stage_dir}/baselines.md", evaluation["comparison_markdown"] + "\n")
    run.store.write_parquet(f"{stage_dir}/holdout.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    log.info("holdout (%d rows, primary %s), model vs baselines%s:\n%s", len(frame), h,
             " vs oracle" if oracle else "", evaluation["comparison_markdown"])
    if champion_metrics:
        log.info("champion %s on this holdout: %s", champ_id, champion_metrics)
    timer.inputs = {"holdout_rows": len(frame), "oracle": oracle is not None, "logical_date": logical_date}
    return run.commit(timer, {"model": model_metrics, "champion": champion_metrics, "champion_run_id": champ_id,
                              "baselines": {n: r for n, r in evaluation["comparison"]["rows"].items()
                                            if evaluation["comparison"]["kinds"][n] != "model"},
                              "best_baseline_rmsle": evaluation["best_baseline_rmsle"],
                              "best_baseline_gini": evaluation["best_baseline_gini"],
                              "rmsle_diff_ci": evaluation["rmsle_diff_ci"], "gini_diff_ci": evaluation["gini_diff_ci"],
                              "rmsle": model_metrics["rmsle"], "gini": model_metrics["gini"]})


def feature_importance(run: ModelRun) -> dict[str, float]:
    """Gain of each feature, summed over the classifier and the regressor heads, each model's gains
    normalised to sum 1 first so that neither dominates by its scale."""
    clf = run.read_model("train_classifier", "classifier.json")
    reg = run.read_model("train_regressor", "regressor.json")
    total: dict[str, float] = {}
    for booster in [clf.booster_, *reg.boosters_]:
        gain = booster.feature_importance("gain")
        if gain.sum() <= 0:
            continue
        for name, g in zip(booster.feature_name(), gain / gain.sum(), strict=True):
            total[name] = total.get(name, 0.0) + float(g)
    return total


def write_run_report(run: ModelRun, decision: dict[str, Any] | None, logical_date: str | None) -> dict[str, str] | None:
    """HTML report + metrics.json of a run (None when the run never reached evaluation)."""
    from ltv_core.report import ReportInputs, write_report

    if not run.store.is_committed(run.run_id, STAGE):
        log.warning("run %s has no committed evaluation: no report", run.run_id)
        return None
    frame = load_holdout(run)
    ev_dir = run.store.stage_dir(run.run_id, STAGE)
    manifest = run.store.read_manifest(run.run_id, STAGE)
    stage_info = {s: {k: v for k, v in run.store.read_manifest(run.run_id, s).items()
                      if k in ("calibration", "chosen", "gate", "best_iterations", "auc", "brier", "plans")}
                  for s in ("resample", "train_classifier", "train_regressor", "fit_stacker", "optimize_gate")}
    champion = None
    if "champion_value" in frame:
        champion = {"run_id": manifest["champion_run_id"], "metrics": manifest["champion"],
                    "value": frame["champion_value"].to_numpy()}
    oracle = {c: frame[c].to_numpy() for c in ("oracle_point", "oracle_mean") if c in frame} or None
    inputs = ReportInputs(
        run_id=run.run_id, logical_date=logical_date, primary=run.spec.labels.primary,
        primary_metric=(decision or {}).get("primary_metric", "rmsle"), y_true=frame["y"].to_numpy(),
        point=frame["point"].to_numpy(), value=frame["value"].to_numpy(), p_buyer=frame["p_buyer"].to_numpy(),
        baselines={c.removeprefix("baseline_"): frame[c].to_numpy() for c in frame if c.startswith("baseline_")},
        evaluation=run.store.read_json(f"{ev_dir}/evaluation.json"), feature_importance=feature_importance(run),
        champion=champion, decision=decision, oracle=oracle, stage_info=stage_info)
    return write_report(run.store, run.run_id, inputs)


def load_holdout(run: ModelRun) -> pd.DataFrame:
    run.store.read_manifest(run.run_id, STAGE)
    return run.store.read_parquet(f"{run.store.stage_dir(run.run_id, STAGE)}/holdout.parquet").to_pandas()


__all__ = ["STAGE", "feature_importance", "headline", "load_holdout",
           "run_evaluate_stage", "write_run_report"]
