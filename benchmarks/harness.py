"""What the benchmarks share: peak memory (and CPU seconds) of a process tree, sampled in a thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil


class RssSampler:
    """Max RSS of this process plus all its descendants (Dask nannies and workers included), and
    ``child_peak``, the largest single descendant seen; ``cpu`` holds the last CPU seconds seen of
    every process (they only grow). The tree is listed every ``relist_every`` samples: listing it
    reads every /proc entry of the machine, which every 20 ms had cost the scoring ~5% of a core."""

    def __init__(self, interval: float = 0.02, relist_every: int = 1):
        self.interval = interval
        self.relist_every = relist_every
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
            self._tree = [self._proc, *self._proc.children(recursive=True)]
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
