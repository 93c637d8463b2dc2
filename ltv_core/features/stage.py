"""The build_features stage: fit the feature state on ``train``, transform every split on Dask.

Flow (one task per staged file, no file ever concatenated with another):

1. read the ingest manifest; order the training partitions in time and assign target-encoding folds;
2. fit: each worker reads one training file and returns its additive ``PartialStats``; the client
   merges them as they arrive (memory ~ distinct values, not rows) and fits the ``FeatureState``;
3. save ``runs/<run_id>/build_features/feature_state.json``;
4. transform: the state is broadcast once; each worker reads one staged file, transforms it and
   writes ``<split>/datetime=<value>/part-0.parquet`` (features + id, partition, event time, labels);
5. commit the manifest (inputs, rows per split, feature counts, config hash, timings).

The Dask client is ``ltv_core.cluster.dask_client``: an existing scheduler when
``config.dask.scheduler_address`` or ``LTV_DASK_SCHEDULER`` is set, else a LocalCluster.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pandas as pd
import pyarrow as pa

from ltv_core.cluster import dask_client
from ltv_core.config import PipelineConfig
from ltv_core.errors import DataError
from ltv_core.features import fitting
from ltv_core.features.builder import FeatureBuilder, assign_folds, carry_columns
from ltv_core.features.config import FeaturesConfig, load_features_config
from ltv_core.features.state import STATE_FILE, FeatureState
from ltv_core.features.transforms import OTHER_CATEGORY
from ltv_core.ingest import STAGE as INGEST_STAGE
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer

log = logging.getLogger(__name__)

STAGE = "build_features"
_MERGE_EVERY = 8


def _input_columns(builder: FeatureBuilder, labelled: bool) -> list[str]:
    """Only what the features and carry-alongs need (post-outcome columns are never even read);
    read with ``skip_missing``: optional columns a file lacks are left out in the same open."""
    return list(dict.fromkeys(builder.input_columns() + carry_columns(builder.spec, labelled)))


def fit_partition(store_url: str, path: str, partition: str, fold: int | None, spec: DatasetSpec,
                  fconfig: dict[str, Any]) -> fitting.PartialStats:
    """Worker task: additive statistics of one staged training file."""
    store = ArtifactStore(store_url)
    builder = FeatureBuilder(spec, FeaturesConfig.model_validate(fconfig))
    table = store.read_parquet(path, _input_columns(builder, labelled=True), skip_missing=True)
    return builder.partial_stats(table, partition, fold)


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


def _fit(client: Any, store: ArtifactStore, builder: FeatureBuilder, train_files: list[dict[str, Any]],
         spec: DatasetSpec) -> FeatureState:
    from distributed import as_completed

    folds = assign_folds([f["partition"] for f in train_files], builder.config.target_encoding.folds)
    cfg = builder.config.model_dump(mode="json")
    futures = [client.submit(fit_partition, store.url, f["path"], f["partition"], folds[f["partition"]], spec, cfg,
                             pure=False) for f in train_files]
    merged, pending, done = fitting.PartialStats(), [], 0
    for fut in as_completed(futures):
        pending.append(fut.result())
        done += 1
        if len(pending) >= _MERGE_EVERY or done == len(futures):
            merged = merged.merge(fitting.merge_all(pending))
            pending = []
            log.info("[fit %d/%d] merged partial statistics (%d rows so far)", done, len(futures), merged.rows)
    return builder.fit_state(merged, folds)


def _transform_split(client: Any, store: ArtifactStore, spec: DatasetSpec, state_future: Any, state: FeatureState,
                     split: str, info: dict[str, Any], stage_dir: str) -> dict[str, Any]:
    from distributed import as_completed

    labelled = bool(info.get("labelled", split != "scoring"))
    futures = []
    for f in info["files"]:
        fold = state.fold_of(f["partition"]) if split == "train" else None
        out = f"{stage_dir}/{split}/{spec.partition.key}={f['partition']}/part-0.parquet"
        futures.append(client.submit(transform_file, store.url, f["path"], out, spec, state_future, labelled, fold,
                                     f["partition"], pure=False))
    results = []
    for fut in as_completed(futures):
        res = fut.result()
        results.append(res)
        log.info("[%s %d/%d] %s: %d rows (%.2fs)", split, len(results), len(futures), res["partition"], res["rows"],
                 res["seconds"])
    results.sort(key=lambda r: r["partition"])
    return {"files": [{k: r[k] for k in ("path", "partition", "rows")} for r in results],
            "rows": sum(r["rows"] for r in results), "labelled": labelled,
            "workers": sorted({r["worker"] for r in results})}


def run_features_stage(store: ArtifactStore, run_id: str, spec: DatasetSpec, config: PipelineConfig,
                       features_config_path: str = "config/features.yaml") -> dict[str, Any]:
    """Fit on train, transform every staged split, save the state, commit; returns a small dict (XCom)."""
    timer = StageTimer(STAGE, run_id)
    fconfig = load_features_config(features_config_path)
    builder = FeatureBuilder(spec, fconfig)
    ingest = store.read_manifest(run_id, INGEST_STAGE)["outputs"]
    if "train" not in ingest:
        raise DataError(f"run {run_id!r}: the ingest stage staged no 'train' split (splits: {sorted(ingest)})")
    stage_dir = store.begin_stage(run_id, STAGE)
    timings: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    with dask_client(config.dask) as client:
        t0 = time.time()
        train_files = sorted(ingest["train"]["files"], key=lambda f: f["partition"])
        state = _fit(client, store, builder, train_files, spec)
        timings["fit"] = round(time.time() - t0, 3)
        state_path = store.write_json(f"{stage_dir}/{STATE_FILE}", state.to_dict())
        log.info("fitted feature state on %d training rows: %d features (%d categorical) -> %s", state.train_rows,
                 len(state.feature_names), len(state.categorical_features), store.uri(state_path))
        state_future = client.scatter(state, broadcast=True)
        for split in sorted(ingest, key=lambda s: ["train", "validation", "holdout", "scoring"].index(s)
                            if s in ("train", "validation", "holdout", "scoring") else 99):
            t1 = time.time()
            outputs[split] = _transform_split(client, store, spec, state_future, state, split, ingest[split], stage_dir)
            timings[f"transform_{split}"] = round(time.time() - t1, 3)
            log.info("split %s: %d rows in %d files (%.1fs)", split, outputs[split]["rows"],
                     len(outputs[split]["files"]), timings[f"transform_{split}"])
    timer.inputs = {"ingest_manifest": store.uri(f"{store.stage_dir(run_id, INGEST_STAGE)}/_manifest.json"),
                    "features_config": fconfig.source_path, "dataset": spec.name,
                    "splits": {s: len(i["files"]) for s, i in ingest.items()}}
    timer.outputs = {**outputs, "feature_state": store.uri(state_path)}
    timer.extra = {"n_features": len(state.feature_names), "n_categorical": len(state.categorical_features),
                   "feature_config_hash": state.config_hash, "timings": timings,
                   "rows": {s: o["rows"] for s, o in outputs.items()}}
    manifest = store.commit_stage(run_id, STAGE, timer.finish({"pipeline": config.model_dump(mode="json"),
                                                                "features": fconfig.fingerprint()}))
    return {"run_id": run_id, "manifest": store.uri(manifest), "feature_state": store.uri(state_path),
            "n_features": len(state.feature_names), "rows": {s: o["rows"] for s, o in outputs.items()},
            "feature_config_hash": state.config_hash}


def load_feature_state(store: ArtifactStore, run_id: str) -> FeatureState:
    """The fitted state of a committed build_features stage."""
    store.read_manifest(run_id, STAGE)
    return FeatureState.from_dict(store.read_json(f"{store.stage_dir(run_id, STAGE)}/{STATE_FILE}"))


def category_labels(vocab: list[str]) -> list[str]:
    """Categories of a code column: the vocabulary then one label for rare/unseen values."""
    other = OTHER_CATEGORY
    while other in vocab:
        other = "_" + other
    return [*vocab, other]


def feature_frame(table: pa.Table, state: FeatureState) -> pd.DataFrame:
    """The model matrix of a feature table: the state's feature order, categoricals as ``category``
    with the FULL fitted category list (same value -> same code in every split), -1 codes -> NaN."""
    x = table.select(state.feature_names).to_pandas()
    for name in state.categorical_features:
        cats = category_labels(state.vocabularies.get(name, []))
        x[name] = pd.Categorical.from_codes(x[name].to_numpy(), categories=cats)
    return x


def load_feature_matrix(store: ArtifactStore, run_id: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(X, meta) of a split: X in the state's feature order, categoricals as ``category`` dtype.

    Every categorical column carries the FULL fitted category list (vocabulary + other), so that
    LightGBM sees the same code for the same value in every split; code -1 (null) becomes NaN.
    meta holds the carry-along columns (id, partition, event time and, when labelled, labels).
    """
    manifest = store.read_manifest(run_id, STAGE)
    if split not in manifest["outputs"] or split == "feature_state":
        raise DataError(f"run {run_id!r}: build_features has no split {split!r}")
    state = load_feature_state(store, run_id)
    files = manifest["outputs"][split]["files"]
    tables = [store.read_parquet(f["path"]) for f in files]
    table = pa.concat_tables(tables) if tables else None
    if table is None:
        raise DataError(f"run {run_id!r}: split {split!r} has no feature files")
    meta_cols = [c for c in table.column_names if c not in set(state.feature_names)]
    return feature_frame(table, state), table.select(meta_cols).to_pandas()


__all__ = ["STAGE", "feature_frame", "fit_partition", "load_feature_matrix", "load_feature_state", "run_features_stage",
           "transform_file"]
