"""The modelling stages of a run, store-backed: each reads what earlier stages committed, fits one
piece with the pure functions of :mod:`ltv_core.models.training`, writes it, and commits.

    build_features -> resample -> train_classifier -> train_regressor -> train_baselines
                   -> fit_stacker -> optimize_gate -> evaluate -> promote (decision + report)

Artefacts (JSON models, no pickle) under ``runs/<run_id>/<stage>/``; :func:`load_stack` puts the
fitted stack back together from them, so scoring and a notebook use exactly what training wrote.

Why the gate runs after the stacker (the issue's diagram has it after the classifier): the gate
must be searched on the very prediction it gates at inference. Searched before the regressor and
stacker exist, it would be tuned on a differently composed prediction: the seed's bug
(seeds_report section 4.7). docs/MODELS.md has the details.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ltv_core.errors import DataError
from ltv_core.features.stage import STAGE as FEATURES_STAGE
from ltv_core.features.stage import load_feature_matrix
from ltv_core.models import persist
from ltv_core.models.baselines import Baseline
from ltv_core.models.gate import Gate
from ltv_core.models.training import (
    FittedStack,
    ModelsConfig,
    ResamplePlan,
    assemble_stack,
    fit_baseline_models,
    fit_stacker,
    load_models_config,
    optimize_gate_stage,
    resample_stage,
    train_classifier,
    train_regressor,
)
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer

log = logging.getLogger(__name__)

TRAINING_STAGES = ("resample", "train_classifier", "train_regressor", "train_baselines", "fit_stacker",
                   "optimize_gate")
# Every stage a run must commit before its model may be promoted.
REQUIRED_STAGES = ("ingest", "validate", FEATURES_STAGE, *TRAINING_STAGES, "evaluate")
STACK_DIR = "fit_stacker"


@dataclass(frozen=True)
class ModelRun:
    """What every modelling stage needs: the store, the run, the spec and the models config."""

    store: ArtifactStore
    run_id: str
    spec: DatasetSpec
    config: ModelsConfig

    def split(self, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        return _matrix(self.store, self.run_id, name)

    def stage_path(self, stage: str, name: str) -> str:
        return f"{self.store.stage_dir(self.run_id, stage)}/{name}"

    def read_model(self, stage: str, name: str) -> Any:
        return persist.loads(self.store.read_bytes(self.stage_path(stage, name)))

    def commit(self, timer: StageTimer, extra: dict[str, Any]) -> dict[str, Any]:
        timer.extra = extra
        self.store.commit_stage(self.run_id, timer.stage, timer.finish(self.config.model_dump(mode="json")))
        return {"run_id": self.run_id, "stage": timer.stage, **_small(extra)}


def model_run(store: ArtifactStore, run_id: str, spec: DatasetSpec, models_config: str | None = None) -> ModelRun:
    return ModelRun(store, run_id, spec, load_models_config(models_config))


@lru_cache(maxsize=4)
def _matrix_cached(store_url: str, run_id: str, split: str, stamp: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_feature_matrix(ArtifactStore(store_url), run_id, split)


def _matrix(store: ArtifactStore, run_id: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature matrix of a split, cached per process (the CLI runs all stages in one process); the
    build_features manifest's finish time is part of the key, so a rebuilt stage is re-read."""
    stamp = str(store.read_manifest(run_id, FEATURES_STAGE).get("finished_at"))
    X, meta = _matrix_cached(store.url, run_id, split, stamp)
    if len(X) == 0:
        raise DataError(f"run {run_id!r}: split {split!r} has no rows")
    return X, meta


def _small(extra: dict[str, Any]) -> dict[str, Any]:
    """XCom gets scalars only; the manifest keeps everything."""
    return {k: v for k, v in extra.items() if isinstance(v, (int, float, str, bool)) or v is None}


# --- resample -----------------------------------------------------------------------------------
def _plans_bytes(plans: dict[str, ResamplePlan]) -> bytes:
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


def load_plans(run: ModelRun) -> dict[str, ResamplePlan]:
    manifest = run.store.read_manifest(run.run_id, "resample")
    data = np.load(io.BytesIO(run.store.read_bytes(run.stage_path("resample", "plans.npz"))))
    return {name: ResamplePlan(data[f"{name}.indices"] if f"{name}.indices" in data else None,
                               data[f"{name}.weights"] if f"{name}.weights" in data else None,
                               float(data[f"{name}.prior_factor"][0]), manifest["plans"][name])
            for name in ("classifier", "regressor")}


def run_resample(run: ModelRun) -> dict[str, Any]:
    """Resampling plans of the training window (row positions + weights), never of other windows."""
    timer = StageTimer("resample", run.run_id)
    _, meta = run.split("train")
    plans, info = resample_stage(meta, run.spec, run.config)
    run.store.begin_stage(run.run_id, "resample")
    run.store.write_bytes(run.stage_path("resample", "plans.npz"), _plans_bytes(plans))
    for name, plan in plans.items():
        log.info("resample plan %s: %s", name, plan.info)
    rows = {n: (len(p.indices) if p.indices is not None else None) for n, p in plans.items()}
    return run.commit(timer, {"plans": info, "train_rows": len(meta), "fit_rows": rows})


# --- classifier / regressor / baselines ---------------------------------------------------------
def run_train_classifier(run: ModelRun) -> dict[str, Any]:
    timer = StageTimer("train_classifier", run.run_id)
    (X, meta), (X_val, meta_val) = run.split("train"), run.split("validation")
    clf, info = train_classifier(X, meta, X_val, meta_val, run.spec, run.config, load_plans(run)["classifier"])
    run.store.begin_stage(run.run_id, "train_classifier")
    run.store.write_bytes(run.stage_path("train_classifier", "classifier.json"), persist.dumps(clf))
    log.info("buyer classifier: %d rounds, calibration %s; validation raw %s, calibrated (cross-fitted) %s",
             info["best_iteration"], info["calibration"], info["raw"], info["calibrated_crossfit"])
    return run.commit(timer, {**info, "features": len(X.columns)})


def run_train_regressor(run: ModelRun) -> dict[str, Any]:
    timer = StageTimer("train_regressor", run.run_id)
    (X, meta), (X_val, meta_val) = run.split("train"), run.split("validation")
    reg, info = train_regressor(X, meta, X_val, meta_val, run.spec, run.config, load_plans(run)["regressor"])
    run.store.begin_stage(run.run_id, "train_regressor")
    run.store.write_bytes(run.stage_path("train_regressor", "regressor.json"), persist.dumps(reg))
    log.info("regressor: best iterations %s, validation RMSE(log1p) on buyers %s", info["best_iterations"],
             info["validation_rmse_log1p_buyers"])
    return run.commit(timer, info)


def run_train_baselines(run: ModelRun) -> dict[str, Any]:
    """The baselines the report compares against, fitted on the same windows as the stack."""
    timer = StageTimer("train_baselines", run.run_id)
    (X, meta), (X_val, meta_val) = run.split("train"), run.split("validation")
    y, y_val = meta[run.spec.primary.revenue].to_numpy(float), meta_val[run.spec.primary.revenue].to_numpy(float)
    c = run.config
    models, searches = fit_baseline_models(X, y, X_val, y_val, c)
    run.store.begin_stage(run.run_id, "train_baselines")
    for name, model in models.items():
        run.store.write_bytes(run.stage_path("train_baselines", f"{name}.json"), persist.dumps(model))
    iters = {n: m.best_iteration for n, m in models.items() if m.is_lgbm}
    log.info("baselines fitted: %s (LightGBM best iterations %s)", sorted(models), iters)
    return run.commit(timer, {"baselines": sorted(models), "best_iterations": iters, "param_search": searches})


def load_baselines(store: ArtifactStore, run_id: str) -> dict[str, Baseline]:
    manifest = store.read_manifest(run_id, "train_baselines")
    d = store.stage_dir(run_id, "train_baselines")
    return {n: persist.loads(store.read_bytes(f"{d}/{n}.json")) for n in manifest["baselines"]}


# --- stacker and gate ---------------------------------------------------------------------------
def run_fit_stacker(run: ModelRun) -> dict[str, Any]:
    timer = StageTimer("fit_stacker", run.run_id)
    (X, meta), (X_val, meta_val) = run.split("train"), run.split("validation")
    stack = assemble_stack(run.read_model("train_classifier", "classifier.json"),
                           run.read_model("train_regressor", "regressor.json"), meta, run.spec)
    bases = {n: b for n, b in load_baselines(run.store, run.run_id).items() if n in ("lgbm_log1p", "lgbm_tweedie")}
    stack, info = fit_stacker(X, meta, X_val, meta_val, run.spec, run.config, stack, bases)
    blobs = persist.stack_to_blobs(stack)
    run.store.begin_stage(run.run_id, "fit_stacker")
    for name, data in blobs.items():
        if name not in ("classifier.json", "regressor.json", "gate.json"):  # those live in their own stages
            run.store.write_bytes(run.stage_path(STACK_DIR, name), data)
    log.info("stacker decision: %s (validation RMSLE hurdle %.5f, stacker %s)", info.get("chosen", "hurdle"),
             info["hurdle_val_rmsle"], info.get("stacker_val_rmsle"))
    return run.commit(timer, {**info, "chosen": info.get("chosen", "hurdle")})


def load_stack(store: ArtifactStore, run_id: str, *, gated: bool = True) -> FittedStack:
    """The fitted stack of a run, from the artefacts its stages committed (gate included unless
    ``gated=False``, which the gate search itself uses)."""
    for stage in ("train_classifier", "train_regressor", "fit_stacker") + (("optimize_gate",) if gated else ()):
        store.read_manifest(run_id, stage)  # fails naming the stage that did not finish
    d = store.stage_dir
    blobs = {"classifier.json": store.read_bytes(f"{d(run_id, 'train_classifier')}/classifier.json"),
             "regressor.json": store.read_bytes(f"{d(run_id, 'train_regressor')}/regressor.json"),
             "gate.json": (store.read_bytes(f"{d(run_id, 'optimize_gate')}/gate.json") if gated
                           else persist.dumps(Gate()))}
    folder = d(run_id, STACK_DIR)
    for path in store.fs.ls(folder, detail=False):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".json") and not name.startswith("_"):
            blobs[name] = store.read_bytes(f"{folder}/{name}")
    return persist.stack_from_blobs(blobs)


def run_optimize_gate(run: ModelRun) -> dict[str, Any]:
    """Search cutoff, cap and whale gate on validation predictions of the assembled stack."""
    timer = StageTimer("optimize_gate", run.run_id)
    X_val, meta_val = run.split("validation")
    stack = load_stack(run.store, run.run_id, gated=False)
    gate, info = optimize_gate_stage(stack, X_val, meta_val, run.spec, run.config)
    run.store.begin_stage(run.run_id, "optimize_gate")
    run.store.write_bytes(run.stage_path("optimize_gate", "gate.json"), persist.dumps(gate))
    run.store.write_json(run.stage_path("optimize_gate", "gate_params.json"), info)
    log.info("gate: %s", info)
    return run.commit(timer, {"gate": info})


def train_all(run: ModelRun) -> dict[str, Any]:
    """Every training stage in order (the CLI's ``train``; the DAG runs them as separate tasks)."""
    steps = (run_resample, run_train_classifier, run_train_regressor, run_train_baselines, run_fit_stacker,
             run_optimize_gate)
    return {fn.__name__.removeprefix("run_"): fn(run) for fn in steps}


__all__ = ["REQUIRED_STAGES", "TRAINING_STAGES", "ModelRun", "load_baselines", "load_plans", "load_stack",
           "model_run", "run_fit_stacker", "run_optimize_gate", "run_resample", "run_train_baselines",
           "run_train_classifier", "run_train_regressor", "train_all"]
