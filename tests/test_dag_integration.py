"""The real DAG, run with `airflow dags test` on a small generated data set and a SQLite DB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ltv_core.demo import run_airflow
from ltv_core.store import ArtifactStore

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


def dags_test(env: dict[str, str], conf: dict) -> tuple[int, str]:
    proc = run_airflow(["dags", "test", "ltv_daily", LOGICAL_DATE, "-c", json.dumps(conf)], env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def task_states(env: dict[str, str]) -> dict[str, str]:
    runs = json.loads(run_airflow(["dags", "list-runs", "ltv_daily", "-o", "json"], env).stdout.strip().splitlines()[-1])
    run_id = sorted(runs, key=lambda r: r.get("start_date") or "")[-1]["run_id"]
    out = run_airflow(["tasks", "states-for-dag-run", "ltv_daily", run_id, "-o", "json"], env).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    return {r["task_id"]: r["state"] for r in rows}


def only_run(store_root: Path) -> str:
    runs = [d.name for d in (store_root / "runs").iterdir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_dag_runs_end_to_end(airflow_db, small_data, tmp_path):
    store_root = tmp_path / "store"
    rc, log = dags_test(airflow_db, {"data_root": str(small_data), "store_root": str(store_root), **WINDOWS})
    assert rc == 0, log[-3000:]
    assert set(task_states(airflow_db).values()) == {"success"}
    store = ArtifactStore(str(store_root))
    run = only_run(store_root)
    ingest = store.read_manifest(run, "ingest")
    assert ingest["outputs"]["train"]["rows"] > 0
    assert ingest["inputs"]["windows"]["holdout"]["partitions"] == 8
    assert ingest["outputs"]["scoring"]["labelled"] is False
    validate = store.read_manifest(run, "validate")
    assert validate["success"] is True and validate["failed"] == 0
    assert (store_root / "runs" / run / "validate" / "data_docs" / "index.html").exists()
    features = store.read_manifest(run, "build_features")
    assert features["n_features"] > 100
    assert set(features["rows"]) == {"train", "validation", "holdout", "scoring"}


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


def test_corrupted_partition_fails_validate_and_stops_the_run(airflow_db, small_data, tmp_path):
    data = tmp_path / "data"
    corrupt_one_partition(small_data, data)
    store_root = tmp_path / "store"
    rc, log = dags_test(airflow_db, {"data_root": str(data), "store_root": str(store_root), **WINDOWS})
    assert rc != 0
    states = task_states(airflow_db)
    assert states["ingest"] == "success" and states["validate"] == "failed"
    downstream = {t: s for t, s in states.items() if t not in ("ingest", "validate")}
    assert all(s in ("upstream_failed", None, "None") for s in downstream.values()), downstream
    assert "iap_revenue_d7" in log  # the task error names the column
    store = ArtifactStore(str(store_root))
    run = only_run(store_root)
    assert not store.is_committed(run, "validate")
    result = store.read_json(f"{store.stage_dir(run, 'validate')}/result.json")
    assert result["success"] is False
    assert not (store_root / "runs" / run / "build_features").exists()
