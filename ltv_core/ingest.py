"""Staging one raw partition: read it, align it to the dataset spec, write one file. The worker task
of the ingest stage (``ltv_core.stages.ingest`` picks the partitions and commits); kept apart from
the stage so that a Dask worker imports only pyarrow and the spec, not the modelling stack.

Missing optional columns are added as null, unexpected columns reported (and dropped), types cast
to the spec's; rows lacking the id or a label are dropped and counted (a partition whose longest
horizons have no value in any row has not matured in the data yet: its rows are counted as
immature, apart from the rows dropped for a missing label); every row gets its event
time. A labelled partition also reports the sum and the largest value of its primary revenue (and
that row's id), so that the stage can check ``limits`` on the whole split without re-reading it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltv_core.errors import DataError
from ltv_core.spec import DatasetSpec, Role
from ltv_core.store import ArtifactStore, fs_for
from ltv_core.windows import Partition

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


def _present(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Rows holding a value: not null, and not NaN in a float column (a NaN label is no label)."""
    valid = pc.is_valid(col)
    if pa.types.is_floating(col.type):
        valid = pc.and_(valid, pc.invert(pc.is_nan(col).fill_null(True)))
    return valid


def immature_horizons(table: pa.Table, spec: DatasetSpec) -> list[str]:
    """The longest horizons that no row of this (labelled, non-empty) partition has yet: the data
    was exported before they matured for these installs (gaming: ``d120_rev`` is null for every
    user younger than 120 days). Only a suffix of the horizons counts, longest first: a partition
    holding d14 but no d7 is broken, not young, and its rows count as dropped."""
    if table.num_rows == 0:
        return []
    missing: list[str] = []
    for h in reversed(spec.labels.horizons):
        cols = [c for c in (h.revenue, h.buyer) if c is not None]
        if any(pc.any(_present(table.column(c))).as_py() for c in cols):
            break
        missing.append(h.name)
    return missing[::-1]


def drop_incomplete(table: pa.Table, spec: DatasetSpec, labelled: bool) -> tuple[pa.Table, dict[str, int]]:
    """Rows without an id (or, when labelled, without a label: null, or NaN) cannot be trained on
    or joined back."""
    needed = [spec.id_column]
    if labelled:
        needed += [c.name for c in spec.columns if c.role is Role.label]
    counts: dict[str, int] = {}
    mask = None
    for name in needed:
        valid = _present(table.column(name))
        missing = table.num_rows - pc.sum(valid).as_py() if table.num_rows else 0
        if missing:
            counts[name] = int(missing)
        mask = valid if mask is None else pc.and_(mask, valid)
    if mask is None or not counts:
        return table, counts
    return table.filter(mask), counts


def revenue_stats(table: pa.Table, spec: DatasetSpec) -> dict[str, Any]:
    """Sum, number of positive values and largest value of the primary revenue of a staged (complete)
    table, and the id of the row holding the largest: the parts from which the stage computes one
    row's share of the split's revenue (``ltv_core.limits``) without re-reading the split.
    Vectorised: one Arrow kernel each, no Python loop over rows."""
    rev = table.column(spec.primary.revenue)
    stats: dict[str, Any] = {"sum": float(pc.sum(rev).as_py() or 0.0),
                             "buyers": int(pc.sum(pc.greater(rev, 0)).as_py() or 0), "max": None, "max_id": None}
    top = pc.max(rev)
    at = pc.index(rev, top).as_py() if top.is_valid else -1
    if at >= 0:  # else no rows, or no comparable value (all NaN): no row to dominate
        stats.update(max=float(top.as_py()), max_id=table.column(spec.id_column)[at].as_py())
    return stats


def event_ts(table: pa.Table, spec: DatasetSpec, part_time: datetime) -> pa.Array:
    if spec.event_time.source == "column":
        col = table.column(spec.event_time.column)
        return pc.cast(col, pa.int64())
    return pa.repeat(pa.scalar(int(part_time.timestamp()), pa.int64()), table.num_rows)


def stage_partition(part: Partition, spec: DatasetSpec, labelled: bool, store_url: str, out_path: str,
                    infer: Callable[[pa.Table, datetime], tuple[pa.Table, dict[str, Any]]] | None = None
                    ) -> dict[str, Any]:
    """Worker task: read, align, filter and write one partition. ``infer`` (``ltv_core.immature``)
    fills the young rows' missing labels before incomplete rows are dropped."""
    t0 = time.time()
    fs, _ = fs_for(part.urls[0])
    tables, reports = [], []
    for path in part.files:
        try:
            raw = pq.read_table(path, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"cannot read parquet file {path}: {exc}") from None
        if spec.partition.key in raw.column_names:
            raw = raw.drop_columns([spec.partition.key])
        aligned, rep = align_table(raw, spec, labelled, source=path)
        tables.append(aligned)
        reports.append(rep)
    table = pa.concat_tables(tables) if tables else spec.arrow_schema(labelled).empty_table()
    rows_in = table.num_rows
    inferred = None
    if infer is not None:
        table, inferred = infer(table, part.time)
    immature = immature_horizons(table, spec) if labelled else []
    table, dropped = drop_incomplete(table, spec, labelled)
    revenue = revenue_stats(table, spec) if labelled else None
    table = table.append_column(spec.partition.key, pa.repeat(pa.scalar(part.value, pa.string()), table.num_rows))
    table = table.append_column(EVENT_TS, event_ts(table, spec, part.time))
    ArtifactStore(store_url).write_parquet(out_path, table)
    return {
        "path": out_path, "partition": part.value, "rows": table.num_rows, "rows_in": rows_in, "dropped": dropped,
        # every row of a partition some horizon has not matured in yet (excluded, not held to the limit)
        "immature": immature, "immature_rows": rows_in if immature else 0,
        "revenue": revenue,
        **({"inferred": inferred} if inferred is not None else {}),
        "added_null": sorted({c for r in reports for c in r.added_null}),
        "dropped_unexpected": sorted({c for r in reports for c in r.dropped_unexpected}),
        "cast": sorted({c for r in reports for c in r.cast}),
        "seconds": round(time.time() - t0, 3),
    }
