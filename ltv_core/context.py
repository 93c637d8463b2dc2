"""The one run context every stage receives: which run, when, with what config, spec and store.

Built from plain values (run id, logical date, params) by the DAG's tasks and by the CLI alike, so a
stage never knows which of the two called it. ``upstream`` holds what the stage's input stages
returned (their XCom values in Airflow; the CLI passes the results of the stages it ran) and each
stage records their manifests among its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from ltv_core import lineage
from ltv_core.config import PipelineConfig
from ltv_core.models.config import ModelsConfig, load_models_config
from ltv_core.params import RunParams
from ltv_core.pipeline import Stage
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.store import ArtifactStore, StageTimer, open_store, safe_run_id
from ltv_core.timeutil import parse_time


@dataclass(frozen=True)
class RunContext:
    run_id: str
    logical_date: datetime
    config: PipelineConfig
    spec: DatasetSpec
    store: ArtifactStore
    params: RunParams = field(default_factory=RunParams)
    upstream: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @cached_property
    def models(self) -> ModelsConfig:
        """config/models.yaml (or the one the config names), validated; read on first use."""
        return load_models_config(self.config.models_config)

    def stage_dir(self, stage: Stage) -> str:
        return self.store.stage_dir(self.run_id, stage)

    def path(self, stage: Stage, name: str) -> str:
        """Store path of artefact ``name`` of one of this run's stages."""
        return f"{self.stage_dir(stage)}/{name}"

    def timer(self, stage: Stage) -> StageTimer:
        """The manifest-to-be of ``stage``, made when the stage starts: it checks that the stage's
        committed inputs form one chain and pins their attempts (``ltv_core.lineage.consume``; promote
        records a disagreement instead of failing), and records them and each upstream result."""
        consumed = lineage.consume(self.store, self.run_id, stage, strict=stage != Stage.PROMOTE)
        return StageTimer(stage.value, self.run_id, consumed=consumed,
                          upstream={s: r.get("manifest") for s, r in sorted(self.upstream.items())})

    def commit(self, timer: StageTimer, config: Any, extra: dict[str, Any] | None = None) -> str:
        """Write the stage's manifest (its commit marker) last; returns its store URI."""
        if extra is not None:
            timer.extra = extra
        return self.store.uri(self.store.commit_stage(self.run_id, timer.stage, timer.finish(config)))

    def committed(self, timer: StageTimer, extra: dict[str, Any]) -> dict[str, Any]:
        """Commit a modelling stage (its manifest hashes the models config) and return what its
        task returns: the run, the stage, the manifest and the scalars of ``extra``."""
        manifest = self.commit(timer, self.models.model_dump(mode="json"), extra)
        return {"run_id": self.run_id, "stage": timer.stage, "manifest": manifest, **small(extra)}


def make_context(run_id: str, logical_date: datetime | str, params: RunParams | dict[str, Any] | None = None,
                 upstream: Mapping[str, Mapping[str, Any]] | None = None) -> RunContext:
    """Validate the run id and the params, load the config and the spec, open the store."""
    safe_run_id(run_id)  # fails in milliseconds, before any config is read
    run_params = RunParams.parse(params)
    config = run_params.load_config()
    spec = load_spec(config.dataset_spec)
    if config.expectations:  # a flag, a param or the pipeline config overrides the spec's file
        spec = spec.model_copy(update={"expectations": config.expectations})
    if config.immature_labels.enabled is None:  # the data set's own choice (spec), unless the config says
        config = config.model_copy(update={"immature_labels": config.immature_labels.model_copy(
            update={"enabled": spec.immature_labels})})
    return RunContext(run_id, parse_time(logical_date), config, spec, open_store(config.store_root), run_params,
                      dict(upstream or {}))


def small(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a stage returns (XCom): scalars only; the manifest keeps everything."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}
