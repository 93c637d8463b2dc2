"""Aligning raw partitions to the dataset spec: the pure part of the ingest stage
(``ltv_core.stages.ingest`` reads, writes and commits).

Missing optional columns are added as null, unexpected columns reported (and dropped), types cast
to the spec's; rows lacking the id or a label are dropped and counted; every row gets its event
time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.errors import DataError
from ltv_core.spec import DatasetSpec, Role

EVENT_TS = "_event_ts"  # Unix seconds of the row's event (its partition's time by default)


@dataclass
class AlignReport:
    """What alignment changed in one file: every entry is logged and kept in the manifest."""

    added_null: list[str] = field(default_factory=list)
    dropped_unexpected: list[str] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)


def align_table(table: pa.Table, spec: DatasetSpec, labelled: bool, source: str) -> tuple[pa.Table, AlignReport]:
    """Columns of ``table`` in spec order with spec types; fails naming the file and column."""
    report = AlignReport()
    schema = spec.arrow_schema(labelled)
    present = set(table.column_names)
    arrays = []
    for f in schema:
        if f.name not in present:
            col = spec.column(f.name)
            if col.required:
                raise DataError(f"{source}: required column {f.name!r} is missing")
            arrays.append(pa.nulls(table.num_rows, type=f.type))
            report.added_null.append(f.name)
            continue
        arr = table.column(f.name)
        if arr.type != f.type:
            try:
                arr = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"{source}: column {f.name!r} has type {arr.type}, which cannot be cast to the spec's {f.type}: {exc}"
                ) from None
            report.cast.append(f.name)
        arrays.append(arr)
    report.dropped_unexpected = [c for c in table.column_names if c not in set(schema.names)]
    return pa.Table.from_arrays(arrays, schema=schema), report


def drop_incomplete(table: pa.Table, spec: DatasetSpec, labelled: bool) -> tuple[pa.Table, dict[str, int]]:
    """Rows without an id (or, when labelled, without a label) cannot be trained on or joined back."""
    needed = [spec.id_column]
    if labelled:
        needed += [c.name for c in spec.columns if c.role is Role.label]
    counts: dict[str, int] = {}
    mask = None
    for name in needed:
        valid = pc.is_valid(table.column(name))
        missing = table.num_rows - pc.sum(valid).as_py() if table.num_rows else 0
        if missing:
            counts[name] = int(missing)
        mask = valid if mask is None else pc.and_(mask, valid)
    if mask is None or not counts:
        return table, counts
    return table.filter(mask), counts


def event_ts(table: pa.Table, spec: DatasetSpec, part_time: datetime) -> pa.Array:
    if spec.event_time.source == "column":
        col = table.column(spec.event_time.column)
        return pc.cast(col, pa.int64())
    return pa.repeat(pa.scalar(int(part_time.timestamp()), pa.int64()), table.num_rows)
