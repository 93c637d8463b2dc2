"""The DAG file parses, has the agreed shape, and holds no logic of its own."""

import ast
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "ltv_daily.py"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAG_FILE.parent))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "ltv_daily" in dagbag.dags


def test_dag_shape(dagbag):
    dag = dagbag.dags["ltv_daily"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.timetable.expression == "0 3 * * *"
    ingest, validate = dag.get_task("ingest"), dag.get_task("validate")
    assert ingest.retries >= 2 and ingest.retry_exponential_backoff
    assert validate.upstream_task_ids == {"ingest"}
    assert dag.get_task("build_features").upstream_task_ids == {"validate"}
    for name in ("config", "dataset_spec", "store_root", "data_root", "train_start", "scoring_end"):
        assert name in dag.params


def test_params_are_validated(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags["ltv_daily"]
    params = ParamsDict(dict(dag.params.items()) if hasattr(dag.params, "items") else dag.params)
    params["train_start"] = "2025-10-01T00:00"
    params.validate()
    with pytest.raises(Exception):
        params["train_start"] = "last tuesday"
        params.validate()


def test_dag_file_holds_no_logic():
    """Tasks are one call into ltv_core: no loops, no I/O, no branching in the DAG file."""
    tree = ast.parse(DAG_FILE.read_text())
    banned = (ast.For, ast.While, ast.With, ast.Try)
    assert not [n for n in ast.walk(tree) if isinstance(n, banned)]
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "runner" in imports
