import json
import threading

import pyarrow as pa
import pytest

from ltv_core.errors import DataError
from ltv_core.store import ArtifactStore, StageTimer, config_hash, safe_run_id


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "store"))


def test_run_layout(store):
    d = store.stage_dir("manual__2025-11-04T00:00:00+00:00", "ingest")
    assert d.endswith("runs/manual__2025-11-04T00-00-00_00-00/ingest")
    with pytest.raises(ValueError):
        safe_run_id("../etc")


def test_json_and_parquet_round_trip(store):
    p = store.write_json(store.path("a", "b.json"), {"x": 1})
    assert store.read_json(p) == {"x": 1}
    t = pa.table({"m": pa.array([[("k", 1.0)], None], type=pa.map_(pa.string(), pa.float64()))})
    q = store.write_parquet(store.path("t.parquet"), t)
    assert store.read_parquet(q).equals(t)


def test_failed_write_leaves_nothing_and_keeps_old(store, tmp_path):
    p = store.write_text(store.path("x.txt"), "old")
    with pytest.raises(RuntimeError):
        with store.open_atomic(p) as fh:
            fh.write(b"half-writ")
            raise RuntimeError("crash mid-write")
    assert store.read_text(p) == "old"
    leftovers = [f for f in (tmp_path / "store").iterdir() if f.name.startswith(".tmp-")]
    assert leftovers == []


def test_reader_never_sees_partial_file(store):
    """A concurrent reader sees the old content or the new one, never a prefix."""
    p = store.path("big.bin")
    old, new = b"a" * 4_000_000, b"b" * 4_000_000
    store.write_bytes(p, old)
    seen = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(len(store.read_bytes(p)))

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(5):
        store.write_bytes(p, new)
        store.write_bytes(p, old)
    stop.set()
    t.join()
    assert seen == {4_000_000}


def test_stage_commit_protocol(store):
    run = "r1"
    d = store.begin_stage(run, "ingest")
    store.write_text(f"{d}/stale.txt", "x")
    assert not store.is_committed(run, "ingest")
    with pytest.raises(DataError, match="did not finish"):
        store.read_manifest(run, "ingest")
    timer = StageTimer("ingest", run)
    timer.outputs = {"rows": 3}
    store.commit_stage(run, "ingest", timer.finish({"a": 1}))
    m = store.read_manifest(run, "ingest")
    assert m["outputs"] == {"rows": 3} and m["config_hash"] == config_hash({"a": 1})
    assert m["code_version"] and m["seconds"] >= 0
    # re-running the stage clears the old output and its commit marker first
    store.begin_stage(run, "ingest")
    assert not store.exists(f"{d}/stale.txt") and not store.is_committed(run, "ingest")


def test_missing_artefact_names_path(store):
    with pytest.raises(DataError, match="nope.json"):
        store.read_json(store.path("nope.json"))


def test_manifest_is_valid_json_file(store, tmp_path):
    store.commit_stage("r2", "s", {"k": "v"})
    raw = (tmp_path / "store" / "runs" / "r2" / "s" / "_manifest.json").read_text()
    assert json.loads(raw) == {"k": "v"}
