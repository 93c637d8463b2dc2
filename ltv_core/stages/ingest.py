"""ingest: stage the partitions of a run's windows, aligned to the dataset spec.

Partition-parallel on Dask (``cluster.fan_out``): each task (``ltv_core.ingest.stage_partition``)
reads one hive partition with pyarrow (so nested MAP and LIST columns keep their Arrow types),
aligns it to the spec, drops rows lacking the id or a label (counted), adds the partition value and
its event time, and writes one staged file. The manifest, written last, lists
every staged file with its row count; the windows come from ``ltv_core.windows.resolve``.
"""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog
from ltv_core.cluster import Job, dask_client, fan_out
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.ingest import stage_partition
from ltv_core.pipeline import LABELLED, Stage, split_order
from ltv_core.windows import describe, resolve

log = logging.getLogger(__name__)

STAGE = Stage.INGEST


def _warn(split: str, res: dict[str, Any]) -> None:
    if res["dropped"]:
        log.warning("%s %s: dropped rows lacking id/labels: %s", split, res["partition"], res["dropped"])
    if res["dropped_unexpected"]:
        log.warning("%s %s: unexpected columns dropped: %s", split, res["partition"], res["dropped_unexpected"])
    if res["added_null"]:
        log.info("%s %s: optional columns missing, added as null: %s", split, res["partition"], res["added_null"])


def _split_output(split: str, res: list[dict[str, Any]], window: Any) -> dict[str, Any]:
    res.sort(key=lambda r: r["partition"])
    rows = sum(r["rows"] for r in res)
    if rows == 0:
        raise DataError(f"split {split!r} has no rows left after dropping incomplete rows")
    log.info("split %s: %d rows in %d partitions", split, rows, len(res))
    return {
        "files": [{"path": r["path"], "partition": r["partition"], "rows": r["rows"]} for r in res],
        "rows": rows,
        "rows_dropped": sum(sum(r["dropped"].values()) for r in res),
        "labelled": split in LABELLED,
        "window": [window.start.isoformat(), window.end.isoformat()],
        "dropped_unexpected_columns": sorted({c for r in res for c in r["dropped_unexpected"]}),
        "added_null_columns": sorted({c for r in res for c in r["added_null"]}),
    }


def run(ctx: RunContext) -> dict[str, Any]:
    """Stage every split of the run's windows; returns the rows and window of each split."""
    timer = ctx.timer(STAGE)
    config, spec, store = ctx.config, ctx.spec, ctx.store
    log.info("ingest: dataset %s, store %s", spec.name, store.url)
    windows, chosen = resolve(ctx.logical_date, config, spec, config.data_root)
    log.info("run %s, logical date %s, windows: %s", ctx.run_id, ctx.logical_date.isoformat(),
             describe(windows, chosen))
    stage_dir = store.begin_stage(ctx.run_id, STAGE)
    jobs = [Job(f"{split} {part.value}", part.path,
                (part, spec, split in LABELLED, store.url,
                 catalog.partition_path(stage_dir, split, spec.partition.key, part.value)))
            for split, parts in chosen.items() for part in parts]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in chosen}
    with dask_client(config.dask) as client:
        for job, res in fan_out(client, stage_partition, jobs, what="ingest",
                                describe=lambda r: f"{r['rows']} rows ({r['seconds']:.2f}s)"):
            split = job.label.split()[0]
            results[split].append(res)
            _warn(split, res)
    outputs = {s: _split_output(s, results[s], windows[s]) for s in sorted(results, key=split_order)}
    timer.inputs.update({
        "dataset": spec.name, "spec": spec.source_path, "data_root": spec.resolved_data_root(config.data_root),
        "logical_date": ctx.logical_date.isoformat(), "windows": describe(windows, chosen),
    })
    timer.outputs = outputs
    manifest = ctx.commit(timer, config.model_dump(mode="json"))
    return {"run_id": ctx.run_id, "stage": STAGE.value, "manifest": manifest,
            "rows": {s: o["rows"] for s, o in outputs.items()},
            "windows": {s: o["window"] for s, o in outputs.items()}}
