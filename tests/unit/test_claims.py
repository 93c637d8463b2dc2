"""One writer per stage of a run (ltv_core.claims): refused while the holder lives, taken over when
it died or its lease ran out, exactly one winner when two take over at once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ltv_core import claims
from ltv_core.claims import ClaimError
from ltv_core.store import ArtifactStore


@pytest.fixture
def root(tmp_path) -> str:
    return str(tmp_path / "store")


def _claim_files(root: str, run: str = "r", stage: str = "ingest") -> list[str]:
    return sorted(p.name for p in Path(root, "runs", run, stage).glob("_claim.*"))


def _fake_claim(root: str, n: int, **owner) -> Path:
    path = Path(root, "runs", "r", "ingest", f"_claim.{n}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "attempt": "A", "claimed": "then",
                                "expires": time.time() + 600, **owner}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_writer_is_refused_naming_the_first_until_it_commits(root):
    a, b = ArtifactStore(root), ArtifactStore(root)
    a.begin_stage("r", "ingest")
    _fake_claim(root, 1, pid=1)  # the holder: as if another live process on this host (pid 1 always exists)
    with pytest.raises(ClaimError, match=r"stage 'ingest' of run 'r' is being written by another process: .* pid 1"):
        b.begin_stage("r", "ingest")
    a.commit_stage("r", "ingest", {"stage": "ingest"})
    assert _claim_files(root) == [], "a commit releases the claim"
    b.begin_stage("r", "ingest")
    assert _claim_files(root) == ["_claim.1"]
    b.abandon()
    assert _claim_files(root) == [], "abandon releases it too"


def test_two_stores_in_two_processes_cannot_write_one_stage_at_once(root):
    """The real case: another process holds the claim (a child that begins the stage and waits)."""
    code = ("import sys, time; from ltv_core.store import ArtifactStore; "
            f"s = ArtifactStore({root!r}); s.begin_stage('r', 'ingest'); print('claimed', flush=True); "
            "sys.stdin.readline()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "claimed"
        with pytest.raises(ClaimError, match=f"pid {child.pid}"):
            ArtifactStore(root).begin_stage("r", "ingest")
        ArtifactStore(root).begin_stage("r", "validate")  # other stages stay free
    finally:
        child.kill()
        child.wait()
    ArtifactStore(root).begin_stage("r", "ingest")  # its process is gone: the claim is stale


def test_a_dead_or_expired_holder_is_taken_over(root):
    _fake_claim(root, 3, pid=_dead_pid())
    s = ArtifactStore(root)
    s.begin_stage("r", "ingest")
    assert _claim_files(root) == ["_claim.4"], "takeover creates n+1 and removes the stale one"
    s.abandon()
    _fake_claim(root, 1, pid=1, host="another-host", expires=time.time() - 1)
    s.begin_stage("r", "ingest")  # another host, lease ran out
    s.abandon()
    _fake_claim(root, 1, pid=1, host="another-host")
    with pytest.raises(ClaimError, match="another-host pid 1"):
        s.begin_stage("r", "ingest")  # another host, lease still running: it may be alive


def test_a_garbled_claim_is_stale(root):
    Path(root, "runs", "r", "ingest").mkdir(parents=True)
    Path(root, "runs", "r", "ingest", "_claim.2").write_text("{")
    ArtifactStore(root).begin_stage("r", "ingest")
    assert _claim_files(root) == ["_claim.3"]


def test_the_holder_renews_its_lease(root, monkeypatch):
    monkeypatch.setenv("LTV_CLAIM_LEASE_SECONDS", "0.8")
    s = ArtifactStore(root)
    s.begin_stage("r", "ingest")
    path = Path(root, "runs", "r", "ingest", "_claim.1")
    first = json.loads(path.read_text())["expires"]
    time.sleep(1.2)  # longer than the lease: only renewal keeps it live
    renewed = json.loads(path.read_text())["expires"]
    assert renewed > first and renewed > time.time()
    s.abandon()


def test_of_two_simultaneous_takeovers_exactly_one_wins(root):
    _fake_claim(root, 1, pid=_dead_pid())
    stores = [ArtifactStore(root) for _ in range(8)]
    barrier, outcomes, won = threading.Barrier(len(stores)), [], []

    def take(store: ArtifactStore) -> None:
        barrier.wait()
        try:
            won.append(claims.acquire(store, store.path("runs", "r", "ingest"), "X", "stage 'ingest' of run 'r'"))
            outcomes.append("won")
        except ClaimError:
            outcomes.append("refused")

    # threads of one process never block each other (same pid): give each its own pid identity
    real_getpid = claims.os.getpid
    pids = iter(range(10_000_000, 10_000_100))
    local = threading.local()

    def fake_getpid() -> int:
        if not hasattr(local, "pid"):
            local.pid = next(pids)
        return local.pid

    claims.os.getpid = fake_getpid
    real_kill = claims.os.kill
    claims.os.kill = lambda pid, sig: None if pid >= 10_000_000 else real_kill(pid, sig)  # the fakes are "alive"
    try:
        threads = [threading.Thread(target=take, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        claims.os.getpid, claims.os.kill = real_getpid, real_kill
    assert sorted(outcomes) == ["refused"] * 7 + ["won"], outcomes
    assert _claim_files(root) == ["_claim.2"]
    won[0].release()
