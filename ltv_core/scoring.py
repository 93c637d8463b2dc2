"""The score stage: the champion's feature state and models applied to new partitions.

Each staged scoring file is one task on the stage's Dask cluster (``ltv_core.cluster``: a
LocalCluster with one single-threaded worker per core by default, or the production cluster): the
worker reads it, transforms it with the champion's *own* fitted feature state (vocabularies,
statistics, encodings), predicts it with the champion's stack and writes
``score/predictions/<key>=<value>/part-0.parquet`` before it takes the next file. Peak memory is
one partition per worker, flat in the number of partitions. Files are independent, so the stage
scales with the workers; on one machine, worker processes keep every core busy where a single
process left them idle during the reads and the transform (docs/BENCHMARKS.md). A small run (fewer
than ``scoring.local_cluster_min_rows`` staged rows) without a scheduler address is scored in the
stage's own process instead, the same way one file after the other: a LocalCluster's start-up would
cost more than it saves. An optional submission CSV is streamed from the written predictions into
one atomic write.

Which model scores is decided by the promotion stage, not here: ``champion.json`` names the run
whose artefacts are used, so a rejected or failed training run never reaches the predictions.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ltv_core.cluster import dask_client, scheduler_address
from ltv_core.config import DaskConfig
from ltv_core.errors import DataError
from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.stage import category_labels, feature_frame, load_feature_state
from ltv_core.features.state import FeatureState
from ltv_core.ingest import STAGE as INGEST_STAGE
from ltv_core.models import DenseMatrix
from ltv_core.models.training import FittedStack
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer

log = logging.getLogger(__name__)

STAGE = "score"
MODEL_RUN_COLUMN = "model_run_id"


@dataclass
class Scorer:
    """A trained run's feature state + stack, applied to raw (staged) tables."""

    run_id: str
    spec: DatasetSpec
    state: FeatureState
    stack: FittedStack
    prune: bool = True  # compute only the features some tree splits on (see _plan)
    threads: int | None = None  # the transform's threads; None: every core (a notebook, one process)

    @classmethod
    def load(cls, store: ArtifactStore, run_id: str, spec: DatasetSpec, prune: bool = True,
             threads: int | None = None) -> Scorer:
        from ltv_core.model_stages import load_stack

        return cls(run_id, spec, load_feature_state(store, run_id), load_stack(store, run_id), prune, threads)

    def __post_init__(self) -> None:
        self.builder = FeatureBuilder.from_state(self.spec, self.state, threads=self.threads or os.cpu_count() or 1)
        self._plan_cache: list[Any] = []
        self._categories = {c: category_labels(self.state.vocabularies.get(c, []))
                            for c in self.state.categorical_features}
        self._local = threading.local()  # per thread: predict_arrow's matrix memory, reused (grow-only)

    def __getstate__(self) -> dict[str, Any]:
        """Shipped to Dask workers: the fields and the plan; the builder (a thread pool) and the
        matrix buffer are made afresh on the other side."""
        return {"fields": (self.run_id, self.spec, self.state, self.stack, self.prune, self.threads),
                "plan": list(self._plan_cache)}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.run_id, self.spec, self.state, self.stack, self.prune, self.threads = d["fields"]
        self.__post_init__()
        self._plan_cache.extend(d["plan"])

    def _plan(self, table: pa.Table) -> Any:
        """The pruned transform's plan, made once from the first table: features no tree of the
        stack splits on are left null instead of computed. Predictions are unchanged (tested);
        the transform does about half the work for a typical champion."""
        if not self.prune:
            return None
        if not self._plan_cache:
            used = self.stack.used_features()
            unknown = used - set(self.state.feature_names)
            if unknown:  # models and feature state disagree: compute everything, say why
                log.warning("not pruning features: the models split on %d column(s) unknown to the feature "
                            "state, e.g. %s", len(unknown), sorted(unknown)[:5])
                self._plan_cache.append(None)
            else:
                plan = self.builder.plan_for(used, self.state, table)
                log.info("scoring computes %d of %d features (the ones the models split on) from %d raw columns",
                         len(used), len(self.state.feature_names), len(plan.columns))
                self._plan_cache.append(plan)
        return self._plan_cache[0]

    def read(self, store: ArtifactStore, path: str, max_rows: int | None = None) -> pa.Table:
        """A staged partition, reading only the raw columns the transform uses: those of the pruned
        plan once it is made (from the first partition), else every feature column; plus the id.
        Map columns whose keys nothing reads are read by their value leaf alone. ``max_rows``: the
        file's first rows only."""
        plan = self._plan_cache[0] if self._plan_cache else None
        columns = [*self.builder.input_columns(plan), self.spec.id_column]
        table = store.read_parquet(path, columns, skip_missing=True, max_rows=max_rows,
                                   map_values_only=plan.values_only if plan is not None else ())
        if self.prune and not self._plan_cache:
            self._plan(table)
        return table

    def prepare(self, store: ArtifactStore, path: str) -> None:
        """Make the pruned plan from the first rows of ``path`` (all the plan looks at), before the
        partitions are scored elsewhere: the stage ships the scorer with its plan to the workers."""
        if self.prune and not self._plan_cache:
            self.read(store, path, max_rows=self.builder.PLAN_SAMPLE_ROWS)

    def features(self, table: pa.Table, reuse_buffer: bool = False) -> DenseMatrix:
        """The model matrix of raw rows, straight from the builder (no Arrow table, no category frame).

        ``reuse_buffer``: fill the scorer's own memory (overwritten by the next such call, so only
        for a matrix consumed at once): a fresh 50k x 300 float32 matrix per partition spent more
        time in first-touch page faults than in copying the features."""
        out = None
        if reuse_buffer:
            n, k = table.num_rows, len(self.state.feature_names)
            buffer = getattr(self._local, "buffer", None)
            if buffer is None or buffer.size < n * k:
                buffer = self._local.buffer = np.empty(n * k, np.float32)
            out = buffer[: n * k].reshape(k, n).T  # column-major (n, k) view
        M = self.builder.matrix(table, self.state, plan=self._plan(table), out=out)
        # the builder wrote the codes from the state's own vocabularies: no need to check them again
        return DenseMatrix.from_values(M, self.state.feature_names, self._categories, check_codes=False)

    def features_frame(self, table: pa.Table) -> pd.DataFrame:
        """Every feature (no pruning) as a pandas frame with ``category`` columns (notebooks, debugging)."""
        return feature_frame(self.builder.transform(table, self.state), self.state)

    def predict_table(self, table: pa.Table) -> pd.DataFrame:
        """Row id, p_buyer, pred_<h>, value_<h> and the model's run id for every row of ``table``."""
        return self.predict_arrow(table).to_pandas()

    def predict_arrow(self, table: pa.Table) -> pa.Table:
        """``predict_table`` as an Arrow table, the form the stage writes."""
        self._check_id(table)
        return self.prediction_table(table, self.stack.predict(self.features(table, reuse_buffer=True)))

    def prediction_table(self, table: pa.Table, pred: pd.DataFrame) -> pa.Table:
        """Row id, the stack's prediction columns and the model's run id: the id column is the
        input's own Arrow array and the run id one repeated scalar (no Python objects per row)."""
        arrays = [table.column(self.spec.id_column)] + [pa.array(pred[c].to_numpy()) for c in pred.columns]
        arrays.append(pa.repeat(pa.scalar(self.run_id, pa.string()), table.num_rows))
        return pa.Table.from_arrays(arrays, names=[self.spec.id_column, *map(str, pred.columns), MODEL_RUN_COLUMN])

    def _check_id(self, table: pa.Table) -> None:
        if self.spec.id_column not in table.column_names:
            raise DataError(f"table to score lacks the id column {self.spec.id_column!r}")


def _partitions(store: ArtifactStore, run_id: str, split: str) -> list[dict[str, Any]]:
    outputs = store.read_manifest(run_id, INGEST_STAGE)["outputs"]
    if split not in outputs:
        raise DataError(f"run {run_id!r}: ingest staged no {split!r} split (splits: {sorted(outputs)})")
    return sorted(outputs[split]["files"], key=lambda f: f["partition"])


def stream_predictions(store: ArtifactStore, run_id: str, scorer: Scorer, split: str = "scoring"
                       ) -> Iterator[tuple[str, pd.DataFrame]]:
    """(partition, predictions) for each staged file of ``split``, one in memory at a time."""
    for f in _partitions(store, run_id, split):
        yield f["partition"], scorer.predict_table(scorer.read(store, f["path"]))


def score_file(store_url: str, in_path: str, out_path: str, scorer: Scorer, partition: str) -> dict[str, Any]:
    """Worker task: score one staged file and write its predictions (atomic write). Returns the
    file's row count and the seconds (wall and this process's CPU) of each step, for the logs.
    Any failure names the partition and the file (the Airflow log shows the worker's error)."""
    try:
        return _score_file(store_url, in_path, out_path, scorer, partition)
    except Exception as exc:
        raise DataError(f"scoring partition {partition} ({in_path}) failed: {type(exc).__name__}: {exc}") from exc


class _Laps:
    """Wall seconds between consecutive ``lap`` calls, by name (the logs' step timings)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 4)
        self._t = now


def _score_file(store_url: str, in_path: str, out_path: str, scorer: Scorer, partition: str) -> dict[str, Any]:
    store = ArtifactStore(store_url)
    c0 = time.process_time()
    laps = _Laps()
    table = scorer.read(store, in_path)
    scorer._check_id(table)
    laps.lap("read")
    X = scorer.features(table, reuse_buffer=True)  # consumed at once: predictions are new arrays
    laps.lap("features")
    pred = scorer.prediction_table(table, scorer.stack.predict(X))
    laps.lap("predict")
    # dictionary pages only where values repeat (the run id): on unique floats and ids they are
    # built and thrown away, which cost more than half of the write
    store.write_parquet(out_path, pred, use_dictionary=[MODEL_RUN_COLUMN])
    laps.lap("write")
    return {"path": out_path, "partition": partition, "rows": pred.num_rows, "seconds": laps.seconds,
            "cpu_seconds": time.process_time() - c0, "worker": os.getpid(),
            "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _out_path(stage_dir: str, key: str, f: dict[str, Any]) -> str:
    return f"{stage_dir}/predictions/{key}={f['partition']}/part-0.parquet"


def _record(results: list[dict[str, Any]], res: dict[str, Any], total: int) -> None:
    res["done"] = len(results)
    results.append(res)
    log.info("[score %d/%d] %s: %d rows (%s)", len(results), total, res["partition"], res["rows"],
             ", ".join(f"{k} {v:.2f}s" for k, v in res["seconds"].items()))


def _score_on_cluster(store: ArtifactStore, scorer: Scorer, files: list[dict[str, Any]], stage_dir: str, key: str,
                      dask: DaskConfig | None, phases: _Laps) -> list[dict[str, Any]]:
    """Every file scored by a task on the cluster, in completion order. ``phases`` times the
    cluster's start, the wait for the first result (the workers' first imports), the rest of the
    tasks and the cluster's close."""
    from distributed import as_completed

    results: list[dict[str, Any]] = []
    with dask_client(dask) as client:
        phases.lap("cluster_start")
        shipped = client.scatter(scorer, broadcast=True)
        futures = [client.submit(score_file, store.url, f["path"], _out_path(stage_dir, key, f), shipped,
                                 f["partition"], pure=False) for f in files]
        for fut in as_completed(futures):
            res = fut.result()  # a failed file fails the stage, naming the worker's error
            if not results:
                phases.lap("first_result")
            _record(results, res, len(files))
        phases.lap("other_results")
    phases.lap("cluster_close")
    return results


def _score_here(store: ArtifactStore, scorer: Scorer, files: list[dict[str, Any]], stage_dir: str, key: str,
                phases: _Laps) -> list[dict[str, Any]]:
    """Every file scored in this process, one after the other (the transform and LightGBM on
    every core)."""
    results: list[dict[str, Any]] = []
    for f in files:
        _record(results, score_file(store.url, f["path"], _out_path(stage_dir, key, f), scorer, f["partition"]),
                len(files))
    phases.lap("score_in_process")
    return results


def _write_submission(store: ArtifactStore, path: str, written: list[dict[str, Any]], id_column: str,
                      prediction: str, revenue: str) -> None:
    """``<id>,<revenue>`` for every scored row, in partition order, one atomic write (streamed:
    one partition's two columns in memory at a time)."""
    schema = pa.schema([(id_column, pa.string()), (revenue, pa.float64())])
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")  # ids hold no commas
    with store.open_atomic(path) as fh:
        fh.write(f"{id_column},{revenue}\n".encode())
        with pa_csv.CSVWriter(fh, schema, write_options=options) as writer:
            for f in written:
                t = store.read_parquet(f["path"], [id_column, prediction])
                writer.write_table(pa.table([t.column(id_column).cast(pa.string()),
                                             t.column(prediction).cast(pa.float64())], schema=schema))


def run_score_stage(store: ArtifactStore, run_id: str, spec: DatasetSpec, model_run_id: str, *,
                    submission_csv: bool = False, prune_features: bool = True,
                    dask: DaskConfig | None = None, local_cluster_min_rows: int = 0) -> dict[str, Any]:
    """Score every staged scoring partition of ``run_id`` with the model of ``model_run_id``, one
    Dask task per partition (``dask``: the pipeline's cluster settings; None: a LocalCluster).
    Without a scheduler address and with fewer staged rows than ``local_cluster_min_rows``, the
    partitions are scored here instead, one after the other: same files, same predictions."""
    timer = StageTimer(STAGE, run_id)
    t0 = time.perf_counter()
    phases = _Laps()
    files = _partitions(store, run_id, "scoring")
    staged_rows = sum(int(f.get("rows", 0)) for f in files)
    on_cluster = bool(files) and (bool(scheduler_address(dask or DaskConfig()))
                                  or staged_rows >= local_cluster_min_rows)
    # on the cluster, one transform thread per task: the workers are the parallelism. (Loading the
    # model while the cluster boots was measured slower: on 2 cores the workers' imports compete.)
    scorer = Scorer.load(store, model_run_id, spec, prune=prune_features, threads=1 if on_cluster else None)
    stage_dir = store.begin_stage(run_id, STAGE)
    if files:  # the pruned plan, made once here from the first file (and shipped with the scorer)
        scorer.prepare(store, files[0]["path"])
    phases.lap("load_and_plan")
    log.info("scoring %d staged rows in %d partitions %s", staged_rows, len(files),
             "on the Dask cluster" if on_cluster else
             f"in this process (fewer than scoring.local_cluster_min_rows={local_cluster_min_rows} rows and no "
             "Dask scheduler address)")
    key = spec.partition.key
    results = (_score_on_cluster(store, scorer, files, stage_dir, key, dask, phases) if on_cluster
               else _score_here(store, scorer, files, stage_dir, key, phases))
    results.sort(key=lambda r: r["partition"])
    written = [{k: r[k] for k in ("path", "partition", "rows")} for r in results]
    rows = sum(r["rows"] for r in results)
    csv_path = f"{stage_dir}/submission.csv"
    if submission_csv:
        _write_submission(store, csv_path, written, spec.id_column, f"pred_{spec.labels.primary}",
                          spec.primary.revenue)
    seconds = time.perf_counter() - t0
    steps = {k: round(sum(r["seconds"][k] for r in results), 2) for k in ("read", "features", "predict", "write")}
    timer.inputs = {"model_run_id": model_run_id, "partitions": [f["partition"] for f in files]}
    timer.outputs = {"predictions": store.uri(f"{stage_dir}/predictions"), "files": written,
                     "submission_csv": store.uri(csv_path) if submission_csv else None}
    timer.extra = {"rows": rows, "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
                   "model_run_id": model_run_id, "task_seconds": steps,
                   "task_cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 2),
                   "workers": len({r["worker"] for r in results}),
                   "worker_peak_rss_mb": _rss_trend(results), "phases": phases.seconds,
                   "on_cluster": on_cluster}
    manifest = store.commit_stage(run_id, STAGE, timer.finish({"model_run_id": model_run_id}))
    log.info("scored %d rows in %d partitions with model %s (%.1fs; summed over tasks: %s)", rows, len(files),
             model_run_id, seconds, ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()))
    return {"run_id": run_id, "model_run_id": model_run_id, "rows": rows, "partitions": len(files),
            "predictions": store.uri(f"{stage_dir}/predictions"), "manifest": store.uri(manifest),
            "submission_csv": store.uri(csv_path) if submission_csv else None,
            "task_seconds": steps, "task_cpu_seconds": timer.extra["task_cpu_seconds"],
            "workers": timer.extra["workers"], "worker_peak_rss_mb": timer.extra["worker_peak_rss_mb"],
            "phases": phases.seconds, "on_cluster": on_cluster}


def _rss_trend(results: list[dict[str, Any]]) -> dict[str, float] | None:
    """Workers' peak RSS after the first and after the last tenth of the tasks (in the order they
    finished), and overall: equal when memory is flat in the number of partitions."""
    if not results:
        return None
    rss = [r["worker_peak_rss_mb"] for r in sorted(results, key=lambda r: r["done"])]
    tenth = max(1, len(rss) // 10)
    return {"first_10pct": round(max(rss[:tenth]), 1), "last_10pct": round(max(rss[-tenth:]), 1),
            "max": round(max(rss), 1)}


__all__ = ["MODEL_RUN_COLUMN", "STAGE", "Scorer", "run_score_stage", "score_file", "stream_predictions"]
