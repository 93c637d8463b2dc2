"""Multi-horizon revenue regressor on buyers, order-preserving by construction (ODMN-inspired).

Predictions must not decrease with the horizon, for every row, by construction: independent
per-horizon models patched by a cumulative max afterwards can leave the primary horizon out of the
repair. Here the horizons are chained like ODMN's mono units, but with gradient-boosted heads:

    head 0 (primary):   T(y_primary)                        e.g. log1p revenue, clipped >= 0
    head h (longer):    T(y_h) - T(y_{h-1}) >= 0             a non-negative increment, clipped >= 0
    prediction_h    =   head 0 + sum of increments up to h   (a cumulative sum: monotone per row)

so pred_d7 <= pred_d14 <= pred_d28 holds for every row and any input, with no post-hoc repair.
Each increment head learns only what the longer window adds, which is a small, mostly-zero target.

Objectives (``objective``): ``log1p_l2`` (default: E[log1p y | buyer, x], what RMSLE needs),
``huber`` (robust L2 on log1p, delta = ``huber_delta``), ``tweedie`` (E[y | buyer, x] on the revenue
scale, log link; increments are compound-Poisson-like: many exact zeros).

The conditional *mean* E[y | buyer, x] of a log-scale model is not expm1(E[log1p y]) (Jensen):
``fit_smearing`` estimates, on validation buyers, Duan's smearing factor per horizon,
c_h = sum(1 + y) / sum(exp(m_h)), so that E[y_h | buyer, x] ≈ c_h * exp(m_h) - 1 (clipped >= 0 and
made monotone across horizons by a running max). For ``tweedie`` the mean is the model itself
(rescaled so totals match on validation) and the log point is log1p(mean) shifted by its mean
validation bias.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from ltv_core.errors import DataError
from ltv_core.models.lgb import booster_from_string, lgb_params, predict_booster, train_booster
from ltv_core.models.config import OBJECTIVES
from ltv_core.models.matrix import FeatureSchema, unfitted_from_state

__all__ = ["MultiHorizonRegressor", "OBJECTIVES"]

_LOG_OBJECTIVES = ("log1p_l2", "huber")


def _as_revenue_matrix(Y: Any, n: int, n_horizons: int, name: str) -> np.ndarray:
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim == 1 and n_horizons == 1:
        arr = arr[:, None]
    if arr.shape != (n, n_horizons):
        raise DataError(f"{name} must have shape ({n}, {n_horizons}) (rows x horizons), got {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise DataError(f"{name}: revenues must be finite and >= 0")
    if (np.diff(arr, axis=1) < -0.005).any():
        bad = int((np.diff(arr, axis=1) < -0.005).any(axis=1).sum())
        raise DataError(f"{name}: {bad} rows have revenue decreasing with the horizon (cumulative labels expected)")
    return np.maximum.accumulate(arr, axis=1)  # absorb cent rounding


class MultiHorizonRegressor(RegressorMixin, BaseEstimator):
    """Chained heads: primary-horizon level + non-negative increments, cumulated (see module doc).

    ``fit(X, Y, eval_set=(X_val, Y_val), sample_weight=None)`` with ``Y`` of shape (rows, horizons),
    horizons ordered by days, rows = buyers of the primary horizon. ``predict`` returns the
    model-scale matrix (log1p revenue for log objectives, revenue for tweedie), monotone per row.
    """

    def __init__(self, horizons: Sequence[str] = ("d7",), objective: str = "log1p_l2",
                 params: dict[str, Any] | None = None, increment_params: dict[str, Any] | None = None,
                 num_boost_round: int = 3000, early_stopping_rounds: int = 100, huber_delta: float = 1.0,
                 tweedie_variance_power: float = 1.5, monotone: dict[str, int] | None = None,
                 random_state: int = 0) -> None:
        self.horizons = horizons
        self.objective = objective
        self.params = params
        self.increment_params = increment_params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.huber_delta = huber_delta
        self.tweedie_variance_power = tweedie_variance_power
        self.monotone = monotone
        self.random_state = random_state

    # --- targets -------------------------------------------------------------------------------
    @property
    def log_scale(self) -> bool:
        return self.objective in _LOG_OBJECTIVES

    def _transform(self, Y: np.ndarray) -> np.ndarray:
        return np.log1p(Y) if self.log_scale else Y

    def _head_targets(self, Y: np.ndarray) -> np.ndarray:
        T = self._transform(Y)
        return np.column_stack([T[:, 0], np.maximum(np.diff(T, axis=1), 0.0)]) if T.shape[1] > 1 else T

    def _params(self, head: int, schema: FeatureSchema) -> dict[str, Any]:
        base = self.params if head == 0 or self.increment_params is None else {**(self.params or {}),
                                                                                **self.increment_params}
        fixed: dict[str, Any] = {}
        if self.objective == "log1p_l2":
            fixed = {"objective": "regression", "metric": "l2"}
        elif self.objective == "huber":
            fixed = {"objective": "huber", "alpha": self.huber_delta, "metric": "l2"}
        elif self.objective == "tweedie":
            fixed = {"objective": "tweedie", "tweedie_variance_power": self.tweedie_variance_power,
                     "metric": "tweedie"}
        else:
            raise ValueError(f"unknown objective {self.objective!r}; known: {OBJECTIVES}")
        if self.monotone:
            unknown = sorted(set(self.monotone) - set(schema.names))
            if unknown:
                raise ValueError(f"monotone constraints name unknown features {unknown}")
            fixed["monotone_constraints"] = [int(self.monotone.get(c, 0)) for c in schema.names]
        return lgb_params(base, self.random_state + head, **fixed)

    # --- fit / predict -------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, Y: Any, *, eval_set: tuple[pd.DataFrame, Any],
            sample_weight: np.ndarray | None = None) -> MultiHorizonRegressor:
        if not self.horizons:
            raise ValueError("MultiHorizonRegressor needs at least one horizon")
        H = len(self.horizons)
        self.schema_ = FeatureSchema.from_frame(X)
        Y = _as_revenue_matrix(Y, len(X), H, "Y")
        X_val, Y_val = eval_set
        X_val = self.schema_.check(X_val, "MultiHorizonRegressor")
        Y_val = _as_revenue_matrix(Y_val, len(X_val), H, "Y_val")
        if len(X) == 0 or len(X_val) == 0:
            raise DataError("MultiHorizonRegressor needs buyer rows in both training and validation")
        T, T_val = self._head_targets(Y), self._head_targets(Y_val)
        self.boosters_ = []
        for h in range(H):
            self.boosters_.append(train_booster(self._params(h, self.schema_), X, T[:, h], weight=sample_weight,
                                                X_val=X_val, y_val=T_val[:, h],
                                                num_boost_round=self.num_boost_round,
                                                early_stopping_rounds=self.early_stopping_rounds))
        self.best_iterations_ = [int(b.current_iteration()) for b in self.boosters_]
        self.fit_smearing(X_val, Y_val)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, horizons) on the model scale; head 0 and every increment clipped >= 0, cumulated."""
        X = self.schema_.check(X, "MultiHorizonRegressor")
        heads = np.column_stack([predict_booster(b, X) for b in self.boosters_])
        return np.cumsum(np.maximum(heads, 0.0), axis=1)

    def fit_smearing(self, X_val: pd.DataFrame, Y_val: np.ndarray) -> None:
        """Per-horizon conversion constants between the model scale, E[log1p y] and E[y] (on
        held-out buyers: in-sample residuals would understate the spread)."""
        Y_val = _as_revenue_matrix(Y_val, len(X_val), len(self.horizons), "Y_val")
        P = self.predict(X_val)
        if self.log_scale:
            self.smearing_ = (np.sum(1.0 + Y_val, axis=0) / np.sum(np.exp(P), axis=0)).tolist()
        else:
            self.smearing_ = (np.sum(Y_val, axis=0) / np.maximum(np.sum(P, axis=0), 1e-12)).tolist()
            self.log_shift_ = np.mean(np.log1p(P * np.asarray(self.smearing_)) - np.log1p(Y_val), axis=0).tolist()

    def predict_log1p(self, X: pd.DataFrame) -> np.ndarray:
        """E[log1p y_h | buyer, x] per horizon (monotone per row)."""
        return self.log1p_from_scale(self.predict(X))

    def predict_mean(self, X: pd.DataFrame) -> np.ndarray:
        """E[y_h | buyer, x] per horizon (smearing-corrected, monotone per row)."""
        return self.mean_from_scale(self.predict(X))

    def log1p_from_scale(self, P: np.ndarray) -> np.ndarray:
        """``predict_log1p`` from an already computed ``predict`` (one pass over the boosters)."""
        if self.log_scale:
            return P
        L = np.maximum(np.log1p(P * np.asarray(self.smearing_)) - np.asarray(self.log_shift_), 0.0)
        return np.maximum.accumulate(L, axis=1)

    def mean_from_scale(self, P: np.ndarray) -> np.ndarray:
        """``predict_mean`` from an already computed ``predict``."""
        if self.log_scale:
            M = np.maximum(np.asarray(self.smearing_) * np.exp(P) - 1.0, 0.0)
        else:
            M = P * np.asarray(self.smearing_)
        return np.maximum.accumulate(M, axis=1)

    # --- persistence ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        params = self.get_params()
        params["horizons"] = list(params["horizons"])
        state = {"params": params, "schema": self.schema_.to_dict(),
                 "boosters": [b.model_to_string() for b in self.boosters_],
                 "best_iterations": self.best_iterations_, "smearing": self.smearing_}
        if not self.log_scale:
            state["log_shift"] = self.log_shift_
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MultiHorizonRegressor:
        obj = unfitted_from_state(cls, state, ("horizons",))
        obj.boosters_ = [booster_from_string(s) for s in state["boosters"]]
        obj.best_iterations_ = state["best_iterations"]
        obj.smearing_ = state["smearing"]
        if "log_shift" in state:
            obj.log_shift_ = state["log_shift"]
        return obj
