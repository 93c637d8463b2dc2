"""Pure, vectorised transforms: one function per feature kind of the dataset spec.

Each function takes Arrow arrays (one chunk) plus the fitted parameters it needs and returns
float64 numpy arrays keyed by a statistic's short name; the builder prefixes the column name and
casts to float32. Nothing here loops over rows in Python or looks at Python types of values: the
caller dispatches on the kind and Arrow type declared in the spec.

Conventions (docs/FEATURES.md lists every output):

* null map / list / scalar -> NaN for every statistic (``count`` too); empty map -> ``count`` 0,
  ``sum`` 0, and NaN for statistics that are undefined on no entries (mean, max, entropy, shares).
* Map values that are null, NaN or +-inf are ignored by sum/mean/max; entropy and top-k shares
  use the positive finite values only (a share of a negative mass is meaningless).
* Timestamps are Unix seconds. A timestamp is valid when ``0 < ts <= event_ts + tolerance``;
  invalid ones (0, negative, far future, non-finite) are ignored (maps) or give NaN (scalars).
  Ages are ``(event_ts - ts) / 86400`` against the row's own event time, never a fixed date.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.errors import DataError
from ltv_core.features.ragged import Ragged, first_match, int_values, lazy, numeric_values, valid_mask

Stats = dict[str, np.ndarray]

OTHER_CATEGORY = "__other__"
_TOP_SHARE = re.compile(r"^top([1-9][0-9]*)_share$")


# --- scalars ------------------------------------------------------------------------------------
def numeric(arr: pa.Array) -> np.ndarray:
    """Numeric passthrough; null and non-finite values become NaN (LightGBM's missing value)."""
    return numeric_values(arr)


def timestamp_age_days(arr: pa.Array, event_ts: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Age in days of a Unix-seconds scalar relative to the row's event time (NaN when invalid)."""
    ts = numeric_values(arr)
    ok = (ts > 0) & (ts <= event_ts + tolerance_s)
    return np.where(ok, (event_ts - ts) / 86_400.0, np.nan)


def event_time(event_ts: np.ndarray) -> Stats:
    """Hour of day and weekday (Mon=0) of the event time, as points on the unit circle.

    Computed from the int64 ``_event_ts`` (UTC), never from the string ``hour`` column: sin/cos
    must be taken of the hour itself (a hash of the string would put neighbouring hours anywhere).
    """
    ts = event_ts.astype(np.int64)
    hour = np.floor_divide(ts, 3600) % 24
    weekday = (np.floor_divide(ts, 86_400) + 3) % 7  # 1970-01-01 was a Thursday (Mon=0 -> 3)
    h, w = 2 * np.pi * hour / 24.0, 2 * np.pi * weekday / 7.0
    return {"hour_sin": np.sin(h), "hour_cos": np.cos(h), "weekday_sin": np.sin(w), "weekday_cos": np.cos(w)}


def categorical_codes(arr: pa.Array, vocab: list[str] | pa.Array) -> np.ndarray:
    """LightGBM codes: vocab position 0..V-1, V for rare/unseen values, -1 for null.

    The vocabulary is fitted on training; lookup is a hash join (``pc.index_in``), so a string
    gets the same code in every split and batch. ``vocab`` may be given already as an Arrow array
    (the builder converts each fitted vocabulary once, not once per partition).
    """
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    value_set = vocab.cast(arr.type) if isinstance(vocab, pa.Array) else pa.array(vocab, type=arr.type)
    idx = pc.index_in(arr, value_set=value_set)
    codes = int_values(idx, len(vocab)).astype(np.int32)
    if arr.null_count:
        codes[~valid_mask(arr)] = -1
    return codes


def index_in(arr: pa.Array, values: list[str], value_set: pa.Array | None = None) -> np.ndarray:
    """Position of each row's value in ``values`` (-1: null or not listed); ``value_set``: the same
    list already as an Arrow array."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if not values:
        return np.full(len(arr), -1, dtype=np.int64)
    value_set = pa.array(values, type=arr.type) if value_set is None else value_set.cast(arr.type)
    idx = pc.index_in(arr, value_set=value_set)
    return int_values(idx, -1)


# --- flattened maps (shared by a column's statistics and its key lookups) -------------------------
class Flat:
    """A MAP (or LIST) column flattened once: its ``Ragged`` layout, and lazily its keys and its
    values as float64. The builder keeps one per map column for the whole partition, so the base
    statistics and the key lookups of a column share the flattening."""

    def __init__(self, arr: pa.Array):
        self.arr = arr
        self.rg = Ragged.of(arr)

    @classmethod
    def of(cls, arr: pa.Array | Flat) -> Flat:
        return arr if isinstance(arr, Flat) else cls(arr)

    @lazy
    def keys(self) -> pa.Array:
        if not pa.types.is_map(self.arr.type):
            raise DataError(f"map column read without its keys ({self.arr.type}) but its keys are needed: "
                            "read the whole column")
        return self.rg.child(self.arr.keys)

    @lazy
    def values(self) -> np.ndarray:
        """Map values as float64, null and non-finite -> NaN."""
        return numeric_values(self.rg.child(map_items(self.arr)))


def map_items(arr: pa.Array) -> pa.Array:
    """The unsliced values child of a map, or of a map read without its keys (Parquet's value leaf
    alone arrives as list<struct<value>>: the key strings are most of a map's decoding cost)."""
    if pa.types.is_map(arr.type):
        return arr.items
    entries = arr.values  # struct<value>
    child = entries.field(0)
    return child.slice(entries.offset, len(entries)) if entries.offset else child


def is_values_only_map(t: pa.DataType) -> bool:
    """list<struct<one numeric field>>: a map column read from Parquet by its value leaf only."""
    if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type) or t.value_type.num_fields != 1:
        return False
    v = t.value_type.field(0).type
    return pa.types.is_integer(v) or pa.types.is_floating(v)


# --- maps of numbers ------------------------------------------------------------------------------
def map_numeric(arr: pa.Array | Flat, stats: list[str]) -> Stats:
    """count, sum, mean, max, entropy, topK_share of a map<string, number> per row.

    Intermediates are computed once, in compact row space. Maps without NaN values (no null or
    non-finite entry) skip the NaN masking, and maps whose values are all positive reuse the sum
    and the max for the positive mass and the top-1 value: the same numbers, fewer passes.
    """
    f = Flat.of(arr)
    rg, v = f.rg, f.values
    nan = np.isnan(v)
    clean = not nan.any()
    all_pos = clean and bool((v > 0).all())
    cache: dict[str, np.ndarray] = {}

    def total() -> np.ndarray:
        return np.bincount(rg.row, weights=v if clean else np.where(nan, 0.0, v), minlength=rg.m).astype(
            np.float64, copy=False)

    def n_finite() -> np.ndarray:
        return rg.nz_lengths.astype(np.float64) if clean else rg.seg_count(~nan)

    def vmax() -> np.ndarray:
        if clean and rg.m:  # no NaN: no masking; every compact row has >= 1 entry
            return np.maximum.reduceat(v, rg.starts)
        return rg.seg_max(v)

    def pos() -> np.ndarray:
        return v if all_pos else np.where(v > 0, v, np.nan)

    def mass() -> np.ndarray:
        return get("total") if all_pos else rg.seg_sum(get("pos"))

    def entropy() -> np.ndarray:
        p, s = get("pos"), get("mass")
        if not all_pos:
            return _entropy(rg, p, s)
        with np.errstate(divide="ignore", invalid="ignore"):  # positive finite p: p log p has no NaN
            vlogv = np.bincount(rg.row, weights=p * np.log(p), minlength=rg.m).astype(np.float64, copy=False)
            h = np.log(s) - vlogv / s
        return np.where(s > 0, np.maximum(h, 0.0), np.nan)

    makers = {"total": total, "n_finite": n_finite, "max": vmax, "pos": pos, "mass": mass}

    def get(key: str) -> np.ndarray:
        if key not in cache:
            cache[key] = makers[key]()
        return cache[key]

    out: Stats = {}
    for s in stats:
        if s == "count":
            out[s] = rg.count_rows()
        elif s == "sum":
            out[s] = rg.expand(get("total"), empty=0.0)
        elif s == "mean":
            out[s] = rg.expand(_div(get("total"), get("n_finite")))
        elif s == "max":
            out[s] = rg.expand(get("max"))
        elif s == "entropy":
            out[s] = rg.expand(entropy())
        else:
            k = int(_TOP_SHARE.match(s).group(1))  # validated by the config
            row_max = get("max") if all_pos and k == 1 else None  # max of the positives is the max
            out[s] = rg.expand(_div(rg.seg_top_k_sum(get("pos"), k, row_max), get("mass")))
    return out


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _entropy(rg: Ragged, pos: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of the positive values normalised per row: log S - sum(v log v)/S."""
    with np.errstate(divide="ignore", invalid="ignore"):
        vlogv = rg.seg_sum(pos * np.log(pos))
        h = np.log(mass) - vlogv / mass
    return np.where(mass > 0, np.maximum(h, 0.0), np.nan)


# --- maps of timestamps ----------------------------------------------------------------------------
def _valid_ts(ts: np.ndarray, event_ts_of_entry: np.ndarray, tolerance_s: float) -> np.ndarray:
    ok = (ts > 0) & (ts <= event_ts_of_entry + tolerance_s)
    return np.where(ok, ts, np.nan)


def _entry_event_ts(event_ts: np.ndarray, entry_rows: Callable[[], np.ndarray]) -> np.ndarray | np.float64:
    """The event time of each entry (``event_ts[entry_rows()]``), or the one event time as a scalar
    when every row shares it (a staged partition): no per-entry gather, the same comparisons."""
    if len(event_ts) and event_ts[0] == event_ts[-1] and bool((event_ts == event_ts[0]).all()):
        return event_ts[0]
    return event_ts[entry_rows()]


def _age(event_ts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return (event_ts - ts) / 86_400.0


def map_timestamp(arr: pa.Array | Flat, event_ts: np.ndarray, tolerance_s: float) -> Stats:
    """count, newest_age_days, oldest_age_days of a map<string, Unix seconds> per row."""
    f = Flat.of(arr)
    rg = f.rg
    ts = _valid_ts(f.values, _entry_event_ts(event_ts, lambda: rg.row_full), tolerance_s)
    ev = event_ts[rg.nz]
    return {
        "count": rg.count_rows(),
        "newest_age_days": rg.expand(_age(ev, rg.seg_max(ts))),
        "oldest_age_days": rg.expand(_age(ev, rg.seg_min(ts))),
    }


# --- maps of maps ---------------------------------------------------------------------------------
class Nested:
    """A map<string, map<string, number>> flattened two levels: outer entries and inner entries."""

    def __init__(self, arr: pa.Array):
        self.outer = Ragged.of(arr)
        self.outer_keys = self.outer.child(arr.keys)
        inner = self.outer.child(arr.items)
        self.inner = Ragged.of(inner)  # its "rows" are the outer entries
        self.inner_keys = self.inner.child(inner.keys)
        self.values = numeric_values(self.inner.child(inner.items))
        self.entry_of_inner = self.inner.row_full  # outer entry of each inner entry
        self.row_of_inner = self.outer.row[self.entry_of_inner]  # compact outer row of each inner entry

    @classmethod
    def of(cls, arr: pa.Array | Nested) -> Nested:
        return arr if isinstance(arr, Nested) else cls(arr)

    def key_index(self, keys: list[str]) -> np.ndarray:
        """Position of each inner entry's key in ``keys`` (-1 when not listed)."""
        if not keys or len(self.inner_keys) == 0:
            return np.full(len(self.inner_keys), -1, dtype=np.int64)
        idx = pc.index_in(self.inner_keys, value_set=pa.array(keys, type=self.inner_keys.type))
        return int_values(idx, -1)


def _per_key(segment: np.ndarray, n_segments: int, kidx: np.ndarray, values: np.ndarray, k: int,
             reduce: str) -> np.ndarray:
    """(segment, key) reduction -> array [n_segments, k]; sum (0 default) or max (NaN default)."""
    sel = kidx >= 0
    flat = segment[sel] * k + kidx[sel]
    v = values[sel]
    if reduce == "sum":
        out = np.bincount(flat, weights=np.where(np.isnan(v), 0.0, v), minlength=n_segments * k).astype(np.float64)
    else:
        out = np.full(n_segments * k, np.nan)
        np.fmax.at(out, flat, v)
    return out.reshape(n_segments, k)


def map_of_maps(arr: pa.Array | Nested, inner_keys: list[str]) -> Stats:
    """count (outer keys), inner_total, and one total per inner key learned at fit time."""
    nm = Nested.of(arr)
    o = nm.outer
    v = np.where(np.isnan(nm.values), 0.0, nm.values)
    total = np.bincount(nm.row_of_inner, weights=v, minlength=o.m).astype(np.float64)
    out: Stats = {"count": o.count_rows(), "inner_total": o.expand(total, empty=0.0)}
    per = _per_key(nm.row_of_inner, o.m, nm.key_index(inner_keys), nm.values, len(inner_keys), "sum")
    for j, key in enumerate(inner_keys):
        out[f"total__{key}"] = o.expand(per[:, j], empty=0.0)
    return out


def map_of_maps_timestamp(arr: pa.Array | Nested, event_ts: np.ndarray, tolerance_s: float,
                          inner_keys: list[str]) -> Stats:
    """count (outer keys), newest_age_days over all inner timestamps, and per learned inner key."""
    nm = Nested.of(arr)
    o = nm.outer
    ev = event_ts[o.nz]
    ts = _valid_ts(nm.values, _entry_event_ts(ev, lambda: nm.row_of_inner), tolerance_s)
    newest = np.full(o.m, np.nan)
    if ts.size:
        np.fmax.at(newest, nm.row_of_inner, ts)
    out: Stats = {"count": o.count_rows(), "newest_age_days": o.expand(_age(ev, newest))}
    per = _per_key(nm.row_of_inner, o.m, nm.key_index(inner_keys), ts, len(inner_keys), "max")
    for j, key in enumerate(inner_keys):
        out[f"newest_age_days__{key}"] = o.expand(_age(ev, per[:, j]))
    return out


# --- lists ----------------------------------------------------------------------------------------
def list_string(arr: pa.Array, stats: Collection[str] = ("length", "unique")) -> Stats:
    """length and number of distinct non-null strings per row (``stats``: which of the two).

    A one-entry row has 1 distinct value (0 if that entry is null). Rows with 2+ entries: the
    strings are dictionary-encoded once (equal strings, equal codes), the codes laid out as a
    padded matrix (one row per list) and sorted along the rows; distinct = number of changes.
    Very long lists fall back to one sort of (row, code) pairs.
    """
    rg = Ragged.of(arr)
    out: Stats = {"length": rg.count_rows()} if "length" in stats else {}
    if "unique" not in stats:
        return out
    vals = rg.child(arr.values)
    unique = np.zeros(rg.m)
    if len(vals):
        ok = valid_mask(vals)
        multi = rg.nz_lengths > 1
        single = ~multi[rg.row]
        unique += np.bincount(rg.row[single & ok], minlength=rg.m)
        sel = np.flatnonzero(~single & ok)
        if sel.size:
            c = int_values(pc.dictionary_encode(vals).indices, 0)[sel]
            rows = rg.row[sel]
            unique += _distinct_per_row(rows, c, sel - rg.starts[rows], rg.m, rg.nz_lengths)
    out["unique"] = rg.expand(unique, empty=0.0)
    return out


def _distinct_per_row(rows: np.ndarray, codes: np.ndarray, pos: np.ndarray, m: int, lengths: np.ndarray) -> np.ndarray:
    """Distinct non-negative codes per compact row, given each code's row and position in it."""
    present = np.zeros(m, dtype=bool)
    present[rows] = True
    which = np.flatnonzero(present)  # rows that have codes
    width = int(lengths[which].max())
    if width * len(which) > 4 * len(codes) + 4096:  # a few very long lists: one sort of (row, code) pairs
        span = int(codes.max(initial=0)) + 1
        pairs = np.sort(rows * span + codes)
        first = np.ones(len(pairs), dtype=bool)
        first[1:] = pairs[1:] != pairs[:-1]
        return np.bincount(pairs[first] // span, minlength=m).astype(np.float64)
    local = np.cumsum(present) - 1  # compact row -> matrix row
    mat = np.full((len(which), width), -1, dtype=np.int32 if codes.max(initial=0) < 2**31 - 1 else np.int64)
    mat[local[rows], pos] = codes
    mat.sort(axis=1)  # -1 padding first
    distinct = (mat[:, 0] >= 0).astype(np.int64) + ((mat[:, 1:] != mat[:, :-1]) & (mat[:, 1:] >= 0)).sum(axis=1)
    out = np.zeros(m)
    out[which] = distinct
    return out


# --- lookups under the row's own key -----------------------------------------------------------------
class KeyCodes:
    """A row key column (e.g. advertiser_bundle) dictionary-encoded once per table.

    Every lookup then hashes only its map's keys against the small dictionary and compares integer
    codes, instead of copying the 40-character row key next to every map entry.
    """

    def __init__(self, key_col: pa.Array):
        if not (pa.types.is_string(key_col.type) or pa.types.is_large_string(key_col.type)):
            key_col = pc.cast(key_col, pa.string())
        enc = pc.dictionary_encode(key_col)
        self.dictionary = enc.dictionary
        self.codes = int_values(enc.indices, -2)

    @classmethod
    def of(cls, key: pa.Array | KeyCodes) -> KeyCodes:
        return key if isinstance(key, KeyCodes) else cls(key)

    def match(self, keys: pa.Array, entry_row: np.ndarray) -> np.ndarray:
        """Entry-wise: does the entry's key equal its row's key (a null key never matches)."""
        if len(keys) == 0 or len(self.dictionary) == 0:
            return np.zeros(len(keys), dtype=bool)
        value_set = self.dictionary if keys.type == self.dictionary.type else self.dictionary.cast(keys.type)
        kc = int_values(pc.index_in(keys, value_set=value_set), -1)
        return kc == self.codes[entry_row]


def _present(rg: Ragged, found: np.ndarray) -> np.ndarray:
    return np.where(rg.valid, found.astype(np.float64), np.nan)


def _absent_fill(value: np.ndarray, rg: Ragged, found: np.ndarray, absent: str) -> np.ndarray:
    if absent == "zero":
        return np.where(rg.valid & ~found, 0.0, value)
    return value


def lookup_map(arr: pa.Array | Flat, key_col: pa.Array | KeyCodes, absent: str) -> Stats:
    """Value stored under the row's own key (e.g. advertiser_bundle) in a map<string, number>."""
    f = Flat.of(arr)
    rg = f.rg
    match = KeyCodes.of(key_col).match(f.keys, rg.row_full)
    value, found = first_match(rg, match, f.values)
    return {"at": _absent_fill(value, rg, found, absent), "has": _present(rg, found)}


def lookup_map_timestamp(arr: pa.Array | Flat, key_col: pa.Array | KeyCodes, event_ts: np.ndarray,
                         tolerance_s: float) -> Stats:
    """Age in days of the timestamp stored under the row's own key (NaN when absent or invalid)."""
    f = Flat.of(arr)
    rg = f.rg
    ts = _valid_ts(f.values, _entry_event_ts(event_ts, lambda: rg.row_full), tolerance_s)
    value, found = first_match(rg, KeyCodes.of(key_col).match(f.keys, rg.row_full), ts)
    return {"age_days_at": _age(event_ts, value), "has": _present(rg, found)}


def lookup_map_of_maps(arr: pa.Array | Nested, key_col: pa.Array | KeyCodes, inner_keys: list[str],
                       absent: str) -> Stats:
    """Inner total and per-inner-key totals of the inner map stored under the row's own key."""
    nm = Nested.of(arr)
    n_outer = nm.outer.n_entries
    v = np.where(np.isnan(nm.values), 0.0, nm.values)
    entry_total = np.bincount(nm.entry_of_inner, weights=v, minlength=n_outer).astype(np.float64)
    match = KeyCodes.of(key_col).match(nm.outer_keys, nm.outer.row_full)
    value, found = first_match(nm.outer, match, entry_total)
    out: Stats = {"total_at": _absent_fill(value, nm.outer, found, absent), "has": _present(nm.outer, found)}
    per = _per_key(nm.entry_of_inner, n_outer, nm.key_index(inner_keys), nm.values, len(inner_keys), "sum")
    for j, key in enumerate(inner_keys):
        kv, _ = first_match(nm.outer, match, per[:, j])
        out[f"total_at__{key}"] = _absent_fill(kv, nm.outer, found, absent)
    return out


def lookup_map_of_maps_timestamp(arr: pa.Array | Nested, key_col: pa.Array | KeyCodes, event_ts: np.ndarray,
                                 tolerance_s: float) -> Stats:
    """Age in days of the newest valid inner timestamp under the row's own key."""
    nm = Nested.of(arr)
    ts = _valid_ts(nm.values, _entry_event_ts(event_ts, lambda: nm.outer.row_full[nm.entry_of_inner]), tolerance_s)
    newest_per_entry = nm.inner.expand(nm.inner.seg_max(ts), dtype=np.float64)  # Unix s: keep float64
    match = KeyCodes.of(key_col).match(nm.outer_keys, nm.outer.row_full)
    value, found = first_match(nm.outer, match, newest_per_entry)
    return {"newest_age_days_at": _age(event_ts, value), "has": _present(nm.outer, found)}


def sanitize(name: str) -> str:
    """A data value (inner key) made safe inside a feature name (LightGBM rejects JSON chars)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name) or "_"
