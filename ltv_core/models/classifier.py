"""Buyer classifier: LightGBM binary, early-stopped on validation, with a calibrated probability.

The probability must be fitted at the true buyer rate and its calibration chosen out of sample:
class weights (``scale_pos_weight``, ``class_weight='balanced'``) in the fit or in the calibrator
leave a "calibrated" probability inflated towards a balanced prior, and a calibrator chosen and
scored on the rows it was fitted on looks better than it is. Here:

* no class weights anywhere (refused in the params); if training used HistOS or emphasis weights,
  the raw score is first prior-corrected with the odds factor of that emphasis;
* the calibrator is chosen among isotonic / Platt / beta by **cross-fitted** Brier score on the
  validation window: two time-ordered halves, fit on one and score on the other, both ways, so the
  choice is not made in-sample; the chosen method is then refitted on the whole validation window;
* the booster remembers its feature list and refuses a matrix with other columns;
* optional seed bagging (``n_seeds`` > 1): that many boosters differing only in their random seed
  (row/feature subsampling), each early-stopped on validation, their raw probabilities averaged
  before prior correction and calibration. It lowers the variance of the score that ranks rows.

The hurdle needs P(revenue > 0), so the label is ``revenue > 0`` of the primary horizon.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ltv_core import metrics
from ltv_core.errors import DataError
from ltv_core.models.lgb import (CLASS_WEIGHT_PARAMS, booster_from_string, lgb_params, predict_booster,
                                 train_booster)
from ltv_core.models.config import CALIBRATION_METHODS
from ltv_core.models.matrix import FeatureSchema, check_labels, unfitted_from_state

__all__ = ["BuyerClassifier", "Calibrator", "fit_calibrator", "prior_correct", "CALIBRATION_METHODS"]

_EPS = 1e-6


def prior_correct(p: np.ndarray, factor: float) -> np.ndarray:
    """Undo a multiplication of the buyer odds by ``factor``: odds' = odds / factor."""
    p = np.asarray(p, dtype=np.float64)
    if factor == 1.0:
        return p
    return p / (p + (1.0 - p) * factor)


class Calibrator:
    """A monotone map from raw to calibrated probability, JSON-serialisable.

    isotonic: step function (interpolated between thresholds); platt: sigmoid(a*logit(p) + b);
    beta (Kull et al. 2017): sigmoid(a*ln p - b*ln(1-p) + c) with a, b >= 0; none: identity.
    """

    def __init__(self, method: str, params: dict[str, list[float] | float] | None = None) -> None:
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {method!r}; known: {CALIBRATION_METHODS}")
        self.method = method
        self.params = params or {}

    def predict(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
        m, k = self.method, self.params
        if m == "none":
            return q
        if m == "isotonic":
            return np.interp(q, np.asarray(k["x"]), np.asarray(k["y"]))
        if m == "platt":
            return expit(k["a"] * logit(q) + k["b"])
        return expit(k["a"] * np.log(q) - k["b"] * np.log1p(-q) + k["c"])

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(d["method"], d["params"])


def _logistic(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Unweighted, (almost) unregularised logistic fit: probabilities at the true base rate."""
    lr = LogisticRegression(C=1e6, max_iter=1000, tol=1e-10)
    lr.fit(features, y)
    return lr.coef_.ravel(), float(lr.intercept_[0])


def fit_calibrator(method: str, p: np.ndarray, y: np.ndarray) -> Calibrator:
    """Fit one calibration map on (raw probability, 0/1 label), without any class weighting."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=np.float64)
    if method == "none":
        return Calibrator("none")
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(q, y)
        return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
    if method == "platt":
        coef, b = _logistic(logit(q)[:, None], y)
        return Calibrator("platt", {"a": float(coef[0]), "b": b})
    if method == "beta":
        feats = np.column_stack([np.log(q), -np.log1p(-q)])
        coef, c = _logistic(feats, y)
        if coef[0] < 0 or coef[1] < 0:  # not monotone: refit with the offending term dropped
            keep = 1 if coef[0] < 0 else 0
            one, c = _logistic(feats[:, [keep]], y)
            coef = np.zeros(2)
            coef[keep] = max(float(one[0]), 0.0)
        return Calibrator("beta", {"a": float(coef[0]), "b": float(coef[1]), "c": c})
    raise ValueError(f"unknown calibration method {method!r}; known: {CALIBRATION_METHODS}")


def crossfit_brier(method: str, p: np.ndarray, y: np.ndarray, n_folds: int = 2) -> float:
    """Brier score of ``method`` fitted on some time-ordered blocks of validation and scored on the
    held-out block, averaged over blocks (rows must be in time order)."""
    blocks = np.array_split(np.arange(len(p)), n_folds)
    sse = 0.0
    for k, test in enumerate(blocks):
        train = np.concatenate([b for j, b in enumerate(blocks) if j != k])
        if y[train].min() == y[train].max():
            raise DataError("a calibration fold has a single class; the validation window is too small")
        cal = fit_calibrator(method, p[train], y[train])
        sse += float(np.sum((cal.predict(p[test]) - y[test]) ** 2))
    return sse / len(p)


class BuyerClassifier(ClassifierMixin, BaseEstimator):
    """P(revenue > 0 | x) with early stopping and a calibration chosen by cross-fitted Brier score.

    ``fit(X, y, eval_set=(X_val, y_val), sample_weight=None, prior_factor=1.0)``: ``y`` is a 0/1
    buyer label; ``prior_factor`` is the odds inflation of any resampling/emphasis weights used on
    the training rows (see ``resample.odds_factor``).
    """

    def __init__(self, params: dict[str, Any] | None = None, num_boost_round: int = 3000,
                 early_stopping_rounds: int = 100, calibration_methods: Sequence[str] = ("isotonic", "platt", "beta"),
                 calibration_folds: int = 2, random_state: int = 0, n_seeds: int = 1) -> None:
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration_methods = calibration_methods
        self.calibration_folds = calibration_folds
        self.random_state = random_state
        self.n_seeds = n_seeds

    def _booster_params(self, seed: int | None = None) -> dict[str, Any]:
        bad = [k for k in CLASS_WEIGHT_PARAMS if k in (self.params or {})]
        if bad:
            raise ValueError(f"BuyerClassifier refuses class-weight params {bad}: probabilities must be fitted "
                             "at the true buyer rate (use resampling + prior correction instead)")
        seed = self.random_state if seed is None else seed
        return lgb_params(self.params, seed, objective="binary", metric="binary_logloss")

    def fit(self, X: pd.DataFrame, y: np.ndarray, *, eval_set: tuple[pd.DataFrame, np.ndarray],
            sample_weight: np.ndarray | None = None, prior_factor: float = 1.0) -> BuyerClassifier:
        self.schema_ = FeatureSchema.from_frame(X)
        y = self._label(y, len(X), "y")
        X_val, y_val = eval_set
        X_val = self.schema_.check(X_val, "BuyerClassifier")
        y_val = self._label(y_val, len(X_val), "y_val")
        if int(self.n_seeds) < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")
        boosters = [train_booster(self._booster_params(self.random_state + 1000 * i), X, y, weight=sample_weight,
                                  X_val=X_val, y_val=y_val, num_boost_round=self.num_boost_round,
                                  early_stopping_rounds=self.early_stopping_rounds)
                    for i in range(int(self.n_seeds))]
        self.booster_, self.extra_boosters_ = boosters[0], boosters[1:]
        self.best_iteration_ = int(self.booster_.current_iteration())
        self.prior_factor_ = float(prior_factor)
        self.classes_ = np.array([0, 1])
        raw = self.predict_raw(X_val)
        self._choose_calibration(raw, y_val)
        return self

    @staticmethod
    def _label(y: np.ndarray, n: int, name: str) -> np.ndarray:
        arr = check_labels(y, n, name)
        if not np.isin(arr, (0.0, 1.0)).all():
            raise DataError(f"{name} must be a 0/1 buyer label")
        if arr.min() == arr.max():
            raise DataError(f"{name} has a single class; cannot fit a buyer classifier")
        return arr

    def _choose_calibration(self, raw: np.ndarray, y: np.ndarray) -> None:
        scores = {m: crossfit_brier(m, raw, y, self.calibration_folds) for m in self.calibration_methods}
        scores["raw"] = float(np.mean((raw - y) ** 2))
        best = min(self.calibration_methods, key=lambda m: scores[m])
        self.calibration_scores_ = scores
        self.calibration_method_ = best
        self.calibrator_ = fit_calibrator(best, raw, y)
        self.validation_metrics_ = {
            "raw": metrics.classifier_metrics(y, raw),
            # the honest estimate: cross-fitted probabilities of the chosen method
            "calibrated_crossfit": metrics.classifier_metrics(y, self.crossfit_proba(raw, y)),
            "best_iteration": self.best_iteration_,
        }

    def crossfit_proba(self, raw: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of validation rows, each block calibrated by a map fitted on the
        other blocks with the chosen method: honest (not in-sample) validation probabilities."""
        method = self.calibration_method_
        out = np.empty_like(raw)
        blocks = np.array_split(np.arange(len(raw)), self.calibration_folds)
        for k, test in enumerate(blocks):
            train = np.concatenate([b for j, b in enumerate(blocks) if j != k])
            out[test] = fit_calibrator(method, raw[train], y[train]).predict(raw[test])
        return out

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Booster probability after the prior correction, before calibration."""
        X = self.schema_.check(X, "BuyerClassifier")
        raw = predict_booster(self.booster_, X)
        extra = getattr(self, "extra_boosters_", [])
        if extra:  # seed bag: mean probability of all boosters
            raw = (raw + sum(predict_booster(b, X) for b in extra)) / (1 + len(extra))
        return prior_correct(raw, self.prior_factor_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.calibrator_.predict(self.predict_raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def report(self, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        """AUC, PR-AUC, Brier and ECE of the calibrated probability on (X, y)."""
        return metrics.classifier_metrics(np.asarray(y, dtype=np.float64), self.predict_proba(X)[:, 1])

    # --- persistence ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"params": self.get_params(), "schema": self.schema_.to_dict(), "booster": self.booster_.model_to_string(),
                "extra_boosters": [b.model_to_string() for b in getattr(self, "extra_boosters_", [])],
                "best_iteration": self.best_iteration_, "prior_factor": self.prior_factor_,
                "calibrator": self.calibrator_.to_dict(), "calibration_method": self.calibration_method_,
                "calibration_scores": self.calibration_scores_, "validation_metrics": self.validation_metrics_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BuyerClassifier:
        obj = unfitted_from_state(cls, state, ("calibration_methods",))
        obj.booster_ = booster_from_string(state["booster"])
        obj.extra_boosters_ = [booster_from_string(b) for b in state.get("extra_boosters", [])]
        obj.best_iteration_ = state["best_iteration"]
        obj.prior_factor_ = state["prior_factor"]
        obj.classes_ = np.array([0, 1])
        obj.calibrator_ = Calibrator.from_dict(state["calibrator"])
        obj.calibration_method_ = state["calibration_method"]
        obj.calibration_scores_ = state["calibration_scores"]
        obj.validation_metrics_ = state["validation_metrics"]
        return obj
