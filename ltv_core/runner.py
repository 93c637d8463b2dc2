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
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.store import ArtifactStore, open_store

log = logging.getLogger(__name__)

# DAG params / CLI flags a run understands (all optional; None keeps the config's value).
PARAM_KEYS = (
    "config", "dataset_spec", "store_root", "data_root",
    "train_start", "train_end", "validation_start", "validation_end",
    "holdout_start", "holdout_end", "scoring_start", "scoring_end",
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
    return run_features_stage(ctx.store, ctx.run_id, ctx.spec, ctx.config)
