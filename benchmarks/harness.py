"""What the benchmarks share: peak memory (and CPU seconds) of a process tree, sampled in a thread;
background services (Airflow, Dask) started in sessions of their own and stopped with everything
they started; a CPU-bound competing process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterable
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
# The tests' process group (setsid per process, stopped by group then by session) serves the
# benchmarks too: one implementation of "start Airflow / Dask on loopback and leave nothing behind".
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import AirflowApi, ProcessGroup as Services, free_port  # noqa: E402, F401


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
