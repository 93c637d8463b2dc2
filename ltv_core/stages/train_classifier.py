"""train_classifier: the calibrated LightGBM buyer classifier, early-stopped and calibrated on
validation (``ltv_core.models.training.train_classifier``; docs/MODELS.md)."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import train_classifier
from ltv_core.pipeline import Stage

log = logging.getLogger(__name__)

STAGE = Stage.TRAIN_CLASSIFIER


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    X, meta, X_val, meta_val = catalog.fit_windows(ctx.store, ctx.run_id)
    clf, info = train_classifier(X, meta, X_val, meta_val, ctx.spec, ctx.models,
                                 artefacts.load_plans(ctx.store, ctx.run_id)["classifier"])
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, {artefacts.CLASSIFIER: clf})
    log.info("buyer classifier: %d rounds, calibration %s; validation raw %s, calibrated (cross-fitted) %s",
             info["best_iteration"], info["calibration"], info["raw"], info["calibrated_crossfit"])
    extra = {**info, "features": len(X.columns)}
    return ctx.committed(timer, extra)
