"""The thread budget: how many threads a stage may keep busy, so that the product never runs more
busy threads than cores (LightGBM, OpenMP, Arrow and Dask workers, and parallel Airflow tasks,
together). docs/OPERATIONS.md ("Threads") explains the policy.

- ``cores``: the CPUs this process may use (its affinity mask, capped by a cgroup v2 CPU quota);
  ``$LTV_CORES`` or the pipeline config's ``threads.cores`` override it.
- ``parallel_tasks``: how many tasks of one run may execute at the same time. The DAG lets at most
  this many run (its ``max_active_tasks``: one per core, at most the pipeline's widest level); the
  CLI runs one at a time; the demo's ``airflow dags test`` sets ``$LTV_PARALLEL_TASKS=1``.
- A stage's threads: ``cores // min(parallel_tasks, stages that can run beside it)``: LightGBM's
  ``num_threads`` (fit and predict), Arrow's CPU pool and the number of LocalCluster workers (one
  thread each). ``ltv_core.inprocess.run_stages`` and the DAG's tasks apply it before a stage runs.

The OpenMP wait policy is set to PASSIVE in ``ltv_core/__init__.py``, before any OpenMP runtime
loads: with the default, LightGBM's threads spin on a busy core and 100 rounds took 58 s instead of
6 s with one other busy process on 2 cores (benchmarks/bench_threads.py, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ltv_core.pipeline import INPUTS, STAGES, Stage

log = logging.getLogger(__name__)

CORES_ENV = "LTV_CORES"
PARALLEL_ENV = "LTV_PARALLEL_TASKS"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class ThreadsConfig(BaseModel):
    """``threads:`` of config/pipeline.yaml; null means derived (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    cores: int | None = Field(default=None, gt=0)
    parallel_tasks: int | None = Field(default=None, gt=0)


def cgroup_cores(path: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``"200000 100000"`` -> 2), None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cores()
    return max(1, min(cores, quota) if quota else cores)


@dataclass(frozen=True)
class ThreadBudget:
    cores: int
    parallel_tasks: int

    def for_stage(self, stage: Stage) -> int:
        """Threads ``stage`` may keep busy: the cores shared among the tasks that can run beside it
        (at most ``parallel_tasks``). On 2 cores under the DAG: 1 each for the three trainers,
        2 for ingest and build_features, which run alone (tests/unit/test_threads.py)."""
        return max(1, self.cores // min(self.parallel_tasks, stage_width(stage)))


def stage_width(stage: Stage) -> int:
    """How many stages can run at once with ``stage``: itself and every stage that is neither
    upstream nor downstream of it in ``ltv_core.pipeline.INPUTS``."""
    related = _ancestors(stage) | _descendants(stage) | {stage}
    return 1 + len(set(STAGES) - related)


def _ancestors(stage: Stage) -> set[Stage]:
    seen: set[Stage] = set()
    todo = list(INPUTS[stage])
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(INPUTS[s])
    return seen


def _descendants(stage: Stage) -> set[Stage]:
    return {s for s in STAGES if stage in _ancestors(s)}


def _env_int(environ: Mapping[str, str], key: str) -> int | None:
    raw = environ.get(key, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${key}={raw!r}: expected a whole number >= 1")
    return value


def resolve(cfg: ThreadsConfig | None = None, environ: Mapping[str, str] | None = None, *,
            in_dag: bool = False) -> ThreadBudget:
    """The budget from the environment, else the config, else the machine; tasks run one at a
    time unless ``in_dag`` (then as many as the DAG lets run at once)
    (tests/unit/test_threads.py::test_resolve_order)."""
    environ = os.environ if environ is None else environ
    cfg = cfg or ThreadsConfig()
    cores = _env_int(environ, CORES_ENV) or cfg.cores or available_cores()
    parallel = (_env_int(environ, PARALLEL_ENV) or cfg.parallel_tasks
                or (dag_parallel_tasks(cores) if in_dag else 1))
    return ThreadBudget(cores, parallel)


def dag_parallel_tasks(cores: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Tasks the DAG lets run at once (its ``max_active_tasks``): ``$LTV_PARALLEL_TASKS``, else one
    per core, at most the widest level of the pipeline."""
    environ = os.environ if environ is None else environ
    cores = cores or _env_int(environ, CORES_ENV) or available_cores()
    return _env_int(environ, PARALLEL_ENV) or max(1, min(cores, max(stage_width(s) for s in STAGES)))


_current: int | None = None


def apply(n_threads: int) -> int:
    """Make ``n_threads`` this process's budget: Arrow's CPU pool and what :func:`current` answers
    (LightGBM's ``num_threads``, its predictions, the LocalCluster's workers, scoring's threads)."""
    global _current
    import pyarrow

    pyarrow.set_cpu_count(n_threads)
    _current = n_threads
    log.info("thread budget: %d thread(s)", n_threads)
    return n_threads


def current() -> int:
    """The applied budget; else ``$OMP_NUM_THREADS`` (a Dask worker, whose nanny sets 1: LightGBM's
    predict there used one thread before it was given ``num_threads``); else every available core
    (a notebook: one task at a time). On the hot path (every ``predict_booster`` call): the cores
    are read once per process (tests/unit/test_threads.py::test_current_outside_a_stage)."""
    return _current or _env_int(os.environ, "OMP_NUM_THREADS") or _machine_cores()


@functools.cache
def _machine_cores() -> int:
    return resolve().cores
