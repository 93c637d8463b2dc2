"""ltv_core.cluster: the LocalCluster a stage starts when no scheduler address is configured, and
the fan-out loop the Dask stages share."""

from __future__ import annotations

import os

import pytest

from ltv_core.cluster import Job, dask_client, fan_out, scheduler_address
from ltv_core.config import DaskConfig
from ltv_core.errors import DataError


def _worker_trim(cfg: DaskConfig) -> set[str | None]:
    with dask_client(cfg) as client:
        return set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values())


def test_local_cluster_workers_keep_glibc_trim_default(monkeypatch):
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_=65536 (slower transform); the default unsets it."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    assert _worker_trim(DaskConfig(n_workers=1, memory_limit="1GiB")) == {None}


def test_local_cluster_trim_threshold_is_configurable(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    assert _worker_trim(DaskConfig(n_workers=1, memory_limit="1GiB", malloc_trim_threshold=131072)) == {"131072"}


def test_scheduler_address_precedence(monkeypatch):
    monkeypatch.setenv("LTV_DASK_SCHEDULER", "tcp://env:8786")
    assert scheduler_address(DaskConfig(scheduler_address="tcp://cfg:8786")) == "tcp://cfg:8786"
    assert scheduler_address(DaskConfig()) == "tcp://env:8786"
    monkeypatch.delenv("LTV_DASK_SCHEDULER")
    assert scheduler_address(DaskConfig()) is None


def test_negative_trim_threshold_is_refused():
    with pytest.raises(ValueError):
        DaskConfig(malloc_trim_threshold=-1)


def test_local_cluster_leaves_this_processs_environment_as_it_was(monkeypatch):
    """Dask's nannies write OMP_NUM_THREADS=1 (and more) into the parent's os.environ; a scoring
    process spawned later would predict on one core. The workers keep their settings."""
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = dict(os.environ)
    with dask_client(DaskConfig(n_workers=1, memory_limit="1GiB")) as client:
        assert dict(os.environ) == before
        assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}
    assert dict(os.environ) == before


def _square_or_fail(x: int, path: str) -> int:
    if x == 3:
        raise OSError(f"disk gone while reading {'the file' if path.startswith('/x') else path}")
    if x == 4:
        raise DataError(f"bad rows in {path}")
    return x * x


def test_fan_out_in_process_and_on_a_cluster_give_the_same_results(caplog):
    jobs = [Job(f"part {i}", f"/x/{i}", (i, f"/x/{i}")) for i in (0, 1, 2)]
    caplog.set_level("INFO", logger="ltv_core.cluster")
    here = [(j.label, r) for j, r in fan_out(None, _square_or_fail, jobs, what="square", describe=str)]
    assert here == [("part 0", 0), ("part 1", 1), ("part 2", 4)]
    assert "[square 3/3] part 2: 4" in caplog.text
    with dask_client(DaskConfig(n_workers=1, processes=False)) as client:
        there = sorted((j.label, r) for j, r in fan_out(client, _square_or_fail, jobs, what="square"))
    assert there == here


@pytest.mark.parametrize("on_cluster", [False, True])
def test_fan_out_names_the_failing_job(on_cluster):
    """A worker error that does not name the file is wrapped in a DataError naming the stage's step,
    the job and its file; a DataError that already names its file passes through unchanged."""
    def run(jobs):
        if not on_cluster:
            return list(fan_out(None, _square_or_fail, jobs, what="square"))
        with dask_client(DaskConfig(n_workers=1, processes=False)) as client:
            return list(fan_out(client, _square_or_fail, jobs, what="square"))

    with pytest.raises(DataError, match=r"^square part 3 \(/x/3\) failed: OSError: disk gone while reading the file$"):
        run([Job("part 3", "/x/3", (3, "/x/3"))])
    with pytest.raises(DataError, match=r"^bad rows in /y/4$"):
        run([Job("part 4", "/y/4", (4, "/y/4"))])


# An Airflow 3 task process, as far as multiprocessing sees it: ``__main__`` is the ``airflow``
# console script (no module spec) and the supervisor has blocked the database URL.
AIRFLOW_LIKE_MAIN = '''
import sys
from airflow.__main__ import main
if __name__ == "__main__":
    import airflow.settings
    from airflow.sdk.execution_time.supervisor import block_orm_access
    block_orm_access()
    from ltv_core.cluster import dask_client
    from ltv_core.config import DaskConfig
    with dask_client(DaskConfig(n_workers=1, memory_limit="1GiB")) as client:
        print("worker says", client.submit(sum, [1, 2]).result(timeout=60))
    print("main file kept:", sys.modules["__main__"].__file__ == sys.argv[0])
'''


def test_local_cluster_starts_under_a_console_script_main(tmp_path):
    """Spawned workers would re-import the task's ``airflow`` script and die on the blocked DB URL
    ("Nanny failed to start worker process"): ltv_core.cluster.hide_main_path."""
    import subprocess
    import sys

    script = tmp_path / "airflow"
    script.write_text(AIRFLOW_LIKE_MAIN)
    env = {k: v for k, v in os.environ.items() if k != "LTV_DASK_SCHEDULER"}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow_home")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "worker says 3" in proc.stdout
    assert "main file kept: True" in proc.stdout
