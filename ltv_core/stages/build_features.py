"""build_features: fit the feature state on ``train``, transform every split on Dask with it.

Flow (one task per staged file, no file ever concatenated with another):

1. read the ingest manifest (after checking that validate committed); order the training partitions
   in time and assign target-encoding folds;
2. fit: each worker reads one training file and returns its additive ``PartialStats``; the client
   merges them as they arrive (memory ~ distinct values, not rows) and fits the ``FeatureState``;
3. save ``runs/<run_id>/build_features/feature_state.json``;
4. transform: the state is broadcast once; each worker reads one staged file, transforms it and
   writes ``<split>/<key>=<value>/part-0.parquet`` (features + id, partition, event time, labels);
5. commit the manifest (inputs, rows per split, feature counts, config hash, timings).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ltv_core import catalog
from ltv_core.cluster import Job, dask_client, fan_out
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.features import fitting
from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.columns import assign_folds, carry_columns
from ltv_core.features.config import FeaturesConfig, features_config_for
from ltv_core.features.fitter import FeatureFitter
from ltv_core.features.state import FeatureState
from ltv_core.pipeline import Split, Stage, split_order
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore

log = logging.getLogger(__name__)

STAGE = Stage.BUILD_FEATURES
MERGE_EVERY = 8  # partial statistics merged in batches: memory stays ~ distinct values


def _input_columns(builder: FeatureBuilder, labelled: bool) -> list[str]:
    """Only what the features and carry-alongs need (post-outcome columns are never even read);
    read with ``skip_missing``: optional columns a file lacks are left out in the same open."""
    return list(dict.fromkeys(builder.input_columns() + carry_columns(builder.spec, labelled)))


def fit_partition(store_url: str, path: str, partition: str, fold: int | None, spec: DatasetSpec,
                  fconfig: dict[str, Any]) -> fitting.PartialStats:
    """Worker task: additive statistics of one staged training file."""
    store = ArtifactStore(store_url)
    fitter = FeatureFitter(spec, FeaturesConfig.model_validate(fconfig))
    table = store.read_parquet(path, _input_columns(fitter.builder, labelled=True), skip_missing=True)
    return fitter.partial_stats(table, partition, fold)


def transform_file(store_url: str, in_path: str, out_path: str, spec: DatasetSpec, state: FeatureState,
                   labelled: bool, fold: int | None, partition: str) -> dict[str, Any]:
    """Worker task: transform one staged file with the fitted state and write its feature file."""
    t0 = time.time()
    store = ArtifactStore(store_url)
    builder = FeatureBuilder.from_state(spec, state)
    table = store.read_parquet(in_path, _input_columns(builder, labelled), skip_missing=True)
    out = builder.transform_partition(table, state, labelled, fold)
    store.write_parquet(out_path, out)
    return {"path": out_path, "partition": partition, "rows": out.num_rows, "seconds": round(time.time() - t0, 3),
            "worker": os.getpid()}


def _fit(client: Any, store: ArtifactStore, fitter: FeatureFitter, train_files: list[dict[str, Any]],
         spec: DatasetSpec) -> FeatureState:
    folds = assign_folds([f["partition"] for f in train_files], fitter.config.target_encoding.folds)
    cfg = fitter.config.model_dump(mode="json")
    jobs = [Job(f"fit {f['partition']}", f["path"],
                (store.url, f["path"], f["partition"], folds[f["partition"]], spec, cfg)) for f in train_files]
    merged, pending = fitting.PartialStats(), []
    for done, (_, stats) in enumerate(fan_out(client, fit_partition, jobs, what="fit"), 1):
        pending.append(stats)
        if len(pending) >= MERGE_EVERY or done == len(jobs):
            merged = merged.merge(fitting.merge_all(pending))
            pending = []
            log.info("[fit %d/%d] merged partial statistics (%d rows so far)", done, len(jobs), merged.rows)
    return fitter.fit_state(merged, folds)


def _transform_split(client: Any, store: ArtifactStore, spec: DatasetSpec, state_future: Any, state: FeatureState,
                     split: str, info: dict[str, Any], stage_dir: str) -> dict[str, Any]:
    labelled = bool(info.get("labelled", split != Split.SCORING))
    jobs = [Job(f"{split} {f['partition']}", f["path"],
                (store.url, f["path"], catalog.partition_path(stage_dir, split, spec.partition.key, f["partition"]),
                 spec, state_future, labelled, state.fold_of(f["partition"]) if split == Split.TRAIN else None,
                 f["partition"])) for f in info["files"]]
    results = [res for _, res in fan_out(client, transform_file, jobs, what="transform",
                                         describe=lambda r: f"{r['rows']} rows ({r['seconds']:.2f}s)")]
    results.sort(key=lambda r: r["partition"])
    return {"files": [{k: r[k] for k in ("path", "partition", "rows")} for r in results],
            "rows": sum(r["rows"] for r in results), "labelled": labelled,
            "workers": sorted({r["worker"] for r in results})}


def run(ctx: RunContext) -> dict[str, Any]:
    """Fit on train, transform every staged split, save the state, commit."""
    timer = ctx.timer(STAGE)
    store, spec, run_id = ctx.store, ctx.spec, ctx.run_id
    store.read_manifest(run_id, Stage.VALIDATE)  # never featurise data that failed validation
    fconfig = features_config_for(ctx.spec, ctx.config.features_config)
    fitter = FeatureFitter(spec, fconfig)
    ingest = catalog.staged_outputs(store, run_id)
    if Split.TRAIN not in ingest:
        raise DataError(f"run {run_id!r}: the ingest stage staged no 'train' split (splits: {sorted(ingest)})")
    stage_dir = store.begin_stage(run_id, STAGE)
    timings: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    with dask_client(ctx.config.dask) as client:
        t0 = time.time()
        train_files = sorted(ingest[Split.TRAIN]["files"], key=lambda f: f["partition"])
        state = _fit(client, store, fitter, train_files, spec)
        timings["fit"] = round(time.time() - t0, 3)
        state_path = store.write_json(ctx.path(STAGE, catalog.FEATURE_STATE), state.to_dict())
        log.info("fitted feature state on %d training rows: %d features (%d categorical) -> %s", state.train_rows,
                 len(state.feature_names), len(state.categorical_features), store.uri(state_path))
        state_future = client.scatter(state, broadcast=True)
        for split in sorted(ingest, key=split_order):
            t1 = time.time()
            outputs[split] = _transform_split(client, store, spec, state_future, state, split, ingest[split], stage_dir)
            timings[f"transform_{split}"] = round(time.time() - t1, 3)
            log.info("split %s: %d rows in %d files (%.1fs)", split, outputs[split]["rows"],
                     len(outputs[split]["files"]), timings[f"transform_{split}"])
    timer.inputs.update({"ingest_manifest": store.uri(f"{store.stage_dir(run_id, Stage.INGEST)}/_manifest.json"),
                         "features_config": fconfig.source_path, "dataset": spec.name,
                         "splits": {s: len(i["files"]) for s, i in ingest.items()}})
    timer.outputs = {**outputs, "feature_state": store.uri(state_path)}
    rows = {s: o["rows"] for s, o in outputs.items()}
    manifest = ctx.commit(timer, {"pipeline": ctx.config.model_dump(mode="json"), "features": fconfig.fingerprint()},
                          {"n_features": len(state.feature_names), "n_categorical": len(state.categorical_features),
                           "feature_config_hash": state.config_hash, "timings": timings, "rows": rows})
    return {"run_id": run_id, "stage": STAGE.value, "manifest": manifest, "feature_state": store.uri(state_path),
            "n_features": len(state.feature_names), "rows": rows, "feature_config_hash": state.config_hash}
