"""optimize_gate: cutoff, cap and whale gate searched on the validation predictions of the
assembled, ungated stack (``ltv_core.models.training.optimize_gate_stage``), and the prediction
intervals' residual spread fitted on the same validation rows (``fit_intervals``).

Why after the stacker: the gate must be searched on the very prediction it gates at inference;
searched before the regressor and stacker exist it would be tuned on a differently composed
prediction (docs/MODELS.md, "the gate")."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import fit_intervals, optimize_gate_stage
from ltv_core.pipeline import Split, Stage

log = logging.getLogger(__name__)

STAGE = Stage.OPTIMIZE_GATE


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    X_val, meta_val = catalog.training_matrix(ctx.store, ctx.run_id, Split.VALIDATION)
    stack = artefacts.load_stack(ctx.store, ctx.run_id, gated=False)
    gate, info = optimize_gate_stage(stack, X_val, meta_val, ctx.spec, ctx.models)
    intervals, i_info = fit_intervals(stack, X_val, meta_val, ctx.spec, ctx.models)
    models: dict[str, Any] = {artefacts.GATE: gate} | ({artefacts.INTERVALS: intervals} if intervals else {})
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, models)
    ctx.store.write_json(ctx.path(STAGE, artefacts.GATE_PARAMS), info)
    log.info("gate: %s; intervals: %s", info, i_info)
    extra = {"gate": info, "intervals": i_info, "model_files": sorted(models)}
    return ctx.committed(timer, extra)
