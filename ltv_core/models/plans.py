"""Resampling plans of the training window (the resample stage): which rows the classifier and
the regressor fit on, with which weights and prior correction. Validation and holdout rows are
never resampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ltv_core.models.config import ModelsConfig, ResampleStageConfig
from ltv_core.models.labels import primary_index, revenue_matrix
from ltv_core.models.resample import design_weights, hhistus, histos, odds_factor
from ltv_core.spec import DatasetSpec

__all__ = ["ResamplePlan", "resample_stage"]


@dataclass(frozen=True)
class ResamplePlan:
    """Rows to fit on (None: all, in order), their fit weights (None: unweighted), the odds factor
    of the emphasis (classifier prior correction) and a JSON-able summary."""

    indices: np.ndarray | None
    weights: np.ndarray | None
    prior_factor: float
    info: dict[str, Any]


def _stage_plan(stage: ResampleStageConfig, y: np.ndarray, seed: int) -> ResamplePlan:
    """The plan one model's resample settings ask for, over the revenue ``y`` of its rows."""
    if stage.mode == "off":
        return ResamplePlan(None, None, 1.0, {"mode": "off"})
    settings = dict(stage.settings)
    if stage.mode == "weights":
        emphasis = design_weights(stage.method, y, settings)
        factor = odds_factor(y, emphasis) if stage.correction == "prior" else 1.0
        w = emphasis if stage.correction in ("prior", "none") else None
        return ResamplePlan(None, w, factor, {"mode": "weights", "method": stage.method, "odds_factor": factor})
    res = (histos if stage.method == "histos" else hhistus)(y, seed=seed, **settings)
    appearances = np.bincount(res.indices, minlength=len(y)).astype(np.float64)
    factor = odds_factor(y, appearances) if stage.correction == "prior" else 1.0
    w = res.weights if stage.correction == "weights" else None
    return ResamplePlan(res.indices, w, factor, {"mode": "resample", "correction": stage.correction,
                                                 "odds_factor": factor, **res.info})


def resample_stage(labels_train: pd.DataFrame, spec: DatasetSpec,
                   config: ModelsConfig) -> tuple[dict[str, ResamplePlan], dict[str, Any]]:
    """Resampling plans of the training window: 'classifier' (over all rows, on primary revenue)
    and 'regressor' (over primary buyers, positions relative to the buyer subset)."""
    Y = revenue_matrix(labels_train, spec)
    y = Y[:, primary_index(spec)]
    buyers = np.flatnonzero(y > 0)
    plans = {"classifier": _stage_plan(config.resample.classifier, y, config.seed + 11),
             "regressor": _stage_plan(config.resample.regressor, y[buyers], config.seed + 12)}
    return plans, {k: v.info for k, v in plans.items()}

