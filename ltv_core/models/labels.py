"""The label frame of the modelling stages: revenue per horizon, in the spec's horizon order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_core.errors import DataError
from ltv_core.spec import DatasetSpec

__all__ = ["check_rows", "primary_index", "revenue_matrix"]


def revenue_matrix(labels: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """(rows, horizons) revenue in the spec's horizon order; fails naming a missing column."""
    cols = [h.revenue for h in spec.labels.horizons]
    missing = [c for c in cols if c not in labels.columns]
    if missing:
        raise DataError(f"labels frame lacks revenue columns {missing} (spec {spec.name!r})")
    Y = labels[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(Y).all() or (Y < 0).any():
        raise DataError("revenue labels must be finite and >= 0")
    return Y


def primary_index(spec: DatasetSpec) -> int:
    """Position of the primary horizon among the spec's horizons (a column of ``revenue_matrix``)."""
    return [h.name for h in spec.labels.horizons].index(spec.labels.primary)


def check_rows(X: pd.DataFrame, labels: pd.DataFrame, what: str) -> None:
    """A feature matrix and its labels have the same, non-zero number of rows."""
    if len(X) != len(labels):
        raise DataError(f"{what}: feature matrix has {len(X)} rows but labels have {len(labels)}")
    if len(X) == 0:
        raise DataError(f"{what}: empty window")
