"""The catalog: names and readers of the artefacts a run's stages commit.

A stage module writes its own artefacts (``ltv_core.stages``); whatever a later stage, the scorer,
the report or a notebook reads back goes through a reader here, so each artefact's path and format
is known in one place. Every reader first reads the producing stage's manifest, which refuses a
stage that did not commit (``ArtifactStore.read_manifest``).

    runs/<run>/ingest/<split>/<key>=<value>/part-0.parquet     staged rows
    runs/<run>/build_features/feature_state.json               fitted feature state
    runs/<run>/build_features/<split>/<key>=<value>/...        feature files
    runs/<run>/resample/plans.npz                              row positions + weights
    runs/<run>/train_classifier/classifier.json, train_regressor/regressor.json,
    runs/<run>/train_baselines/<name>.json, fit_stacker/*.json, optimize_gate/gate.json
    runs/<run>/evaluate/holdout.parquet, evaluation.json       holdout predictions and metrics
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_core.errors import DataError
from ltv_core.features.state import FeatureState, feature_frame
from ltv_core.models import persist
from ltv_core.models.baselines import Baseline
from ltv_core.models.gate import Gate
from ltv_core.models.plans import ResamplePlan
from ltv_core.models.stack import FittedStack
from ltv_core.pipeline import Split, Stage
from ltv_core.store import ArtifactStore

FEATURE_STATE = "feature_state.json"
PLANS = "plans.npz"
PLAN_NAMES = ("classifier", "regressor")
CLASSIFIER = "classifier.json"
REGRESSOR = "regressor.json"
GATE = "gate.json"
GATE_PARAMS = "gate_params.json"
EVALUATION = "evaluation.json"
HOLDOUT = "holdout.parquet"


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
def _matrix_cached(store_url: str, run_id: str, split: Split, stamp: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_feature_matrix(ArtifactStore(store_url), run_id, split)


def training_matrix(store: ArtifactStore, run_id: str, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``load_feature_matrix``, cached per process (the CLI runs every modelling stage in one
    process); the build_features manifest's finish time is part of the key, so a rebuilt stage is
    read again. Fails on an empty split: nothing can be fitted or scored on it."""
    stamp = str(store.read_manifest(run_id, Stage.BUILD_FEATURES).get("finished_at"))
    X, meta = _matrix_cached(store.url, run_id, split, stamp)
    if len(X) == 0:
        raise DataError(f"run {run_id!r}: split {split.value!r} has no rows")
    return X, meta


def fit_windows(store: ArtifactStore, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(X, meta) of the training window, then of the validation window: what every model fits on."""
    X, meta = training_matrix(store, run_id, Split.TRAIN)
    X_val, meta_val = training_matrix(store, run_id, Split.VALIDATION)
    return X, meta, X_val, meta_val


# --- modelling stages -----------------------------------------------------------------------------
def plans_to_bytes(plans: dict[str, ResamplePlan]) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    for name, plan in plans.items():
        arrays[f"{name}.prior_factor"] = np.array([plan.prior_factor])
        if plan.indices is not None:
            arrays[f"{name}.indices"] = plan.indices
        if plan.weights is not None:
            arrays[f"{name}.weights"] = plan.weights
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def load_plans(store: ArtifactStore, run_id: str) -> dict[str, ResamplePlan]:
    manifest = store.read_manifest(run_id, Stage.RESAMPLE)
    data = np.load(io.BytesIO(store.read_bytes(path(store, run_id, Stage.RESAMPLE, PLANS))))
    return {name: ResamplePlan(data[f"{name}.indices"] if f"{name}.indices" in data else None,
                               data[f"{name}.weights"] if f"{name}.weights" in data else None,
                               float(data[f"{name}.prior_factor"][0]), manifest["plans"][name])
            for name in PLAN_NAMES}


def save_models(store: ArtifactStore, run_id: str, stage: Stage, models: dict[str, Any]) -> None:
    """(Re)start ``stage``'s folder and write each fitted component as ``<name>`` (JSON, no pickle:
    ``ltv_core.models.persist``)."""
    store.begin_stage(run_id, stage)
    for name, model in models.items():
        store.write_bytes(path(store, run_id, stage, name), persist.dumps(model))


def load_model(store: ArtifactStore, run_id: str, stage: Stage, name: str) -> Any:
    """One serialised model component of a committed stage (``ltv_core.models.persist``)."""
    store.read_manifest(run_id, stage)
    return persist.loads(store.read_bytes(path(store, run_id, stage, name)))


def load_baselines(store: ArtifactStore, run_id: str) -> dict[str, Baseline]:
    manifest = store.read_manifest(run_id, Stage.TRAIN_BASELINES)
    return {n: persist.loads(store.read_bytes(path(store, run_id, Stage.TRAIN_BASELINES, f"{n}.json")))
            for n in manifest["baselines"]}


def load_stack(store: ArtifactStore, run_id: str, *, gated: bool = True) -> FittedStack:
    """The fitted stack of a run, from the artefacts its stages committed (gate included unless
    ``gated=False``, which the gate search itself uses)."""
    stages = (Stage.TRAIN_CLASSIFIER, Stage.TRAIN_REGRESSOR, Stage.FIT_STACKER) + ((Stage.OPTIMIZE_GATE,) if gated else ())
    for stage in stages:
        store.read_manifest(run_id, stage)  # fails naming the stage that did not finish
    blobs = {CLASSIFIER: store.read_bytes(path(store, run_id, Stage.TRAIN_CLASSIFIER, CLASSIFIER)),
             REGRESSOR: store.read_bytes(path(store, run_id, Stage.TRAIN_REGRESSOR, REGRESSOR)),
             GATE: (store.read_bytes(path(store, run_id, Stage.OPTIMIZE_GATE, GATE)) if gated
                    else persist.dumps(Gate()))}
    folder = store.stage_dir(run_id, Stage.FIT_STACKER)
    for file in store.fs.ls(folder, detail=False):
        name = file.rsplit("/", 1)[-1]
        if name.endswith(".json") and not name.startswith("_"):
            blobs[name] = store.read_bytes(f"{folder}/{name}")
    return persist.stack_from_blobs(blobs)


# --- evaluate -------------------------------------------------------------------------------------
def load_evaluation(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    store.read_manifest(run_id, Stage.EVALUATE)
    return store.read_json(path(store, run_id, Stage.EVALUATE, EVALUATION))


def load_holdout(store: ArtifactStore, run_id: str) -> pd.DataFrame:
    """One row per holdout row: truth, the run's point and value, baselines, champion, oracle."""
    store.read_manifest(run_id, Stage.EVALUATE)
    return store.read_parquet(path(store, run_id, Stage.EVALUATE, HOLDOUT)).to_pandas()
