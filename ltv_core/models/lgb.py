"""The LightGBM building blocks every model shares: default settings, parameter assembly, one
early-stopped training call, and prediction on a ``DenseMatrix``.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ltv_core import threads
from ltv_core.models.matrix import DenseMatrix

__all__ = [
    "CLASS_WEIGHT_PARAMS",
    "LGB_DEFAULTS",
    "RESTRICTED_MAX_SHARE",
    "booster_from_string",
    "booster_split_features",
    "lgb_params",
    "predict_booster",
    "train_booster",
]

# LightGBM settings every model starts from; config/models.yaml overrides them per model.
# deterministic + force_col_wise make a fit reproducible bit for bit, whatever its thread count
# (1 and 2 threads gave identical predictions): ``num_threads`` is the stage's budget
# (ltv_core.threads), not a constant, so parallel tasks never run more busy threads than cores.
LGB_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "cat_smooth": 20.0,
    "min_data_per_group": 100,
    "max_cat_threshold": 32,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}

# Parameters that reweight classes: a calibrated buyer probability must be fitted without them.
CLASS_WEIGHT_PARAMS = ("scale_pos_weight", "is_unbalance", "class_weight", "pos_bagging_fraction",
                       "neg_bagging_fraction")


# A booster that splits on at most this share of the columns predicts on DenseMatrix.restricted:
# measured on the champion's stack (docs/BENCHMARKS.md), a booster on 26% of the columns gained
# about nothing after paying for the CSR copy, one on 8% took a quarter of the dense time.
RESTRICTED_MAX_SHARE = 0.5


def booster_split_features(booster: lgb.Booster) -> np.ndarray:
    """Indices of the features at least one split of ``booster`` uses."""
    return np.flatnonzero(booster.feature_importance(importance_type="split"))


def predict_booster(booster: lgb.Booster, X: pd.DataFrame | DenseMatrix, **kwargs: Any) -> np.ndarray:
    """``booster.predict`` on the dense values when the booster's category levels match them;
    on the values of its split features alone (``DenseMatrix.restricted``) when those are few.
    Same predictions either way."""
    if isinstance(X, DenseMatrix):
        fitted = booster.pandas_categorical or []
        if len(fitted) == len(X.categories) and all(
                list(levels) == X.categories[c] for c, levels in zip(X.categories, fitted, strict=True)):
            data: np.ndarray | sp.csr_matrix = X.values
            # plain predictions only: pred_contrib / pred_leaf would answer a sparse input in kind
            if not kwargs and booster.num_feature() == X.values.shape[1]:
                used = booster_split_features(booster)
                if len(used) <= RESTRICTED_MAX_SHARE * X.values.shape[1]:
                    data = X.restricted(used)
            return booster.predict(data, num_threads=threads.current(), **kwargs)
        X = X.frame
    # a loaded booster predicts with OpenMP's default (every core) unless told: the stage's budget
    return booster.predict(X, num_threads=threads.current(), **kwargs)


def lgb_params(base: dict[str, Any] | None, seed: int, **fixed: Any) -> dict[str, Any]:
    """LGB_DEFAULTS, overridden by the config's params, then by what the model itself fixes."""
    params = {**LGB_DEFAULTS, **(base or {}), **fixed}
    params["seed"] = int(seed)
    params.setdefault("num_threads", threads.current())
    for k in ("bagging_seed", "feature_fraction_seed", "data_random_seed"):
        params.pop(k, None)  # derived from `seed` by LightGBM
    return params


def train_booster(params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, *, weight: np.ndarray | None = None,
                  X_val: pd.DataFrame | None = None, y_val: np.ndarray | None = None,
                  w_val: np.ndarray | None = None, num_boost_round: int = 2000,
                  early_stopping_rounds: int = 100) -> lgb.Booster:
    """One LightGBM fit, early-stopped on (X_val, y_val) when given, else ``num_boost_round`` trees.

    The returned booster keeps only the best iteration's trees, so predict() needs no argument.
    """
    train = lgb.Dataset(X, label=y, weight=weight, free_raw_data=True)
    valid_sets, callbacks = [], []
    if X_val is not None:
        valid_sets = [lgb.Dataset(X_val, label=y_val, weight=w_val, reference=train)]
        callbacks = [lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)]
    booster = lgb.train(params, train, num_boost_round=num_boost_round, valid_sets=valid_sets,
                        callbacks=callbacks)
    best = booster.best_iteration if X_val is not None and booster.best_iteration > 0 else booster.current_iteration()
    return booster_from_string(booster.model_to_string(num_iteration=best))


def booster_from_string(text: str) -> lgb.Booster:
    return lgb.Booster(model_str=text)
