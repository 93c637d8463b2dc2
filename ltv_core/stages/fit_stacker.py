"""fit_stacker: the out-of-fold stacker, kept only when it beats the plain hurdle on validation
(``ltv_core.models.training.fit_stacker``), then the candidates race: each output (point by
RMSLE, value by Gini) ships the fitted model that validation shows significantly better, else the
stack's own (``ltv_core.models.race``; every baseline and candidate of the run contends). It reuses the fitted LightGBM baselines as its
direct base learners instead of fitting them twice."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts, persist
from ltv_core.models.stack import assemble_stack
from ltv_core.models.training import fit_stacker
from ltv_core.pipeline import Stage

log = logging.getLogger(__name__)

STAGE = Stage.FIT_STACKER
# Written by their own stages; fit_stacker writes every other blob of the stack.
OWN_STAGE_BLOBS = (artefacts.CLASSIFIER, artefacts.REGRESSOR, artefacts.GATE, artefacts.INTERVALS)


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    store, run_id = ctx.store, ctx.run_id
    X, meta, X_val, meta_val = catalog.fit_windows(store, run_id)
    stack = assemble_stack(artefacts.load_model(store, run_id, Stage.TRAIN_CLASSIFIER, artefacts.CLASSIFIER),
                           artefacts.load_model(store, run_id, Stage.TRAIN_REGRESSOR, artefacts.REGRESSOR), meta, ctx.spec)
    fitted = {**artefacts.load_baselines(store, run_id), **artefacts.load_candidates(store, run_id)}
    bases = {n: fitted[n] for n in ("lgbm_log1p", "lgbm_tweedie") if n in fitted}
    if "cohorts" in ctx.models.stacker.learners:
        bases["cohorts"] = fitted["cohorts"]
    stack, info = fit_stacker(X, meta, X_val, meta_val, ctx.spec, ctx.models, stack, bases, contenders=fitted)
    store.begin_stage(run_id, STAGE)
    for name, data in persist.stack_to_blobs(stack).items():
        if name not in OWN_STAGE_BLOBS:
            store.write_bytes(ctx.path(STAGE, name), data)
    log.info("stacker decision: %s (validation RMSLE hurdle %.5f, stacker %s)", info.get("chosen", "hurdle"),
             info["hurdle_val_rmsle"], info.get("stacker_val_rmsle"))
    log.info("candidates race on validation: point <- %s, value <- %s", *(info["race"]["winners"][o]
                                                                         for o in ("point", "value")))
    extra = {**info, "chosen": info.get("chosen", "hurdle")}
    return ctx.committed(timer, extra)
