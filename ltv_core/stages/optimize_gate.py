"""optimize_gate: cutoff, cap and whale gate searched on the validation predictions of the
assembled, ungated stack (``ltv_core.models.training.optimize_gate_stage``).

Why after the stacker: the gate must be searched on the very prediction it gates at inference;
searched before the regressor and stacker exist it would be tuned on a differently composed
prediction (docs/MODELS.md, "the gate")."""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.training import optimize_gate_stage
from ltv_core.pipeline import Split, Stage

log = logging.getLogger(__name__)

STAGE = Stage.OPTIMIZE_GATE


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    X_val, meta_val = catalog.training_matrix(ctx.store, ctx.run_id, Split.VALIDATION)
    stack = artefacts.load_stack(ctx.store, ctx.run_id, gated=False)
    gate, info = optimize_gate_stage(stack, X_val, meta_val, ctx.spec, ctx.models)
    artefacts.save_models(ctx.store, ctx.run_id, STAGE, {artefacts.GATE: gate})
    ctx.store.write_json(ctx.path(STAGE, artefacts.GATE_PARAMS), info)
    log.info("gate: %s", info)
    extra = {"gate": info}
    return ctx.committed(timer, extra)
