"""Arrow columns built from numpy for the synthetic generator: ragged MAP / LIST layouts and strings.

Why a module of its own: the feature code only ever *reads* ragged columns (``features/ragged.py``);
only the generator builds them, so the building lives with the generator.

A ragged column is described the numpy way: ``parent`` (row index of each entry, sorted) or
``counts`` (entries per row) plus flat key/value arrays. Rows that are null must have no entries;
valid rows with zero entries are empty maps/lists (``[]``), which the real data also has. All
O(entries) numpy work; strings are taken from a pool with one Arrow ``take``, never built in Python.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def offsets_from_counts(counts: np.ndarray) -> np.ndarray:
    """int32 offsets (n+1) for Arrow list/map layouts."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    if out[-1] > np.iinfo(np.int32).max:
        raise OverflowError("ragged column too large for int32 offsets; lower rows_per_partition")
    return out.astype(np.int32)


def _check(counts: np.ndarray, valid: np.ndarray, n_entries: int) -> None:
    if counts.shape != valid.shape:
        raise ValueError(f"counts {counts.shape} and validity {valid.shape} differ")
    if np.any(counts[~valid] != 0):
        raise ValueError("null rows must not own entries")
    if int(counts.sum()) != n_entries:
        raise ValueError(f"counts sum to {int(counts.sum())} but {n_entries} entries were given")


def map_array(counts: np.ndarray, keys: pa.Array, items: pa.Array, valid: np.ndarray, type_: pa.MapType) -> pa.Array:
    """A MapArray of type ``type_`` (taken from the spec) with nulls where ``valid`` is False."""
    _check(counts, valid, len(keys))
    if items.type != type_.item_type:
        items = items.cast(type_.item_type)
    return pa.MapArray.from_arrays(
        pa.array(offsets_from_counts(counts)), keys, items, type=type_, mask=pa.array(~valid)
    )


def list_array(counts: np.ndarray, values: pa.Array, valid: np.ndarray, type_: pa.ListType) -> pa.Array:
    """A ListArray of type ``type_`` with nulls where ``valid`` is False."""
    _check(counts, valid, len(values))
    return pa.ListArray.from_arrays(pa.array(offsets_from_counts(counts)), values, type=type_,
                                    mask=pa.array(~valid))


def dedupe_entries(parent: np.ndarray, key: np.ndarray, n_keys: int,
                   n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop duplicate keys inside each row (map keys are unique); returns parent, key, counts.

    Keys come back sorted within each row, rows in order, so the result is a valid ragged layout.
    """
    code = np.sort(parent.astype(np.int64) * n_keys + key.astype(np.int64))
    if len(code):
        code = code[np.r_[True, code[1:] != code[:-1]]]  # sort-based unique: faster than np.unique here
    p, k = code // n_keys, code % n_keys
    return p, k, np.bincount(p, minlength=n_rows).astype(np.int64)


def sorted_groups(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique sorted codes, inverse index): ``np.unique(..., return_inverse=True)`` via one argsort."""
    order = np.argsort(code, kind="stable")
    srt = code[order]
    new = np.r_[True, srt[1:] != srt[:-1]] if len(srt) else np.zeros(0, bool)
    inv = np.empty(len(code), dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return srt[new], inv


def segment_max(parent: np.ndarray, values: np.ndarray, n_rows: int, fill: float) -> np.ndarray:
    """Per-row max over entries given by ``parent`` (any order); ``fill`` for rows without entries."""
    out = np.full(n_rows, fill, dtype=np.float64)
    np.maximum.at(out, parent, values)
    return out


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_NIBBLE_POS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuid4_strings(rng: np.random.Generator, n: int) -> pa.Array:
    """n random UUID4 strings (version and variant bits set), built as one byte buffer."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    chars[:, _UUID_NIBBLE_POS] = _HEX[nibbles]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes()))


def take_strings(pool: pa.Array, idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Strings ``pool[idx]`` with nulls where ``valid`` is False (one C++ take, no Python strings)."""
    arr = pool.take(pa.array(np.asarray(idx, dtype=np.int64)))
    if valid is None or bool(valid.all()):
        return arr
    return pc.if_else(pa.array(valid), arr, pa.scalar(None, type=arr.type))
