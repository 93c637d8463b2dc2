"""The demo's live progress, read from real ``airflow dags test`` output lines."""

from __future__ import annotations

import sys

from ltv_core.progress import DagTestProgress, key_figures, stream

TS = "2026-12-02T09:54:42.313346Z [info     ] "
LINES = [
    TS + "[DAG TEST] starting task_id=ingest map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    TS + "[ingest 1/168] train 2025-10-01-01-00: 431 rows (2.54s) [ltv_core.cluster] loc=cluster.py:121",
    TS + "Done. Returned value was: {'run_id': 'r', 'stage': 'ingest', 'manifest': '/s/_manifest.json', "
         "'rows': {'train': 38400, 'scoring': 9600}} [airflow.task.operators] loc=python.py:217",
    TS + "[DAG TEST] end task task_id=ingest map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
    TS + "[DAG TEST] starting task_id=validate map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    TS + "Task failed with exception [task] loc=task_runner.py:1639",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in run',
    "ltv_core.errors.ValidationError: split 'train' column 'bid_price': 3 rows below 0",
    TS + "[DAG TEST] end task task_id=validate map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
]


def test_tasks_are_reported_with_figures_and_failure_reason():
    said: list[str] = []
    progress = DagTestProgress(say=said.append)
    for line in LINES:
        progress.feed(line)
    assert said[0] == "task ingest: started"
    assert said[1].startswith("task ingest: done in ") and "rows {'train': 38400, 'scoring': 9600}" in said[1]
    assert "manifest" not in said[1]  # paths are not key figures
    assert said[2] == "task validate: started"
    assert said[3] == ("task validate: FAILED: ltv_core.errors.ValidationError: split 'train' column "
                       "'bid_price': 3 rows below 0")
    assert "ended without a result" in said[4]
    assert progress.failures == [f"validate: {said[3].split('FAILED: ')[1]}"]


def test_heartbeat_names_the_running_task_and_its_latest_progress_line():
    said: list[str] = []
    progress = DagTestProgress(say=said.append, heartbeat_s=0.0)
    progress.feed(LINES[0])
    progress.feed(LINES[1])
    progress.tick()
    assert said[-1].startswith("task ingest: running for ")
    assert said[-1].endswith("latest: [ingest 1/168] train 2025-10-01-01-00: 431 rows (2.54s)")
    progress.feed(LINES[3])
    n = len(said)
    progress.tick()  # no task running: no heartbeat
    assert len(said) == n


def test_key_figures_keeps_counts_and_decisions_only():
    assert key_figures({"manifest": "/x", "rmsle": 0.408071234, "promoted": True}) == "rmsle 0.40807; promoted True"


def test_stream_writes_every_line_to_the_log_as_it_comes(tmp_path):
    said: list[str] = []
    script = "import sys\nfor line in sys.argv[1:]: print(line, flush=True)\nsys.exit(3)"
    log = tmp_path / "sub" / "dags-test.log"
    code, tail = stream([sys.executable, "-c", script, *LINES[:4]], {}, log, DagTestProgress(say=said.append),
                        poll_s=0.05)
    assert code == 3
    assert log.read_text().splitlines() == LINES[:4]
    assert tail == LINES[:4]
    assert said[0] == "task ingest: started" and said[1].startswith("task ingest: done")
