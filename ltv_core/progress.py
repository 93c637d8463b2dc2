"""Live progress of an ``airflow dags test`` run, read from its output as it is written.

``airflow dags test`` runs every task in one process and prints everything (Airflow's, Dask's and
the stages' logs) to its output. :class:`DagTestProgress` turns that stream into a few lines a
person can follow: each task's start, its end with its seconds and the key figures it returned,
a failure with the line that says why, and while a task runs, a heartbeat with its latest progress
line (``[ingest 120/168] ...``). Every line still goes to the full log file.
"""

from __future__ import annotations

import ast
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
END = re.compile(r"\[DAG TEST\] end task task_id=(\w+)")
RETURNED = re.compile(r"Done\. Returned value was: (\{.*\}) \[")
FAILED = re.compile(r"(Task failed with exception|new_state=failed|new_state=upstream_failed)")
# The exception line of a traceback: what the failing stage said (LtvError messages name the file,
# column or window at fault).
EXCEPTION = re.compile(r"^\s*([\w.]+(?:Error|Exception)): (.+)")
STAGE_PROGRESS = re.compile(r"\] (\[[a-z_]+ \d+/\d+\].*?) \[ltv_core")
# The returned values worth a line: counts, sizes and decisions, not paths.
KEY_FIGURES = ("rows", "n_features", "evaluated", "failed", "train_rows", "best_iteration", "calibration",
               "chosen", "value", "rmsle", "gini", "promoted", "reason", "model_run_id", "partitions")


def key_figures(returned: dict[str, Any]) -> str:
    """``rows {'train': 38400, ...}; n_features 295``: the small values a task returned."""
    parts = []
    for key in KEY_FIGURES:
        value = returned.get(key)
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.5g}"
        parts.append(f"{key} {value}")
    return "; ".join(parts)


@dataclass
class DagTestProgress:
    """Consumes output lines (:meth:`feed`), says what matters through ``say``."""

    say: Callable[[str], None]
    heartbeat_s: float = 20.0
    started: dict[str, float] = field(default_factory=dict)
    returned: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None
    last_progress: str | None = None
    last_said: float = field(default_factory=time.monotonic)
    failures: list[str] = field(default_factory=list)
    awaiting_reason: bool = False

    def _say(self, msg: str) -> None:
        self.say(msg)
        self.last_said = time.monotonic()

    def feed(self, line: str) -> None:
        if m := START.search(line):
            self.current, self.last_progress = m.group(1), None
            self.started[self.current] = time.monotonic()
            self._say(f"task {self.current}: started")
        elif m := RETURNED.search(line):
            try:
                value = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                value = {}
            if isinstance(value, dict) and self.current:
                self.returned[self.current] = value
        elif m := END.search(line):
            task = m.group(1)
            seconds = time.monotonic() - self.started.get(task, time.monotonic())
            figures = key_figures(self.returned.get(task, {}))
            state = "done" if task in self.returned else "ended without a result (failed, see above)"
            self._say(f"task {task}: {state} in {seconds:.1f}s" + (f" — {figures}" if figures else ""))
            self.current, self.awaiting_reason = None, False
        elif FAILED.search(line) and self.current:
            self.awaiting_reason = True
        elif self.awaiting_reason and (m := EXCEPTION.search(line)):
            reason = f"{m.group(1)}: {m.group(2).strip()}"[:500]
            self.failures.append(f"{self.current}: {reason}")
            self._say(f"task {self.current}: FAILED: {reason}")
            self.awaiting_reason = False
        elif m := STAGE_PROGRESS.search(line):
            self.last_progress = m.group(1)

    def tick(self) -> None:
        """Called when no line came for a while: a heartbeat for a long task."""
        if self.current and time.monotonic() - self.last_said >= self.heartbeat_s:
            running = time.monotonic() - self.started[self.current]
            detail = f", latest: {self.last_progress}" if self.last_progress else ""
            self._say(f"task {self.current}: running for {running:.0f}s{detail}")


def stream(argv: list[str], env: dict[str, str], log_path: Path, progress: DagTestProgress,
           poll_s: float = 2.0) -> tuple[int, list[str]]:
    """Run ``argv``, write its merged output to ``log_path`` line by line and feed ``progress``;
    returns the exit code and the output's last 60 lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, errors="replace")
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(out: IO[str]) -> None:
        for line in out:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, args=(proc.stdout,), daemon=True).start()
    tail: list[str] = []
    with log_path.open("w") as log:
        while True:
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                progress.tick()
                continue
            if line is None:
                break
            log.write(line)
            log.flush()
            tail = (tail + [line.rstrip("\n")])[-60:]
            progress.feed(line)
            progress.tick()
    return proc.wait(), tail
