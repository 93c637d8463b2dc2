"""The revenue-cohort strategy of the gaming seed, done as an expectation instead of a routing.

Cohorts (``cohort_edges``): class 0 = rows with no revenue; payers are cut at percentiles of the
**training** payers' revenue (default 50/80/95/99: classes 1..5 = below p50, p50-p80, p80-p95,
p95-p99, top 1%). The edges are fitted once on the training window and applied unchanged to
validation and scoring rows (the seed recomputed them per data set: seeds_report §6, bug 3).

* a multiclass LightGBM gives P(k | x), unweighted and unresampled so that the probabilities stay
  calibrated (the seed balanced *and* weighted, with no prior correction), early-stopped on the
  validation window's multi-logloss;
* per payer cohort k, a LightGBM on log1p revenue of the training rows of that cohort (a constant
  when the cohort has fewer than ``min_rows`` rows), clipped into the cohort's own log1p range;
  its mean scale uses a per-cohort smearing factor (Duan: mean of exp(residual));
* point (RMSLE-optimal):  E[log1p y | x] = sum_k P(k|x) * m_k(x)   (m_0 = 0)
  value (to rank, bid):   E[y | x]       = sum_k P(k|x) * v_k(x)

Hard argmax routing sends every misclassified whale to a low cohort's regressor (12% of the real
top 1% went to "Low Revenue" in the seed); the expectation never does: a row with P(top 1%) = 0.2
keeps a fifth of a whale's value (``tests/unit/test_models_cohorts.py::test_expectation_beats_routing``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ltv_core.errors import DataError
from ltv_core.models.lgb import booster_from_string, lgb_params, predict_booster, train_booster
from ltv_core.models.matrix import FeatureSchema, check_labels

__all__ = ["CohortModel", "assign_cohorts", "cohort_edges"]

DEFAULT_CUTS = (50.0, 80.0, 95.0, 99.0)


def cohort_edges(y: np.ndarray, cuts: Sequence[float] = DEFAULT_CUTS) -> np.ndarray:
    """Revenue edges between payer cohorts: the ``cuts`` percentiles of the payers' revenue."""
    payers = np.asarray(y, dtype=np.float64)[np.asarray(y) > 0]
    if len(payers) == 0:
        raise DataError("cohort model: the training window has no payer (every revenue is 0)")
    if list(cuts) != sorted(cuts) or not all(0 < c < 100 for c in cuts):
        raise ValueError(f"cohort cuts must be increasing percentiles in (0, 100), got {list(cuts)}")
    return np.percentile(payers, list(cuts))


def assign_cohorts(y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Class of each row: 0 for no revenue, else 1 + the number of edges at or below its revenue."""
    y = np.asarray(y, dtype=np.float64)
    return np.where(y > 0, 1 + np.searchsorted(edges, y, side="right"), 0).astype(np.int64)


class CohortModel:
    """Cohort classifier + per-cohort regressors, combined as an expectation (see module doc)."""

    def __init__(self, cuts: Sequence[float] = DEFAULT_CUTS, params: dict[str, Any] | None = None,
                 regressor_params: dict[str, Any] | None = None, min_rows: int = 200,
                 num_boost_round: int = 3000, early_stopping_rounds: int = 100, random_state: int = 0) -> None:
        self.cuts = tuple(float(c) for c in cuts)
        self.params = params
        self.regressor_params = regressor_params
        self.min_rows = min_rows
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    @property
    def n_classes(self) -> int:
        return len(self.cuts) + 2

    # --- fitting ------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray) -> CohortModel:
        """Edges from the training payers; every booster early-stopped on the validation window."""
        y = check_labels(y, len(X), "y")
        self.schema_ = FeatureSchema.from_frame(X)
        X_val = self.schema_.check(X_val, "cohort model")
        y_val = check_labels(y_val, len(X_val), "y_val")
        return self._fit(X, y, (X_val, y_val), None)

    def refit(self, X: pd.DataFrame, y: np.ndarray, random_state: int) -> CohortModel:
        """The same model on other rows with this model's tree counts and no validation window: the
        stacker's out-of-fold fits (like its other base learners, models/stacker.py)."""
        clone = CohortModel(self.cuts, self.params, self.regressor_params, self.min_rows, self.num_boost_round,
                            self.early_stopping_rounds, random_state)
        clone.schema_ = self.schema_
        rounds = [self.best_iteration] + [0 if b is None else int(b.current_iteration()) for b in self.regressors_]
        return clone._fit(self.schema_.check(X, "cohort model"), check_labels(y, len(X), "y"), None, rounds)

    def _fit(self, X: pd.DataFrame, y: np.ndarray, val: tuple[pd.DataFrame, np.ndarray] | None,
             rounds: list[int] | None) -> CohortModel:
        self.edges_ = cohort_edges(y, self.cuts)
        c = assign_cohorts(y, self.edges_)
        self.class_counts_ = np.bincount(c, minlength=self.n_classes).tolist()
        params = lgb_params(self.params, self.random_state, objective="multiclass", num_class=self.n_classes,
                            metric="multi_logloss")
        if val is None:
            self.classifier_ = train_booster(params, X, c.astype(float), num_boost_round=max(1, rounds[0]))
        else:
            self.classifier_ = train_booster(params, X, c.astype(float), X_val=val[0],
                                             y_val=assign_cohorts(val[1], self.edges_).astype(float),
                                             num_boost_round=self.num_boost_round,
                                             early_stopping_rounds=self.early_stopping_rounds)
        self._fit_regressors(X, y, c, val, rounds[1:] if rounds else None)
        return self

    def _fit_regressors(self, X: pd.DataFrame, y: np.ndarray, c: np.ndarray,
                        val: tuple[pd.DataFrame, np.ndarray] | None, rounds: list[int] | None) -> None:
        """One regressor (or constant) per payer cohort, with its log1p bounds and smearing factor."""
        bounds = np.log1p(np.concatenate([[0.0], self.edges_, [np.inf]]))
        c_val = None if val is None else assign_cohorts(val[1], self.edges_)
        self.regressors_: list[Any] = []
        self.constants_: list[float] = []
        self.smear_: list[float] = []
        self.bounds_: list[tuple[float, float]] = []
        for k in range(1, self.n_classes):
            rows = c == k
            t = np.log1p(y[rows])
            lo, hi = float(bounds[k - 1]), float(min(bounds[k], t.max() if rows.any() else bounds[k - 1]))
            self.bounds_.append((lo, max(lo, hi)))
            self.constants_.append(float(t.mean()) if rows.any() else lo)
            self.regressors_.append(self._cohort_booster(k, X.loc[rows], t, val, c_val, rounds))
            resid = t - self._cohort_log1p(k - 1, X.loc[rows]) if rows.any() else np.zeros(1)
            self.smear_.append(float(np.mean(np.exp(resid))))

    def _cohort_booster(self, k: int, X: pd.DataFrame, t: np.ndarray, val: tuple[pd.DataFrame, np.ndarray] | None,
                        c_val: np.ndarray | None, rounds: list[int] | None) -> Any:
        """Cohort k's regressor: None (a constant) below ``min_rows`` rows; early-stopped on the
        validation rows of the cohort when there are enough of them, else 200 trees."""
        if len(t) < self.min_rows or (rounds is not None and rounds[k - 1] == 0):
            return None
        params = lgb_params(self.regressor_params, self.random_state + k, objective="regression", metric="l2")
        if rounds is not None:
            return train_booster(params, X, t, num_boost_round=rounds[k - 1])
        in_k = c_val == k
        if in_k.sum() < max(20, self.min_rows // 10):
            return train_booster(params, X, t, num_boost_round=200)
        return train_booster(params, X, t, X_val=val[0].loc[in_k], y_val=np.log1p(val[1][in_k]),
                             num_boost_round=self.num_boost_round, early_stopping_rounds=self.early_stopping_rounds)

    # --- prediction ---------------------------------------------------------------------------
    def _cohort_log1p(self, j: int, X: pd.DataFrame) -> np.ndarray:
        """E[log1p y | payer cohort j+1, x], clipped into the cohort's training range."""
        b = self.regressors_[j]
        m = np.full(len(X), self.constants_[j]) if b is None else predict_booster(b, X)
        lo, hi = self.bounds_[j]
        return np.clip(m, lo, hi)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(cohort k | x), rows x classes (class 0: no revenue)."""
        P = predict_booster(self.classifier_, self.schema_.check(X, "cohort model"))
        return np.asarray(P).reshape(len(X), self.n_classes)

    def components(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per-row P (rows x classes) and the payer cohorts' log1p and mean predictions."""
        X = self.schema_.check(X, "cohort model")
        P = self.predict_proba(X)
        M = np.column_stack([self._cohort_log1p(j, X) for j in range(self.n_classes - 1)])
        V = np.expm1(M) * np.asarray(self.smear_)[None, :]
        return {"P": P, "log1p": M, "mean": V}

    def predict_log1p(self, X: pd.DataFrame) -> np.ndarray:
        comp = self.components(X)
        return np.maximum((comp["P"][:, 1:] * comp["log1p"]).sum(axis=1), 0.0)

    def predict_value(self, X: pd.DataFrame) -> np.ndarray:
        """E[y | x] = sum_k P(k|x) E[y | k, x]: the column to rank and bid with."""
        comp = self.components(X)
        return np.maximum((comp["P"][:, 1:] * comp["mean"]).sum(axis=1), 0.0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The RMSLE-optimal point: expm1(E[log1p y | x])."""
        return np.expm1(self.predict_log1p(X))

    def predict_routed(self, X: pd.DataFrame) -> np.ndarray:
        """The seed's hard routing (argmax cohort's regressor), kept only to measure what it loses."""
        comp = self.components(X)
        k = comp["P"].argmax(axis=1)
        full = np.column_stack([np.zeros(len(X)), comp["mean"]])
        return full[np.arange(len(X)), k]

    @property
    def best_iteration(self) -> int:
        return int(self.classifier_.current_iteration())

    def boosters(self) -> list[Any]:
        """Every booster ``predict`` calls: the cohort classifier and the cohorts' regressors."""
        return [self.classifier_, *(b for b in self.regressors_ if b is not None)]

    # --- persistence --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"cuts": list(self.cuts), "params": self.params,
                "regressor_params": self.regressor_params, "min_rows": self.min_rows,
                "num_boost_round": self.num_boost_round, "early_stopping_rounds": self.early_stopping_rounds,
                "random_state": self.random_state, "schema": self.schema_.to_dict(),
                "edges": self.edges_.tolist(), "class_counts": self.class_counts_,
                "classifier": self.classifier_.model_to_string(),
                "regressors": [None if b is None else b.model_to_string() for b in self.regressors_],
                "constants": self.constants_, "smear": self.smear_, "bounds": [list(b) for b in self.bounds_]}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> CohortModel:
        obj = cls(s["cuts"], s["params"], s["regressor_params"], s["min_rows"], s["num_boost_round"],
                  s["early_stopping_rounds"], s["random_state"])
        obj.schema_ = FeatureSchema.from_dict(s["schema"])
        obj.edges_ = np.asarray(s["edges"], dtype=np.float64)
        obj.class_counts_ = s["class_counts"]
        obj.classifier_ = booster_from_string(s["classifier"])
        obj.regressors_ = [None if b is None else booster_from_string(b) for b in s["regressors"]]
        obj.constants_, obj.smear_ = s["constants"], s["smear"]
        obj.bounds_ = [tuple(b) for b in s["bounds"]]
        return obj
