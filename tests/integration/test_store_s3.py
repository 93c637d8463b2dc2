"""The store on S3: a real moto S3 server on loopback (``moto_server``), started for this module
and stopped after it. Attempts, claims (conditional PUT ``If-None-Match: *``), checksums, a missing
bucket, and the first stages of a run writing to ``s3://``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from ltv_core.claims import ClaimError
from ltv_core.errors import StoreError
from ltv_core.store import ArtifactStore

from support.configs import small_pipeline_config
from support.processes import ProcessGroup, free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
BUCKET = "ltv-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> str:
    """The endpoint of a moto S3 server with bucket ``ltv-test``; AWS_* set for this process."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    group = ProcessGroup(tmp_path_factory.mktemp("moto-logs"))
    mp = pytest.MonkeyPatch()
    try:
        group.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
        for var, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(var, value)

        def ready() -> bool:
            try:
                boto3.client("s3").list_buckets()
                return True
            except Exception:
                return False

        group.wait_until(ready, f"moto_server on {endpoint} did not start", timeout=60)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        mp.undo()
        group.stop(grace=5)


def test_attempts_claims_and_checksums_on_s3(s3):
    url = f"s3://{BUCKET}/store-a"
    a, b = ArtifactStore(url), ArtifactStore(url)
    d = a.begin_stage("r", "train_classifier")
    assert d.startswith(f"{BUCKET}/store-a/runs/r/train_classifier/attempts/")
    with pytest.raises(ClaimError, match="being written by another process"):
        # a's claim belongs to this process; b sees it as another host's would: rewrite it as such
        claim = f"{BUCKET}/store-a/runs/r/train_classifier/_claim.1"
        owner = json.loads(a.fs.cat_file(claim))
        a.fs.pipe_file(claim, json.dumps({**owner, "host": "another-host"}).encode())
        b.begin_stage("r", "train_classifier")
    a.write_bytes(f"{d}/classifier.json", b'{"kind": "x"}')
    a.commit_stage("r", "train_classifier", {"stage": "train_classifier"})
    assert not a.fs.exists(f"{BUCKET}/store-a/runs/r/train_classifier/_claim.1"), "released on commit"
    assert b.read_manifest("r", "train_classifier")["checksums"] == {
        "classifier.json": __import__("hashlib").sha256(b'{"kind": "x"}').hexdigest()}
    a.fs.pipe_file(f"{d}/classifier.json", b'{"kind": "y"}')  # damaged behind the store's back
    with pytest.raises(StoreError, match="classifier.json is damaged"):
        ArtifactStore(url).read_bytes(f"{d}/classifier.json")


def test_a_missing_bucket_is_one_line_naming_it(s3):
    store = ArtifactStore("s3://no-such-bucket-here/store")
    t0 = time.perf_counter()
    with pytest.raises(StoreError, match=r"cannot write s3://no-such-bucket-here/store/x.json in store"):
        store.write_json(store.path("x.json"), {"a": 1})
    assert time.perf_counter() - t0 < 30


def test_a_run_writes_its_first_stages_to_s3(s3, tmp_path, capsys):
    """ingest, validate and build_features of a small generated data set, store on S3, through the
    CLI (Dask LocalCluster in-process: the workers share this process's AWS settings)."""
    from ltv_core.cli import main
    from ltv_core.synthetic import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, seed=5, rows_per_partition=60, train_hours=40, test_hours=6)
    config = small_pipeline_config(tmp_path, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    url = f"s3://{BUCKET}/store-run"
    rc = main(["run", "--until", "build_features", "--run-id", "s3run", "--logical-date", "2025-10-31T00:00",
               "--config", config, "--data-root", str(data), "--store-root", url,
               "--train-start", "2025-10-01T00:00", "--train-end", "2025-10-02T00:00",
               "--validation-start", "2025-10-02T00:00", "--validation-end", "2025-10-02T08:00",
               "--holdout-start", "2025-10-02T08:00", "--holdout-end", "2025-10-02T16:00"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    store = ArtifactStore(url)
    for stage in ("ingest", "validate", "build_features"):
        manifest = store.read_manifest("s3run", stage)
        assert manifest["attempt"] and store.stage_dir("s3run", stage).startswith(f"{BUCKET}/store-run/runs/s3run/")
    assert store.read_manifest("s3run", "validate")["success"] is True
    rows = store.read_manifest("s3run", "build_features")["rows"]
    assert rows["train"] > 0 and set(rows) == {"train", "validation", "holdout", "scoring"}
    assert store.fs.glob(f"{BUCKET}/store-run/runs/s3run/*/_claim.*") == [], "every claim released"


def test_unauthorised_credentials_are_one_line_naming_the_store(tmp_path, monkeypatch):
    """A second moto server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0): keys it does
    not know are refused, and the store says so in one line instead of a botocore traceback."""
    port = free_port()
    group = ProcessGroup(tmp_path / "logs", {**__import__("os").environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        group.start("moto-auth", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
        group.wait_until(lambda: _listening(port), "moto_server with auth", timeout=60)
        for var, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN",
                           "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(var, value)
        # fsspec caches S3 file systems by their arguments: the module's earlier stores (the first
        # server's endpoint and keys) would be reused; this one must read the new environment
        store = ArtifactStore(f"s3://{BUCKET}/store", {"skip_instance_cache": True})
        with pytest.raises(StoreError, match=rf"cannot write s3://{BUCKET}/store/x.json in store s3://{BUCKET}/store") as err:
            store.write_json(store.path("x.json"), {"a": 1})
        assert "PermissionError: The AWS Access Key Id you provided does not exist" in str(err.value)
    finally:
        group.stop(grace=5)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
