"""A run's stages one after the other in this process, as the DAG runs them: the CLI's ``run`` and
``train``, notebooks and tests. Each stage gets, as ``ctx.upstream``, the results of its declared
inputs (``ltv_core.pipeline.INPUTS``) that ran here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from ltv_core import preflight, threads
from ltv_core.context import RunContext
from ltv_core.pipeline import INPUTS, Stage
from ltv_core.stages import build_features, drift, evaluate, fit_stacker, ingest, optimize_gate, promote, resample
from ltv_core.stages import score, train_baselines, train_classifier, train_regressor, validate

log = logging.getLogger(__name__)

MODULES: dict[Stage, ModuleType] = {
    Stage.INGEST: ingest, Stage.VALIDATE: validate, Stage.BUILD_FEATURES: build_features,
    Stage.RESAMPLE: resample, Stage.TRAIN_CLASSIFIER: train_classifier, Stage.TRAIN_REGRESSOR: train_regressor,
    Stage.TRAIN_BASELINES: train_baselines, Stage.FIT_STACKER: fit_stacker, Stage.OPTIMIZE_GATE: optimize_gate,
    Stage.EVALUATE: evaluate, Stage.DRIFT: drift, Stage.PROMOTE: promote, Stage.SCORE: score,
}


def entry(stage: Stage) -> Callable[[RunContext], dict[str, Any]]:
    return MODULES[stage].run


def run_stages(ctx: RunContext, stages: Iterable[Stage], done: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, dict[str, Any]]:
    """Run ``stages`` in the given order in this process; each receives, as ``ctx.upstream``, the
    results of its declared inputs that ran here. Returns every stage's result by name."""
    results = dict(done or {})
    stages = list(stages)
    if stages and stages[0] != Stage.INGEST:  # ingest runs it itself (it is the DAG's first task)
        preflight.check(ctx)
    for stage in stages:
        upstream = {s.value: results[s.value] for s in INPUTS[stage] if s.value in results}
        t0 = time.perf_counter()
        log.info("stage %s of run %s: starting", stage.value, ctx.run_id)
        threads.apply(threads.resolve(ctx.config.threads).for_stage(stage))  # one stage at a time
        try:
            results[stage.value] = entry(stage)(dataclasses.replace(ctx, upstream=upstream))
        except BaseException:
            ctx.store.abandon()  # the failed attempt stays unread: later stages follow the committed pointers
            raise
        log.info("stage %s of run %s: done in %.1fs", stage.value, ctx.run_id, time.perf_counter() - t0)
    return results
