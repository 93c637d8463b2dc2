"""Geo aggregates: where a row's value sits in its group's training distribution.

Why a module of its own: the names are shared by three jobs (the fit stores one ``GeoTable`` per
``geo_name``, the transform emits one output per ``GEO_STAT_NAMES`` entry, the prune plan keeps an
aggregate when one of those outputs is needed), and the transform itself needs a fitted table.
The tables are fitted from feature values only, never from a label.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ltv_core.features.config import GeoAggregate
from ltv_core.features.state import GeoTable
from ltv_core.features.transforms import index_in

# config stat -> output name part: <value>__<part>_<group>, e.g. release_msrp__pct_in_country
GEO_STAT_NAMES = {"pct": "pct_in", "dev_median": "dev_median", "ratio_median": "ratio_median"}


def geo_name(g: GeoAggregate) -> str:
    return f"{g.value}__by_{g.group}"


def geo_features(g: GeoTable, values: np.ndarray, group: pa.Array,
                 group_set: pa.Array | None = None) -> dict[str, np.ndarray]:
    """Percentile of the value within its group's training distribution and distance to the median.

    Rows whose group is null, unseen or too small use the global training distribution. Groups are
    processed as contiguous slices after one sort of the rows by group (a loop over groups, not rows).
    """
    gidx = index_in(group, g.groups, group_set)
    pct = np.full(len(values), np.nan)
    med = np.full(len(values), np.nan if g.global_median is None else g.global_median)
    if g.median:
        med = np.where(gidx >= 0, np.asarray(g.median)[np.clip(gidx, 0, None)], med)
    small = np.int16 if len(g.groups) < np.iinfo(np.int16).max else np.int64
    order = np.argsort(gidx.astype(small), kind="stable")  # same order; 16-bit keys get a radix sort
    bounds = np.searchsorted(gidx[order], np.arange(-1, len(g.groups) + 1))
    for j in range(-1, len(g.groups)):
        rows = order[bounds[j + 1]:bounds[j + 2]]
        if rows.size == 0:
            continue
        x, cdf = (g.global_x, g.global_cdf) if j < 0 else (g.x[j], g.cdf[j])
        if x:
            pct[rows] = np.interp(values[rows], x, cdf, left=0.0, right=1.0)
    pct[np.isnan(values)] = np.nan
    out = {}
    if "pct" in g.stats:
        out[GEO_STAT_NAMES["pct"]] = pct
    if "dev_median" in g.stats:
        out[GEO_STAT_NAMES["dev_median"]] = values - med
    if "ratio_median" in g.stats:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[GEO_STAT_NAMES["ratio_median"]] = np.where(med != 0, values / np.where(med != 0, med, 1.0), np.nan)
    return out
