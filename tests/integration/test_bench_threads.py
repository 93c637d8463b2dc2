"""benchmarks/bench_threads.py runs and prints its JSON (tiny sizes; the numbers are in docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_bench_threads_quick_prints_both_policies_and_stops_its_competitor():
    tag = f"bench-threads-test-{os.getpid()}"  # inherited by the benchmark's competitor: ours, not another's
    proc = subprocess.run([sys.executable, "benchmarks/bench_threads.py", "--rows", "2000", "--cols", "20",
                           "--rounds", "20", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LTV_TEST_TAG": tag})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["fit_seconds"]) == {"alone/idle", "alone/loaded"}
    for row in out["fit_seconds"].values():
        assert row["old"] > 0 and row["new"] > 0
    spinners = [p for p in psutil.process_iter(["cmdline", "environ"]) if p.info["cmdline"]
                and p.info["cmdline"][-1:] == ["while True: pass"] and (p.info["environ"] or {}).get("LTV_TEST_TAG") == tag]
    assert not spinners, "the competing process outlived the benchmark"
