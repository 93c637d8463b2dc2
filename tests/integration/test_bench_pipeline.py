"""Smoke test of benchmarks/bench_pipeline.py: a tiny CLI run, last stdout line = one JSON object
with every stage's seconds, the floor and the ratio; then the floor alone on the same data with a
competing process, which must be gone afterwards.

About 1.5 minutes on a shared 2-core machine (generation, the whole CLI run with its Dask
LocalClusters, four floor processes), hence the integration mark. The Airflow mode is not run here
(2-3 minutes): tests/integration/test_backfill.py runs the same LocalExecutor stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ltv_core.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import Competitor, RssSampler  # noqa: E402  (benchmarks/harness.py)

REQUIRED = ("rows", "mode", "compete", "executor", "cli", "floor", "ratio", "commit", "cpu_count", "load_avg")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.integration
def bench(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_pipeline.py"), "--rows", "3000", "--quick",
         "--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "work"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1])


@pytest.mark.integration
def test_bench_pipeline_tiny_cli_run_prints_json(tmp_path):
    result = bench(tmp_path, "--mode", "cli")
    assert all(k in result for k in REQUIRED), sorted(result)
    assert result["ok"] is True and result["mode"] == "cli" and result["compete"] is False
    assert 2500 <= result["rows"] <= 3500
    cli = result["cli"]
    assert cli["ok"] is True
    assert set(cli["stages"]) == {s.value for s in STAGES}
    assert all(cli["stages"][s.value] > 0 for s in STAGES), cli["stages"]
    assert set(cli["stages_manifest"]) == {s.value for s in STAGES}
    assert cli["total_s"] >= cli["stages_sum_s"] > 0
    assert cli["cpu_s"] > 0 and cli["cores_busy"] > 0
    assert 0 < cli["peak_rss_mb"] < 8192
    assert sum(cli["rows_by_split"].values()) == result["rows"]  # the run read every generated row
    floor = result["floor"]
    assert {"read_s", "fit_s", "predict_s", "total_s"} <= set(floor)
    assert floor["total_s"] >= floor["read_s"] + floor["fit_s"] + floor["predict_s"] - 0.03  # rounding
    assert floor["train_rows"] == cli["rows_by_split"]["train"]
    assert floor["scoring_rows"] == cli["rows_by_split"]["scoring"]
    assert result["ratio"]["cli"] == pytest.approx(cli["total_s"] / floor["total_s"], abs=0.06)
    assert len(result["load_avg"]["start"]) == 3 and len(result["commit"]) == 40
    assert not (tmp_path / "work").exists()  # no --keep: the work dir is removed

    # the floor alone, on the same (cached) data, with one competing CPU-bound process
    competed = bench(tmp_path, "--mode", "floor", "--compete")
    assert competed["compete"] is True and competed["ratio"] == {} and "cli" not in competed
    assert competed["floor"]["train_rows"] == floor["train_rows"]
    assert competed["competitor_cpu_s"] > 0.5 * competed["floor"]["total_s"]  # it was busy meanwhile
    assert _gone(competed["competitor_pid"])


def test_rss_sampler_leaves_out_excluded_processes_and_itself():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with Competitor() as comp:
            time.sleep(0.3)
            with RssSampler(interval=0.02, exclude=[comp.pid], include_self=False) as s:
                time.sleep(0.2)
            assert sleeper.pid in s.cpu and comp.pid not in s.cpu and os.getpid() not in s.cpu
            assert s.peak > 0
        assert _gone(comp.pid)
        assert comp.cpu_seconds is not None and comp.cpu_seconds > 0
    finally:
        sleeper.kill()
        sleeper.wait()
