"""train_baselines: the baselines the report and promotion compare against (zero, mean, LightGBM
log1p, LightGBM Tweedie), fitted on the same windows as the stack and searched the same way
(``ltv_core.models.training.fit_baseline_models``), and the candidate strategies beside the stack
(the revenue-cohort model: ``fit_candidates``), which the holdout table shows and the stacker may
use as base learners."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import fit_baseline_models, fit_candidates
from ltv_core.pipeline import Stage

log = logging.getLogger(__name__)

STAGE = Stage.TRAIN_BASELINES


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    X, meta, X_val, meta_val = catalog.fit_windows(ctx.store, ctx.run_id)
    revenue = ctx.spec.primary.revenue
    y, y_val = meta[revenue].to_numpy(float), meta_val[revenue].to_numpy(float)
    models, searches = fit_baseline_models(X, y, X_val, y_val, ctx.models)
    candidates = fit_candidates(X, y, X_val, y_val, ctx.models)
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, {f"{name}.json": model for name, model in
                                                         {**models, **candidates}.items()})
    iters = {n: m.best_iteration for n, m in {**models, **candidates}.items() if getattr(m, "is_lgbm", True)}
    log.info("baselines fitted: %s, candidates %s (LightGBM best iterations %s)", sorted(models), sorted(candidates),
             iters)
    extra = {"baselines": sorted(models), "candidates": sorted(candidates), "best_iterations": iters,
             "param_search": searches}
    return ctx.committed(timer, extra)
