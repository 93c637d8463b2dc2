"""ltv_core.threads: the thread budget a stage runs with."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ltv_core import threads
from ltv_core.models.lgb import lgb_params
from ltv_core.pipeline import STAGES, Stage
from ltv_core.threads import ThreadBudget, ThreadsConfig, cgroup_cores, dag_parallel_tasks, resolve, stage_width


def test_resolve_order():
    """Environment, then config, then the machine; one task at a time outside the DAG."""
    cfg = ThreadsConfig(cores=8, parallel_tasks=4)
    assert resolve(cfg, {"LTV_CORES": "3", "LTV_PARALLEL_TASKS": "2"}) == ThreadBudget(3, 2)
    assert resolve(cfg, {}) == ThreadBudget(8, 4)
    assert resolve(ThreadsConfig(cores=8), {}) == ThreadBudget(8, 1)
    assert resolve(ThreadsConfig(cores=8), {}, in_dag=True) == ThreadBudget(8, dag_parallel_tasks(8, {}))
    assert resolve(None, {}).cores == threads.available_cores()


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_bad_environment_value_is_named(raw):
    with pytest.raises(ValueError, match=f"LTV_CORES={raw!r}"):
        resolve(None, {"LTV_CORES": raw})


def test_trainers_share_the_cores_and_lone_stages_get_them_all():
    """On 2 cores under the DAG: the trainers (which run side by side) 1 thread each, never more
    busy threads than cores; ingest, build_features and score, which run alone, both cores."""
    budget = ThreadBudget(cores=2, parallel_tasks=dag_parallel_tasks(2, {}))
    assert budget.parallel_tasks == 2
    for s in (Stage.TRAIN_CLASSIFIER, Stage.TRAIN_REGRESSOR, Stage.TRAIN_BASELINES):
        assert budget.for_stage(s) == 1
    for s in (Stage.INGEST, Stage.BUILD_FEATURES, Stage.SCORE):
        assert budget.for_stage(s) == 2
    assert ThreadBudget(2, 1).for_stage(Stage.TRAIN_CLASSIFIER) == 2  # a sequential runner
    assert ThreadBudget(8, 3).for_stage(Stage.TRAIN_CLASSIFIER) == 2


def test_stage_width_follows_the_graph():
    assert stage_width(Stage.INGEST) == 1
    assert stage_width(Stage.TRAIN_CLASSIFIER) == 3  # beside train_regressor and train_baselines
    assert stage_width(Stage.TRAIN_BASELINES) == 4   # also beside resample
    assert all(stage_width(s) >= 1 for s in STAGES)


def test_dag_parallel_tasks_never_exceeds_cores():
    assert dag_parallel_tasks(1, {}) == 1
    assert dag_parallel_tasks(2, {}) == 2
    assert dag_parallel_tasks(64, {}) == max(stage_width(s) for s in STAGES)
    assert dag_parallel_tasks(64, {"LTV_PARALLEL_TASKS": "1"}) == 1


def test_cgroup_quota(tmp_path):
    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert cgroup_cores(f) == 2
    f.write_text("max 100000\n")
    assert cgroup_cores(f) is None
    assert cgroup_cores(tmp_path / "missing") is None


def test_apply_sets_arrow_and_lightgbm(monkeypatch):
    monkeypatch.setattr(threads, "_current", None)
    before = pa.cpu_count()
    try:
        threads.apply(1)
        assert pa.cpu_count() == 1
        assert lgb_params(None, seed=1)["num_threads"] == 1
        assert lgb_params({"num_threads": 4}, seed=1)["num_threads"] == 4  # the config still wins
    finally:
        pa.set_cpu_count(before)


def test_current_outside_a_stage(monkeypatch):
    """A Dask worker (its nanny sets OMP_NUM_THREADS=1) keeps one thread; elsewhere every core."""
    monkeypatch.setattr(threads, "_current", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.current() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("LTV_CORES", raising=False)
    assert threads.current() == threads.available_cores()
    monkeypatch.setattr(threads, "_current", 3)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.current() == 3  # an applied budget wins
