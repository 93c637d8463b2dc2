"""Dask client for a stage: an existing cluster when an address is configured, else a LocalCluster.

A scheduler address comes from the config, then ``LTV_DASK_SCHEDULER`` (the DAG resolves the
Airflow connection into that address). Without one, a LocalCluster sized to the machine lives for
the duration of the stage: self-contained, no infrastructure, at the cost of a second of start-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ltv_core.config import DaskConfig

log = logging.getLogger(__name__)

# Environment the Dask nanny sets before it spawns a worker; None removes the variable.
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def scheduler_address(cfg: DaskConfig) -> str | None:
    return cfg.scheduler_address or os.environ.get("LTV_DASK_SCHEDULER") or None


@contextmanager
def dask_client(cfg: DaskConfig | None = None) -> Iterator["distributed.Client"]:  # type: ignore[name-defined]  # noqa: F821
    import dask
    from distributed import Client, LocalCluster

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
    n_workers = cfg.n_workers or max(1, os.cpu_count() or 1)
    processes = cfg.processes
    saved = dict(os.environ)
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
