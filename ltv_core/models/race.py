"""The candidates race: which model ships each output, decided on the VALIDATION window.

Each run ships two primary-horizon outputs, judged by different metrics: the point prediction
``pred_<primary>`` by RMSLE and the expected value ``value_<primary>`` (to rank and bid) by
normalized Gini. For each output separately the incumbent is the stack (hurdle / stacker / value
head, as ``training.fit_stacker`` left it) and the contenders are every other fitted model: the
baselines (``lgbm_log1p``, ``lgbm_tweedie``, ``zero``, ``mean``) and the candidate strategies
(``cohorts``). A contender replaces the stack's output only when a paired bootstrap on the
validation rows shows it better beyond the configured margin (the 95% interval of
``metric(contender) - metric(stack)`` lies entirely beyond ``-margin_rmsle`` / ``+margin_gini``);
among such contenders the best by the metric wins. So a model that validation showed to be better
than the shipped one is always what ships, and a difference validation cannot resolve keeps the
stack. The holdout never enters the choice: it stays the independent comparison of ``evaluate``
(tests/unit/test_models_race.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ltv_core import metrics

__all__ = ["OUTPUTS", "RaceResult", "contender_outputs", "run_race"]

# output -> (metric, higher is better)
OUTPUTS: dict[str, tuple[str, bool]] = {"point": ("rmsle", False), "value": ("gini", True)}
INCUMBENT = "stack"


@dataclass(frozen=True)
class RaceResult:
    """The winner of each output and the evidence: every contender's validation metric and its
    paired interval against the stack."""

    winners: dict[str, str]
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"winners": dict(self.winners), **self.evidence}


def contender_outputs(models: dict[str, Any], X: Any) -> dict[str, dict[str, np.ndarray]]:
    """(point, value) of every contender on X: a candidate strategy's two columns, a baseline's one
    prediction for both."""
    out = {}
    for name, model in models.items():
        point = model.predict(X)
        value = model.predict_value(X) if hasattr(model, "predict_value") else point
        out[name] = {"point": point, "value": value}
    return out


def run_race(y_val: np.ndarray, stack: dict[str, np.ndarray], contenders: dict[str, dict[str, np.ndarray]], *,
             margin_rmsle: float = 0.0, margin_gini: float = 0.0, n_boot: int = 200, level: float = 0.95,
             seed: int = 0) -> RaceResult:
    """Winner per output (``"stack"`` or a contender's name) by the rule of the module doc."""
    margins = {"rmsle": margin_rmsle, "gini": margin_gini}
    winners: dict[str, str] = {}
    evidence: dict[str, Any] = {"margin": margins, "n_boot": n_boot, "level": level, "rows": int(len(y_val))}
    for output, (metric, higher) in OUTPUTS.items():
        own = stack[output]
        rows: dict[str, Any] = {INCUMBENT: {metric: _metric(metric, y_val, own)}}
        better: list[tuple[float, str]] = []
        for name, preds in contenders.items():
            ci = metrics.paired_bootstrap_ci(y_val, preds[output], own, metric, n_boot=n_boot, level=level, seed=seed)
            wins = ci.lo > margins[metric] if higher else ci.hi < -margins[metric]
            score = _metric(metric, y_val, preds[output])
            rows[name] = {metric: score, "diff_vs_stack_ci": ci.to_dict(), "significantly_better": bool(wins)}
            if wins:
                better.append((-score if higher else score, name))
        winners[output] = min(better)[1] if better else INCUMBENT
        evidence[output] = {"metric": metric, "candidates": rows, "winner": winners[output]}
    return RaceResult(winners=winners, evidence=evidence)


def _metric(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    return metrics.rmsle(y, pred) if metric == "rmsle" else metrics.normalized_gini(y, pred)
