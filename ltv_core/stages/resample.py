"""resample: the resampling plans of the training window (row positions + weights), never of any
other window (``ltv_core.models.plans.resample_stage``; docs/MODELS.md)."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.plans import resample_stage
from ltv_core.pipeline import Split, Stage

log = logging.getLogger(__name__)

STAGE = Stage.RESAMPLE


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    _, meta = catalog.training_matrix(ctx.store, ctx.run_id, Split.TRAIN)
    plans, info = resample_stage(meta, ctx.spec, ctx.models)
    ctx.store.begin_stage(ctx.run_id, STAGE)
    ctx.store.write_bytes(ctx.path(STAGE, artefacts.PLANS), artefacts.plans_to_bytes(plans))
    for name, plan in plans.items():
        log.info("resample plan %s: %s", name, plan.info)
    rows = {n: (len(p.indices) if p.indices is not None else None) for n, p in plans.items()}
    extra = {"plans": info, "train_rows": len(meta), "fit_rows": rows}
    return ctx.committed(timer, extra)
