"""Entry points shared by the Airflow DAG and the CLI: one call per pipeline stage.

Each takes plain values (run id, logical date, params), builds the run's context (config, dataset
spec, store) and calls the stage. No Airflow import: the DAG passes ``context["run_id"]``,
``context["logical_date"]`` and ``context["params"]``; the CLI passes its flags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ltv_core.config import PipelineConfig, load_config, parse_time
from ltv_core.errors import DataError
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.store import ArtifactStore, open_store

log = logging.getLogger(__name__)

# DAG params / CLI flags a run understands (all optional; None keeps the config's value).
PARAM_KEYS = (
    "config", "dataset_spec", "store_root", "data_root",
    "train_start", "train_end", "validation_start", "validation_end",
    "holdout_start", "holdout_end", "scoring_start", "scoring_end",
    "models_config", "submission_csv", "dask_scheduler",
)


@dataclass(frozen=True)
class RunContext:
    run_id: str
    logical_date: datetime
    config: PipelineConfig
    spec: DatasetSpec
    store: ArtifactStore


def make_context(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> RunContext:
    params = dict(params or {})
    unknown = sorted(k for k, v in params.items() if k not in PARAM_KEYS and v is not None)
    if unknown:
        raise ValueError(f"unknown run params {unknown}; known: {list(PARAM_KEYS)}")
    config = load_config(params.get("config")).with_overrides(params)
    spec = load_spec(config.dataset_spec)
    store = open_store(config.store_root)
    return RunContext(run_id, parse_time(logical_date), config, spec, store)


def ingest(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from ltv_core.ingest import run_ingest

    ctx = make_context(run_id, logical_date, params)
    log.info("ingest: dataset %s, store %s", ctx.spec.name, ctx.store.url)
    return run_ingest(ctx.store, ctx.run_id, ctx.logical_date, ctx.config, ctx.spec)


def validate(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from ltv_core.validation import run_validate_stage

    ctx = make_context(run_id, logical_date, params)
    return run_validate_stage(
        ctx.store, ctx.run_id, ctx.spec, max_rows_per_split=ctx.config.validation.max_rows_per_split
    )


def build_features(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from ltv_core.features.stage import run_features_stage

    ctx = make_context(run_id, logical_date, params)
    return run_features_stage(ctx.store, ctx.run_id, ctx.spec, ctx.config, ctx.config.features_config)


def _model_run(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None):
    from ltv_core.model_stages import model_run

    ctx = make_context(run_id, logical_date, params)
    return ctx, model_run(ctx.store, ctx.run_id, ctx.spec, ctx.config.models_config)


def _training_stage(name: str):
    def stage(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from ltv_core import model_stages

        _, run = _model_run(run_id, logical_date, params)
        return getattr(model_stages, f"run_{name}")(run)

    stage.__name__ = name
    stage.__doc__ = f"The {name} stage of a run (ltv_core.model_stages.run_{name})."
    return stage


resample = _training_stage("resample")
train_classifier = _training_stage("train_classifier")
train_regressor = _training_stage("train_regressor")
train_baselines = _training_stage("train_baselines")
fit_stacker = _training_stage("fit_stacker")
optimize_gate = _training_stage("optimize_gate")


def train(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every training stage in order, in this process (CLI / notebook)."""
    from ltv_core.model_stages import train_all

    _, run = _model_run(run_id, logical_date, params)
    return train_all(run)


def evaluate(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from ltv_core.evaluation import run_evaluate_stage

    ctx, run = _model_run(run_id, logical_date, params)
    return run_evaluate_stage(run, ctx.config.data_root, ctx.logical_date.isoformat())


def promote(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decision (promoted or not, with the reason), the run's report, the champion pointer."""
    from ltv_core.evaluation import write_run_report
    from ltv_core.model_stages import REQUIRED_STAGES
    from ltv_core.promotion import STAGE, run_promote_stage

    ctx, run = _model_run(run_id, logical_date, params)
    pc = ctx.config.promotion
    decision = run_promote_stage(ctx.store, run_id, primary_metric=pc.metric, tolerance=pc.tolerance,
                                 required=REQUIRED_STAGES)
    report = write_run_report(run, decision.to_dict(), ctx.logical_date.isoformat())
    ctx.store.commit_stage(run_id, STAGE, {"stage": STAGE, "run_id": run_id, "promoted": decision.promoted,
                                           "reason": decision.reason, "report": report})
    return {"run_id": run_id, "promoted": decision.promoted, "reason": decision.reason,
            "champion_run_id": run_id if decision.promoted else decision.champion_run_id, "report": report}


def score(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's scoring partitions, scored with the current champion (never an unpromoted model)."""
    from ltv_core.promotion import champion_run
    from ltv_core.scoring import run_score_stage

    ctx = make_context(run_id, logical_date, params)
    if not ctx.store.is_committed(run_id, "validate"):
        raise DataError(f"run {run_id!r}: the validate stage did not pass, so its scoring partitions are not "
                        "scored (see runs/<run>/validate/result.json)")
    return run_score_stage(ctx.store, run_id, ctx.spec, champion_run(ctx.store),
                           submission_csv=ctx.config.scoring.submission_csv,
                           prune_features=ctx.config.scoring.prune_features, dask=ctx.config.dask,
                           local_cluster_min_rows=ctx.config.scoring.local_cluster_min_rows)


PIPELINE = ("ingest", "validate", "build_features", "resample", "train_classifier", "train_regressor",
            "train_baselines", "fit_stacker", "optimize_gate", "evaluate", "promote", "score")


def run_all(run_id: str, logical_date: datetime | str, params: dict[str, Any] | None = None,
            until: str | None = None) -> dict[str, Any]:
    """The DAG's stages in order, in this process (``python -m ltv_core run``)."""
    if until is not None and until not in PIPELINE:
        raise ValueError(f"unknown stage {until!r}; stages: {list(PIPELINE)}")
    out: dict[str, Any] = {}
    for name in PIPELINE:
        out[name] = globals()[name](run_id, logical_date, params)
        if name == until:
            break
    return out
