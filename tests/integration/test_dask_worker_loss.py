"""A Dask worker SIGKILLed in the middle of a stage is survived (issue 16, item 5): the scheduler
moves the lost worker's tasks to the other one, every partition is staged exactly once (writes are
atomic, so a half-written file of the dead worker is replaced whole) and the stage commits.

Its own ``dask scheduler`` + two ``dask worker --no-nanny`` processes (a nanny would restart the
killed worker and hide the loss), stopped after the test."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ltv_core.context import make_context
from ltv_core.inprocess import run_stages
from ltv_core.pipeline import Stage

from support.configs import small_pipeline_config
from support.processes import ProcessGroup, free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-02T12:00",
    "validation_start": "2025-10-02T12:00", "validation_end": "2025-10-02T18:00",
    "holdout_start": "2025-10-02T18:00", "holdout_end": "2025-10-03T00:00",
}


def test_a_worker_killed_during_ingest_is_survived(tmp_path, monkeypatch):
    from distributed import Client

    from ltv_core.synthetic import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, seed=9, rows_per_partition=1500, train_hours=48, test_hours=4)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    group = ProcessGroup(tmp_path / "logs", env)
    dask = str(BIN / "dask")
    try:
        group.start("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", "127.0.0.1:0", "--no-show"])
        workers = [group.start(f"worker-{i}", [dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                               "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"])
                   for i in range(2)]

        def ready() -> bool:
            with Client(address, timeout="3s") as client:
                return len(client.scheduler_info(n_workers=-1)["workers"]) == 2

        group.wait_until(ready, "Dask scheduler with two workers", timeout=90)
        monkeypatch.setenv("LTV_DASK_SCHEDULER", address)
        store = tmp_path / "store"
        params = {"config": small_pipeline_config(tmp_path), "data_root": str(data), "store_root": str(store),
                  **WINDOWS}
        ctx = make_context("lossy", "2025-10-31T00:00", params)
        killed = threading.Event()

        def kill_when_staging() -> None:
            deadline = time.time() + 300
            while time.time() < deadline:
                if len(list(store.glob("runs/lossy/ingest/attempts/*/train/*/part-0.parquet"))) >= 3:
                    os.kill(workers[1].pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_staging, daemon=True)
        killer.start()
        result = run_stages(ctx, [Stage.INGEST])[Stage.INGEST]
        killer.join(timeout=5)
        assert killed.is_set(), "the worker was killed while ingest staged its partitions"
        assert workers[1].wait(timeout=10) == -signal.SIGKILL
        manifest = ctx.store.read_manifest("lossy", Stage.INGEST)
        files = manifest["outputs"]["train"]["files"]
        assert len(files) == 36 and len({f["partition"] for f in files}) == 36, "every partition once"
        assert sum(pq.read_metadata(f["path"]).num_rows for f in files) == manifest["outputs"]["train"]["rows"]
        assert result["rows"]["train"] == manifest["outputs"]["train"]["rows"] > 0
        assert not list(store.rglob(".tmp-*")), "no half-written file left visible"
    finally:
        group.stop(grace=5)
