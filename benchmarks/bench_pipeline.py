"""Whole-DAG benchmark: every stage of a run on N generated rows, against a floor.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline.py --rows 100000 --mode cli
    PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline.py --rows 20000 --mode both --compete

1. Generates (once, cached under ``--data-dir``, default ``.bench/pipeline/s<seed>-n<rows>``) about
   ``--rows`` synthetic rows with ``python -m ltv_core generate``: exactly the partitions one run
   reads with the pipeline config's windows (defaults: 96 h training + 24 h validation + 24 h
   holdout labelled, 24 h to score), ``rows / hours`` rows per hourly partition. The logical date
   is the first one at which the newest labelled partition has matured (as ``make demo`` picks it).
2. ``--mode cli``: ``python -m ltv_core run`` in a subprocess (the stages one after the other in one
   process, each Dask stage with the product's LocalCluster). Stage seconds are the CLI's own
   "stage X ... done in N s" lines (the stage's whole call, first imports included);
   ``stages_manifest`` are the seconds each stage recorded in its manifest in the store.
   ``total_s`` is the subprocess's wall time (interpreter start-up and imports included).
3. ``--mode airflow``: a real Airflow 3 scheduler with a parallel executor: ``airflow db migrate``
   (SQLite in the work dir), then ``airflow api-server`` + ``airflow scheduler`` on loopback with
   ``LocalExecutor`` and ``AIRFLOW__CORE__PARALLELISM=--parallelism`` (``airflow dags test`` would
   run the tasks one after the other), ``airflow dags reserialize``, unpause and trigger one run
   through the REST API. Dask: ``--airflow-dask external`` (default) starts ``dask scheduler`` and
   one single-threaded ``dask worker`` per core on loopback and hands the address to the tasks as
   ``$LTV_DASK_SCHEDULER``; ``local`` leaves the product default (a LocalCluster per Dask stage
   inside the task process). Stage seconds are the task instances' durations (REST API);
   ``total_s`` is the DAG run's end minus its queued time; ``setup_s`` the services' start-up.
4. The floor, in a subprocess, under the same conditions (competitor included): a bare
   ``pyarrow.parquet.read_table`` of every generated file, one float32 matrix of the training
   window's rows with one column per raw feature column (numbers as they are, strings as dictionary
   codes, lists and maps as their lengths), one plain ``lightgbm.train`` (default parameters,
   ``--floor-rounds`` rounds, ``num_threads`` = cores) on log1p of the primary label, and a bare
   predict on the scoring rows' matrix; ``total_s`` = read + matrix + fit + predict. It runs twice,
   with the OpenMP runtime's default wait policy and with ``OMP_WAIT_POLICY=PASSIVE`` (what
   ``ltv_core`` sets): the faster is the floor, the other is ``floor.other_policy``.
   ``ratio`` = each mode's ``total_s`` / the floor's.
   ``--mode floor`` measures only the floor.
5. ``--compete``: one CPU-bound ``python -c "while True: pass"`` process runs for the whole
   measurement (pipeline and floor) and is killed at the end; it is left out of the RSS.

``cpu_s`` is the CPU seconds of the CLI's process tree (``getrusage`` of reaped children; for
Airflow ``cpu_s_with_setup``: every process of the stack, set-up and services included): on a
shared machine the wall times move with the load, the CPU seconds much less.
Peak RSS is sampled every 200 ms over every process the benchmark started (the CLI and its Dask
workers; or Airflow's api-server, scheduler, executor and task processes and the Dask processes),
never the benchmark itself or the competitor. Progress goes to stderr; the last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import AirflowApi as Api, Competitor, RssSampler, Services, free_port  # noqa: E402  (benchmarks/harness.py)

from ltv_core.pipeline import DAG_ID, STAGES  # noqa: E402

SPEC_PATH = "config/datasets/smadex_d7.yaml"
BIN = Path(sys.executable).parent  # .venv/bin: airflow, dask
# --quick (tests only): small windows and test-sized boosting, so that a few thousand rows run in
# well under a minute; the same stages and code paths.
QUICK_WINDOWS = {"train_hours": 12, "validation_hours": 6, "holdout_hours": 6, "scoring_hours": 6}
# ltv_core.inprocess's lines, after the CLI's "%(asctime)s" (millisecond timestamps)
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*"
DONE_LINE = re.compile(STAMP + r"stage (\w+) of run .*: done in ([0-9.]+)s")
START_LINE = re.compile(STAMP + r"stage (\w+) of run .*: starting")


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def log(msg: str) -> None:
    print(f"[bench_pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _mb(n: float) -> float:
    return round(n / 2**20, 1)


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def children_cpu() -> float:
    """CPU seconds of every terminated, reaped descendant (a process's rusage includes the children
    it reaped): a subprocess tree's CPU, whatever the load did to its wall time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- configs and data ----------------------------------------------------------------------------------
def quick_configs(folder: Path) -> dict[str, str]:
    """The product's pipeline and models configs with small windows and test-sized boosting."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    models = yaml.safe_load((ROOT / "config/models.yaml").read_text())
    models["lgbm"]["learning_rate"] = 0.1
    models.update({"num_boost_round": 40, "early_stopping_rounds": 5})
    for part in ("classifier", "regressor", "baselines"):
        models[part]["param_search"] = [{}]
    models["classifier"]["calibration_methods"] = ["platt"]
    models["stacker"]["n_folds"] = 2
    models["evaluation"]["n_boot"] = 50
    pipe = yaml.safe_load((ROOT / "config/pipeline.yaml").read_text())
    pipe["windows"].update(QUICK_WINDOWS)
    pipe["models_config"] = str(folder / "quick-models.yaml")
    (folder / "quick-models.yaml").write_text(yaml.safe_dump(models))
    (folder / "quick-pipeline.yaml").write_text(yaml.safe_dump(pipe))
    return {"config": str(folder / "quick-pipeline.yaml"), "models_config": str(folder / "quick-models.yaml")}


def run_hours(config_path: str | None) -> tuple[int, int]:
    """(labelled hours, scoring hours) a run reads with this pipeline config."""
    from ltv_core.config import load_config

    w = load_config(config_path).windows
    return w.train_hours + w.validation_hours + w.holdout_hours + 2 * w.gap_hours, w.scoring_hours


def ensure_data(data_dir: Path, rows: int, seed: int, labelled_hours: int, scoring_hours: int) -> dict[str, Any]:
    """Exactly the partitions one run reads, ``rows`` rows in all (generated once per argument set)."""
    rpp = max(1, math.ceil(rows / (labelled_hours + scoring_hours)))
    marker = data_dir / "generated.json"
    key = {"rows": rows, "seed": seed, "rows_per_partition": rpp, "train_hours": labelled_hours,
           "test_hours": scoring_hours}
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("key") == key:
            log(f"reusing generated data in {data_dir} ({info['rows']} rows)")
            return info
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    log(f"generating {labelled_hours} labelled + {scoring_hours} test partitions of ~{rpp} rows (seed {seed}) "
        f"in {data_dir}")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ltv_core", "generate", "--out", str(data_dir / "data"), "--seed", str(seed),
         "--rows-per-partition", str(rpp), "--train-hours", str(labelled_hours), "--test-hours", str(scoring_hours)],
        cwd=ROOT, env=child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"generation failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    info = {"key": key, "rows": summary["rows"]["train"] + summary["rows"]["test"],
            "train_rows": summary["rows"]["train"], "test_rows": summary["rows"]["test"],
            "seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info))
    log(f"generated {info['rows']} rows in {info['seconds']}s")
    return info


def logical_date(config_path: str | None, data_root: str) -> str:
    from ltv_core.config import load_config
    from ltv_core.spec import load_spec
    from ltv_core.windows import suggest_logical_date

    config = load_config(config_path)
    return suggest_logical_date(load_spec(ROOT / config.dataset_spec), config, data_root).isoformat()


def child_env(**extra: str) -> dict[str, str]:
    """This environment for the pipeline's processes, without a developer's LTV_* overrides."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LTV_DATA_ROOT", "LTV_STORE_ROOT", "LTV_DASK_SCHEDULER", "LTV_PIPELINE_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["LTV_PROJECT_ROOT"] = str(ROOT)
    env.update(extra)
    return env


def manifest_seconds(store_root: Path, run_id: str) -> dict[str, float]:
    """Each committed stage's own ``seconds`` (its manifest in the store)."""
    from ltv_core.store import safe_run_id

    out = {}
    for stage in STAGES:
        m = store_root / "runs" / safe_run_id(run_id) / stage.value / "_manifest.json"
        if m.is_file():
            out[stage.value] = json.loads(m.read_text()).get("seconds")
    return out


def staged_rows(store_root: Path, run_id: str) -> dict[str, int] | None:
    from ltv_core.store import safe_run_id

    m = store_root / "runs" / safe_run_id(run_id) / "ingest" / "_manifest.json"
    if not m.is_file():
        return None
    return {s: o["rows"] for s, o in json.loads(m.read_text())["outputs"].items()}


# --- the CLI ----------------------------------------------------------------------------------------------
def run_cli(work: Path, data_root: str, logical: str, configs: dict[str, str], exclude: list[int]) -> dict[str, Any]:
    store_root = work / "cli-store"
    run_id = "bench_cli"
    argv = [sys.executable, "-m", "ltv_core", "run", "--run-id", run_id, "--logical-date", logical,
            "--data-root", data_root, "--store-root", str(store_root)]
    for key, value in configs.items():
        argv += [f"--{key.replace('_', '-')}", value]
    log_path = work / "cli.log"
    log(f"cli: {' '.join(argv[1:])}  (log {log_path})")
    stages: dict[str, float] = {}
    started: dict[str, float] = {}
    with open(work / "cli.stdout.json", "w") as out, open(log_path, "w") as err_log, \
            RssSampler(interval=0.2, relist_every=5, exclude=exclude, include_self=False) as rss:
        t0, cpu0 = time.perf_counter(), children_cpu()
        proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            err_log.write(line)
            if m := DONE_LINE.search(line):
                # the stage's seconds from the two lines' timestamps (the line itself rounds to 0.1 s)
                stage = m.group(2)
                stages[stage] = round(_stamp(m.group(1)) - started[stage], 3) if stage in started \
                    else float(m.group(3))
                log(f"cli: {stage} done in {stages[stage]:.1f}s")
            elif m := START_LINE.search(line):
                started[m.group(2)] = _stamp(m.group(1))
                log(f"cli: {m.group(2)} started")
        code = proc.wait()
        total = time.perf_counter() - t0
        cpu = children_cpu() - cpu0
    ok = code == 0 and set(stages) == {s.value for s in STAGES}
    if not ok:
        log(f"cli: FAILED (exit {code}); last lines of {log_path}:\n" +
            "\n".join(log_path.read_text(errors="replace").splitlines()[-40:]))
    return {"stages": stages, "stages_manifest": manifest_seconds(store_root, run_id), "total_s": round(total, 1),
            "stages_sum_s": round(sum(stages.values()), 1), "cpu_s": round(cpu, 1),
            "cores_busy": round(cpu / total, 2), "peak_rss_mb": _mb(rss.peak),
            "peak_rss_mb_largest_process": _mb(rss.child_peak), "ok": ok, "exit_code": code,
            "rows_by_split": staged_rows(store_root, run_id), "run_id": run_id}


# --- Airflow ------------------------------------------------------------------------------------------------
def _seconds_between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 1)


def start_dask(services: Services, env: dict[str, str], workers: int) -> str:
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # what a Dask nanny sets for its worker (no nannies here): one OpenMP/BLAS thread per worker thread
    denv = {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    dask = str(BIN / "dask")
    services.start("dask-scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--dashboard-address", "127.0.0.1:0", "--no-show"], denv, cwd=str(ROOT))
    for i in range(workers):
        services.start(f"dask-worker-{i}", [dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                            "--no-dashboard", "--memory-limit", "4GiB", "--host", "127.0.0.1",
                                            "--name", f"bench-{i}"], denv, cwd=str(ROOT))

    def ready() -> bool:
        with Client(address, timeout="3s") as client:
            return len(client.scheduler_info(n_workers=-1)["workers"]) >= workers

    services.wait_until(ready, f"Dask scheduler {address} with {workers} workers", timeout=120)
    return address


def run_airflow(work: Path, data_root: str, logical: str, configs: dict[str, str], exclude: list[int],
                parallelism: int, dask_mode: str, timeout: float) -> dict[str, Any]:
    from ltv_core.demo import airflow_env

    home = work / "airflow-home"
    store_root = work / "airflow-store"
    port = free_port()
    api = Api(f"http://127.0.0.1:{port}")
    env = {k: v for k, v in airflow_env(home).items()
           if k not in ("LTV_DATA_ROOT", "LTV_STORE_ROOT", "LTV_DASK_SCHEDULER", "LTV_PIPELINE_CONFIG")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the triggered run
        "AIRFLOW__API__BASE_URL": api.base,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api.base}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # loopback only, read by this benchmark
        "LTV_STORE_ROOT": str(store_root),
        "LTV_DATA_ROOT": data_root,
    })
    airflow = str(BIN / "airflow")
    services = Services(work / "airflow-logs")
    run_id = "bench_airflow"
    result: dict[str, Any] = {"ok": False, "run_id": run_id, "executor": "LocalExecutor", "parallelism": parallelism,
                              "metadata_db": "sqlite", "logs": str(services.log_dir)}
    cpu0 = children_cpu()
    with RssSampler(interval=0.2, relist_every=5, exclude=exclude, include_self=False) as rss:
        try:
            t0 = time.perf_counter()
            if dask_mode == "external":
                workers = os.cpu_count() or 1
                env["LTV_DASK_SCHEDULER"] = start_dask(services, env, workers)
                result["dask"] = f"external: dask scheduler + {workers} single-threaded workers at " \
                                 f"{env['LTV_DASK_SCHEDULER']} ($LTV_DASK_SCHEDULER)"
            else:
                result["dask"] = "local: the product default (a LocalCluster per Dask stage in the task process)"
            log(f"airflow: db migrate in {home}")
            mig = subprocess.run([airflow, "db", "migrate"], env=env, cwd=ROOT, capture_output=True, text=True)
            if mig.returncode != 0:
                raise RuntimeError(f"airflow db migrate failed:\n{(mig.stdout + mig.stderr)[-3000:]}")
            services.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], env,
                           cwd=str(ROOT))
            services.start("scheduler", [airflow, "scheduler"], env, cwd=str(ROOT))
            ser = subprocess.run([airflow, "dags", "reserialize"], env=env, cwd=ROOT, capture_output=True, text=True)
            if ser.returncode != 0:
                raise RuntimeError(f"airflow dags reserialize failed:\n{(ser.stdout + ser.stderr)[-3000:]}")
            services.wait_until(lambda: bool(api.get("/api/v2/monitor/health")), "api-server healthy", timeout=180)
            api.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
            result["setup_s"] = round(time.perf_counter() - t0, 1)
            conf = {"data_root": data_root, "store_root": str(store_root), **configs}
            log(f"airflow: services up in {result['setup_s']}s (LocalExecutor, parallelism {parallelism}); "
                f"triggering {run_id} at {logical}")
            t1 = time.perf_counter()
            api.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                        {"dag_run_id": run_id, "logical_date": logical, "conf": conf})
            run = wait_run(api, services, run_id, timeout)
            wall = time.perf_counter() - t1
            tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100")
            tasks = {ti["task_id"]: ti for ti in tis["task_instances"]}
            result.update({
                "state": run["state"],
                "stages": {s.value: round(tasks[s.value]["duration"], 1) for s in STAGES
                           if s.value in tasks and tasks[s.value].get("duration") is not None},
                "task_states": {t: ti["state"] for t, ti in tasks.items()},
                "total_s": _seconds_between(run.get("queued_at"), run.get("end_date")),
                "run_start_to_end_s": _seconds_between(run.get("start_date"), run.get("end_date")),
                "wall_s": round(wall, 1),
                # the run's critical path: task ends minus the run's start, the waits in between included
                "stage_windows": {s.value: [_seconds_between(run.get("start_date"), tasks[s.value].get("start_date")),
                                            _seconds_between(run.get("start_date"), tasks[s.value].get("end_date"))]
                                  for s in STAGES if s.value in tasks},
            })
            result["stages_sum_s"] = round(sum(result["stages"].values()), 1)
            result["ok"] = run["state"] == "success" and all(ti["state"] == "success" for ti in tasks.values())
            if not result["ok"]:
                log(f"airflow: run {run['state']}; task states {result['task_states']}\n{services.report(40)}")
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, the other mode still runs
            result["error"] = f"{type(exc).__name__}: {exc}"[:4000]
            log(f"airflow: FAILED: {result['error']}")
        finally:
            log("airflow: stopping the services")
            services.stop(grace=15)
    # every process of the stack (set-up, services and Dask included), once they all were stopped
    result["cpu_s_with_setup"] = round(children_cpu() - cpu0, 1)
    result["peak_rss_mb"] = _mb(rss.peak)
    result["peak_rss_mb_largest_process"] = _mb(rss.child_peak)
    result["stages_manifest"] = manifest_seconds(store_root, run_id)
    result["rows_by_split"] = staged_rows(store_root, run_id)
    return result


def wait_run(api: Api, services: Services, run_id: str, timeout: float) -> dict[str, Any]:
    """Poll the run until it ends, saying each task's start and end on stderr."""
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    while True:
        try:
            run = api.get(path)
            tis = api.get(f"{path}/taskInstances?limit=100")["task_instances"]
        except OSError:
            time.sleep(1)  # the api-server is busy: ask again
            continue
        for ti in tis:
            state = ti["state"]
            if state != seen.get(ti["task_id"]) and state in ("running", "success", "failed", "upstream_failed"):
                took = f" in {ti['duration']:.1f}s" if ti.get("duration") and state != "running" else ""
                log(f"airflow: {ti['task_id']} {state}{took}")
                seen[ti["task_id"]] = state
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} not finished after {timeout:.0f}s: {seen}")
        if services.dead():
            raise RuntimeError(f"Airflow services exited: {services.dead()}\n{services.report(40)}")
        time.sleep(1)


# --- the floor ------------------------------------------------------------------------------------------------
def _lengths(chunk: Any) -> Any:
    """Entries per row of a list or map array (Arrow has no length kernel for maps); null -> NaN."""
    import numpy as np

    lengths = np.diff(chunk.offsets.to_numpy()).astype(np.float32)
    if chunk.null_count:
        lengths[chunk.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return lengths


def _matrix(tables: list[Any], columns: list[Any]) -> Any:
    """One float32 column per raw feature column: numbers as they are, strings as dictionary codes,
    lists and maps as their lengths (nulls -> NaN)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.concat_tables(tables)
    n = table.num_rows
    X = np.empty((n, len(columns)), dtype=np.float32, order="F")
    for j, col in enumerate(columns):
        arr = table.column(col.name)
        t = arr.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_timestamp(t):
            if pa.types.is_timestamp(t):
                arr = pc.cast(arr, pa.int64())
            X[:, j] = arr.to_numpy(zero_copy_only=False).astype(np.float32)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            codes = pc.dictionary_encode(arr).combine_chunks().indices
            X[:, j] = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.float32)
        else:  # list / map
            X[:, j] = np.concatenate([_lengths(c) for c in arr.chunks]) if arr.num_chunks else np.nan
    return X


def _floor_child(data_root: str, train_hours: int, rounds: int, out_json: str, omp_wait_policy: str) -> None:
    # before the OpenMP runtime loads (with lightgbm): "default" = the runtime's own policy (idle
    # threads spin a while, then sleep), as a plain LightGBM user gets it (importing ltv_core set PASSIVE)
    if omp_wait_policy == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = omp_wait_policy
    import lightgbm as lgb
    import numpy as np
    import pyarrow.parquet as pq

    from ltv_core.spec import load_spec

    spec = load_spec(ROOT / SPEC_PATH)
    train_root, test_root = Path(spec.root_path("train", data_root)), Path(spec.root_path("test", data_root))
    train_parts = sorted(p for p in train_root.iterdir() if p.is_dir())
    test_parts = sorted(p for p in test_root.iterdir() if p.is_dir())
    files = {p: sorted(p.glob("*.parquet")) for p in train_parts + test_parts}
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    tables = {p: [pq.read_table(f) for f in fs] for p, fs in files.items()}
    t1 = time.perf_counter()
    columns = [c for c in spec.feature_columns if c.name in tables[train_parts[0]][0].schema.names]
    train_tables = [t for p in train_parts[:train_hours] for t in tables[p]]
    X = _matrix(train_tables, columns)
    y = np.log1p(np.concatenate([t.column(spec.primary.revenue).to_numpy() for t in train_tables]))
    Xs = _matrix([t for p in test_parts for t in tables[p]], columns)
    t2 = time.perf_counter()
    booster = lgb.train({"objective": "regression", "num_threads": cores, "verbose": -1},
                        lgb.Dataset(X, y), num_boost_round=rounds)
    t3 = time.perf_counter()
    pred = booster.predict(Xs, num_threads=cores)
    t4 = time.perf_counter()
    Path(out_json).write_text(json.dumps({
        "read_s": round(t1 - t0, 2), "matrix_s": round(t2 - t1, 2), "fit_s": round(t3 - t2, 2),
        "predict_s": round(t4 - t3, 2), "total_s": round(t4 - t0, 2),
        "rows_read": sum(t.num_rows for ts in tables.values() for t in ts), "files_read": sum(map(len, files.values())),
        "train_rows": int(X.shape[0]), "scoring_rows": int(Xs.shape[0]), "columns": int(X.shape[1]),
        "rounds": rounds, "num_threads": cores, "trees": booster.num_trees(), "mean_pred": float(np.mean(pred)),
        "omp_wait_policy": omp_wait_policy}))


def run_floor(work: Path, data_root: str, train_hours: int, rounds: int) -> dict[str, Any]:
    """The floor under the OpenMP runtime's default wait policy and under PASSIVE (what ltv_core
    sets for the pipeline), each in a fresh process; the faster one is the floor, the other is
    reported beside it (``other_policy``)."""
    runs = []
    for policy in ("default", "PASSIVE"):
        out_json = work / f"floor-{policy}.json"
        out_json.unlink(missing_ok=True)
        p = mp.get_context("spawn").Process(target=_floor_child,
                                            args=(data_root, train_hours, rounds, str(out_json), policy))
        p.start()
        p.join()
        if p.exitcode != 0 or not out_json.exists():
            raise SystemExit(f"floor process ({policy}) failed with exit code {p.exitcode}")
        runs.append(json.loads(out_json.read_text()))
    best, other = sorted(runs, key=lambda r: r["total_s"])
    return {**best, "other_policy": {k: other[k] for k in ("omp_wait_policy", "read_s", "matrix_s", "fit_s",
                                                            "predict_s", "total_s")}}


# --- main ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows to generate (all of one run's windows)")
    ap.add_argument("--mode", choices=("cli", "airflow", "both", "floor"), default="cli",
                    help="floor: only the floor (what the machine does for these rows at best)")
    ap.add_argument("--compete", action="store_true",
                    help="one CPU-bound competing process runs during the whole measurement")
    ap.add_argument("--quick", action="store_true",
                    help="tests only: small windows and test-sized boosting (not for numbers)")
    ap.add_argument("--seed", type=int, default=11, help="generator seed (11 passes validation at 20k rows; 7 did not)")
    ap.add_argument("--airflow-dask", choices=("external", "local"), default="external",
                    help="external: a dask scheduler + workers on loopback ($LTV_DASK_SCHEDULER); "
                         "local: the product default LocalCluster inside each task")
    ap.add_argument("--parallelism", type=int, default=None,
                    help="AIRFLOW__CORE__PARALLELISM of the LocalExecutor (default: cores)")
    ap.add_argument("--floor-rounds", type=int, default=200)
    ap.add_argument("--data-dir", default=None, help="generated data (cached); default .bench/pipeline/s<seed>-n<rows>")
    ap.add_argument("--work-dir", default=None, help="stores, Airflow home and logs (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds the Airflow run may take")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    parallelism = args.parallelism or cores
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-pipeline-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir or ROOT / ".bench/pipeline" / f"s{args.seed}-n{args.rows}{'-quick' if args.quick else ''}")
    t_all = time.perf_counter()
    vcs = git_commit()  # the code measured: at the start (a commit made while it runs is not it)
    configs = quick_configs(work / "configs") if args.quick else {}
    labelled_hours, scoring_hours = run_hours(configs.get("config"))
    generated = ensure_data(data_dir.resolve(), args.rows, args.seed, labelled_hours, scoring_hours)
    data_root = str(data_dir.resolve() / "data")
    logical = logical_date(configs.get("config"), data_root)
    from ltv_core.config import load_config

    train_hours = load_config(configs.get("config")).windows.train_hours
    modes = {"both": ("cli", "airflow"), "floor": ()}.get(args.mode, (args.mode,))
    load = {"start": load_avg()}
    result: dict[str, Any] = {
        "rows": generated["rows"], "rows_requested": args.rows, "seed": args.seed, "mode": args.mode,
        "compete": args.compete, "quick": args.quick, "logical_date": logical,
        "hours": {"labelled": labelled_hours, "scoring": scoring_hours},
        "executor": {}, "generate_s": generated["seconds"],
    }
    competitor = Competitor() if args.compete else nullcontext()
    with competitor as comp:
        exclude = [comp.pid] if comp is not None else []
        if comp is not None:
            result["competitor_pid"] = comp.pid
            log(f"competing CPU-bound process started: pid {comp.pid}")
        for mode in modes:
            load[f"before_{mode}"] = load_avg()
            if mode == "cli":
                result["executor"]["cli"] = ("none: python -m ltv_core run, the stages one after the other in one "
                                             "process; Dask stages on the product default LocalCluster")
                result["cli"] = run_cli(work, data_root, logical, configs, exclude)
            else:
                result["executor"]["airflow"] = f"LocalExecutor (airflow scheduler + api-server, SQLite), " \
                                                f"parallelism {parallelism}, Dask {args.airflow_dask}"
                result["airflow"] = run_airflow(work, data_root, logical, configs, exclude, parallelism,
                                                args.airflow_dask, args.timeout)
            load[f"after_{mode}"] = load_avg()
            m = result[mode]
            log(f"{mode}: ok={m['ok']} total {m.get('total_s')}s, peak RSS {m.get('peak_rss_mb')} MB")
        log(f"floor: bare read + {args.floor_rounds}-round LightGBM fit + bare predict")
        result["floor"] = run_floor(work, data_root, train_hours, args.floor_rounds)
        log(f"floor: {result['floor']['total_s']}s ({result['floor']})")
    if args.compete:
        result["competitor_cpu_s"] = comp.cpu_seconds
    load["end"] = load_avg()
    floor = result["floor"]["total_s"]
    result["ratio"] = {m: round(result[m]["total_s"] / floor, 1) if result[m].get("total_s") else None for m in modes}
    result["ok"] = all(result[m]["ok"] for m in modes)
    result.update({**vcs, "cpu_count": cores, "load_avg": load,
                   "bench_seconds": round(time.perf_counter() - t_all, 1),
                   "when": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if args.keep:
        result["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
