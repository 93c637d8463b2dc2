import errno
import json
import os
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ltv_core.errors import DataError, SpecError, StoreError
from ltv_core.store import ArtifactStore, StageTimer, config_hash, safe_run_id, store_root


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
    assert m["attempt"] == d.rsplit("/", 1)[-1] and store.stage_dir(run, "ingest") == d
    assert store.read_json(f"{d}/_manifest.json") == m  # the attempt keeps its own copy


def test_a_new_attempt_never_touches_the_committed_one(store):
    """A re-run writes beside the committed attempt, which readers keep seeing until the new one
    commits; a killed re-run (never committed) changes nothing readable; the attempt replaced by a
    commit stays (a reader may be on it), older ones are pruned."""
    run = "r1"
    first = store.begin_stage(run, "s")
    store.write_text(f"{first}/a.txt", "one")
    store.commit_stage(run, "s", {"n": 1})
    second = store.begin_stage(run, "s")
    store.write_text(f"{second}/a.txt", "two")
    assert second != first and store.read_text(f"{first}/a.txt") == "one"
    reader = ArtifactStore(store.url)  # another process: sees the committed attempt only
    assert reader.stage_dir(run, "s") == first and reader.read_manifest(run, "s")["n"] == 1
    store.abandon()  # the second attempt dies uncommitted
    assert store.stage_dir(run, "s") == first
    third = store.begin_stage(run, "s")
    store.write_text(f"{third}/a.txt", "three")
    store.commit_stage(run, "s", {"n": 3})
    assert reader.stage_dir(run, "s") == third and reader.read_text(f"{third}/a.txt") == "three"
    assert store.attempts(run, "s") == sorted([first.rsplit("/", 1)[-1], third.rsplit("/", 1)[-1]])
    fourth = store.begin_stage(run, "s")
    store.commit_stage(run, "s", {"n": 4})
    assert store.attempts(run, "s") == sorted([third.rsplit("/", 1)[-1], fourth.rsplit("/", 1)[-1]])
    assert not store.exists(first)


def test_pinned_attempts_are_read_and_never_pruned(store):
    """The champion pointer's attempts survive any number of later commits of the same stage, and a
    pinned store reads them whatever the pointer says."""
    run = "champ"
    d = store.begin_stage(run, "train_classifier")
    store.write_text(f"{d}/classifier.json", "old")
    store.commit_stage(run, "train_classifier", {"v": "old"})
    old = d.rsplit("/", 1)[-1]
    store.write_json(store.path("champion.json"), {"run_id": run, "lineage": {"train_classifier": old}})
    for v in ("b", "c", "d"):
        store.begin_stage(run, "train_classifier")
        store.commit_stage(run, "train_classifier", {"v": v})
    assert old in store.attempts(run, "train_classifier") and len(store.attempts(run, "train_classifier")) == 3
    assert store.read_manifest(run, "train_classifier")["v"] == "d"
    with store.pinned(run, {"train_classifier": old}):
        assert store.read_manifest(run, "train_classifier")["v"] == "old"
        assert store.read_text(f"{store.stage_dir(run, 'train_classifier')}/classifier.json") == "old"
    assert store.read_manifest(run, "train_classifier")["v"] == "d"


def test_commit_without_an_attempt_never_mixes_with_a_committed_one(store):
    store.begin_stage("r", "s")
    store.commit_stage("r", "s", {})
    with pytest.raises(RuntimeError, match="committed attempt"):
        store.commit_stage("r", "s", {})


def test_retracted_stage_is_not_committed_but_its_attempts_stay(store):
    d = store.begin_stage("r", "validate")
    store.commit_stage("r", "validate", {})
    store.retract_stage("r", "validate")
    assert not store.is_committed("r", "validate") and store.newest_attempt_dir("r", "validate") == d


def test_missing_artefact_names_path(store):
    with pytest.raises(DataError, match="nope.json"):
        store.read_json(store.path("nope.json"))


def test_manifest_is_valid_json_file(store, tmp_path):
    store.commit_stage("r2", "s", {"k": "v"})
    raw = (tmp_path / "store" / "runs" / "r2" / "s" / "_manifest.json").read_text()
    assert json.loads(raw) == {"k": "v"}


def test_read_parquet_map_values_only_and_missing_columns(store):
    """A map read by its value leaf keeps rows, nulls and values, drops the keys; other columns
    are untouched; a missing column fails naming it unless skip_missing."""
    from ltv_core.features.transforms import Flat, is_values_only_map

    m = pa.array([[("a", 1.0), ("b", None)], None, [], [("c", 3.5)]], type=pa.map_(pa.string(), pa.float64()))
    mm = pa.array([[("a", [("x", 1)])], None, [], []], type=pa.map_(pa.string(), pa.map_(pa.string(), pa.int64())))
    t = pa.table({"m": m, "mm": mm, "s": ["p", "q", None, "r"]})
    q = store.write_parquet(store.path("m.parquet"), t)
    got = store.read_parquet(q, ["m", "mm", "s"], skip_missing=True, map_values_only=["m", "mm", "s"])
    assert is_values_only_map(got.schema.field("m").type)
    assert got.column("mm").equals(t.column("mm")) and got.column("s").equals(t.column("s"))  # not plain maps
    full, part = Flat(t.column("m").chunk(0)), Flat(got.column("m").chunk(0))
    np.testing.assert_array_equal(part.values, full.values)
    np.testing.assert_array_equal(part.rg.lengths, full.rg.lengths)
    assert got.column("m").null_count == 1
    with pytest.raises(DataError, match="keys are needed"):
        part.keys
    with pytest.raises(DataError, match="nope"):
        store.read_parquet(q, ["m", "nope"], map_values_only=["m"])
    assert store.read_parquet(q, ["m", "nope"], skip_missing=True).column_names == ["m"]
    # max_rows: the first rows only (a sample), the whole file when it is shorter
    head = store.read_parquet(q, ["m", "s"], skip_missing=True, map_values_only=["m"], max_rows=2)
    assert head.num_rows == 2 and head.column("s").to_pylist() == ["p", "q"]
    assert head.column("m").to_pylist() == got.select(["m"]).slice(0, 2).column("m").to_pylist()
    assert store.read_parquet(q, ["s"], max_rows=10).equals(t.select(["s"]))


@pytest.mark.parametrize("bad", ["..", ".", ".hidden", "a/b", "a\\b", "", "run id", "x" * 201, "run\n"])
def test_unsafe_run_ids_are_refused_naming_the_rule(bad):
    with pytest.raises(SpecError, match="cannot name a run folder: use 1-200 letters"):
        safe_run_id(bad)


def test_airflow_and_cli_run_ids_are_kept_readable():
    assert safe_run_id("scheduled__2025-11-04T03:00:00+00:00") == "scheduled__2025-11-04T03-00-00_00-00"
    assert safe_run_id("cli__2025-10-08") == "cli__2025-10-08"


@pytest.mark.parametrize("bad", ["", "  ", "../../etc", "store/../../etc", "s3://bucket/../x"])
def test_store_roots_that_are_empty_or_climb_are_refused(bad):
    with pytest.raises(SpecError, match="empty|contains '..'"):
        ArtifactStore(bad)
    with pytest.raises(SpecError, match="empty|contains '..'"):
        store_root(bad)


def test_a_store_root_that_is_a_file_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match=r"store root .*/f is a file, not a folder"):
        ArtifactStore(str(tmp_path / "f"))


def test_a_failed_write_is_one_line_and_leaves_no_temporary_file(store, monkeypatch):
    """A read-only or full store: the OSError becomes a StoreError naming the file and the store."""
    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", dst)

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(StoreError, match=r"cannot write .*/a/b.json in store .*: Read-only file system"):
        store.write_json(store.path("a", "b.json"), {"x": 1})
    assert list(Path(store.path("a")).iterdir()) == []


def test_a_damaged_artefact_is_named_not_loaded(store):
    """Every file an attempt writes through write_bytes has its SHA-256 in the attempt's manifest;
    a later read of a changed file fails naming it (a garbled LightGBM model would abort the process)."""
    d = store.begin_stage("r", "train_classifier")
    store.write_bytes(f"{d}/classifier.json", b'{"kind": "x"}')
    store.write_bytes(f"{d}/sub/extra.json", b"[1]")
    store.commit_stage("r", "train_classifier", {"stage": "train_classifier"})
    manifest = store.read_manifest("r", "train_classifier")
    assert set(manifest["checksums"]) == {"classifier.json", "sub/extra.json"}
    assert store.read_bytes(f"{d}/classifier.json") == b'{"kind": "x"}'
    Path(d, "classifier.json").write_bytes(b'{"kind": "y"}')
    Path(d, "sub", "extra.json").write_bytes(b"[2]")
    fresh = ArtifactStore(store.root)  # another process reading the committed attempt
    for s in (store, fresh):
        with pytest.raises(StoreError, match=r"classifier.json is damaged: its SHA-256 differs"):
            s.read_bytes(f"{d}/classifier.json")
        with pytest.raises(StoreError, match=r"sub/extra.json is damaged"):
            s.read_json(f"{d}/sub/extra.json")


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe"])
def test_an_empty_or_garbled_json_file_is_named(store, content):
    path = store.path("runs", "r", "x.json")
    Path(path).parent.mkdir(parents=True)
    Path(path).write_bytes(content)
    with pytest.raises(StoreError, match=r"x.json in store .* (is empty|is not valid JSON)"):
        store.read_json(path)
