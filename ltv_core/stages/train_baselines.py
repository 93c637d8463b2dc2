"""train_baselines: the baselines the report and promotion compare against (zero, mean, LightGBM
log1p, LightGBM Tweedie), fitted on the same windows as the stack and searched the same way
(``ltv_core.models.training.fit_baseline_models``)."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import fit_baseline_models
from ltv_core.pipeline import Stage

log = logging.getLogger(__name__)

STAGE = Stage.TRAIN_BASELINES


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    X, meta, X_val, meta_val = catalog.fit_windows(ctx.store, ctx.run_id)
    revenue = ctx.spec.primary.revenue
    models, searches = fit_baseline_models(X, meta[revenue].to_numpy(float), X_val, meta_val[revenue].to_numpy(float),
                                           ctx.models)
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, {f"{name}.json": model for name, model in models.items()})
    iters = {n: m.best_iteration for n, m in models.items() if m.is_lgbm}
    log.info("baselines fitted: %s (LightGBM best iterations %s)", sorted(models), iters)
    extra = {"baselines": sorted(models), "best_iterations": iters, "param_search": searches}
    return ctx.committed(timer, extra)
