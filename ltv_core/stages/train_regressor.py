"""train_regressor: the order-preserving multi-horizon regressor of buyers' revenue
(``ltv_core.models.training.train_regressor``; docs/MODELS.md)."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import train_regressor
from ltv_core.pipeline import Stage

log = logging.getLogger(__name__)

STAGE = Stage.TRAIN_REGRESSOR


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    plan = artefacts.load_plans(ctx.store, ctx.run_id)["regressor"]
    reg, info = train_regressor(*catalog.fit_windows(ctx.store, ctx.run_id), ctx.spec, ctx.models, plan)
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, {artefacts.REGRESSOR: reg})
    log.info("regressor: best iterations %s, validation RMSE(log1p) on buyers %s", info["best_iterations"],
             info["validation_rmse_log1p_buyers"])
    return ctx.committed(timer, info)
