"""Background processes for the tests: each started with setsid, stopped by process group (then by
session, so nothing they started survives)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cwd: str | None = None) -> subprocess.Popen:
        log = open(self.log_path(name), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=env or self.env, cwd=cwd or str(ROOT), start_new_session=True)
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




class AirflowApi:
    """A JSON client of the Airflow REST API (``/api/v2``) of an api-server started on loopback;
    the tests and benchmarks/bench_pipeline.py use it (simple auth's all-admins mode: no token)."""

    def __init__(self, base: str, timeout: float = 20.0):
        self.base = base
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.load(resp)

    def get(self, path: str) -> dict:
        return self.request("GET", path)
