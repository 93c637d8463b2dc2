"""The catalog: names and readers of the artefacts a run's stages commit.

A stage module writes its own artefacts (``ltv_core.stages``); whatever a later stage, the scorer,
the report or a notebook reads back goes through a reader here, so each artefact's path and format
is known in one place. Every reader first reads the producing stage's manifest, which refuses a
stage that did not commit (``ArtifactStore.read_manifest``).

    runs/<run>/ingest/<split>/<key>=<value>/part-0.parquet     staged rows
    runs/<run>/build_features/feature_state.json               fitted feature state
    runs/<run>/build_features/<split>/<key>=<value>/...        feature files
    runs/<run>/evaluate/holdout.parquet, evaluation.json       holdout predictions and metrics
    runs/<run>/drift/drift.json                                the drift report (ltv_core.drift)

The model files of the modelling stages (plans, classifier, regressor, baselines, stacker, gate)
have their names and readers in ``ltv_core.models.artefacts``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd
import pyarrow as pa

from ltv_core.drift import DriftReport
from ltv_core.errors import DataError
from ltv_core.features.state import FeatureState, feature_frame
from ltv_core.jsonutil import to_jsonable
from ltv_core.pipeline import Split, Stage
from ltv_core.store import ArtifactStore

FEATURE_STATE = "feature_state.json"
EVALUATION = "evaluation.json"
HOLDOUT = "holdout.parquet"
DRIFT = "drift.json"


def path(store: ArtifactStore, run_id: str, stage: Stage, name: str) -> str:
    return f"{store.stage_dir(run_id, stage)}/{name}"


def partition_path(stage_dir: str, split: str, key: str, value: str) -> str:
    """Where a stage writes the one file of a split's partition (ingest, build_features)."""
    return f"{stage_dir}/{split}/{key}={value}/part-0.parquet"


# --- ingest ---------------------------------------------------------------------------------------
def staged_outputs(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """The ingest manifest's outputs: per split, its files (path, partition, rows), rows, window."""
    return store.read_manifest(run_id, Stage.INGEST)["outputs"]


def staged_partitions(store: ArtifactStore, run_id: str, split: Split) -> list[dict[str, Any]]:
    """The staged files of ``split`` in partition order; fails when ingest staged no such split."""
    outputs = staged_outputs(store, run_id)
    if split not in outputs:
        raise DataError(f"run {run_id!r}: ingest staged no {split.value!r} split (splits: {sorted(outputs)})")
    return sorted(outputs[split]["files"], key=lambda f: f["partition"])


def read_staged(store: ArtifactStore, run_id: str, split: Split, columns: list[str] | None = None) -> pa.Table:
    """Every staged row of ``split`` as one Arrow table (small splits, notebooks)."""
    files = staged_partitions(store, run_id, split)
    return pa.concat_tables([store.read_parquet(f["path"], columns=columns) for f in files])


# --- build_features -------------------------------------------------------------------------------
def load_feature_state(store: ArtifactStore, run_id: str) -> FeatureState:
    """The fitted state of a committed build_features stage."""
    store.read_manifest(run_id, Stage.BUILD_FEATURES)
    return FeatureState.from_dict(store.read_json(path(store, run_id, Stage.BUILD_FEATURES, FEATURE_STATE)))


def load_feature_matrix(store: ArtifactStore, run_id: str, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(X, meta) of a split: X in the state's feature order, categoricals as ``category`` dtype with
    the full fitted category list (``feature_frame``); meta holds the carry-along columns (id,
    partition, event time and, when labelled, labels)."""
    manifest = store.read_manifest(run_id, Stage.BUILD_FEATURES)
    if split not in manifest["outputs"] or split == "feature_state":
        raise DataError(f"run {run_id!r}: build_features has no split {split!r}")
    state = load_feature_state(store, run_id)
    files = manifest["outputs"][split]["files"]
    if not files:
        raise DataError(f"run {run_id!r}: split {split!r} has no feature files")
    table = pa.concat_tables([store.read_parquet(f["path"]) for f in files])
    meta_cols = [c for c in table.column_names if c not in set(state.feature_names)]
    return feature_frame(table, state), table.select(meta_cols).to_pandas()


@lru_cache(maxsize=4)
def _matrix_cached(store_url: str, run_id: str, split: Split, attempt: str | None, stamp: str
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = ArtifactStore(store_url)
    store.pin(run_id, Stage.BUILD_FEATURES, attempt)  # the very attempt the caller's store reads
    return load_feature_matrix(store, run_id, split)


def training_matrix(store: ArtifactStore, run_id: str, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``load_feature_matrix``, cached per process (the CLI runs every modelling stage in one
    process); the build_features attempt (and its finish time) is part of the key, so a rebuilt stage
    is read again. Fails on an empty split: nothing can be fitted or scored on it."""
    manifest = store.read_manifest(run_id, Stage.BUILD_FEATURES)
    X, meta = _matrix_cached(store.url, run_id, split, manifest.get("attempt"), str(manifest.get("finished_at")))
    if len(X) == 0:
        raise DataError(f"run {run_id!r}: split {split.value!r} has no rows")
    return X, meta


def fit_windows(store: ArtifactStore, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(X, meta) of the training window, then of the validation window: what every model fits on."""
    X, meta = training_matrix(store, run_id, Split.TRAIN)
    X_val, meta_val = training_matrix(store, run_id, Split.VALIDATION)
    return X, meta, X_val, meta_val


# --- evaluate -------------------------------------------------------------------------------------
def load_evaluation(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    store.read_manifest(run_id, Stage.EVALUATE)
    return store.read_json(path(store, run_id, Stage.EVALUATE, EVALUATION))


def load_holdout(store: ArtifactStore, run_id: str) -> pd.DataFrame:
    """One row per holdout row: truth, the run's point and value, baselines, champion, oracle."""
    store.read_manifest(run_id, Stage.EVALUATE)
    return store.read_parquet(path(store, run_id, Stage.EVALUATE, HOLDOUT)).to_pandas()


# --- drift ----------------------------------------------------------------------------------------
def write_drift(store: ArtifactStore, run_id: str, report: DriftReport) -> str:
    """The drift report of a run (one atomic write); the stage commits its manifest after it."""
    return store.write_json(path(store, run_id, Stage.DRIFT, DRIFT), to_jsonable(report.model_dump(mode="json"),
                                                                                  strict=True))


def load_drift(store: ArtifactStore, run_id: str) -> DriftReport:
    """The drift report of a committed drift stage."""
    store.read_manifest(run_id, Stage.DRIFT)
    return DriftReport.model_validate(store.read_json(path(store, run_id, Stage.DRIFT, DRIFT)))
