import json
from pathlib import Path

import pytest

from ltv_core.errors import DataError, StoreError
from ltv_core.promotion import champion_run, decide, read_champion
from ltv_core.stages.promote import record_decision as record
from ltv_core.store import ArtifactStore


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "store"))


def test_first_successful_run_becomes_champion(store):
    d = decide("r1", {"rmsle": 0.42}, None, None)
    assert d.promoted and "first" in d.reason
    record(store, d)
    assert champion_run(store) == "r1"
    assert read_champion(store)["metrics"] == {"rmsle": 0.42}


def test_worse_model_is_not_promoted_and_reason_is_recorded(store):
    record(store, decide("r1", {"rmsle": 0.42}, None, None))
    d = decide("r2", {"rmsle": 0.45}, {"rmsle": 0.42}, "r1", tolerance=0.01)
    assert not d.promoted and "rejected" in d.reason and "r1" in d.reason
    path = record(store, d)
    assert champion_run(store) == "r1"  # pointer unchanged
    assert json.loads(open(path).read())["promoted"] is False


def test_tolerance_and_direction():
    assert decide("r", {"rmsle": 0.424}, {"rmsle": 0.42}, "c", tolerance=0.01).promoted
    assert not decide("r", {"rmsle": 0.425}, {"rmsle": 0.42}, "c", tolerance=0.01).promoted
    assert decide("r", {"gini": 0.59}, {"gini": 0.60}, "c", primary_metric="gini", tolerance=0.02).promoted
    assert not decide("r", {"gini": 0.58}, {"gini": 0.60}, "c", primary_metric="gini", tolerance=0.02).promoted


def test_failed_stage_or_missing_metric_never_ships():
    d = decide("r", {"rmsle": 0.1}, {"rmsle": 0.4}, "c", failed_stages=["fit_stacker"])
    assert not d.promoted and "fit_stacker" in d.reason
    assert not decide("r", {"rmsle": float("nan")}, None, None).promoted
    assert not decide("r", {}, None, None).promoted


def test_no_champion_is_a_clear_error(store):
    with pytest.raises(DataError, match="no champion"):
        champion_run(store)


@pytest.mark.parametrize("content", ["", "{", "[]", '{"metrics": {}}', "null"])
def test_a_damaged_champion_pointer_is_named(store, content):
    """An empty, garbled or run-less champion.json: one line naming it and how to repair it."""
    (Path(store.root) / "champion.json").write_text(content)
    with pytest.raises(StoreError, match=r"champion pointer .*damaged.*promote a run again"):
        read_champion(store)
