"""A real Airflow 3 backfill of ``ltv_daily`` over two logical dates, run by the scheduler.

Starts ``airflow api-server`` (tasks report to its Execution API) and ``airflow scheduler``
(LocalExecutor) on the session's SQLite DB, serializes and unpauses the DAG, runs
``airflow backfill create`` for exactly two cron fire times (03:00 UTC) and waits for both runs.
The backfill passes no conf: each run derives its windows from its logical date with the defaults
of config/pipeline.yaml, on a tiny synthetic data set generated to cover both runs' windows.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from ltv_core.config import load_config
from ltv_core.spec import load_spec
from ltv_core.store import ArtifactStore, safe_run_id
from ltv_core.pipeline import SPLITS
from ltv_core.windows import describe, labelled_windows, resolve

from support.configs import small_pipeline_config
from support.processes import AirflowApi

if TYPE_CHECKING:
    from support.processes import ProcessGroup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

DAG_ID = "ltv_daily"
# Two consecutive fire times of the DAG's schedule "0 3 * * *" (the logical dates of the runs).
LOGICAL_DATES = (datetime(2025, 11, 4, 3, tzinfo=timezone.utc), datetime(2025, 11, 5, 3, tzinfo=timezone.utc))
ROWS_PER_PARTITION = 60
SMALL_WINDOWS = {"train_hours": 12, "validation_hours": 6, "holdout_hours": 6, "scoring_hours": 6}
BIN = Path(sys.executable).parent  # .venv/bin/airflow
# Seconds for both runs after `backfill create` (about 4-8 minutes on a busy 2-core box).
RUNS_TIMEOUT = float(os.environ.get("LTV_BACKFILL_TIMEOUT", 1200))
STAGES = ("ingest", "validate", "build_features", "resample", "train_classifier", "train_regressor",
          "train_baselines", "fit_stacker", "optimize_gate", "evaluate", "drift", "promote", "score")


def _iso(t: datetime) -> str:
    return t.isoformat()


def _hours(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds() // 3600)


def make_data(out: Path, config_path: str) -> dict[str, dict]:
    """Tiny data set covering the default windows of both logical dates; returns each date's windows.

    Labelled partitions span the first date's train start .. the second date's holdout end; test
    partitions span ``scoring_hours`` before the first date .. the second date, so each run scores
    the day before its own logical date.
    """
    from ltv_core.synthetic import generate_dataset

    config, first, last = load_config(config_path), LOGICAL_DATES[0], LOGICAL_DATES[-1]
    spec = load_spec(config.dataset_spec)
    labelled = [labelled_windows(d, config.windows, spec) for d in LOGICAL_DATES]
    train_start, labelled_end = labelled[0]["train"].start, labelled[-1]["holdout"].end
    test_start = first - timedelta(hours=config.windows.scoring_hours)
    generate_dataset(out, seed=23, rows_per_partition=ROWS_PER_PARTITION,
                     start=train_start.strftime("%Y-%m-%dT%H"), train_hours=_hours(train_start, labelled_end),
                     test_start=test_start.strftime("%Y-%m-%dT%H"), test_hours=_hours(test_start, last))
    expected = {}
    for d in LOGICAL_DATES:
        windows, chosen = resolve(d, config, spec, str(out))
        got = describe(windows, chosen)
        assert set(got) == set(SPLITS), got
        for split, w in got.items():  # every window complete: one partition per hour
            assert w["partitions"] == _hours(windows[split].start, windows[split].end), (d, w)
        expected[_iso(d)] = got
    return expected


@dataclass
class AirflowStack:
    env: dict[str, str]
    api: str
    group: ProcessGroup

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        for attempt in range(4):
            proc = subprocess.run([str(BIN / "airflow"), *args], env=self.env, text=True, capture_output=True,
                                  timeout=timeout)
            # SQLite allows one writer: a CLI write can collide with the scheduler's and is rolled
            # back whole ("database is locked"), so it is safe to retry (PostgreSQL never needs this).
            if proc.returncode == 0 or "database is locked" not in proc.stderr + proc.stdout:
                break
            time.sleep(2 + 3 * attempt)
        if check and proc.returncode != 0:
            raise AssertionError(f"`airflow {' '.join(args)}` exited {proc.returncode}:\n"
                                 f"{(proc.stdout + proc.stderr)[-4000:]}\n{self.group.report()}")
        return proc

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        return AirflowApi(self.api, timeout=10).request(method, path, body)

    def get(self, path: str) -> dict:
        return self.request("GET", path)


@pytest.fixture
def airflow_stack(airflow_db, dask_scheduler_address, process_group, tmp_path) -> AirflowStack:
    """api-server + scheduler (LocalExecutor, parallelism 2) on the session DB; stopped after the
    test by ``process_group`` (every process, task processes included, pass or fail)."""
    port = process_group.free_port()
    api = f"http://127.0.0.1:{port}"
    env = {
        **airflow_db,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        # No scheduled runs: unpausing a catchup=False DAG would otherwise queue a run for the latest
        # 03:00 (today's data does not exist here); backfill runs are queued by the backfill itself.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # Tasks report to the Execution API of this api-server; all processes sign/verify with one secret.
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # the test reads the REST API, loopback only
        # Two task processes at a time on a small box: OpenMP threads (LightGBM) must not spin-wait.
        "OMP_WAIT_POLICY": "PASSIVE",
        # Backfills pass no conf: the pipeline config (small windows, test-sized boosting) comes from
        # the environment, as a deployment would choose it.
        "LTV_PIPELINE_CONFIG": small_pipeline_config(tmp_path, windows=SMALL_WINDOWS),
        "LTV_DATA_ROOT": str(tmp_path / "data"),
        "LTV_STORE_ROOT": str(tmp_path / "store"),
        "LTV_DASK_SCHEDULER": dask_scheduler_address,
    }
    airflow = str(BIN / "airflow")
    process_group.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], env)
    process_group.start("scheduler", [airflow, "scheduler"], env)
    return AirflowStack(env, api, process_group)


def _backfill_runs(stack: AirflowStack) -> dict[str, dict]:
    runs = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns?run_type=backfill&limit=100")["dag_runs"]
    return {r["dag_run_id"]: r for r in runs}


def _task_states(stack: AirflowStack, run_id: str) -> dict[str, str]:
    tis = stack.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100")
    return {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}


def test_backfill_two_logical_dates(airflow_stack):
    stack = airflow_stack
    t0 = time.monotonic()
    # `backfill create` needs the DAG serialized (a deployment's dag-processor does it; here one
    # `airflow dags reserialize`, in the background while the data set is generated).
    prep: dict[str, subprocess.CompletedProcess[str]] = {}
    reserialize = threading.Thread(target=lambda: prep.update(out=stack.cli("dags", "reserialize", check=False)))
    reserialize.start()
    expected = make_data(Path(stack.env["LTV_DATA_ROOT"]), stack.env["LTV_PIPELINE_CONFIG"])
    reserialize.join()
    assert prep["out"].returncode == 0, (prep["out"].stdout + prep["out"].stderr)[-4000:]
    stack.group.wait_until(lambda: bool(stack.get("/api/v2/monitor/health")), "api-server not healthy", timeout=120)
    # The scheduler starts backfill runs of UNPAUSED DAGs only (paused: they stay queued);
    # same as `airflow dags unpause ltv_daily`, without another CLI start-up.
    assert stack.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})["is_paused"] is False
    t_ready = time.monotonic()

    # --from-date / --to-date are inclusive and compared with the cron fire times (03:00 UTC): a
    # bare date means midnight, so `--to-date 2025-11-05` would stop at the 2025-11-04 run.
    out = stack.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", _iso(LOGICAL_DATES[0]),
                    "--to-date", _iso(LOGICAL_DATES[-1]), "--max-active-runs", "1")
    t_created = time.monotonic()

    runs: dict[str, dict] = {}
    deadline = time.monotonic() + RUNS_TIMEOUT
    while True:
        try:
            runs = _backfill_runs(stack)
        except OSError:
            pass  # api-server busy: ask again
        states = {r: v["state"] for r, v in runs.items()}
        if len(runs) == len(LOGICAL_DATES) and all(s in ("success", "failed") for s in states.values()):
            break
        if time.monotonic() > deadline or stack.group.dead():
            pytest.fail(f"backfill runs not finished after {time.monotonic() - t_created:.0f}s: {states}\n"
                        f"backfill create said:\n{out.stdout[-1500:]}\n{stack.group.report(60)}")
        time.sleep(2)
    t_done = time.monotonic()

    # The operator's view: `airflow dags list-runs` (JSON on its last stdout line).
    listed = json.loads(stack.cli("dags", "list-runs", DAG_ID, "-o", "json").stdout.strip().splitlines()[-1])
    backfill = {r["run_id"]: r for r in listed if r["run_id"].startswith("backfill__")}
    assert sorted(r["logical_date"][:19] for r in backfill.values()) == \
        [d.strftime("%Y-%m-%dT%H:%M:%S") for d in LOGICAL_DATES], backfill
    tasks = {run_id: _task_states(stack, run_id) for run_id in backfill}
    failed = {r: {t: s for t, s in ts.items() if s != "success"} for r, ts in tasks.items()}
    assert all(v["state"] == "success" for v in backfill.values()) and not any(failed.values()), \
        f"{ {r: v['state'] for r, v in backfill.items()} } {failed}\n{stack.group.report(80)}"

    root = Path(stack.env["LTV_STORE_ROOT"])
    store = ArtifactStore(str(root))
    assert sorted(p.name for p in (root / "runs").iterdir()) == sorted(safe_run_id(r) for r in backfill)
    for run_id, run in backfill.items():
        assert set(STAGES) == set(tasks[run_id]), tasks[run_id]
        for task_id in tasks[run_id]:  # every task is a stage that committed its own run folder
            assert (root / "runs" / safe_run_id(run_id) / task_id / "_manifest.json").is_file(), (run_id, task_id)
            assert store.is_committed(run_id, task_id), (run_id, task_id)
        ingest = store.read_manifest(run_id, "ingest")
        want = expected[_iso(datetime.fromisoformat(run["logical_date"]))]
        for split in SPLITS:  # windows derived from the run's own logical date, no conf
            got = ingest["inputs"]["windows"][split]
            assert (got["start"], got["end"], got["partitions"]) == \
                (want[split]["start"], want[split]["end"], want[split]["partitions"]), (run_id, split, got)
        assert store.read_manifest(run_id, "validate")["success"] is True
    # in order: the second run was measured against the first run's champion on its own holdout
    first, second = sorted(backfill, key=lambda r: backfill[r]["logical_date"])
    assert store.read_manifest(first, "evaluate")["champion_run_id"] is None
    assert store.read_manifest(second, "evaluate")["champion_run_id"] == first
    for run_id in backfill:
        assert store.read_manifest(run_id, "score")["rows"] > 0
    print(f"\n[backfill timing] setup+data {t_ready - t0:.1f}s, backfill create {t_created - t_ready:.1f}s, "
          f"2 runs {t_done - t_created:.1f}s")
