"""Fitting without holding the training split: per-partition partial statistics, merged by addition.

Each training partition yields a small ``PartialStats`` (value counts, missing counts, inner-key
counts, (group, value) counts, per-fold target sums). Partials are added together (associative,
commutative, so Dask tasks can finish in any order) and ``finalize_*`` turns the merged counts
into the fitted parameters: vocabularies, missing-indicator decisions, inner-key lists, geo CDFs
and target-encoding tables. Memory is bounded by the number of distinct values, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.features.state import GeoTable, TargetEncodingTable


@dataclass
class PartialStats:
    """Additive training statistics of one or more partitions."""

    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    value_counts: dict[str, pd.Series] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    inner_key_counts: dict[str, pd.Series] = field(default_factory=dict)
    geo_counts: dict[str, pd.Series] = field(default_factory=dict)  # (group, value) -> rows
    geo_global: dict[str, pd.Series] = field(default_factory=dict)  # value -> rows
    te: dict[str, pd.DataFrame] = field(default_factory=dict)  # index (fold, category); count + targets
    te_folds: pd.DataFrame | None = None  # index fold; count + targets

    def merge(self, other: PartialStats) -> PartialStats:
        """Add ``other`` into a new PartialStats (order of merging does not matter)."""
        return PartialStats(
            rows=self.rows + other.rows,
            partitions=sorted(self.partitions + other.partitions),
            value_counts=_add_maps(self.value_counts, other.value_counts),
            missing={k: self.missing.get(k, 0) + other.missing.get(k, 0) for k in {*self.missing, *other.missing}},
            inner_key_counts=_add_maps(self.inner_key_counts, other.inner_key_counts),
            geo_counts=_add_maps(self.geo_counts, other.geo_counts),
            geo_global=_add_maps(self.geo_global, other.geo_global),
            te=_add_maps(self.te, other.te),
            te_folds=_add(self.te_folds, other.te_folds),
        )


def _add(a, b):  # type: ignore[no-untyped-def]
    if a is None:
        return b
    if b is None:
        return a
    return a.add(b, fill_value=0)


def _add_maps(a: dict, b: dict) -> dict:
    return {k: _add(a.get(k), b.get(k)) for k in {*a, *b}}


def merge_all(partials: list[PartialStats]) -> PartialStats:
    """Pairwise tree merge: the cost of each merge stays proportional to distinct values."""
    items = list(partials)
    if not items:
        return PartialStats()
    while len(items) > 1:
        items = [items[i].merge(items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


# --- partial statistics from Arrow arrays ----------------------------------------------------------
def value_counts(arr: pa.Array) -> pd.Series:
    """Counts of non-null values (as strings) of one column in one partition."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    vc = pc.value_counts(arr.drop_null())
    if len(vc) == 0:
        return pd.Series(dtype="float64")
    keys = vc.field("values").to_pandas()
    return pd.Series(vc.field("counts").to_numpy().astype(np.float64), index=pd.Index(keys, dtype=object))


def round_significant(v: np.ndarray, digits: int) -> np.ndarray:
    """Round to ``digits`` significant digits so (group, value) counts stay small for continuous values."""
    out = v.copy()
    nz = np.isfinite(v) & (v != 0)
    exp = np.floor(np.log10(np.abs(v[nz])))
    scale = 10.0 ** (digits - 1 - exp)
    out[nz] = np.round(v[nz] * scale) / scale
    return out


def geo_counts(group: pa.Array, value: np.ndarray, digits: int) -> tuple[pd.Series, pd.Series]:
    """(group, rounded value) row counts and the global value counts (rows with a null group too)."""
    ok = ~np.isnan(value)
    v = round_significant(value[ok], digits)
    glob = pd.Series(v).value_counts().astype(np.float64)
    enc = pc.dictionary_encode(group)
    gidx = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)[ok]
    has_group = gidx >= 0
    names = np.asarray(enc.dictionary.to_pandas(), dtype=object)
    df = pd.DataFrame({"g": names[gidx[has_group]] if len(names) else np.array([], dtype=object),
                       "v": v[has_group]})
    per = df.groupby(["g", "v"], sort=False).size().astype(np.float64)
    return per, glob


def te_partial(category: pa.Array, targets: dict[str, np.ndarray], fold: int) -> pd.DataFrame:
    """Per-category row count and target sums of one partition, indexed by (fold, category)."""
    if not (pa.types.is_string(category.type) or pa.types.is_large_string(category.type)):
        category = pc.cast(category, pa.string())
    enc = pc.dictionary_encode(category)
    idx = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    ok = idx >= 0
    k = len(enc.dictionary)
    cols = {"count": np.bincount(idx[ok], minlength=k).astype(np.float64)}
    for name, y in targets.items():
        cols[name] = np.bincount(idx[ok], weights=y[ok], minlength=k)
    names = enc.dictionary.to_pandas().astype(object)
    index = pd.MultiIndex.from_arrays([np.full(k, fold), names], names=["fold", "category"])
    return pd.DataFrame(cols, index=index)


# --- finalize merged statistics into fitted parameters -------------------------------------------------
def top_values(counts: pd.Series | None, top_n: int, min_count: int) -> list[str]:
    """The top-N values by count with at least ``min_count`` rows; ties broken by value (stable)."""
    if counts is None or counts.empty or top_n == 0:
        return []
    df = pd.DataFrame({"value": counts.index.astype(str), "n": counts.to_numpy()})
    df = df[df["n"] >= min_count].sort_values(["n", "value"], ascending=[False, True], kind="stable")
    return df["value"].head(top_n).tolist()


def _cdf_knots(values: np.ndarray, counts: np.ndarray, max_points: int) -> tuple[list[float], list[float], float]:
    """Mid-rank CDF at the distinct values, thinned to ``max_points`` knots; plus the weighted median."""
    order = np.argsort(values, kind="stable")
    x, c = values[order], counts[order]
    total = c.sum()
    cum = np.cumsum(c)
    cdf = (cum - c / 2.0) / total
    median = float(x[np.searchsorted(cum, total / 2.0)])
    if len(x) > max_points:
        pick = np.unique(np.concatenate([[0, len(x) - 1],
                                         np.searchsorted(cdf, np.linspace(0, 1, max_points - 2)).clip(0, len(x) - 1)]))
        x, cdf = x[pick], cdf[pick]
    return x.tolist(), cdf.tolist(), median


def finalize_geo(value: str, group: str, stats: list[str], per: pd.Series | None, glob: pd.Series | None,
                 min_group_rows: int, max_points: int) -> GeoTable:
    """Per-group CDF knots and medians for groups with enough rows; the global one as fallback."""
    groups, xs, cdfs, meds, ns = [], [], [], [], []
    if per is not None and not per.empty:
        df = per.rename("n").reset_index().sort_values(["g", "v"], kind="stable")
        for g, sub in df.groupby("g", sort=True):
            n = float(sub["n"].sum())
            if n < min_group_rows:
                continue
            x, cdf, med = _cdf_knots(sub["v"].to_numpy(np.float64), sub["n"].to_numpy(np.float64), max_points)
            groups.append(str(g))
            xs.append(x)
            cdfs.append(cdf)
            meds.append(med)
            ns.append(int(n))
    gx, gcdf, gmed, gn = [], [], None, 0
    if glob is not None and not glob.empty:
        gx, gcdf, gmed = _cdf_knots(glob.index.to_numpy(np.float64), glob.to_numpy(np.float64), max_points)
        gn = int(glob.sum())
    return GeoTable(value=value, group=group, stats=list(stats), groups=groups, x=xs, cdf=cdfs, median=meds, n=ns,
                    global_x=gx, global_cdf=gcdf, global_median=gmed, global_n=gn)


def finalize_te(column: str, df: pd.DataFrame | None, targets: list[str], folds: int,
                max_categories: int) -> TargetEncodingTable:
    """Per-category [fold] counts and sums, keeping the ``max_categories`` most frequent categories."""
    if df is None or df.empty:
        return TargetEncodingTable(column=column, categories=[], counts=[], sums={t: [] for t in targets})
    wide = df.unstack("fold", fill_value=0.0)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([["count", *targets], range(folds)]), fill_value=0.0)
    total = wide["count"].sum(axis=1)
    order = pd.DataFrame({"n": total.to_numpy(), "c": wide.index.astype(str)}).sort_values(
        ["n", "c"], ascending=[False, True], kind="stable")
    wide = wide.iloc[order.index.to_numpy()[:max_categories]]
    return TargetEncodingTable(
        column=column,
        categories=[str(c) for c in wide.index],
        counts=wide["count"].to_numpy(np.float64).tolist(),
        sums={t: wide[t].to_numpy(np.float64).tolist() for t in targets},
    )
