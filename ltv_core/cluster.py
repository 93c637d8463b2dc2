"""Dask for a stage: the client (an existing cluster, else a LocalCluster) and the one fan-out loop.

A scheduler address comes from the config, then ``LTV_DASK_SCHEDULER`` (the DAG resolves the
Airflow connection into that address). Without one, a LocalCluster sized to the machine lives for
the duration of the stage: self-contained, no infrastructure, at the cost of a second of start-up.

:func:`fan_out` is how ingest, build_features and score hand one file per task to the workers:
submit, results in completion order, a progress line per result, and a failure that names the file.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ltv_core import threads
from ltv_core.config import DaskConfig
from ltv_core.errors import DataError, LtvError

log = logging.getLogger(__name__)

# Environment the Dask nanny sets before it spawns a worker; None removes the variable.
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def scheduler_address(cfg: DaskConfig) -> str | None:
    return cfg.scheduler_address or os.environ.get("LTV_DASK_SCHEDULER") or None


@contextmanager
def dask_client(cfg: DaskConfig | None = None) -> Iterator["distributed.Client"]:  # type: ignore[name-defined]  # noqa: F821
    from distributed import Client

    cfg = cfg or DaskConfig()
    address = scheduler_address(cfg)
    if address:
        log.info("connecting to Dask scheduler %s", address)
        client = Client(address, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    n_workers = cfg.n_workers or threads.current()
    processes = cfg.processes
    saved = dict(os.environ)
    hidden = hide_main_path()
    try:
        cluster = _local_cluster(cfg, n_workers, processes)
    except BaseException:
        restore_main_path(hidden)
        raise
    finally:
        restore_environ(saved)
    log.info("started Dask LocalCluster: %d workers", len(cluster.workers))
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        restore_environ(saved)  # a nanny that restarted a worker set them again
        restore_main_path(hidden)


def _local_cluster(cfg: DaskConfig, n_workers: int, processes: bool) -> "distributed.LocalCluster":  # type: ignore[name-defined]  # noqa: F821
    import dask
    from distributed import LocalCluster

    try:
        with dask.config.set({TRIM_KEY: cfg.malloc_trim_threshold}):  # read by each nanny at start-up
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=cfg.threads_per_worker,
                processes=processes,
                memory_limit=cfg.memory_limit,
                dashboard_address=None,
            )
    except AssertionError as exc:  # "daemonic processes are not allowed to have children"
        if not processes:
            raise
        log.warning("cannot start Dask worker processes here (%s); using threads instead", exc)
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=n_workers, processes=False, dashboard_address=None
        )
    return cluster


def hide_main_path() -> str | None:
    """Keep spawned workers from re-running this process's ``__main__`` script; returns its path.

    multiprocessing's spawn imports the parent's main script in every child. In an Airflow 3 task
    that script is the ``airflow`` console entry point: importing it loads Airflow's settings, whose
    database URL the task supervisor has replaced by ``airflow-db-not-allowed:///``, so every worker
    died with "Could not parse SQLAlchemy URL" and the nanny never started (reproduced in
    tests/unit/test_cluster.py::test_local_cluster_starts_under_a_console_script_main). Workers run
    only ``ltv_core`` functions, importable by name, so they need nothing from ``__main__``. Kept
    hidden while the cluster lives: a nanny spawns again when it restarts a worker.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return None  # ``python -m pkg``: the child imports the module by name, harmlessly
    path = getattr(main, "__file__", None)
    if path is not None:
        del main.__file__
    return path


def restore_main_path(path: str | None) -> None:
    main = sys.modules.get("__main__")
    if path is not None and main is not None:
        main.__file__ = path


def restore_environ(saved: dict[str, str]) -> None:
    """Undo what Dask's nannies wrote into *this* process's environment.

    A nanny sets its ``pre-spawn-environ`` (OMP_NUM_THREADS=1, MKL/OPENBLAS_NUM_THREADS=1,
    MALLOC_TRIM_THRESHOLD_) with ``os.environ.update`` before it spawns a worker and never undoes
    it. Every process started later from here inherited one OpenMP thread: LightGBM's predict
    (whose thread count comes from the environment, not from the training parameters) ran on one
    core in a scoring process spawned after ingest — half the speed on 2 cores, measured.
    """
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


@dataclass(frozen=True)
class Job:
    """One task of a fan-out: the worker function's arguments, what the progress log calls it
    (``"train 2025-10-01-00-00"``) and the file it reads, which a failure names."""

    label: str
    path: str
    args: tuple[Any, ...]


def fan_out(client: Any, fn: Callable[..., Any], jobs: Sequence[Job], *, what: str,
            describe: Callable[[Any], str] | None = None) -> Iterator[tuple[Job, Any]]:
    """``fn(*job.args)`` for every job, yielded as ``(job, result)`` in completion order, with a log
    line ``[<what> i/n] <label>: <describe(result)>`` per result. ``client=None`` runs the jobs one
    after the other in this process (same results, no cluster start-up).

    A failing job stops the fan-out with a DataError naming ``what`` and the job's label, chained to
    the worker's exception (``tests/unit/test_cluster.py::test_fan_out_names_the_failing_job``)."""
    total = len(jobs)

    def failed(job: Job, exc: Exception) -> LtvError:
        if isinstance(exc, LtvError) and job.path in str(exc):
            return exc  # the worker's own message already names the file
        return DataError(f"{what} {job.label} ({job.path}) failed: {type(exc).__name__}: {exc}")

    def logged(done: int, job: Job, result: Any) -> tuple[Job, Any]:
        log.info("[%s %d/%d] %s%s", what, done, total, job.label, f": {describe(result)}" if describe else "")
        return job, result

    if client is None:
        for done, job in enumerate(jobs, 1):
            try:
                result = fn(*job.args)
            except Exception as exc:
                err = failed(job, exc)
                if err is exc:
                    raise
                raise err from exc
            yield logged(done, job, result)
        return
    from distributed import as_completed

    futures = {client.submit(fn, *job.args, pure=False): job for job in jobs}
    for done, fut in enumerate(as_completed(list(futures)), 1):
        job = futures[fut]
        try:
            result = fut.result()
        except Exception as exc:
            for other in futures:
                other.cancel()
            err = failed(job, exc)
            if err is exc:
                raise
            raise err from exc
        yield logged(done, job, result)
