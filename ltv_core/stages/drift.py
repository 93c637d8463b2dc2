"""drift: the scoring window against the training window, before its labels arrive.

Compares, on a uniform sample of each window (``drift.sample_rows``), every feature some tree of
this run's stack splits on (``FittedStack.used_features``, the set scoring's pruned plan computes):
PSI and KS / chi-square on the feature matrices build_features wrote with this run's one feature
state, and, for categorical features, the exact share of scoring rows whose raw value the whole
training window never had (read from the staged rows: on the model's codes a rare and a new value
look alike). Then the prediction distribution: this run's predictions on the scoring sample against
the champion's on the same rows (its own feature state and models), or against this run's own on
validation when there is no other champion. The pure statistics are ``ltv_core.drift``.

Writes ``drift/drift.json`` and commits a manifest with the verdict. A flagged run is logged with
one WARNING line naming its top features; it still promotes and scores (promote reads the verdict
but does not wait for it, docs/OPERATIONS.md "Drift").
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core import catalog
from ltv_core import drift as D
from ltv_core.config import DriftConfig
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.models import artefacts
from ltv_core.models.stack import FittedStack
from ltv_core.pipeline import Split, Stage
from ltv_core.promotion import read_champion
from ltv_core.spec import FeatureKind
from ltv_core.store import ArtifactStore

log = logging.getLogger(__name__)

STAGE = Stage.DRIFT


def thresholds(cfg: DriftConfig) -> D.Thresholds:
    return D.Thresholds(psi_warn=cfg.psi_warn, psi_alert=cfg.psi_alert, max_drifted_share=cfg.max_drifted_share,
                        max_unseen_share=cfg.max_unseen_share, prediction_psi=cfg.prediction_psi)


def raw_unseen_shares(store: ArtifactStore, run_id: str, columns: list[str]) -> dict[str, float]:
    """Per raw categorical column: the share of the scoring window's non-null values that no row of
    the training window had. Memory ~ distinct training values (one file's uniques at a time)."""
    if not columns:
        return {}
    seen: dict[str, list[pa.Array]] = {c: [] for c in columns}
    for f in catalog.staged_partitions(store, run_id, Split.TRAIN):
        table = store.read_parquet(f["path"], columns, skip_missing=True)
        for c in table.column_names:
            seen[c].append(pc.unique(table[c]))
    scoring = pa.concat_tables([store.read_parquet(f["path"], columns, skip_missing=True)
                                for f in catalog.staged_partitions(store, run_id, Split.SCORING)],
                               promote_options="default")
    return {c: D.unseen_share(pa.chunked_array(seen[c] or [pa.array([], pa.string())]).to_pandas(),
                              scoring[c].to_pandas())
            for c in columns if c in scoring.column_names}


def _champion_reference(ctx: RunContext, ids: pd.Series, column: str) -> tuple[str, np.ndarray] | None:
    """(champion run id, its predictions of the sampled scoring rows); None when there is no other
    champion or it cannot be loaded (then the validation reference is used, and the note says why)."""
    from ltv_core.scoring import Scorer

    pointer = read_champion(ctx.store)
    if pointer is None or pointer["run_id"] == ctx.run_id:
        return None
    champ = str(pointer["run_id"])
    try:
        scorer = Scorer.champion(ctx.store, pointer, ctx.spec)
    except DataError as exc:
        log.warning("champion %s cannot be loaded for the prediction drift (%s): compared with validation", champ,
                    exc)
        return None
    wanted = pa.array(ids.astype(str).to_numpy(), pa.string())
    parts = []
    for f in catalog.staged_partitions(ctx.store, ctx.run_id, Split.SCORING):
        table = scorer.read(ctx.store, f["path"])
        table = table.filter(pc.is_in(pc.cast(table[ctx.spec.id_column], pa.string()), value_set=wanted))
        parts.append(scorer.predict_table(table)[column].to_numpy())
    return champ, np.concatenate(parts) if parts else np.zeros(0)


def validation_sample(ctx: RunContext, cfg: DriftConfig) -> pd.DataFrame:
    """A uniform sample (``drift.sample_rows``) of the validation window's feature matrix."""
    X_val, _ = catalog.training_matrix(ctx.store, ctx.run_id, Split.VALIDATION)
    return X_val.iloc[D.sample_positions(len(X_val), cfg.sample_rows, cfg.seed)]


def prediction_drift(ctx: RunContext, stack: FittedStack, X_score: pd.DataFrame, ids: pd.Series,
                     cfg: DriftConfig, validation: Callable[[], pd.DataFrame]) -> D.PredictionDrift:
    """This run's expected-value predictions on the scoring sample against the champion's on the
    same rows, else against this run's own on the validation sample (``validation()``)."""
    column = f"value_{ctx.spec.labels.primary}"
    current = stack.predict(X_score)[column].to_numpy()
    champion = _champion_reference(ctx, ids, column)
    if champion is not None:
        return D.prediction_drift(champion[1], current, column=column, reference_name="champion",
                                  reference_run_id=champion[0], bins=cfg.bins)
    return D.prediction_drift(stack.predict(validation())[column].to_numpy(), current, column=column,
                              reference_name="validation", reference_run_id=ctx.run_id, bins=cfg.bins)


# Target encodings are named ``<column>__te_<target>`` (ltv_core.features.builder._te_items).
TE_MARK = "__te_"


def measure(ctx: RunContext, cfg: DriftConfig, timings: dict[str, float]) -> D.DriftReport:
    """The drift report of the run (see the module docstring)."""
    t0 = time.perf_counter()
    store, run_id = ctx.store, ctx.run_id
    stack = artefacts.load_stack(store, run_id)
    X_tr, _ = catalog.training_matrix(store, run_id, Split.TRAIN)
    X_sc, meta_sc = catalog.training_matrix(store, run_id, Split.SCORING)
    tr = X_tr.iloc[D.sample_positions(len(X_tr), cfg.sample_rows, cfg.seed)]
    pos = D.sample_positions(len(X_sc), cfg.sample_rows, cfg.seed)
    sc, ids = X_sc.iloc[pos], meta_sc[ctx.spec.id_column].iloc[pos]
    features = D.compared_features(stack.used_features(), list(X_tr.columns), cfg.exclude_features)
    timings["load"] = round(time.perf_counter() - t0, 3)
    raw = [c.name for c in ctx.spec.columns if c.kind is FeatureKind.categorical and c.name in set(features)]
    unseen = raw_unseen_shares(store, run_id, raw)
    # Training rows carry OUT-OF-FOLD target encodings (builder.py), the scoring rows the full-train
    # ones: distributions that differ by construction (PSI 1.6 on undrifted demo data). Their
    # reference is the validation window, encoded by the same state as the scoring window.
    oof = [f for f in features if TE_MARK in f]
    same = [f for f in features if TE_MARK not in f]
    validation = functools.cache(lambda: validation_sample(ctx, cfg))  # read once, only if needed
    rows = D.feature_drift(tr, sc, same, bins=cfg.bins, unseen=unseen)
    if oof:
        rows += D.feature_drift(validation(), sc, oof, bins=cfg.bins, unseen=unseen)
        order = {f: i for i, f in enumerate(features)}
        rows.sort(key=lambda r: order[r.feature])
    timings["features"] = round(time.perf_counter() - t0 - timings["load"], 3)
    pred = prediction_drift(ctx, stack, sc, ids, cfg, validation)
    timings["predictions"] = round(time.perf_counter() - t0 - timings["load"] - timings["features"], 3)
    notes = [f"compared {len(features)} of {len(stack.used_features())} used features "
             f"(excluded by drift.exclude_features: {cfg.exclude_features})",
             f"samples: {len(tr)} of {len(X_tr)} training rows, {len(sc)} of {len(X_sc)} scoring rows",
             f"{len(oof)} target-encoded features compared with the validation window (training rows are "
             "encoded out-of-fold)"]
    return D.assess(rows, pred, thresholds(cfg), train_rows=len(X_tr), score_rows=len(X_sc), notes=notes)


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    cfg = ctx.config.drift
    timings: dict[str, float] = {}
    if Split.SCORING not in catalog.staged_outputs(ctx.store, ctx.run_id):
        report = D.DriftReport(enabled=False, thresholds=thresholds(cfg),
                               notes=["no scoring window (the data set has no test partitions): nothing to compare"])
    elif cfg.enabled:
        report = measure(ctx, cfg, timings)
    else:
        report = D.DriftReport(enabled=False, thresholds=thresholds(cfg), notes=["drift.enabled is false"])
    ctx.store.begin_stage(ctx.run_id, STAGE)
    path = catalog.write_drift(ctx.store, ctx.run_id, report)
    line = D.log_line(report, ctx.run_id)
    (log.warning if report.flagged else log.info)("%s", line)
    timer.outputs = {"drift": ctx.store.uri(path)}
    summary = report.summary()
    manifest = ctx.commit(timer, cfg.model_dump(mode="json"), {**summary, "timings": timings})
    return {"run_id": ctx.run_id, "stage": STAGE.value, "manifest": manifest, "drift": ctx.store.uri(path),
            "flagged": report.flagged, "max_psi": report.max_psi, "drifted_share": report.drifted_share,
            "prediction_psi": summary["prediction_psi"], "max_unseen_share": report.max_unseen_share}
