"""ltv_core.cluster: the LocalCluster a stage starts when no scheduler address is configured."""

from __future__ import annotations

import os

import pytest

from ltv_core.cluster import dask_client, scheduler_address
from ltv_core.config import DaskConfig


def _worker_trim(cfg: DaskConfig) -> set[str | None]:
    with dask_client(cfg) as client:
        return set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values())


def test_local_cluster_workers_keep_glibc_trim_default(monkeypatch):
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_=65536 (slower transform); the default unsets it."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    assert _worker_trim(DaskConfig(n_workers=1, memory_limit="1GiB")) == {None}


def test_local_cluster_trim_threshold_is_configurable(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    assert _worker_trim(DaskConfig(n_workers=1, memory_limit="1GiB", malloc_trim_threshold=131072)) == {"131072"}


def test_scheduler_address_precedence(monkeypatch):
    monkeypatch.setenv("LTV_DASK_SCHEDULER", "tcp://env:8786")
    assert scheduler_address(DaskConfig(scheduler_address="tcp://cfg:8786")) == "tcp://cfg:8786"
    assert scheduler_address(DaskConfig()) == "tcp://env:8786"
    monkeypatch.delenv("LTV_DASK_SCHEDULER")
    assert scheduler_address(DaskConfig()) is None


def test_negative_trim_threshold_is_refused():
    with pytest.raises(ValueError):
        DaskConfig(malloc_trim_threshold=-1)


def test_local_cluster_leaves_this_processs_environment_as_it_was(monkeypatch):
    """Dask's nannies write OMP_NUM_THREADS=1 (and more) into the parent's os.environ; a scoring
    process spawned later would predict on one core. The workers keep their settings."""
    monkeypatch.delenv("LTV_DASK_SCHEDULER", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = dict(os.environ)
    with dask_client(DaskConfig(n_workers=1, memory_limit="1GiB")) as client:
        assert dict(os.environ) == before
        assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}
    assert dict(os.environ) == before
