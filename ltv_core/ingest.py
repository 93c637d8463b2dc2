"""Ingest: stage the partitions of a run's windows, aligned to the dataset spec.

Partition-parallel on Dask: each task reads one hive partition with pyarrow (so nested MAP and
LIST columns keep their Arrow types), aligns it to the spec (missing optional columns added as
null, unexpected columns logged and dropped, types cast), drops rows lacking the id or a label
(counted), adds the partition value and its event time, and writes one staged file. The stage's
manifest, written last, lists every staged file with its row count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltv_core.cluster import dask_client
from ltv_core.config import PipelineConfig
from ltv_core.errors import DataError
from ltv_core.spec import DatasetSpec, Role
from ltv_core.store import ArtifactStore, StageTimer, fs_for
from ltv_core.windows import LABELLED, Partition, describe, resolve

log = logging.getLogger(__name__)

STAGE = "ingest"
EVENT_TS = "_event_ts"


@dataclass
class AlignReport:
    """What alignment changed in one file: every entry is logged and kept in the manifest."""

    added_null: list[str] = field(default_factory=list)
    dropped_unexpected: list[str] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)


def expected_columns(spec: DatasetSpec, labelled: bool) -> list[str]:
    return [f.name for f in spec.arrow_schema(labelled)]


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


def _event_ts(table: pa.Table, spec: DatasetSpec, part_time: datetime) -> pa.Array:
    if spec.event_time.source == "column":
        col = table.column(spec.event_time.column)
        return pc.cast(col, pa.int64())
    return pa.repeat(pa.scalar(int(part_time.timestamp()), pa.int64()), table.num_rows)


def stage_partition(
    part: Partition, spec: DatasetSpec, labelled: bool, store_url: str, out_path: str
) -> dict[str, Any]:
    """Read, align, filter and write one partition; runs on a Dask worker."""
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
    table, dropped = drop_incomplete(table, spec, labelled)
    table = table.append_column(spec.partition.key, pa.repeat(pa.scalar(part.value, pa.string()), table.num_rows))
    table = table.append_column(EVENT_TS, _event_ts(table, spec, part.time))
    store = ArtifactStore(store_url)
    store.write_parquet(out_path, table)
    return {
        "path": out_path,
        "partition": part.value,
        "rows": table.num_rows,
        "rows_in": rows_in,
        "dropped": dropped,
        "added_null": sorted({c for r in reports for c in r.added_null}),
        "dropped_unexpected": sorted({c for r in reports for c in r.dropped_unexpected}),
        "cast": sorted({c for r in reports for c in r.cast}),
        "seconds": round(time.time() - t0, 3),
    }


def _log_file_result(split: str, res: dict[str, Any], done: int, total: int) -> None:
    log.info("[%s %d/%d] %s: %d rows (%.2fs)", split, done, total, res["partition"], res["rows"], res["seconds"])
    if res["dropped"]:
        log.warning("%s %s: dropped rows lacking id/labels: %s", split, res["partition"], res["dropped"])
    if res["dropped_unexpected"]:
        log.warning("%s %s: unexpected columns dropped: %s", split, res["partition"], res["dropped_unexpected"])
    if res["added_null"]:
        log.info("%s %s: optional columns missing, added as null: %s", split, res["partition"], res["added_null"])


def run_ingest(
    store: ArtifactStore,
    run_id: str,
    logical_date: datetime,
    config: PipelineConfig,
    spec: DatasetSpec,
) -> dict[str, Any]:
    """Stage every split of the run; returns a small JSON-able summary (fit for XCom)."""
    timer = StageTimer(STAGE, run_id)
    windows, chosen = resolve(logical_date, config, spec, config.data_root)
    log.info("run %s, logical date %s, windows: %s", run_id, logical_date.isoformat(), describe(windows, chosen))
    stage_dir = store.begin_stage(run_id, STAGE)
    jobs = []
    for split, parts in chosen.items():
        labelled = split in LABELLED
        for part in parts:
            out = f"{stage_dir}/{split}/{spec.partition.key}={part.value}/part-0.parquet"
            jobs.append((split, part, labelled, out))
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in chosen}
    with dask_client(config.dask) as client:
        futures = {}
        for split, part, labelled, out in jobs:
            fut = client.submit(stage_partition, part, spec, labelled, store.url, out, pure=False)
            futures[fut] = split
        from distributed import as_completed

        done = {s: 0 for s in chosen}
        for fut in as_completed(list(futures)):
            split = futures[fut]
            res = fut.result()
            done[split] += 1
            results[split].append(res)
            _log_file_result(split, res, done[split], len(chosen[split]))
    outputs: dict[str, Any] = {}
    for split, res in results.items():
        res.sort(key=lambda r: r["partition"])
        rows = sum(r["rows"] for r in res)
        if rows == 0:
            raise DataError(f"split {split!r} has no rows left after dropping incomplete rows")
        outputs[split] = {
            "files": [{"path": r["path"], "partition": r["partition"], "rows": r["rows"]} for r in res],
            "rows": rows,
            "rows_dropped": sum(sum(r["dropped"].values()) for r in res),
            "labelled": split in LABELLED,
            "window": [windows[split].start.isoformat(), windows[split].end.isoformat()],
            "dropped_unexpected_columns": sorted({c for r in res for c in r["dropped_unexpected"]}),
            "added_null_columns": sorted({c for r in res for c in r["added_null"]}),
        }
        log.info("split %s: %d rows in %d partitions", split, rows, len(res))
    timer.inputs = {
        "dataset": spec.name,
        "spec": spec.source_path,
        "data_root": spec.resolved_data_root(config.data_root),
        "logical_date": logical_date.isoformat(),
        "windows": describe(windows, chosen),
    }
    timer.outputs = outputs
    manifest_path = store.commit_stage(run_id, STAGE, timer.finish(config.model_dump(mode="json")))
    return {
        "run_id": run_id,
        "manifest": store.uri(manifest_path),
        "rows": {s: o["rows"] for s, o in outputs.items()},
        "windows": {s: o["window"] for s, o in outputs.items()},
    }


def staged_files(store: ArtifactStore, run_id: str, split: str) -> list[str]:
    """Store paths of a committed split, as the ingest manifest lists them."""
    outputs = store.read_manifest(run_id, STAGE)["outputs"]
    if split not in outputs:
        raise DataError(f"run {run_id!r} has no staged split {split!r} (splits: {sorted(outputs)})")
    return [f["path"] for f in outputs[split]["files"]]


def read_staged(store: ArtifactStore, run_id: str, split: str, columns: list[str] | None = None) -> pa.Table:
    return pa.concat_tables([store.read_parquet(p, columns=columns) for p in staged_files(store, run_id, split)])
