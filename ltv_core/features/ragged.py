"""Ragged Arrow columns (MAP, LIST) read as flat entries plus a row index, with segment reductions:
what the feature transforms compute their statistics with.

Why this exists: Parquet MAP columns arrive as Arrow ``MapArray``; in Python a map value is a list
of ``(key, value)`` tuples, never a dict, so code that tests for dicts sees no map at all and
every map feature silently becomes 0. Here a map or list column is flattened once into its
entries (keys, values) and an ``int64`` row index per entry; every statistic is then a numpy
segment reduction (``np.bincount`` with weights, ``np.fmax.reduceat``), with no per-row Python.

Arrow details handled here, once:

* ``MapArray.keys/items`` and ``ListArray.values`` are the *unsliced* child arrays, while
  ``.offsets`` holds absolute positions into them; entries are cut with ``offsets[0]:offsets[-1]``.
* A null row may legally point at a non-empty child range; those entries are dropped so that a
  null map never contributes to a statistic (null stays different from empty).
* Every reduction runs over entries in their stored order, so a row's result does not depend on
  which other rows share its batch (bit-identical train/serve output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa


class lazy:  # noqa: N801 - used like functools.cached_property
    """``functools.cached_property`` without its lock: Python 3.11's lock is shared by *all*
    instances, so two builder threads computing ``row`` of two different columns would serialise.
    A race can at worst compute the same (deterministic) value twice."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


def one_chunk(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A single contiguous Array (staged files have one chunk per column; combine otherwise)."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        if col.num_chunks == 0:
            return pa.array([], type=col.type)
        return col.combine_chunks()
    return col


def valid_mask(arr: pa.Array) -> np.ndarray:
    """Row validity as a numpy bool array (all True without a null bitmap).

    Unpacks the validity bitmap directly (10x faster than converting ``is_valid()``).
    """
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    bitmap = arr.buffers()[0]
    if bitmap is None:  # pragma: no cover - nulls without a bitmap (null type): fall back
        return np.asarray(arr.is_valid())
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + len(arr)].view(bool)


@dataclass(frozen=True)
class Ragged:
    """Entries of a LIST or MAP column, indexed in *compact* row space.

    Real map columns are mostly null (75-98%), so reductions run over the ``m`` rows that have at
    least one entry (``nz``) and are scattered back to all rows once by ``expand``: the cost scales
    with entries, not with rows. ``row[i]`` is the compact row of entry ``i`` (non-decreasing).
    """

    n_rows: int
    valid: np.ndarray  # bool per row: the row is not null
    lengths: np.ndarray  # int64 entries per row (0 for null rows)
    _keep: np.ndarray | None  # bool per child entry in [offsets[0], offsets[-1]); None = keep all
    _start: int
    _stop: int

    @classmethod
    def of(cls, arr: pa.Array) -> Ragged:
        offs = np.asarray(arr.offsets, dtype=np.int64)
        valid = valid_mask(arr)
        raw = np.diff(offs)
        keep = None
        lengths = raw
        if arr.null_count:
            lengths = raw * valid
            if int(lengths.sum()) != int(offs[-1] - offs[0]):
                keep = np.repeat(valid, raw)  # entries behind null rows are not part of the data
        return cls(len(arr), valid, lengths, keep, int(offs[0]), int(offs[-1]))

    def child(self, full_child: pa.Array) -> pa.Array:
        """The entries of this column taken from an unsliced child array (keys, items or values)."""
        part = full_child.slice(self._start, self._stop - self._start)
        return part if self._keep is None else part.filter(pa.array(self._keep))

    @lazy
    def nz(self) -> np.ndarray:
        """Rows with at least one entry (compact row j is row ``nz[j]``)."""
        return np.flatnonzero(self.lengths != 0)  # nonzero of a bool array: several times faster

    @property
    def m(self) -> int:
        return len(self.nz)

    @lazy
    def n_entries(self) -> int:
        return int(self.lengths.sum())

    @lazy
    def nz_lengths(self) -> np.ndarray:
        """Entries of each compact row (all >= 1)."""
        return self.lengths[self.nz]

    @lazy
    def row(self) -> np.ndarray:
        """Compact row of each entry."""
        return np.repeat(np.arange(self.m, dtype=np.int64), self.nz_lengths)

    @lazy
    def row_full(self) -> np.ndarray:
        """Row (in all-rows space) of each entry."""
        return self.nz[self.row]

    @lazy
    def starts(self) -> np.ndarray:
        """Start position of each compact row's entries."""
        out = np.zeros(self.m, dtype=np.int64)
        if self.m > 1:
            np.cumsum(self.nz_lengths[:-1], out=out[1:])
        return out

    def expand(self, compact: np.ndarray, empty: float = np.nan, dtype: type = np.float32) -> np.ndarray:
        """Compact per-row results -> float32 for all rows: NaN for null rows, ``empty`` for empty ones.

        Output is final (float32, no +-inf), so only the ``m`` compact values are converted: a
        column that is 95% null costs 5% of a dense one.
        """
        out = self._template(float(empty), dtype).copy()
        out[self.nz] = finite32(compact) if dtype is np.float32 else compact
        return out

    def _template(self, empty: float, dtype: type) -> np.ndarray:
        """NaN for null rows, ``empty`` for valid ones; built once per (empty, dtype), then copied."""
        key = (repr(empty), np.dtype(dtype).str)
        cache = self.__dict__.setdefault("_templates", {})
        if key not in cache:
            if np.isnan(empty):  # null and empty rows alike
                cache[key] = np.full(self.n_rows, np.nan, dtype=dtype)
            else:
                cache[key] = np.where(self.valid, dtype(empty), dtype(np.nan)).astype(dtype, copy=False)
        return cache[key]

    # --- segment reductions over entries -> one value per compact row -----------------------
    def count_rows(self) -> np.ndarray:
        """Entries per row (all rows) as float32; NaN for null rows (null != empty)."""
        out = self._template(0.0, np.float32).copy()
        out[self.nz] = self.nz_lengths
        return out

    def seg_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum per compact row, NaN entries skipped."""
        w = np.where(np.isnan(values), 0.0, values)
        return np.bincount(self.row, weights=w, minlength=self.m).astype(np.float64, copy=False)

    def seg_count(self, mask: np.ndarray) -> np.ndarray:
        """Number of True entries per compact row."""
        return np.bincount(self.row[mask], minlength=self.m).astype(np.float64)

    def seg_max(self, values: np.ndarray) -> np.ndarray:
        """Max per compact row ignoring NaN entries (NaN when all are NaN)."""
        if not self.m:
            return np.zeros(0)
        top = np.maximum.reduceat(np.where(np.isnan(values), -np.inf, values), self.starts)
        return np.where(top == -np.inf, np.nan, top)

    def seg_min(self, values: np.ndarray) -> np.ndarray:
        return np.fmin.reduceat(values, self.starts) if self.m else np.zeros(0)

    def seg_top_k_sum(self, values: np.ndarray, k: int, row_max: np.ndarray | None = None) -> np.ndarray:
        """Sum of the k largest non-NaN entries per compact row (0 when none); values finite or NaN.

        Rows with at most k entries need no ordering (their sum is the answer). Longer rows are laid
        out as a padded matrix (one row per map row, ``max length`` columns, NaN and padding as
        -inf) and sorted along
        the rows, which is O(entries) work for the short maps this data has; the k largest are then
        summed as "each distinct value times its multiplicity, largest first", the same additions in
        the same order as the k-pass reduction (``_top_k_passes``) that very long rows fall back to.
        ``row_max``: ``seg_max(values)`` when the caller already has it (k == 1).
        """
        if k == 1:
            top = self.seg_max(values) if row_max is None else row_max
            return np.where(np.isnan(top), 0.0, top)
        out = self.seg_sum(values)
        lens = self.nz_lengths
        long_rows = lens > k
        if not long_rows.any():
            return out
        sel = long_rows[self.row]
        w = values[sel]
        long_lens = lens[long_rows]
        width = int(long_lens.max())
        if width * len(long_lens) > 4 * len(w) + 4096:  # a few very long rows: padding would dominate
            out[long_rows] = _top_k_passes(self.row[sel], w, k)
            return out
        first = np.zeros(len(long_lens), dtype=np.int64)
        np.cumsum(long_lens[:-1], out=first[1:])
        which = np.repeat(np.arange(len(long_lens)), long_lens)
        mat = np.full((len(long_lens), width), -np.inf)
        mat[which, np.arange(len(w)) - first[which]] = np.where(np.isnan(w), -np.inf, w)
        mat.sort(axis=1)  # ascending: the k largest are the last k columns; -inf = no value
        top = mat[:, :-k - 1:-1] if width > k else mat[:, ::-1]
        total = np.zeros(len(long_lens))
        cur = top[:, 0].copy()
        cnt = np.ones(len(long_lens))
        for j in range(1, top.shape[1]):
            x = top[:, j]
            same = x == cur
            flush = ~same & (cur > -np.inf)
            total[flush] += cur[flush] * cnt[flush]
            cnt = np.where(same, cnt + 1.0, 1.0)
            cur = np.where(same, cur, x)
        last = cur > -np.inf
        total[last] += cur[last] * cnt[last]
        out[long_rows] = total
        return out


def _top_k_passes(rows: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Sum of the k largest non-NaN values per segment of ``rows`` (sorted, every segment longer
    than k): k passes each take the segment maximum with its multiplicity (ties give the same sum
    whichever copy is taken): O(k * entries), no sort."""
    w = values.copy()
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    seg = np.cumsum(np.r_[False, rows[1:] != rows[:-1]])  # 0..L-1 per long row
    left = np.full(len(starts), k, dtype=np.float64)
    total = np.zeros(len(starts))
    for _ in range(k):
        mx = np.fmax.reduceat(w, starts)
        eq = w == mx[seg]
        take = np.minimum(np.bincount(seg[eq], minlength=len(starts)), left)
        total += np.where(np.isnan(mx), 0.0, mx) * take
        left -= take
        w[eq] = np.nan
    return total


def int_values(arr: pa.Array, fill: int) -> np.ndarray:
    """An integer Arrow array (e.g. ``index_in`` / dictionary indices) as int64 numpy, nulls -> ``fill``.

    Reads the data buffer and the validity bitmap directly instead of an Arrow ``fill_null`` pass
    plus a conversion (null slots hold unspecified values; they are overwritten here).
    """
    if arr.null_count == 0:
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
    if not pa.types.is_integer(arr.type):  # pragma: no cover - callers pass index arrays
        return np.asarray(arr.fill_null(fill).to_numpy(zero_copy_only=False), dtype=np.int64)
    width = arr.type.bit_width // 8
    raw = np.frombuffer(arr.buffers()[1], dtype=np.dtype(f"i{width}"), count=len(arr), offset=arr.offset * width)
    return np.where(valid_mask(arr), raw, fill).astype(np.int64, copy=False)


def finite32(values: np.ndarray) -> np.ndarray:
    """float32 copy where +-inf (incl. overflow beyond float32's range) becomes NaN, like null."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    if out is values:
        out = out.copy()
    inf = np.isinf(out)
    if inf.any():
        out[inf] = np.nan
    return out


def first_match(ragged: Ragged, match: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the value of its first entry where ``match`` holds, and whether one exists."""
    found = np.zeros(ragged.n_rows, dtype=bool)
    out = np.full(ragged.n_rows, np.nan)
    idx = np.flatnonzero(match)
    if idx.size:
        rows = ragged.row_full[idx]
        # reversed assignment: with duplicate keys in one map the first entry wins, deterministically
        out[rows[::-1]] = values[idx[::-1]]
        found[rows] = True
    return out, found


def numeric_values(arr: pa.Array) -> np.ndarray:
    """Float64 numpy view of a numeric Arrow array; nulls and non-finite values become NaN."""
    if len(arr) == 0:
        return np.zeros(0, dtype=np.float64)
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    out = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    if arr.null_count and not pa.types.is_floating(arr.type):
        out = out.copy()
        out[~valid_mask(arr)] = np.nan
    if not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, np.nan)
    return out
