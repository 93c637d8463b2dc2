"""What the benchmarks share: peak memory (and CPU seconds) of a process tree, sampled in a thread;
background services (Airflow, Dask) started in sessions of their own and stopped with everything
they started; a CPU-bound competing process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil


class RssSampler:
    """Max RSS of this process plus all its descendants (Dask nannies and workers included), and
    ``child_peak``, the largest single descendant seen; ``cpu`` holds the last CPU seconds seen of
    every process (they only grow). The tree is listed every ``relist_every`` samples: listing it
    reads every /proc entry of the machine, which every 20 ms had cost the scoring ~5% of a core.

    ``exclude``: pids left out of the sum together with their descendants (a competing process
    started by the benchmark); ``include_self=False`` leaves out this process itself (a benchmark
    that only drives subprocesses measures just their tree)."""

    def __init__(self, interval: float = 0.02, relist_every: int = 1, exclude: Iterable[int] = (),
                 include_self: bool = True):
        self.interval = interval
        self.relist_every = relist_every
        self.exclude = set(exclude)
        self.include_self = include_self
        self.peak = 0
        self.child_peak = 0
        self.cpu: dict[int, float] = {}
        self.cpu_at_start = 0.0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._tree: list[psutil.Process] = [self._proc]
        self._ticks = 0

    def rss(self) -> int:
        if self._ticks % self.relist_every == 0:
            self._tree = self._list_tree()
        self._ticks += 1
        total = 0
        for p in self._tree:
            try:
                rss = p.memory_info().rss
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += rss
            self.cpu[p.pid] = t.user + t.system
            if p is not self._proc:
                self.child_peak = max(self.child_peak, rss)
        return total

    def _list_tree(self) -> list[psutil.Process]:
        tree = [self._proc] if self.include_self else []
        try:
            children = self._proc.children(recursive=True)
        except psutil.Error:
            return tree
        parent: dict[int, int] = {}
        for p in children:
            try:
                parent[p.pid] = p.ppid()
            except psutil.Error:
                continue
        for p in children:
            pid = p.pid
            while pid in parent and pid not in self.exclude:  # up to this process: excluded ancestor?
                pid = parent[pid]
            if p.pid in parent and pid not in self.exclude:
                tree.append(p)
        return tree

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self.cpu_at_start = sum(self.cpu.values())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


# --- background processes ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        if int(fields[3]) in sids and fields[0] != b"Z":
            members[int(entry)] = int(fields[2])
    return members


class Services:
    """Long-running subprocesses, each in a session of its own (setsid), logging to
    ``<log_dir>/<name>.log``. ``stop()`` SIGTERMs each process group (last started first), then
    SIGKILLs whatever is left in those sessions: Airflow's task supervisor moves each task process
    into a group of its own, which a kill of the scheduler's group alone would miss."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: str | None = None) -> subprocess.Popen:
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=cwd, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"<{exc}>"

    def report(self, lines: int = 30) -> str:
        return "\n".join(f"----- {n} (pid {p.pid}, {'running' if p.poll() is None else f'exited {p.returncode}'}) "
                         f"{self.log_path(n)} -----\n{self.tail(n, lines)}" for n, p in self.procs.items())

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not ready yet
                last = exc
            dead = self.dead()
            if dead or time.monotonic() > deadline:
                why = f"processes exited: {dead}" if dead else f"timed out after {timeout:.0f}s"
                raise RuntimeError(f"{what} ({why}; last error: {last!r})\n{self.report()}")
            time.sleep(interval)

    def members(self) -> dict[int, int]:
        for p in self.procs.values():
            p.poll()
        return _session_members({p.pid for p in self.procs.values()})

    def stop(self, grace: float = 10.0) -> None:
        deadline = time.monotonic() + grace
        for name, proc in reversed(list(self.procs.items())):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        end = time.monotonic() + max(0.0, deadline - time.monotonic())
        while self.members() and time.monotonic() < end:
            time.sleep(0.1)
        for pid, pgid in self.members().items():
            for kill in (lambda: os.killpg(pgid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class Competitor:
    """One CPU-bound process (``while True: pass``) for the duration of a ``with`` block; killed and
    reaped on exit. ``pid`` is for ``RssSampler(exclude=...)``; ``cpu_seconds`` what it burnt."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.cpu_seconds: float | None = None

    def __enter__(self) -> Competitor:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            self.cpu_seconds = round(t.user + t.system, 1)
        except psutil.Error:
            pass
        self.proc.kill()
        self.proc.wait(timeout=10)
