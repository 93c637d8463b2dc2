"""Stacker: a meta-learner on **out-of-fold** base-learner predictions.

A meta-learner must learn from base predictions of rows the base learners never saw (in-sample
predictions are overconfident, and a meta-learner fitted on them trusts them too much), and its
loss must be the one the metric rewards (a quantile loss such as the 0.65 quantile on a ~96%-zero
target learns a conditional quantile of ~0, not a level). Here:

* the training window is cut into ``n_folds`` contiguous time blocks; for each block the base
  learners are refitted on the other blocks and predict the block, so every training row gets a
  prediction from models that never saw it (blocked K-fold; the number of trees of each fold model
  is the early-stopped count of the corresponding full-window model);
* base learners: the hurdle parts (buyer probability p, buyers' E[log1p y]), their product, a
  direct LightGBM on log1p y, and optionally a Tweedie LightGBM and the revenue-cohort model
  (models/cohorts.py: its E[log1p y] and log1p E[y]);
* the meta-learner predicts E[log1p y | meta-features] (squared error on log1p revenue: the RMSLE
  optimum), either ``linear`` (ridge) or a small monotone ``lgbm``; the lgbm's number of trees is
  chosen on the last OOF block, so the validation window stays untouched for the stack-vs-hurdle
  decision made by ``training.fit_stacker``.

* optionally a **value head** (``fit_value``): a second small monotone LightGBM on the same OOF
  meta-features, Tweedie objective on *revenue* (log link), i.e. E[y | meta-features], the
  quantity a bidder ranks by. ``training.fit_stacker`` keeps it only if it beats the hurdle's
  value column in normalized Gini on validation (a decision independent of the point stacker's:
  ``use_point`` says whether the point meta-learner replaces the hurdle's log1p level).

On validation/holdout/scoring rows the meta-features come from the full-window models.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.special import logit

from ltv_core.models.config import BASE_LEARNERS
from ltv_core.models.lgb import booster_from_string, lgb_params, train_booster
from ltv_core.models.matrix import FeatureSchema

__all__ = ["Stacker", "BASE_LEARNERS", "META_FEATURES", "meta_frame", "time_blocks"]

META_FEATURES = {
    "hurdle": ("logit_p", "m_log1p", "hurdle_log1p"),
    "direct_log1p": ("direct_log1p",),
    "tweedie": ("tweedie_log1p",),
    "cohorts": ("cohort_log1p", "cohort_value_log1p"),
}


def time_blocks(n: int, n_folds: int) -> list[np.ndarray]:
    """Contiguous blocks of row positions (rows are in time order)."""
    if n_folds < 2 or n < n_folds:
        raise ValueError(f"need n_folds >= 2 and at least n_folds rows, got n_folds={n_folds}, rows={n}")
    return np.array_split(np.arange(n), n_folds)


def meta_frame(parts: dict[str, np.ndarray], learners: Sequence[str]) -> pd.DataFrame:
    """Meta-features from base predictions: p (raw probability), m (buyers' E[log1p y]),
    direct (log1p scale), tweedie (revenue scale)."""
    cols: dict[str, np.ndarray] = {}
    if "hurdle" in learners:
        p = np.clip(parts["p"], 1e-6, 1 - 1e-6)
        m = np.maximum(parts["m"], 0.0)
        cols.update(logit_p=logit(p), m_log1p=m, hurdle_log1p=p * m)
    if "direct_log1p" in learners:
        cols["direct_log1p"] = np.maximum(parts["direct"], 0.0)
    if "tweedie" in learners:
        cols["tweedie_log1p"] = np.log1p(np.maximum(parts["tweedie"], 0.0))
    if "cohorts" in learners:
        cols["cohort_log1p"] = np.maximum(parts["cohort_log1p"], 0.0)
        cols["cohort_value_log1p"] = np.log1p(np.maximum(parts["cohort_value"], 0.0))
    return pd.DataFrame(cols)


class Stacker:
    """OOF stacking of the base learners into E[log1p y_primary | x] (see module doc)."""

    def __init__(self, learners: Sequence[str] = ("hurdle", "direct_log1p"), n_folds: int = 3, meta: str = "lgbm",
                 params: dict[str, Any] | None = None, meta_params: dict[str, Any] | None = None,
                 ridge: float = 1e-3, random_state: int = 0,
                 learner_params: dict[str, dict[str, Any]] | None = None) -> None:
        unknown = sorted(set(learners) - set(BASE_LEARNERS))
        if unknown or not learners:
            raise ValueError(f"unknown/empty base learners {unknown or learners}; known: {BASE_LEARNERS}")
        if meta not in ("linear", "lgbm"):
            raise ValueError(f"meta must be 'linear' or 'lgbm', got {meta!r}")
        self.learners = tuple(learners)
        self.n_folds = n_folds
        self.meta = meta
        self.params = params
        # per base model ('p', 'm', 'direct', 'tweedie'): the settings its full-window model was
        # fitted with (e.g. the classifier's validation-chosen tree shape), so that an OOF model
        # with that model's tree count is the same kind of model
        self.learner_params = learner_params
        self.meta_params = meta_params
        self.ridge = ridge
        self.random_state = random_state
        self.use_point = True
        self.value_booster_: Any = None
        self.value_params_: dict[str, Any] | None = None

    # --- OOF base predictions -----------------------------------------------------------------
    def _fold_params(self, part: str, objective: str, seed: int, **extra: Any) -> dict[str, Any]:
        own = (self.learner_params or {}).get(part) or {}
        return lgb_params({**(self.params or {}), **own}, seed, objective=objective, **extra)

    def oof_parts(self, X: pd.DataFrame, y: np.ndarray, rounds: dict[str, int],
                  templates: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Out-of-fold base predictions for every training row (time-ordered blocks).

        ``rounds`` gives the number of trees per base model ('p', 'm', 'direct', 'tweedie'), taken
        from the early-stopped full-window models; ``templates['cohorts']`` is the full-window
        cohort model, whose ``refit`` keeps its tree counts.
        """
        n = len(X)
        parts = {k: np.zeros(n) for k in self._needed()}
        buyer = y > 0
        for k, test in enumerate(time_blocks(n, self.n_folds)):
            train = np.setdiff1d(np.arange(n), test, assume_unique=True)
            seed = self.random_state + 101 * (k + 1)
            Xtr, Xte = X.iloc[train], X.iloc[test]
            if "hurdle" in self.learners:
                parts["p"][test] = train_booster(self._fold_params("p", "binary", seed), Xtr, buyer[train].astype(float),
                                                 num_boost_round=rounds["p"]).predict(Xte)
                tb = train[buyer[train]]
                parts["m"][test] = train_booster(self._fold_params("m", "regression", seed + 1), X.iloc[tb],
                                                 np.log1p(y[tb]), num_boost_round=rounds["m"]).predict(Xte)
            if "direct_log1p" in self.learners:
                parts["direct"][test] = train_booster(self._fold_params("direct", "regression", seed + 2), Xtr,
                                                      np.log1p(y[train]),
                                                      num_boost_round=rounds["direct"]).predict(Xte)
            if "tweedie" in self.learners:
                parts["tweedie"][test] = train_booster(self._fold_params("tweedie", "tweedie", seed + 3), Xtr, y[train],
                                                       num_boost_round=rounds["tweedie"]).predict(Xte)
            if "cohorts" in self.learners:
                fold = (templates or {})["cohorts"].refit(Xtr, y[train], seed + 4)
                parts["cohort_log1p"][test], parts["cohort_value"][test] = fold.predict_log1p(Xte), fold.predict_value(Xte)
        return parts

    def _needed(self) -> list[str]:
        out = []
        if "hurdle" in self.learners:
            out += ["p", "m"]
        if "direct_log1p" in self.learners:
            out.append("direct")
        if "tweedie" in self.learners:
            out.append("tweedie")
        if "cohorts" in self.learners:
            out += ["cohort_log1p", "cohort_value"]
        return out

    # --- meta-learner -------------------------------------------------------------------------
    def fit_meta(self, oof: dict[str, np.ndarray], y: np.ndarray) -> Stacker:
        """Fit the meta-learner on OOF meta-features of the training rows (time order kept)."""
        F = meta_frame(oof, self.learners)
        self.meta_schema_ = FeatureSchema.from_frame(F)
        t = np.log1p(np.asarray(y, dtype=np.float64))
        if self.meta == "linear":
            A = np.column_stack([np.ones(len(F)), F.to_numpy()])
            reg = self.ridge * len(F) * np.eye(A.shape[1])
            reg[0, 0] = 0.0
            self.coef_ = np.linalg.solve(A.T @ A + reg, A.T @ t).tolist()
            self.meta_booster_ = None
            return self
        params = lgb_params({"learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 500,
                             "feature_fraction": 1.0, "bagging_fraction": 0.8, "lambda_l2": 10.0,
                             **(self.meta_params or {})}, self.random_state + 7, objective="regression", metric="l2",
                            monotone_constraints=[1] * F.shape[1])  # every input rises with revenue
        blocks = time_blocks(len(F), self.n_folds)
        last = blocks[-1]
        first = np.concatenate(blocks[:-1])
        probe = train_booster(params, F.iloc[first], t[first], X_val=F.iloc[last], y_val=t[last],
                              num_boost_round=2000, early_stopping_rounds=100)
        self.meta_rounds_ = int(probe.current_iteration())
        self.meta_booster_ = train_booster(params, F, t, num_boost_round=self.meta_rounds_)
        self.coef_ = None
        return self

    def fit_value(self, oof: dict[str, np.ndarray], y: np.ndarray, variance_power: float = 1.5,
                  value_params: dict[str, Any] | None = None) -> Stacker:
        """Value head: E[y | meta-features] by a monotone Tweedie LightGBM on the OOF meta-features
        (revenue scale), trees chosen on the last OOF block (validation stays untouched)."""
        F = meta_frame(oof, self.learners)
        self.meta_schema_ = FeatureSchema.from_frame(F)
        t = np.asarray(y, dtype=np.float64)
        self.value_params_ = {"learning_rate": 0.03, "num_leaves": 7, "min_data_in_leaf": 500,
                              "feature_fraction": 1.0, "bagging_fraction": 0.8, "lambda_l2": 10.0,
                              **(value_params or {})}
        params = lgb_params(self.value_params_, self.random_state + 8, objective="tweedie",
                            tweedie_variance_power=float(variance_power), metric="tweedie",
                            monotone_constraints=[1] * F.shape[1])
        blocks = time_blocks(len(F), self.n_folds)
        last, first = blocks[-1], np.concatenate(blocks[:-1])
        probe = train_booster(params, F.iloc[first], t[first], X_val=F.iloc[last], y_val=t[last],
                              num_boost_round=3000, early_stopping_rounds=100)
        self.value_rounds_ = int(probe.current_iteration())
        self.value_booster_ = train_booster(params, F, t, num_boost_round=self.value_rounds_)
        return self

    def predict_value(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """E[y_primary | meta-features] (revenue scale) from the value head."""
        if self.value_booster_ is None:
            raise ValueError("Stacker has no value head (fit_value was not called)")
        F = self.meta_schema_.check(meta_frame(parts, self.learners), "Stacker")
        return np.maximum(self.value_booster_.predict(F), 0.0)

    def predict_log1p(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """E[log1p y | meta-features] (clipped >= 0) from base predictions of full-window models."""
        F = self.meta_schema_.check(meta_frame(parts, self.learners), "Stacker")
        if self.meta_booster_ is None:
            out = self.coef_[0] + F.to_numpy() @ np.asarray(self.coef_[1:])
        else:
            out = self.meta_booster_.predict(F)
        return np.maximum(out, 0.0)

    # --- persistence --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"learners": list(self.learners), "n_folds": self.n_folds, "meta": self.meta, "params": self.params,
                "learner_params": self.learner_params,
                "meta_params": self.meta_params, "ridge": self.ridge, "random_state": self.random_state,
                "meta_schema": self.meta_schema_.to_dict(), "coef": self.coef_,
                "meta_booster": None if self.meta_booster_ is None else self.meta_booster_.model_to_string(),
                "meta_rounds": getattr(self, "meta_rounds_", None), "use_point": self.use_point,
                "value_booster": None if self.value_booster_ is None else self.value_booster_.model_to_string(),
                "value_rounds": getattr(self, "value_rounds_", None), "value_params": self.value_params_}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Stacker:
        obj = cls(learners=s["learners"], n_folds=s["n_folds"], meta=s["meta"], params=s["params"],
                  meta_params=s["meta_params"], ridge=s["ridge"], random_state=s["random_state"],
                  learner_params=s.get("learner_params"))
        obj.meta_schema_ = FeatureSchema.from_dict(s["meta_schema"])
        obj.coef_ = s["coef"]
        obj.meta_booster_ = None if s["meta_booster"] is None else booster_from_string(s["meta_booster"])
        if s.get("meta_rounds") is not None:
            obj.meta_rounds_ = s["meta_rounds"]
        obj.use_point = bool(s.get("use_point", True))
        obj.value_booster_ = None if s.get("value_booster") is None else booster_from_string(s["value_booster"])
        obj.value_params_ = s.get("value_params")
        if s.get("value_rounds") is not None:
            obj.value_rounds_ = s["value_rounds"]
        return obj
