"""Shared fixtures. Airflow runs against a throw-away AIRFLOW_HOME with a SQLite DB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set before anything imports airflow: every test session gets its own home and DB.
_HOME = Path(tempfile.mkdtemp(prefix="ltv-airflow-home-"))
os.environ.setdefault("LTV_PROJECT_ROOT", str(ROOT))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
# Tests must not pick up a developer's data or store roots.
for var in ("LTV_DATA_ROOT", "LTV_STORE_ROOT", "LTV_DASK_SCHEDULER", "LTV_PIPELINE_CONFIG"):
    os.environ.pop(var, None)

BIN = Path(sys.executable).parent  # .venv/bin: dask, airflow


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated SQLite metadata DB; returns the environment for `airflow` subprocesses."""
    from ltv_core.demo import airflow_env, run_airflow

    env = airflow_env(_HOME)
    run_airflow(["db", "migrate"], env)
    return env


# --------------------------------------------------------------------------------------------------
# Background processes: each started with setsid, stopped by process group (then by session, so
# nothing they started survives).


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _session_members(sids: set[int]) -> dict[int, int]:
    """Live (non-zombie) processes whose session id is in ``sids``: pid -> pgid (Linux /proc)."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        state, pgid, sid = fields[0], int(fields[2]), int(fields[3])
        if sid in sids and state != b"Z":
            members[int(entry)] = pgid
    return members


class ProcessGroup:
    """Long-running subprocesses, each started with setsid (own session, own process group).

    Every process logs to ``<log_dir>/<name>.log``. ``stop()`` sends SIGTERM to each process group
    (last started first), then SIGKILLs everything left in the sessions after ``grace`` seconds. The session sweep
    matters for Airflow: its task supervisor moves each task process into a process group of its
    own (``setpgid``), which a kill of the scheduler's group alone would miss.
    """

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(env if env is not None else os.environ)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_path(name), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env or self.env, cwd=str(ROOT), start_new_session=True)
        finally:
            log.close()
        self.procs[name] = proc  # setsid: sid == pgid == pid
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def dead(self) -> dict[str, int]:
        """Processes that exited already, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def report(self, lines: int = 40) -> str:
        """Exit codes and log tails of every process, for assertion messages."""
        out = []
        for name, proc in self.procs.items():
            rc = proc.poll()
            state = "running" if rc is None else f"exited {rc}"
            out.append(f"----- {name} (pid {proc.pid}, {state}) {self.log_path(name)} -----\n"
                       f"{log_tail(self.log_path(name), lines)}")
        return "\n".join(out)

    def members(self, names: list[str] | None = None) -> dict[int, int]:
        """Live processes of our sessions (children and grandchildren included): pid -> pgid."""
        for proc in self.procs.values():
            proc.poll()  # reap our direct children: zombies do not count
        return _session_members({p.pid for n, p in self.procs.items() if names is None or n in names})

    def _wait_empty(self, seconds: float, names: list[str] | None = None) -> dict[int, int]:
        deadline = time.monotonic() + seconds
        left = self.members(names)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.members(names)
        return left

    free_port = staticmethod(free_port)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.5) -> None:
        """Poll ``ready()`` until true; fail early when a process died, with every log tail."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not ready yet, remember why
                last = exc
            dead = self.dead()
            if dead or time.monotonic() > deadline:
                why = f"processes exited: {dead}" if dead else f"timed out after {timeout:.0f}s"
                raise RuntimeError(f"{what} ({why}; last error: {last!r})\n{self.report()}")
            time.sleep(interval)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM each group in reverse start order (clients before servers), waiting for it to go,
        then SIGKILL whatever is left after ``grace`` seconds in total; nothing survives."""
        deadline = time.monotonic() + grace
        for name, proc in reversed(self.procs.items()):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            self._wait_empty(max(0.0, deadline - time.monotonic()), [name])
        left = self.members()
        for pid, pgid in left.items():
            for kill in (lambda: os.killpg(pgid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        left = self._wait_empty(5.0)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        if left:
            raise RuntimeError(f"processes survived SIGKILL: {sorted(left)}")


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


def fast_models_config(folder: Path) -> str:
    """config/models.yaml with test-sized boosting (fewer, faster rounds; fewer bootstrap draws):
    the same code paths, seconds instead of minutes on tiny data."""
    import yaml

    raw = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    raw["lgbm"]["learning_rate"] = 0.1
    raw["num_boost_round"] = 300
    raw["early_stopping_rounds"] = 20
    raw["evaluation"]["n_boot"] = 100
    path = Path(folder) / "models-fast.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def small_pipeline_config(folder: Path, *, windows: dict | None = None, dask: dict | None = None,
                          fast_models: bool = True) -> str:
    """config/pipeline.yaml with overrides, written to ``folder``; returns its path."""
    import yaml

    raw = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    raw["windows"].update(windows or {})
    raw["dask"].update(dask or {})
    if fast_models:
        raw["models_config"] = fast_models_config(folder)
    path = Path(folder) / "pipeline-small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)
