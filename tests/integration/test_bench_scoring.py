"""Smoke test of benchmarks/bench_scoring.py: a tiny run, last stdout line = one JSON object.

About a minute on an idle 2-core machine (two tiny Dask setup stages, a 20-round model, a spawned
scoring process), hence the integration mark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("rows", "rows_per_s", "bare_predict_rows_per_s", "peak_rss_mb")


def test_bench_scoring_tiny_run_prints_json(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_scoring.py"), "--rows", "20000", "--quick",
         "--train-rows-per-partition", "150", "--train-hours", "40", "--bare-rows", "10000",
         "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[-1])
    assert all(k in result for k in REQUIRED), sorted(result)
    assert result["rows"] >= 20000
    assert result["partitions"] == 4
    assert result["rows_per_s"] > 0 and result["bare_predict_rows_per_s"] > 0
    assert 0 < result["peak_rss_mb"] < 4096
    assert result["bare"]["numpy_max_abs_diff"] < 1e-9  # the numpy replay predicts exactly the same
    # every scored partition was written by the stage
    preds = list((tmp_path / "cache").glob("train-*/store/runs/bench_score_*/score/attempts/*/predictions/*/part-0.parquet"))
    assert len(preds) == 4
