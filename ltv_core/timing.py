"""Lap timing for the step seconds that logs and manifests report (score stage, its worker tasks)."""

from __future__ import annotations

import time


class Laps:
    """Wall seconds between consecutive ``lap`` calls, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 4)
        self._t = now
