"""The compact view of staged data that GX validates, built with vectorised Arrow compute.

Why it exists: GX's pandas engine cannot check nested columns and would be slow and memory-hungry
on Python objects. The view keeps id, labels and scalar features as they are, turns MAP/LIST
columns into their number of entries (one number per cell), and adds helper columns for the
cross-column rules GX cannot express on raw columns. It is built per file as Arrow
(:func:`view_table`) so the files of a split concatenate without copies before one pandas convert
(:func:`concat_views`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.errors import DataError
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import ColumnSpec, DatasetSpec, Role

EVENT_TS_END = "__event_ts_end"  # helper: end of the row's event-time grain

_INT_DTYPES: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
# Field metadata marking a nested column whose Arrow type differs from the spec: the view holds the
# observed type as text, so the type expectation fails and shows the observed type as its example.
_MISMATCH_KEY = b"ltv.view"
_MISMATCH_VALUE = b"arrow_type_mismatch"


def helper_columns(spec: DatasetSpec) -> dict[str, str]:
    """Derived columns the view adds for cross-column rules, name -> meaning."""
    out = {
        f"__{h.buyer}_expected": f"int({h.revenue} > 0)" for h in spec.labels.horizons if h.buyer
    }
    out[EVENT_TS_END] = f"{EVENT_TS} + {spec.partition.grain_hours} h (end of the event's grain)"
    return out


def is_nested(t: pa.DataType) -> bool:
    return pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t)


def split_columns(spec: DatasetSpec, labelled: bool) -> list[ColumnSpec]:
    """The spec columns a split holds: every column when labelled, else ids and features."""
    return [c for c in spec.columns if labelled or c.role in (Role.id, Role.feature)]


def _view_column(col: ColumnSpec, arr: pa.ChunkedArray) -> tuple[pa.ChunkedArray, bool]:
    """(view array, type mismatch flag): nested -> length; mismatched nested -> observed type text."""
    if not is_nested(arr.type):
        return arr, False
    if arr.type != col.arrow_type:
        text = pa.scalar(_type_text(arr.type), pa.string())
        return pc.if_else(pc.is_valid(arr), text, pa.scalar(None, pa.string())), True
    return pa.chunked_array([_lengths(c) for c in arr.chunks], pa.int64()), False


def _type_text(t: pa.DataType) -> str:
    """An Arrow type in the spec's notation (``map<string, float64>``), without field names."""
    if pa.types.is_map(t):
        return f"map<{_type_text(t.key_type)}, {_type_text(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type_text(t.value_type)}>"
    return {pa.float64(): "float64", pa.float32(): "float32"}.get(t, str(t))


def _lengths(chunk: pa.Array) -> pa.Array:
    """Entries per value, null where the value is null (list_value_length has no MAP kernel)."""
    if pa.types.is_map(chunk.type):
        offsets = chunk.offsets  # already shifted for sliced arrays
        lengths = pc.cast(pc.subtract(offsets[1:], offsets[:-1]), pa.int64())
        return pc.if_else(chunk.is_valid(), lengths, pa.scalar(None, pa.int64()))
    return pc.cast(pc.list_value_length(chunk), pa.int64())


def _helper_arrays(spec: DatasetSpec, table: pa.Table, labelled: bool) -> dict[str, pa.ChunkedArray]:
    """Helpers for rules GX cannot express on raw columns; absent inputs leave a helper out."""
    out: dict[str, pa.ChunkedArray] = {}
    names = set(table.column_names)
    if labelled:
        for h in spec.labels.horizons:
            if h.buyer and h.revenue in names:
                try:
                    out[f"__{h.buyer}_expected"] = pc.cast(pc.greater(table[h.revenue], 0), pa.int32())
                except (pa.ArrowException, TypeError):
                    pass  # revenue of a wrong type: its type expectation reports it
    if EVENT_TS in names and pa.types.is_integer(table[EVENT_TS].type):
        grain = spec.partition.grain_hours * 3600
        out[EVENT_TS_END] = pc.add(pc.cast(table[EVENT_TS], pa.int64()), grain)
    return out


def view_table(spec: DatasetSpec, table: pa.Table, labelled: bool) -> pa.Table:
    """The view as Arrow, so per-file views concatenate without copies before one pandas convert."""
    fields, arrays = [], []
    for col in split_columns(spec, labelled):
        if col.name not in table.column_names:
            continue  # ExpectTableColumnsToMatchSet reports it
        arr, mismatch = _view_column(col, table[col.name])
        meta = {_MISMATCH_KEY: _MISMATCH_VALUE} if mismatch else None
        fields.append(pa.field(col.name, arr.type, metadata=meta))
        arrays.append(arr)
    for name, arr in _helper_arrays(spec, table, labelled).items():
        fields.append(pa.field(name, arr.type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _view_to_pandas(view: pa.Table) -> pd.DataFrame:
    """Ints/bools as nullable pandas dtypes so nulls stay nulls and the dtype matches the file."""
    df = view.to_pandas(types_mapper=_INT_DTYPES.get, split_blocks=True)
    for f in view.schema:
        if f.metadata and f.metadata.get(_MISMATCH_KEY) == _MISMATCH_VALUE:
            # object dtype: GX's type check then runs per value and lists the observed type text
            df[f.name] = pd.Series(df[f.name].to_numpy(dtype=object, na_value=None), dtype=object)
    return df


def concat_views(views: list[pa.Table]) -> pd.DataFrame:
    if not views:
        raise DataError("no staged files to validate")
    try:
        return _view_to_pandas(pa.concat_tables(views))
    except pa.ArrowInvalid:  # files disagree on a type: keep each file's own view types
        return pd.concat([_view_to_pandas(v) for v in views], ignore_index=True)


def validation_frame(spec: DatasetSpec, table: pa.Table, labelled: bool) -> pd.DataFrame:
    """A compact, GX-friendly view of staged rows, built with vectorised Arrow compute.

    - id, labels and scalar features as they are (strings as pandas strings, integers and bools
      as nullable pandas dtypes), so the type checks see the file's real types;
    - MAP/LIST columns as their number of entries (nullable Int64; null where the value is null,
      0 for an empty map); a nested column whose Arrow type differs from the spec holds the
      observed type as text instead, so its type expectation fails naming that type;
    - helper columns (see :func:`helper_columns`) for cross-column rules.
    Spec columns missing from ``table`` are left out; ``ExpectTableColumnsToMatchSet`` reports them.
    """
    return _view_to_pandas(view_table(spec, table, labelled))
