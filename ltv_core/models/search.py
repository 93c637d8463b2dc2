"""The validation search over parameter candidates that every LightGBM component (classifier,
regressor, each LightGBM baseline) runs on its own validation loss."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ltv_core.errors import DataError

__all__ = ["param_search"]

log = logging.getLogger(__name__)


def param_search(candidates: list[dict[str, Any]], fit: Callable[[dict[str, Any]], tuple[Any, float]], criterion: str,
                 what: str) -> tuple[Any, dict[str, Any]]:
    """Fit ``fit(extra_params) -> (model, validation loss)`` for every candidate, keep the lowest.

    Why: the best tree shape differs between components (the buyer classifier's logit is close to
    additive, a log1p regression of p * revenue is not) and between data sets, so each component
    picks it on its own validation loss instead of one shared guess. Ties keep the earlier
    candidate; the record lists every candidate's loss and time."""
    tried, best, best_i = [], None, -1
    for i, extra in enumerate(candidates or [{}]):
        t0 = time.perf_counter()
        model, loss = fit(extra)
        tried.append({"params": extra, "loss": float(loss), "seconds": round(time.perf_counter() - t0, 2)})
        log.info("%s candidate %s: %s %.6f", what, extra or "{} (config params)", criterion, loss)
        if loss < (tried[best_i]["loss"] if best is not None else np.inf):
            best, best_i = model, i
    if best is None:
        raise DataError(f"{what}: no parameter candidate gave a finite {criterion}: {tried}")
    return best, {"criterion": criterion, "candidates": tried, "chosen": tried[best_i]["params"]}
