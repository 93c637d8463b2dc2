"""The whole pipeline on a second, generated schema (issue 14): the gaming data set, one row per user,
daily install-date partitions, d120 labels null for young users. It runs through its files alone
(config/datasets/gaming_d120.yaml and its expectations): the CLI's `run`, then the Airflow DAG.

The logical date is 3 days after the export date, so the holdout's two newest install days have no
d120_rev yet: ingest must exclude them, count them, and still run to a clean success. The spec's
`immature_labels: true` makes both runs also train on the install days after the holdout."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from support.configs import small_pipeline_config

from ltv_core import cli
from ltv_core.demo import run_airflow
from ltv_core.store import ArtifactStore

pytestmark = pytest.mark.integration

SPEC = "config/datasets/gaming_d120.yaml"
AS_OF = "2024-03-13"
LOGICAL = "2024-03-16T00:00:00+00:00"  # the export is 3 days old: install days 2023-11-15 and -16 are immature
IMMATURE = ["2023-11-15", "2023-11-16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """200 train days (the spec's windows need 88 labelled days ending 120 days before the logical
    date) and 7 test days, ~120 users a day."""
    from ltv_core.synthetic.gaming import generate_gaming_dataset

    out = tmp_path_factory.mktemp("gaming-data")
    generate_gaming_dataset(out, seed=5, rows_per_partition=120, train_days=200, test_days=7, as_of=AS_OF)
    return out


def scored_users(data: Path) -> set[str]:
    return set(ds.dataset(data / "test", format="parquet", partitioning="hive").to_table(
        columns=["user_id"])["user_id"].to_pylist())


def check_run(store_root: Path, run: str, data: Path) -> None:
    """What both runs must show: immature days excluded and counted, holdout metrics that beat the
    zero and constant predictions, a prediction for every test user."""
    store = ArtifactStore(str(store_root))
    out = store.read_manifest(run, "ingest")["outputs"]
    hold = out["holdout"]
    assert hold["immature_partitions"] == IMMATURE and hold["dropped_share"] == 0.0
    assert hold["rows_immature"] == hold["rows_read"] - hold["rows"] > 100
    assert out["train"]["rows_immature"] == 0 and out["train"]["rows"] > 6000
    # the spec's immature_labels: true: the install days after the holdout are trained on too
    young = out["train"]["immature_labels"]
    assert young["rows"] > 1000 and out["train"]["rows"] == out["train"]["rows_matured"] + young["rows"]
    assert min(young["partitions"]) >= hold["window"][1][:10]
    assert out["scoring"]["rows"] == len(scored_users(data))
    assert store.read_manifest(run, "validate")["failed"] == 0
    ev = json.loads(Path(store.stage_dir(run, "evaluate"), "baselines.json").read_text())
    rows = ev["rows"]  # predictor -> metrics on the holdout
    model, zero, mean = rows["stack_point"]["rmsle"], rows["zero"]["rmsle"], rows["mean"]["rmsle"]
    assert model < 0.8 * zero and model < 0.8 * mean, rows
    assert rows["oracle_point"]["rmsle"] < zero  # the generator's oracle was found beside the data
    preds = pq.read_table(f"{store.stage_dir(run, 'score')}/predictions").to_pandas()
    assert set(preds["user_id"]) == scored_users(data) and len(preds) == len(scored_users(data))
    p = preds["pred_d120"].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and p.std() > 0


def test_cli_runs_every_stage_on_the_gaming_files(data, tmp_path, capsys, caplog):
    config = small_pipeline_config(tmp_path, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    store = tmp_path / "store"
    caplog.set_level(logging.WARNING, logger="ltv_core.stages.ingest")
    rc = cli.main(["run", "--spec", SPEC, "--config", config, "--data-root", str(data), "--store-root", str(store),
                   "--logical-date", LOGICAL, "--run-id", "gaming"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    result = json.loads(captured.out)
    assert result["promote"]["promoted"] is True and result["score"]["rows"] > 0
    warned = [r.getMessage() for r in caplog.records if r.name == "ltv_core.stages.ingest"]
    assert any(m.startswith("holdout 2023-11-15: excluded all") and "['d120'] not matured" in m for m in warned)
    check_run(store, "gaming", data)


@pytest.fixture(scope="module")
def airflow_env(airflow_db, dask_scheduler_address, tmp_path_factory) -> dict[str, str]:
    """As tests/integration/test_dag_run.py: the session's Dask scheduler, test-sized boosting."""
    return {**airflow_db, "AIRFLOW_CONN_DASK_DEFAULT": dask_scheduler_address, "LTV_PARALLEL_TASKS": "1",
            "LTV_PIPELINE_CONFIG": small_pipeline_config(tmp_path_factory.mktemp("gaming-config"))}


def test_the_airflow_dag_runs_on_the_gaming_files(airflow_env, data, tmp_path):
    store = tmp_path / "store"
    conf = {"dataset_spec": SPEC, "data_root": str(data), "store_root": str(store)}
    proc = run_airflow(["dags", "test", "ltv_daily", LOGICAL, "-c", json.dumps(conf)], airflow_env, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    run_id = re.findall(r"DagRun Finished: .*?run_id=([^,\s]+)", log)[-1]
    states = run_airflow(["tasks", "states-for-dag-run", "ltv_daily", run_id, "-o", "json"], airflow_env).stdout
    states = {r["task_id"]: r["state"] for r in json.loads(states.strip().splitlines()[-1])}
    assert len(states) == 13 and set(states.values()) == {"success"}, states
    runs = [d.name for d in (store / "runs").iterdir()]
    assert len(runs) == 1
    check_run(store, runs[0], data)
