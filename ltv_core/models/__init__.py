"""Modelling core of the LTV pipeline: resampling, buyer classifier, multi-horizon regressor,
stacker, gate, baselines, the orchestration of the stack, and (de)serialisation.

Every component takes plain pandas/numpy inputs (a feature frame of float32 + pandas category
columns, label arrays), so it does not depend on how the features were built.

This module also holds the few building blocks the components share (LightGBM defaults, the
feature-schema guard, one early-stopped training call). The public classes are imported lazily
(PEP 562) so that submodules can import these helpers from the package without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ltv_core.errors import DataError

__all__ = [
    "LGB_DEFAULTS",
    "DenseMatrix",
    "FeatureSchema",
    "RESTRICTED_MAX_SHARE",
    "booster_split_features",
    "predict_booster",
    "train_booster",
    "booster_from_string",
    # lazily imported public API
    "BuyerClassifier",
    "FittedStack",
    "Gate",
    "ModelsConfig",
    "MultiHorizonRegressor",
    "ResampleResult",
    "Stacker",
    "compare",
    "fit_baselines",
    "fit_stacker",
    "hhistus",
    "histos",
    "load_models_config",
    "optimize_gate",
    "resample_stage",
    "train_classifier",
    "train_regressor",
    "train_stack",
]

_LAZY = {
    "BuyerClassifier": "classifier",
    "FittedStack": "training",
    "Gate": "gate",
    "ModelsConfig": "training",
    "MultiHorizonRegressor": "regressor",
    "ResampleResult": "resample",
    "Stacker": "stacker",
    "compare": "baselines",
    "fit_baselines": "baselines",
    "fit_stacker": "training",
    "hhistus": "resample",
    "histos": "resample",
    "load_models_config": "training",
    "optimize_gate": "gate",
    "resample_stage": "training",
    "train_classifier": "training",
    "train_regressor": "training",
    "train_stack": "training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# LightGBM settings every model starts from; config/models.yaml overrides them per model.
# deterministic + force_col_wise + a fixed thread count make a fit reproducible bit for bit.
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
    "num_threads": 2,
    "deterministic": True,
    "force_col_wise": True,
    "verbosity": -1,
}

# Parameters that reweight classes: a calibrated buyer probability must be fitted without them.
CLASS_WEIGHT_PARAMS = ("scale_pos_weight", "is_unbalance", "class_weight", "pos_bagging_fraction",
                       "neg_bagging_fraction")


@dataclass(frozen=True)
class FeatureSchema:
    """The exact feature columns (and category levels) a model was fitted on.

    A model refuses a matrix whose columns differ: silently reindexing and filling absent columns
    with 0 (what the seed's inference did) turns a feature-builder change into wrong predictions.
    """

    names: tuple[str, ...]
    categorical: tuple[str, ...]

    @classmethod
    def from_frame(cls, X: pd.DataFrame) -> FeatureSchema:
        check_matrix(X)
        cats = tuple(c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype))
        return cls(names=tuple(str(c) for c in X.columns), categorical=cats)

    def check(self, X: pd.DataFrame | DenseMatrix, what: str = "model") -> pd.DataFrame | DenseMatrix:
        """X with columns in the fitted order; raises DataError naming missing / extra columns.

        A ``DenseMatrix`` built in exactly this column order passes through unchanged (it was
        checked when it was built); in any other order its frame is checked and reordered."""
        if isinstance(X, DenseMatrix):
            if X.names == self.names and set(X.categories) == set(self.categorical):
                return X
            X = X.frame
        check_matrix(X)
        got = [str(c) for c in X.columns]
        missing = [c for c in self.names if c not in set(got)]
        extra = [c for c in got if c not in set(self.names)]
        if missing or extra:
            raise DataError(f"{what} was fitted on {len(self.names)} feature columns; the matrix differs: "
                            f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                            f"extra {extra[:10]}{'...' if len(extra) > 10 else ''}")
        cats_now = {c for c in got if isinstance(X[c].dtype, pd.CategoricalDtype)}
        if cats_now != set(self.categorical):
            raise DataError(f"{what}: categorical columns changed: fitted {sorted(self.categorical)}, "
                            f"got {sorted(cats_now)}")
        return X if got == list(self.names) else X[list(self.names)]

    def to_dict(self) -> dict[str, list[str]]:
        return {"names": list(self.names), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, d: dict[str, list[str]]) -> FeatureSchema:
        return cls(names=tuple(d["names"]), categorical=tuple(d["categorical"]))


@dataclass(frozen=True, eq=False)
class DenseMatrix:
    """A feature matrix converted once to the float matrix LightGBM predicts on.

    ``Booster.predict(DataFrame)`` converts the frame again on every call (category codes, a
    float copy); a stack calls several boosters on the same rows, and at scoring time that
    repeated conversion cost as much as a third of LightGBM's own time. The conversion here is
    LightGBM's (``lightgbm.basic._data_from_pandas``: category codes, -1 -> NaN, float), done once;
    ``predict_booster`` checks each booster's own category levels and falls back to the frame
    where they differ, so predictions are bit-identical to the DataFrame path (tested).
    """

    values: np.ndarray
    names: tuple[str, ...]
    categories: dict[str, list[Any]]
    index: pd.Index
    source: pd.DataFrame | None = field(repr=False)  # the category frame (from_frame), or None (from_values)
    _restricted: dict[bytes, sp.csr_matrix] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_frame(cls, X: pd.DataFrame) -> DenseMatrix:
        """From a frame of numeric + pandas ``category`` columns."""
        check_matrix(X)
        cats = {str(c): list(X[c].cat.categories) for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)}
        plain = X.copy(deep=False)
        for c in cats:
            codes = plain[c].cat.codes.to_numpy()
            plain[c] = np.where(codes < 0, np.nan, codes).astype(np.float32)
        values = plain.to_numpy(dtype=np.float32)  # float32 -> double in LightGBM is exact
        return cls(values, tuple(str(c) for c in X.columns), cats, X.index, X)

    @classmethod
    def from_values(cls, values: np.ndarray, names: Sequence[str], categories: dict[str, list[Any]],
                    check_codes: bool = True) -> DenseMatrix:
        """From the float32 matrix itself (``FeatureBuilder.matrix``: category codes as floats, NaN
        for null); the frames are derived only if a booster needs the fallback. ``check_codes``:
        verify that category columns hold valid codes (a caller whose codes come from the same
        vocabularies, as the scorer's, skips the ~5 ms per 50k rows)."""
        names = tuple(str(c) for c in names)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise DataError(f"matrix of shape {values.shape} does not match {len(names)} feature names")
        for c in categories if check_codes else ():
            col = values[:, names.index(c)]
            if len(col) and not np.isnan(col).all() and (
                    np.nanmin(col) < 0 or np.nanmax(col) >= len(categories[c]) or (col[~np.isnan(col)] % 1).any()):
                raise DataError(f"category codes of {c!r} are not integers in [0, {len(categories[c]) - 1}] or NaN")
        return cls(values, names, dict(categories), pd.RangeIndex(len(values)), None)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The numeric + ``category`` frame (for a ``from_values`` matrix: built on first use, from
        the values; NaN codes -> null)."""
        if self.source is not None:
            return self.source
        x = pd.DataFrame(self.values, columns=list(self.names), index=self.index)
        for c, cats in self.categories.items():
            codes = np.nan_to_num(x[c].to_numpy(), nan=-1.0).astype(np.int32)
            x[c] = pd.Categorical.from_codes(codes, categories=cats)
        return x

    def __len__(self) -> int:
        return len(self.values)

    def restricted(self, columns: np.ndarray) -> sp.csr_matrix:
        """The same rows and shape as a CSR matrix storing only ``columns`` (every value of them,
        zeros and NaN included; the other columns read as 0). Made once per column set.

        For a booster that splits on few of the features this is the cheap way to predict:
        LightGBM turns every dense row into (index, value) pairs of all its columns, for every
        booster, before a tree is walked; with 2-tree and 10-tree heads on ~300 columns that
        per-row conversion was nearly all of their time. Trees read only the features they split
        on, so the predictions are bit-identical (tested)."""
        columns = np.asarray(columns, dtype=np.int32)
        key = columns.tobytes()
        if key not in self._restricted:
            n, k = len(self.values), len(columns)
            data = np.ascontiguousarray(self.values[:, columns])  # row-major: each row's values together
            itype = np.int32 if n * k < 2**31 else np.int64
            self._restricted[key] = sp.csr_matrix(
                (data.reshape(-1), np.tile(columns, n), np.arange(n + 1, dtype=itype) * k),
                shape=self.values.shape, copy=False)
        return self._restricted[key]


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
            return booster.predict(data, **kwargs)
        X = X.frame
    return booster.predict(X, **kwargs)


def check_matrix(X: Any) -> None:
    """A feature matrix is a DataFrame of numeric or pandas category columns with unique names."""
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"feature matrix must be a pandas DataFrame, got {type(X).__name__}")
    if X.columns.duplicated().any():
        raise DataError(f"feature matrix has duplicate columns {list(X.columns[X.columns.duplicated()])}")
    bad = [c for c in X.columns
           if not (isinstance(X[c].dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(X[c].dtype))]
    if bad:
        raise DataError(f"feature columns must be numeric or pandas category; not: "
                        f"{[(c, str(X[c].dtype)) for c in bad[:10]]}")


def check_labels(y: Any, n: int, name: str) -> np.ndarray:
    """A finite float64 label vector of length n (fails loudly otherwise)."""
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{name} must be a 1-d array of {n} values, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite values")
    return arr


def lgb_params(base: dict[str, Any] | None, seed: int, **fixed: Any) -> dict[str, Any]:
    """LGB_DEFAULTS, overridden by the config's params, then by what the model itself fixes."""
    params = {**LGB_DEFAULTS, **(base or {}), **fixed}
    params["seed"] = int(seed)
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
