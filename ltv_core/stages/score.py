"""score: the champion's feature state and models applied to the run's scoring partitions.

Which model scores is decided by the promotion stage, not here: ``champion.json`` names the run
whose artefacts are used, so a rejected or failed training run never reaches the predictions; and
partitions that did not pass this run's validation are never scored.

Each staged scoring file is one task on the stage's Dask cluster (``cluster.fan_out``; a
LocalCluster with one single-threaded worker per core by default, or the production cluster): the
worker reads it, transforms it with the champion's *own* fitted feature state, predicts it with the
champion's stack and writes ``score/predictions/<key>=<value>/part-0.parquet`` before it takes the
next file. Peak memory is one partition per worker, flat in the number of partitions. A small run
(fewer than ``scoring.local_cluster_min_rows`` staged rows) without a scheduler address is scored in
the stage's own process instead, the same way one file after the other: a LocalCluster's start-up
would cost more than it saves. An optional submission CSV is streamed from the written predictions
into one atomic write.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from ltv_core import catalog, lineage
from ltv_core.cluster import Job, dask_client, fan_out, scheduler_address
from ltv_core.config import DaskConfig
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.pipeline import Split, Stage
from ltv_core.promotion import champion_run, read_champion
from ltv_core.scoring import MODEL_RUN_COLUMN, Scorer
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore, StageTimer
from ltv_core.timing import Laps

log = logging.getLogger(__name__)

STAGE = Stage.SCORE
PREDICTIONS = "predictions"
SUBMISSION = "submission.csv"
STEPS = ("read", "features", "predict", "write")


def score_file(store_url: str, in_path: str, out_path: str, scorer: Scorer, partition: str) -> dict[str, Any]:
    """Worker task: score one staged file and write its predictions (atomic write). Returns the
    file's row count and the seconds (wall and this process's CPU) of each step, for the logs."""
    store = ArtifactStore(store_url)
    c0 = time.process_time()
    laps = Laps()
    table = scorer.read(store, in_path)
    scorer.check_id(table)
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


def _describe(res: dict[str, Any]) -> str:
    return f"{res['rows']} rows ({', '.join(f'{k} {v:.2f}s' for k, v in res['seconds'].items())})"


def _score_all(client: Any, store: ArtifactStore, scorer: Scorer, jobs: list[Job], phases: Laps) -> list[dict[str, Any]]:
    """Every file scored, in completion order (``client=None``: in this process). On a cluster,
    ``phases`` times the wait for the first result (the workers' first imports) and the rest."""
    results: list[dict[str, Any]] = []
    for _, res in fan_out(client, score_file, jobs, what="score", describe=_describe):
        res["done"] = len(results)
        results.append(res)
        if client is not None and len(results) == 1:
            phases.lap("first_result")
    phases.lap("other_results" if client is not None else "score_in_process")
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


def _rss_trend(results: list[dict[str, Any]]) -> dict[str, float] | None:
    """Workers' peak RSS after the first and after the last tenth of the tasks (in the order they
    finished), and overall: equal when memory is flat in the number of partitions."""
    if not results:
        return None
    rss = [r["worker_peak_rss_mb"] for r in sorted(results, key=lambda r: r["done"])]
    tenth = max(1, len(rss) // 10)
    return {"first_10pct": round(max(rss[:tenth]), 1), "last_10pct": round(max(rss[-tenth:]), 1),
            "max": round(max(rss), 1)}


def score_partitions(store: ArtifactStore, run_id: str, spec: DatasetSpec, model_run_id: str, *,
                     submission_csv: bool = False, prune_features: bool = True, dask: DaskConfig | None = None,
                     local_cluster_min_rows: int = 0, timer: StageTimer | None = None,
                     pins: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Score every staged scoring partition of ``run_id`` with the model of ``model_run_id``, one
    Dask task per partition (``dask``: the pipeline's cluster settings; None: a LocalCluster).
    Without a scheduler address and with fewer staged rows than ``local_cluster_min_rows``, the
    partitions are scored here instead, one after the other: same files, same predictions
    (``tests/integration/test_stages.py::test_score_stage_on_worker_processes``)."""
    timer = timer or StageTimer(STAGE, run_id)
    t0 = time.perf_counter()
    phases = Laps()
    files = catalog.staged_partitions(store, run_id, Split.SCORING)
    staged_rows = sum(int(f.get("rows", 0)) for f in files)
    on_cluster = bool(files) and (bool(scheduler_address(dask or DaskConfig()))
                                  or staged_rows >= local_cluster_min_rows)
    # on the cluster, one transform thread per task: the workers are the parallelism. (Loading the
    # model while the cluster boots was measured slower: on 2 cores the workers' imports compete.)
    scorer = Scorer.load(store, model_run_id, spec, prune=prune_features, threads=1 if on_cluster else None,
                         pins=pins)
    stage_dir = store.begin_stage(run_id, STAGE)
    if files:  # the pruned plan, made once here from the first file (and shipped with the scorer)
        scorer.prepare(store, files[0]["path"])
    phases.lap("load_and_plan")
    log.info("scoring %d staged rows in %d partitions %s", staged_rows, len(files),
             "on the Dask cluster" if on_cluster else
             f"in this process (fewer than scoring.local_cluster_min_rows={local_cluster_min_rows} rows and no "
             "Dask scheduler address)")

    def jobs(shipped: Scorer) -> list[Job]:
        return [Job(f"{f['partition']}", f["path"],
                    (store.url, f["path"], f"{stage_dir}/{PREDICTIONS}/{spec.partition.key}={f['partition']}/part-0.parquet",
                     shipped, f["partition"])) for f in files]

    if on_cluster:
        with dask_client(dask) as client:
            phases.lap("cluster_start")
            results = _score_all(client, store, scorer, jobs(client.scatter(scorer, broadcast=True)), phases)
        phases.lap("cluster_close")
    else:
        results = _score_all(None, store, scorer, jobs(scorer), phases)
    results.sort(key=lambda r: r["partition"])
    written = [{k: r[k] for k in ("path", "partition", "rows")} for r in results]
    rows = sum(r["rows"] for r in results)
    csv_path = f"{stage_dir}/{SUBMISSION}"
    if submission_csv:
        _write_submission(store, csv_path, written, spec.id_column, f"pred_{spec.labels.primary}",
                          spec.primary.revenue)
    seconds = time.perf_counter() - t0
    steps = {k: round(sum(r["seconds"][k] for r in results), 2) for k in STEPS}
    timer.inputs.update({"model_run_id": model_run_id, "model_attempts": dict(pins or {}),
                         "partitions": [f["partition"] for f in files]})
    timer.outputs = {"predictions": store.uri(f"{stage_dir}/{PREDICTIONS}"), "files": written,
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
    return {"run_id": run_id, "stage": STAGE.value, "model_run_id": model_run_id, "rows": rows,
            "partitions": len(files), "predictions": store.uri(f"{stage_dir}/{PREDICTIONS}"),
            "manifest": store.uri(manifest), "submission_csv": store.uri(csv_path) if submission_csv else None,
            "task_seconds": steps, "task_cpu_seconds": timer.extra["task_cpu_seconds"],
            "workers": timer.extra["workers"], "worker_peak_rss_mb": timer.extra["worker_peak_rss_mb"],
            "phases": phases.seconds, "on_cluster": on_cluster}


NO_SCORING = "no scoring window: the data set has no test partitions for this run (nothing to score)"


def skip(ctx: RunContext, timer: StageTimer, model_run_id: str | None) -> dict[str, Any]:
    """A run without a scoring window (a data set without a test root) ends cleanly: the stage
    commits a manifest saying why it scored nothing; the DAG marks its task skipped
    (``tests/integration/test_stages.py::test_a_data_set_without_test_root_runs_to_a_clean_success``)."""
    ctx.store.begin_stage(ctx.run_id, STAGE)
    log.warning("run %s: %s", ctx.run_id, NO_SCORING)
    timer.extra = {"rows": 0, "skipped": NO_SCORING, "model_run_id": model_run_id}
    manifest = ctx.store.commit_stage(ctx.run_id, STAGE, timer.finish({"model_run_id": model_run_id}))
    return {"run_id": ctx.run_id, "stage": STAGE.value, "model_run_id": model_run_id, "rows": 0, "partitions": 0,
            "predictions": None, "manifest": ctx.store.uri(manifest), "skipped": NO_SCORING}


def run(ctx: RunContext) -> dict[str, Any]:
    """The run's scoring partitions, scored with the current champion (never an unpromoted model)."""
    if not ctx.store.is_committed(ctx.run_id, Stage.VALIDATE):
        raise DataError(f"run {ctx.run_id!r}: the validate stage did not pass, so its scoring partitions are not "
                        f"scored (its result is in the newest attempt under "
                        f"{ctx.store.uri(ctx.store.stage_dir(ctx.run_id, Stage.VALIDATE))}/attempts)")
    timer = ctx.timer(STAGE)  # validate must have checked this very ingest attempt (ltv_core.lineage)
    pointer = read_champion(ctx.store)
    if Split.SCORING not in catalog.staged_outputs(ctx.store, ctx.run_id):
        return skip(ctx, timer, None if pointer is None else str(pointer["run_id"]))
    if pointer is None:
        champion_run(ctx.store)  # raises: no champion yet
    sc = ctx.config.scoring
    return score_partitions(ctx.store, ctx.run_id, ctx.spec, str(pointer["run_id"]), submission_csv=sc.submission_csv,
                            prune_features=sc.prune_features, dask=ctx.config.dask,
                            local_cluster_min_rows=sc.local_cluster_min_rows, timer=timer,
                            pins=lineage.model_pins(pointer))
