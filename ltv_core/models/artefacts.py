"""The model files a run's modelling stages commit: their names, writer and readers.

    runs/<run>/resample/plans.npz                       row positions + weights of the training window
    runs/<run>/train_classifier/classifier.json         runs/<run>/train_regressor/regressor.json
    runs/<run>/train_baselines/<name>.json              runs/<run>/fit_stacker/*.json (stacker, base models)
    runs/<run>/optimize_gate/gate.json, gate_params.json, intervals.json (when intervals.enabled)

Every file is JSON (``ltv_core.models.persist``, no pickle) except the plans (numpy ``.npz``).
Every reader first reads the producing stage's manifest, which refuses a stage that did not commit.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ltv_core.models import persist
from ltv_core.models.baselines import Baseline
from ltv_core.models.gate import Gate
from ltv_core.models.plans import ResamplePlan
from ltv_core.models.stack import FittedStack
from ltv_core.pipeline import Stage
from ltv_core.store import ArtifactStore

PLANS = "plans.npz"
PLAN_NAMES = ("classifier", "regressor")
CLASSIFIER = "classifier.json"
REGRESSOR = "regressor.json"
GATE = "gate.json"
GATE_PARAMS = "gate_params.json"
INTERVALS = "intervals.json"


def path(store: ArtifactStore, run_id: str, stage: Stage, name: str) -> str:
    return f"{store.stage_dir(run_id, stage)}/{name}"


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


def load_candidates(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """The candidate strategies train_baselines fitted beside the baselines (e.g. ``cohorts``)."""
    manifest = store.read_manifest(run_id, Stage.TRAIN_BASELINES)
    return {n: persist.loads(store.read_bytes(path(store, run_id, Stage.TRAIN_BASELINES, f"{n}.json")))
            for n in manifest.get("candidates", [])}


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
    if gated and INTERVALS in store.read_manifest(run_id, Stage.OPTIMIZE_GATE).get("model_files", []):
        blobs[INTERVALS] = store.read_bytes(path(store, run_id, Stage.OPTIMIZE_GATE, INTERVALS))
    folder = store.stage_dir(run_id, Stage.FIT_STACKER)
    for file in store.fs.ls(folder, detail=False):
        name = file.rsplit("/", 1)[-1]
        if name.endswith(".json") and not name.startswith("_"):
            blobs[name] = store.read_bytes(f"{folder}/{name}")
    return persist.stack_from_blobs(blobs)
