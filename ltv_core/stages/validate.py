"""validate: Great Expectations on every staged split before anything is trained or scored on it.

Reads the staged files (a uniform sample above ``validation.max_rows_per_split``, plus every row a
key rule needs), builds the compact view and runs the suite (``ltv_core.validation``), writes the
full result and the HTML data docs in both outcomes, and commits only when every split passes: a
failed validation is never visible to a downstream stage as done.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.errors import DataError, ValidationFailed
from ltv_core.pipeline import Stage, split_order
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer
from ltv_core.validation.expectations import resolve_expectations
from ltv_core.validation.gx import validate_splits
from ltv_core.validation.view import concat_views, view_table

log = logging.getLogger(__name__)

STAGE = Stage.VALIDATE
RESULT = "result.json"
DATA_DOCS = "data_docs"
# Key-rule rows kept beyond the sample (both copies of each duplicated id, and null ids), so the
# uniqueness and not-null checks stay exact on a sampled split without blowing up its size.
MAX_FORCED_KEY_ROWS = 1000


def _sample_masks(files: list[dict[str, Any]], total: int, max_rows: int, split: str) -> list[np.ndarray]:
    """A deterministic uniform sample (same rows for the same split and sizes), as per-file masks."""
    rng = np.random.default_rng(zlib.crc32(split.encode()))
    chosen = np.sort(rng.choice(total, size=max_rows, replace=False))
    masks, offset = [], 0
    for f in files:
        mask = np.zeros(int(f["rows"]), dtype=bool)
        local = chosen[(chosen >= offset) & (chosen < offset + f["rows"])] - offset
        mask[local] = True
        masks.append(mask)
        offset += int(f["rows"])
    return masks


def _key_census(store: ArtifactStore, id_column: str, paths: list[str]) -> tuple[dict[str, int], pa.Array]:
    """Exact id counts over the whole split, and up to MAX_FORCED_KEY_ROWS/2 duplicated ids.

    Only the id column is read, so a sampled split still has its key rules checked on every row.
    """
    ids = pa.chunked_array([store.read_parquet(p, columns=[id_column])[id_column] for p in paths])
    counts = pa.table({"id": ids}).group_by("id").aggregate([("id", "count")])
    dup = counts.filter(pc.and_(pc.greater(counts["id_count"], 1), pc.is_valid(counts["id"])))
    keys = {
        "rows": len(ids),
        "null_ids": int(ids.null_count),
        "duplicate_ids": dup.num_rows,
        "duplicate_rows": int(pc.sum(dup["id_count"]).as_py() or 0),
    }
    forced = dup["id"].slice(0, MAX_FORCED_KEY_ROWS // 2).combine_chunks()
    return keys, forced


def shared_ids(store: ArtifactStore, id_column: str, outputs: Mapping[str, Mapping[str, Any]],
               examples: int = 5) -> list[dict[str, Any]]:
    """Ids that appear in two splits (only the id column is read, every row): one entry per pair of
    splits with how many ids they share and a few of them
    (``tests/integration/test_stages.py::test_an_id_in_two_splits_fails_validation``)."""
    ids = {s: pc.unique(pa.chunked_array([store.read_parquet(f["path"], columns=[id_column])[id_column]
                                          for f in o["files"]]).combine_chunks().drop_null())
           for s, o in outputs.items()}
    names, found = sorted(ids, key=split_order), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not len(ids[a]) or not len(ids[b]):
                continue
            both = ids[a].filter(pc.is_in(ids[a], value_set=ids[b].cast(ids[a].type)))
            if len(both):
                found.append({"splits": [a, b], "ids": len(both), "examples": both.slice(0, examples).to_pylist()})
    return found


def _read_file(store: ArtifactStore, f: Mapping[str, Any], split: str) -> pa.Table:
    table = store.read_parquet(f["path"])
    if table.num_rows != int(f["rows"]):
        raise DataError(
            f"split {split!r}: {f['path']} has {table.num_rows} rows but the ingest manifest says {f['rows']}"
        )
    return table


def _split_frame(
    store: ArtifactStore, spec: DatasetSpec, split: str, out: Mapping[str, Any], max_rows: int | None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The split's view; above ``max_rows``, a uniform sample plus every key-rule offender."""
    files, labelled, total = list(out["files"]), bool(out["labelled"]), int(out["rows"])
    info: dict[str, Any] = {"rows": total, "files": len(files), "sampled": False}
    if max_rows is None or total <= max_rows:
        views = [view_table(spec, _read_file(store, f, split), labelled) for f in files]
        return concat_views(views), info
    keys, forced = _key_census(store, spec.id_column, [f["path"] for f in files])
    views = []
    for f, mask in zip(files, _sample_masks(files, total, max_rows, split)):
        table = _read_file(store, f, split)
        ids = table[spec.id_column]
        keep = pc.or_(pc.or_(pa.array(mask), pc.is_null(ids)), pc.is_in(ids, value_set=forced))
        views.append(view_table(spec, table.filter(keep), labelled))
    info.update(sampled=True, sample_rows=max_rows, keys=keys)
    return concat_views(views), info


def _write_docs(store: ArtifactStore, stage_dir: str, html: Mapping[str, bytes]) -> str:
    for rel, content in html.items():
        store.write_bytes(f"{stage_dir}/{DATA_DOCS}/{rel}", content)
    return f"{stage_dir}/{DATA_DOCS}/index.html"


def validate_run(store: ArtifactStore, run_id: str, spec: DatasetSpec, *, max_rows_per_split: int | None = None,
                 timer: StageTimer | None = None, ids_unique_across_splits: bool = True) -> dict[str, Any]:
    """Validate every staged split of a run; commit the stage only if all of them pass.

    The full result (result.json) and data docs are written in both cases, so a failed run can
    be inspected (in the attempt's folder). On failure the stage is NOT committed (and an earlier
    pass of the same run is withdrawn: no ``_manifest.json``): downstream stages
    read through the manifest and must never see a failed validation as done. Raises
    :class:`ValidationFailed` whose message names split, expectation, column and example values.
    """
    if max_rows_per_split is not None and max_rows_per_split < 1:
        raise ValueError(f"max_rows_per_split must be >= 1, got {max_rows_per_split}")
    timer = timer or StageTimer(STAGE, run_id)
    outputs = catalog.staged_outputs(store, run_id)
    hw = resolve_expectations(spec, None)
    stage_dir = store.begin_stage(run_id, STAGE)
    frames: dict[str, tuple[pd.DataFrame, bool]] = {}
    info: dict[str, dict[str, Any]] = {}
    for split, out in outputs.items():
        t0 = time.time()
        frame, info[split] = _split_frame(store, spec, split, out, max_rows_per_split)
        frames[split] = (frame, bool(out["labelled"]))
        log.info("loaded %s: %d of %d rows into the view (%.2fs)",
                 split, len(frame), out["rows"], time.time() - t0)
    report = validate_splits(spec, frames, hw, run_name=run_id, split_info=info)
    del frames
    shared = shared_ids(store, spec.id_column, outputs) if ids_unique_across_splits else []
    success = report.success and not shared
    result_path = store.write_json(f"{stage_dir}/{RESULT}", {**report.to_dict(), "success": success,
                                                             "ids_shared_across_splits": shared})
    docs_path = _write_docs(store, stage_dir, report.html)
    small = {
        "success": success, "result_path": store.uri(result_path),
        "data_docs_path": store.uri(docs_path), "evaluated": report.evaluated + int(ids_unique_across_splits),
        "failed": report.failed + int(bool(shared)),
    }
    if not success:
        store.retract_stage(run_id, STAGE)  # an earlier pass of this run no longer stands
        log.error("validation failed for run %s; stage not committed; result: %s",
                  run_id, small["result_path"])
        summary = report.summary() if not report.success else "validation failed:"
        for s in shared:
            summary += (f"\n  column {spec.id_column!r}: {s['ids']} ids appear in both split {s['splits'][0]!r} "
                        f"and split {s['splits'][1]!r}, e.g. {s['examples']} (a row may be in one window only; "
                        "set validation.ids_unique_across_splits: false if the data re-uses ids on purpose)")
        raise ValidationFailed(
            f"{summary}\nfull result: {small['result_path']}\ndata docs: {small['data_docs_path']}"
        )
    timer.inputs.update({
        s: {"files": [f["path"] for f in o["files"]], "rows": o["rows"]} for s, o in outputs.items()
    })
    timer.outputs = {"result": result_path, "data_docs": docs_path, "splits": report.splits}
    timer.extra = {
        "success": True, "evaluated": report.evaluated, "failed": report.failed,
        "expectations_file": hw.source if hw else None, "expectations_sha256": hw.sha256 if hw else None,
    }
    manifest = store.commit_stage(run_id, STAGE, timer.finish({"max_rows_per_split": max_rows_per_split}))
    return {"run_id": run_id, "stage": STAGE.value, "manifest": store.uri(manifest), **small}


def run(ctx: RunContext) -> dict[str, Any]:
    return validate_run(ctx.store, ctx.run_id, ctx.spec, max_rows_per_split=ctx.config.validation.max_rows_per_split,
                        timer=ctx.timer(STAGE), ids_unique_across_splits=ctx.config.validation.ids_unique_across_splits)
