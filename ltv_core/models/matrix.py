"""The feature matrix every model takes, and its guards.

* ``FeatureSchema``: the exact feature columns (and categorical ones) a model was fitted on; a
  model refuses a matrix whose columns differ.
* ``DenseMatrix``: a feature matrix converted once to the float matrix LightGBM predicts on (and,
  per column set, the CSR matrix of only the columns a booster splits on).
* ``check_matrix`` / ``check_labels``: a feature frame of numeric + pandas category columns, a
  finite label vector of the right length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ltv_core.errors import DataError

__all__ = ["DenseMatrix", "FeatureSchema", "check_labels", "check_matrix"]


@dataclass(frozen=True)
class FeatureSchema:
    """The exact feature columns (and category levels) a model was fitted on.

    A model refuses a matrix whose columns differ: silently reindexing and filling absent columns
    with 0 would turn a feature-builder change into wrong predictions.
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
    ``lgb.predict_booster`` checks each booster's own category levels and falls back to the frame
    where they differ, so predictions are bit-identical to the DataFrame path
    (``tests/unit/test_models_training.py::test_dense_matrix_predictions_equal_the_dataframe_path``,
    ``::test_dense_matrix_falls_back_when_category_levels_differ``).
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
        on, so the predictions are bit-identical
        (``tests/unit/test_models_training.py::test_booster_on_few_features_predicts_on_their_values_alone``)."""
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


def unfitted_from_state(cls: type[Any], state: dict[str, Any], tuple_params: tuple[str, ...]) -> Any:
    """A new ``cls`` built from a stored state's ``params`` (those named in ``tuple_params`` back
    to tuples, as ``__init__`` takes them), with its fitted ``schema_`` already restored: the part
    of ``from_state`` every LightGBM estimator shares."""
    params = dict(state["params"])
    for name in tuple_params:
        params[name] = tuple(params[name])
    obj = cls(**params)
    obj.schema_ = FeatureSchema.from_dict(state["schema"])
    return obj
