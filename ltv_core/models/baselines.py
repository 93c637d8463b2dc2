"""Baselines the stack must beat, fitted on the same windows, and the side-by-side table.

* ``zero``: predicts 0 (the RMSLE floor of a 96%-zero target; Gini ~0 by the tie convention)
* ``mean``: the training mean revenue for every row
* ``lgbm_log1p``: one LightGBM, squared error on log1p revenue, expm1 of the prediction (the
  direct RMSLE model; what a strong single-model datathon entry does)
* ``lgbm_tweedie``: one LightGBM with a Tweedie objective on revenue (E[y], log link; the
  practitioner's single model for zero-inflated revenue)

Both LightGBM baselines are early-stopped on the validation window, exactly like the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ltv_core import metrics
from ltv_core.models.config import BASELINES
from ltv_core.models.lgb import booster_from_string, lgb_params, predict_booster, train_booster
from ltv_core.models.matrix import FeatureSchema, check_labels

__all__ = ["BASELINES", "Baseline", "Comparison", "compare", "fit_baselines"]

TABLE_METRICS = ("rmsle", "gini", "top1_share", "top10_share", "whales_missed_top10", "calibration_ratio",
                 "rmse", "mae", "r2", "mean_pred")


class Baseline:
    """One baseline: ``fit(X, y, X_val, y_val)``, ``predict(X)`` -> revenue (>= 0)."""

    def __init__(self, name: str, params: dict[str, Any] | None = None, num_boost_round: int = 3000,
                 early_stopping_rounds: int = 100, tweedie_variance_power: float = 1.5, random_state: int = 0) -> None:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
        self.name = name
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.tweedie_variance_power = tweedie_variance_power
        self.random_state = random_state
        self.booster_ = None
        self.constant_ = 0.0

    @property
    def is_lgbm(self) -> bool:
        return self.name.startswith("lgbm")

    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray) -> Baseline:
        y = check_labels(y, len(X), "y")
        if self.name == "mean":
            self.constant_ = float(y.mean())
        if not self.is_lgbm:
            return self
        self.schema_ = FeatureSchema.from_frame(X)
        X_val = self.schema_.check(X_val, f"baseline {self.name}")
        y_val = check_labels(y_val, len(X_val), "y_val")
        if self.name == "lgbm_log1p":
            params = lgb_params(self.params, self.random_state, objective="regression", metric="l2")
            t, t_val = np.log1p(y), np.log1p(y_val)
        else:
            params = lgb_params(self.params, self.random_state, objective="tweedie", metric="tweedie",
                                tweedie_variance_power=self.tweedie_variance_power)
            t, t_val = y, y_val
        self.booster_ = train_booster(params, X, t, X_val=X_val, y_val=t_val, num_boost_round=self.num_boost_round,
                                      early_stopping_rounds=self.early_stopping_rounds)
        return self

    @property
    def best_iteration(self) -> int:
        return 0 if self.booster_ is None else int(self.booster_.current_iteration())

    def boosters(self) -> list[Any]:
        """Every booster ``predict`` calls (none for the constant baselines)."""
        return [] if self.booster_ is None else [self.booster_]

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The model's own scale: log1p revenue for lgbm_log1p, revenue otherwise."""
        if self.booster_ is None:
            return np.full(len(X), self.constant_)
        return predict_booster(self.booster_, self.schema_.check(X, f"baseline {self.name}"))

    def validation_loss(self, X_val: pd.DataFrame, y_val: np.ndarray) -> float:
        """The loss the baseline's boosting minimises, on held-out rows: L2 of log1p revenue
        (lgbm_log1p), Tweedie deviance (lgbm_tweedie), squared error (zero, mean)."""
        y_val = check_labels(y_val, len(X_val), "y_val")
        raw = self.predict_raw(X_val)
        if self.name == "lgbm_log1p":
            return float(np.mean((raw - np.log1p(y_val)) ** 2))
        if self.name == "lgbm_tweedie":
            return metrics.tweedie_deviance(y_val, raw, self.tweedie_variance_power)
        return float(np.mean((raw - y_val) ** 2))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raw = self.predict_raw(X)
        return np.expm1(np.maximum(raw, 0.0)) if self.name == "lgbm_log1p" else np.maximum(raw, 0.0)

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "num_boost_round": self.num_boost_round,
                "early_stopping_rounds": self.early_stopping_rounds,
                "tweedie_variance_power": self.tweedie_variance_power, "random_state": self.random_state,
                "constant": self.constant_,
                "schema": self.schema_.to_dict() if self.booster_ is not None else None,
                "booster": None if self.booster_ is None else self.booster_.model_to_string()}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Baseline:
        obj = cls(s["name"], s["params"], s["num_boost_round"], s["early_stopping_rounds"],
                  s["tweedie_variance_power"], s["random_state"])
        obj.constant_ = s["constant"]
        if s["booster"] is not None:
            obj.booster_ = booster_from_string(s["booster"])
            obj.schema_ = FeatureSchema.from_dict(s["schema"])
        return obj


def fit_baselines(X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray, *,
                  names: tuple[str, ...] = BASELINES, params: dict[str, Any] | None = None,
                  num_boost_round: int = 3000, early_stopping_rounds: int = 100,
                  tweedie_variance_power: float = 1.5, seed: int = 0) -> dict[str, Baseline]:
    """Fit every named baseline on the training window, early-stopped on validation."""
    return {n: Baseline(n, params, num_boost_round, early_stopping_rounds, tweedie_variance_power, seed)
            .fit(X, y, X_val, y_val) for n in names}


@dataclass(frozen=True)
class Comparison:
    """One row of metrics per predictor (model columns, baselines, oracle)."""

    rows: dict[str, dict[str, float]]
    kinds: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "kinds": self.kinds}

    def best(self, metric: str, kind: str = "baseline") -> tuple[str, float]:
        """Best row of a kind by ``metric`` (lower is better for errors, higher for Gini/shares)."""
        higher = metric in ("gini", "top1_share", "top10_share", "r2")
        cands = {n: r[metric] for n, r in self.rows.items() if self.kinds[n] == kind}
        if not cands:
            raise ValueError(f"no rows of kind {kind!r}")
        name = (max if higher else min)(cands, key=cands.get)
        return name, cands[name]

    def to_markdown(self, columns: tuple[str, ...] = TABLE_METRICS) -> str:
        head = "| predictor | kind | " + " | ".join(columns) + " |"
        sep = "|---|---|" + "---:|" * len(columns)
        lines = [head, sep]
        for name, r in self.rows.items():
            lines.append(f"| {name} | {self.kinds[name]} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |")
        return "\n".join(lines)


def compare(y_true: np.ndarray, model: dict[str, np.ndarray], baselines: dict[str, np.ndarray],
            oracle: dict[str, np.ndarray] | None = None, candidates: dict[str, np.ndarray] | None = None) -> Comparison:
    """Every metric of ``metrics.evaluate`` for model columns, candidate strategies, baselines and
    (optionally) the oracle."""
    rows: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    groups = (("model", model), ("candidate", candidates or {}), ("baseline", baselines), ("oracle", oracle or {}))
    for kind, group in groups:
        for name, pred in group.items():
            if name in rows:
                raise ValueError(f"duplicate predictor name {name!r} in the comparison")
            rows[name] = metrics.evaluate(y_true, pred)
            kinds[name] = kind
    return Comparison(rows=rows, kinds=kinds)
