"""ingest: stage the partitions of a run's windows, aligned to the dataset spec.

Partition-parallel on Dask (``cluster.fan_out``): each task (``ltv_core.ingest.stage_partition``)
reads one hive partition with pyarrow (so nested MAP and LIST columns keep their Arrow types),
aligns it to the spec, drops rows lacking the id or a label (counted; rows of a partition whose
longest horizons have not matured in the data yet are counted apart, as ``rows_immature``, and are
not held to ``limits.max_dropped_share``), adds the partition value and
its event time, and writes one staged file. The manifest, written last, lists
every staged file with its row count; the windows come from ``ltv_core.windows.resolve``.

Before the manifest, every split is held to the config's ``limits`` (``ltv_core.limits``: the share
of rows dropped, one row's share of the training revenue): a split beyond one fails the stage
uncommitted, so nothing downstream reads it. The measured shares are in the manifest either way.
"""

from __future__ import annotations

import logging
from typing import Any

from ltv_core import catalog, limits, preflight
from ltv_core.cluster import Job, dask_client, fan_out
from ltv_core.config import DEFAULT_CONFIG, PipelineConfig
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.ingest import stage_partition
from ltv_core.pipeline import LABELLED, Split, Stage, split_order
from ltv_core.spec import DatasetSpec
from ltv_core.windows import describe, resolve

log = logging.getLogger(__name__)

STAGE = Stage.INGEST


def _warn(split: str, res: dict[str, Any]) -> None:
    if res.get("immature"):
        log.warning("%s %s: excluded all %d rows: horizon(s) %s not matured in the data yet (no row has them)",
                    split, res["partition"], res["immature_rows"], res["immature"])
    elif res["dropped"]:
        log.warning("%s %s: dropped rows lacking id/labels: %s", split, res["partition"], res["dropped"])
    if res["dropped_unexpected"]:
        log.warning("%s %s: unexpected columns dropped: %s", split, res["partition"], res["dropped_unexpected"])
    if res["added_null"]:
        log.info("%s %s: optional columns missing, added as null: %s", split, res["partition"], res["added_null"])


def _check_limits(split: str, res: list[dict[str, Any]], config: PipelineConfig, spec: DatasetSpec) -> dict[str, Any]:
    """Hold one split to ``config.limits`` (raises DataError before anything is committed); returns
    the measured shares for the manifest, logged so that a passing run shows how close it came."""
    measured, lim = limits.measure(res), config.limits
    line = f"split {split}: dropped share {measured['dropped_share']:.4f} (limit {lim.max_dropped_share})"
    if measured["rows_immature"]:
        line += (f"; {measured['rows_immature']} rows of {len(measured['immature_partitions'])} partitions "
                 "not matured yet, excluded")
    if measured["max_row_revenue_share"] is not None:
        enforced = (f"limit {lim.max_row_revenue_share} from {lim.revenue_share_min_buyers} buyers"
                    if split == Split.TRAIN else "limited in the training window only")
        line += (f"; largest row's share of {spec.primary.revenue} {measured['max_row_revenue_share']:.4f} "
                 f"({spec.id_column} {measured['max_row_id']}, {measured['buyers']} buyers; {enforced})")
    log.info("%s", line)
    limits.enforce(split, res, config.limits, config.source_path or DEFAULT_CONFIG,
                   revenue_column=spec.primary.revenue, id_column=spec.id_column,
                   revenue_limited=split == Split.TRAIN)
    return measured


def _split_output(split: str, res: list[dict[str, Any]], window: Any, measured: dict[str, Any]) -> dict[str, Any]:
    res.sort(key=lambda r: r["partition"])
    rows = sum(r["rows"] for r in res)
    if rows == 0:
        raise DataError(f"split {split!r} has no rows left after dropping incomplete rows")
    log.info("split %s: %d rows in %d partitions", split, rows, len(res))
    return {
        "files": [{"path": r["path"], "partition": r["partition"], "rows": r["rows"]} for r in res],
        "rows": rows,
        "rows_read": sum(r["rows_in"] for r in res),
        "rows_dropped": sum(r["rows_in"] - r["rows"] for r in res),  # rows, not missing cells
        **measured,
        "labelled": split in LABELLED,
        "window": [window.start.isoformat(), window.end.isoformat()],
        "dropped_unexpected_columns": sorted({c for r in res for c in r["dropped_unexpected"]}),
        "added_null_columns": sorted({c for r in res for c in r["added_null"]}),
    }


def _stage_young(ctx: RunContext, client: Any, windows: dict[str, Any], stage_dir: str,
                 train: list[dict[str, Any]]) -> dict[str, Any]:
    """``immature_labels``: stage the young install days of the train root as extra training rows,
    their missing horizons inferred by multipliers fitted on the staged matured training rows."""
    from ltv_core import immature

    cfg, spec, store = ctx.config.immature_labels, ctx.spec, ctx.store
    first = immature.min_source(cfg, spec)
    root = spec.root_path("train", ctx.config.data_root)
    assert root is not None
    parts = immature.young_partitions({s: windows[s] for s in LABELLED}, ctx.logical_date, spec, root, first)
    est = immature.fit_multipliers(store, [r["path"] for r in train if r["rows"]], spec, cfg)
    infer = immature.Inference(est, spec, first, ctx.logical_date)
    jobs = [Job(f"train {p.value}", p.path,
                (p, spec, True, store.url, catalog.partition_path(stage_dir, Split.TRAIN, spec.partition.key, p.value),
                 infer)) for p in parts]
    res = [r for _, r in fan_out(client, stage_partition, jobs, what="ingest young",
                                 describe=lambda r: f"{r['rows']} rows ({r['seconds']:.2f}s)")]
    res.sort(key=lambda r: r["partition"])
    summary = immature.summarise(res, est, spec, cfg)
    summary["files"] = [{"path": r["path"], "partition": r["partition"], "rows": r["rows"]} for r in res if r["rows"]]
    log.info("immature labels: %d extra training rows from %d young partitions (inferred from %s; %d matured, "
             "%d without a matured horizon dropped)", summary["rows"], len(summary["partitions"]),
             summary["inferred_from"], summary["rows_matured"], summary["rows_unlabelled"])
    return summary


def _add_young(train: dict[str, Any], young: dict[str, Any]) -> None:
    """The young rows join the training split (files, rows); the record stays beside them."""
    files = young.pop("files")
    train["files"] = train["files"] + files
    train["rows_matured"] = train["rows"]
    train["rows"] += young["rows"]
    train["immature_labels"] = young


def run(ctx: RunContext) -> dict[str, Any]:
    """Stage every split of the run's windows; returns the rows and window of each split. Every
    config and param of the run is checked first (``ltv_core.preflight``): a typo fails here."""
    preflight.check(ctx)
    if ctx.config.immature_labels.enabled:
        from ltv_core.immature import min_source

        min_source(ctx.config.immature_labels, ctx.spec)  # a wrong min_horizon fails before any work
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
        young = (_stage_young(ctx, client, windows, stage_dir, results[Split.TRAIN])
                 if config.immature_labels.enabled else None)
    order = sorted(results, key=split_order)
    measured = {s: _check_limits(s, results[s], config, spec) for s in order}
    outputs = {s: _split_output(s, results[s], windows[s], measured[s]) for s in order}
    if young is not None:
        _add_young(outputs[Split.TRAIN], young)
    timer.inputs.update({
        "dataset": spec.name, "spec": spec.source_path, "data_root": spec.resolved_data_root(config.data_root),
        "logical_date": ctx.logical_date.isoformat(), "windows": describe(windows, chosen),
    })
    timer.outputs = outputs
    manifest = ctx.commit(timer, config.model_dump(mode="json"))
    return {"run_id": ctx.run_id, "stage": STAGE.value, "manifest": manifest,
            "rows": {s: o["rows"] for s, o in outputs.items()},
            "windows": {s: o["window"] for s, o in outputs.items()}}
