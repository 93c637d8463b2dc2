"""Shared fixtures. Airflow runs against a throw-away AIRFLOW_HOME with a SQLite DB."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.processes import ProcessGroup, free_port

ROOT = Path(__file__).resolve().parent.parent

# Set before anything imports airflow: every test session gets its own home and DB.
_HOME = Path(tempfile.mkdtemp(prefix="ltv-airflow-home-"))
os.environ.setdefault("LTV_PROJECT_ROOT", str(ROOT))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
# Tests must not pick up a developer's data or store roots, nor mirror to their MLflow server.
for var in ("LTV_DATA_ROOT", "LTV_STORE_ROOT", "LTV_DASK_SCHEDULER", "LTV_PIPELINE_CONFIG", "MLFLOW_TRACKING_URI"):
    os.environ.pop(var, None)

BIN = Path(sys.executable).parent  # .venv/bin: dask, airflow


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated SQLite metadata DB; returns the environment for `airflow` subprocesses."""
    from ltv_core.demo import airflow_env, run_airflow

    env = airflow_env(_HOME)
    run_airflow(["db", "migrate"], env)
    return env


@pytest.fixture
def process_group(tmp_path) -> Iterator[ProcessGroup]:
    """A ProcessGroup logging to ``tmp_path/logs``; every process in it is stopped after the test,
    pass or fail, and the teardown fails if anything survived."""
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield group
    finally:
        group.stop(grace=15)


# --------------------------------------------------------------------------------------------------
# Dask: one real scheduler + two worker processes for the whole session.

DASK_WORKERS = 2


@pytest.fixture(scope="session")
def dask_scheduler_address(tmp_path_factory) -> Iterator[str]:
    """``tcp://127.0.0.1:<port>`` of a real ``dask scheduler`` with two single-threaded ``dask worker``
    processes, shared by the session.

    Use it in-process (``monkeypatch.setenv("LTV_DASK_SCHEDULER", address)``) or in a subprocess
    environment (``{**env, "LTV_DASK_SCHEDULER": address}``, e.g. for ``airflow dags test``) so the
    Dask stages connect to it instead of starting a LocalCluster each. Loopback only; every process
    is started with setsid and killed with its process group at the end of the session.
    """
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # What a Dask nanny sets for its worker (we run without nannies): one BLAS/OpenMP thread per
    # worker thread, so LightGBM / numpy in tasks do not oversubscribe the cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    group = ProcessGroup(tmp_path_factory.mktemp("dask-logs"), env)
    dask = str(BIN / "dask")
    try:
        group.start("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", "127.0.0.1:0", "--no-show"])
        for i in range(DASK_WORKERS):
            group.start(f"worker-{i}", [dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                        "--no-dashboard", "--memory-limit", "2GiB", "--host", "127.0.0.1",
                                        "--name", f"ltv-test-{i}"])

        def ready() -> bool:
            with Client(address, timeout="3s") as client:
                return len(client.scheduler_info(n_workers=-1)["workers"]) >= DASK_WORKERS

        group.wait_until(ready, f"Dask scheduler {address} did not come up with {DASK_WORKERS} workers", timeout=90)
        yield address
    finally:
        group.stop(grace=5)
