"""The real DAG, run with `airflow dags test` on a small generated data set and a SQLite DB."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ltv_core.demo import run_airflow
from ltv_core.store import ArtifactStore, safe_run_id

from support.configs import small_pipeline_config

pytestmark = pytest.mark.integration

LOGICAL_DATE = "2025-10-31T00:00:00+00:00"
# Small explicit windows keep the run short; maturity (28 days) is satisfied for this logical date.
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-02T00:00",
    "validation_start": "2025-10-02T00:00", "validation_end": "2025-10-02T08:00",
    "holdout_start": "2025-10-02T08:00", "holdout_end": "2025-10-02T16:00",
}


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    from ltv_core.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("data")
    generate_dataset(out, seed=11, rows_per_partition=150, train_hours=40, test_hours=6)
    return out


@pytest.fixture(scope="module")
def env(airflow_db, dask_scheduler_address, tmp_path_factory) -> dict[str, str]:
    """Airflow env whose ``dask_default`` connection points at the session's real Dask scheduler
    (so build_features uses it, through the DAG's connection lookup, instead of a LocalCluster per
    task) and whose pipeline config has test-sized boosting."""
    return {**airflow_db, "AIRFLOW_CONN_DASK_DEFAULT": dask_scheduler_address,
            "LTV_PIPELINE_CONFIG": small_pipeline_config(tmp_path_factory.mktemp("config"))}


def dags_test(env: dict[str, str], conf: dict) -> tuple[int, str]:
    env = {"LTV_PARALLEL_TASKS": "1", **env}  # `dags test` runs one task at a time
    proc = run_airflow(["dags", "test", "ltv_daily", LOGICAL_DATE, "-c", json.dumps(conf)], env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def dag_test_run_id(log: str) -> str:
    """The run id `airflow dags test` created, from its closing "DagRun Finished" line.

    Not "the newest run by start_date": `dags test` sets a run's start_date to its logical date, so
    runs of other tests in the session DB (a backfill's, for example) can look newer."""
    found = re.findall(r"DagRun Finished: .*?run_id=([^,\s]+)", log)
    assert found, f"no 'DagRun Finished' line in the dags test output:\n{log[-3000:]}"
    return found[-1]


def task_states(env: dict[str, str], log: str) -> dict[str, str]:
    run_id = dag_test_run_id(log)
    out = run_airflow(["tasks", "states-for-dag-run", "ltv_daily", run_id, "-o", "json"], env).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    return {r["task_id"]: r["state"] for r in rows}


def asset_events(env: dict[str, str]) -> dict[str, dict]:
    """Latest event extra per asset name, from the metadata DB (SQLite in AIRFLOW_HOME)."""
    import sqlite3

    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute("SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                          "ORDER BY e.id").fetchall()
    return {name: json.loads(extra) for name, extra in rows}


def only_run(store_root: Path) -> str:
    runs = [d.name for d in (store_root / "runs").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_dag_runs_end_to_end(env, small_data, tmp_path, dask_scheduler_address):
    store_root = tmp_path / "store"
    rc, log = dags_test(env, {"data_root": str(small_data), "store_root": str(store_root), "submission_csv": True,
                              **WINDOWS})
    assert rc == 0, log[-3000:]
    states = task_states(env, log)
    assert len(states) == 13 and set(states.values()) == {"success"}, states
    store = ArtifactStore(str(store_root))
    run = only_run(store_root)
    ingest = store.read_manifest(run, "ingest")
    assert ingest["outputs"]["train"]["rows"] > 0
    assert ingest["inputs"]["windows"]["holdout"]["partitions"] == 8
    assert ingest["outputs"]["scoring"]["labelled"] is False
    validate = store.read_manifest(run, "validate")
    assert validate["success"] is True and validate["failed"] == 0
    assert Path(store.stage_dir(run, "validate"), "data_docs", "index.html").exists()  # the committed attempt
    features = store.read_manifest(run, "build_features")
    assert features["n_features"] > 100
    assert set(features["rows"]) == {"train", "validation", "holdout", "scoring"}
    # the dask_default connection routed the build to the external scheduler's two workers
    assert len(features["outputs"]["train"]["workers"]) == 2
    # the modelling stages, the evaluation against baselines and oracle, the decision and the report
    evaluation = store.read_manifest(run, "evaluate")
    assert "oracle_point" in store.read_text(f"{store.stage_dir(run, 'evaluate')}/baselines.md")
    decision = store.read_json(f"{store.stage_dir(run, 'promote')}/decision.json")
    assert decision["promoted"] is True
    assert safe_run_id(store.read_json(str(store_root / "champion.json"))["run_id"]) == run
    assert Path(store.stage_dir(run, "report"), "report.html").stat().st_size > 10_000
    assert json.loads(Path(store.stage_dir(run, "report"), "metrics.json").read_text())["metrics"]["model"]["rmsle"] == \
        pytest.approx(evaluation["model"]["rmsle"])
    # drift: measured on the features the model uses, recorded by promote (flagged or not, it promoted)
    drift = store.read_manifest(run, "drift")
    assert drift["features"] > 0 and isinstance(drift["flagged"], bool) and drift["max_psi"] is not None
    assert store.read_manifest(run, "promote")["drift"]["flagged"] is drift["flagged"]
    assert Path(store.stage_dir(run, "drift"), "drift.json").exists()
    scored = store.read_manifest(run, "score")
    assert scored["rows"] == ingest["outputs"]["scoring"]["rows"]
    preds = pq.read_table(f"{store.stage_dir(run, 'score')}/predictions").to_pandas()
    assert len(preds) == scored["rows"] and preds["pred_d7"].ge(0).all()
    assert Path(store.stage_dir(run, "score"), "submission.csv").exists()
    # Asset events for data-aware DAGs: which model is champion, where the predictions are
    events = asset_events(env)
    assert events["ltv_champion_model"]["promoted"] is True
    assert events["ltv_predictions"]["rows"] == scored["rows"]


def corrupt_one_partition(src: Path, dst: Path) -> str:
    """Copy the data set and make one validation-window partition carry negative revenue."""
    shutil.copytree(src, dst)
    part = dst / "train/train/datetime=2025-10-02-03-00"
    f = next(part.glob("*.parquet"))
    t = pq.read_table(f)
    i = t.schema.get_field_index("iap_revenue_d7")
    t = t.set_column(i, "iap_revenue_d7", pc.multiply(t.column(i), pa.scalar(-1.0)))
    pq.write_table(t, f)
    return f.name


def test_corrupted_partition_fails_validate_and_stops_the_run(env, small_data, tmp_path):
    data = tmp_path / "data"
    corrupt_one_partition(small_data, data)
    store_root = tmp_path / "store"
    rc, log = dags_test(env, {"data_root": str(data), "store_root": str(store_root), **WINDOWS})
    assert rc != 0
    states = task_states(env, log)
    assert states["ingest"] == "success" and states["validate"] == "failed"
    downstream = {t: s for t, s in states.items() if t not in ("ingest", "validate", "promote", "score")}
    assert all(s in ("upstream_failed", None, "None") for s in downstream.values()), downstream
    # promote still runs to record the failure (nothing shipped); score refuses unvalidated data
    assert states["promote"] == "success" and states["score"] == "failed"
    assert "iap_revenue_d7" in log  # the task error names the column
    store = ArtifactStore(str(store_root))
    run = only_run(store_root)
    assert not store.is_committed(run, "validate")
    failed_attempt = store.newest_attempt_dir(run, "validate")  # withdrawn from the pointer, kept to read
    assert failed_attempt is not None
    result = store.read_json(f"{failed_attempt}/result.json")
    assert result["success"] is False
    assert not (store_root / "runs" / run / "build_features").exists()
    decision = store.read_json(f"{store.stage_dir(run, 'promote')}/decision.json")
    assert decision["promoted"] is False and "validate" in decision["reason"]
    assert not (store_root / "champion.json").exists()
    assert not store.is_committed(run, "score")
