"""The DAG file parses, has the agreed shape, and holds no logic of its own."""

import ast
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "ltv_daily.py"
TASKS_FILE = DAG_FILE.parent / "ltv_tasks.py"


@pytest.fixture(scope="module")
def dagbag():
    import sys

    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3 puts the DAG bundle's folder on sys.path when it parses or runs a DAG (BundleDagBag);
    # a plain DagBag does not, so do what the DAG processor does.
    if str(DAG_FILE.parent) not in sys.path:
        sys.path.append(str(DAG_FILE.parent))
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
    edges = {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids}
    assert edges == {
        "ingest": set(), "validate": {"ingest"}, "build_features": {"validate"},
        "resample": {"build_features"}, "train_classifier": {"resample"}, "train_regressor": {"train_classifier"},
        "train_baselines": {"build_features"}, "fit_stacker": {"train_regressor", "train_baselines"},
        "optimize_gate": {"fit_stacker"}, "evaluate": {"optimize_gate"}, "promote": {"evaluate"},
        "score": {"promote"},
    }
    # promote records failures too, score serves the champion even when training failed
    assert dag.get_task("promote").trigger_rule == "all_done"
    assert dag.get_task("score").trigger_rule == "all_done"
    assert [a.name for a in dag.get_task("promote").outlets] == ["ltv_champion_model"]
    assert [a.name for a in dag.get_task("score").outlets] == ["ltv_predictions"]
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
    assert {"stage", "promote", "score"} <= imports  # the task wrappers of dags/ltv_tasks.py


def test_task_wrappers_only_call_the_runner():
    """Each task body is one call into ltv_core.runner (plus the asset event of the two outlets)."""
    tree = ast.parse(TASKS_FILE.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While, ast.With))]
    calls = {n.func.attr for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "runner"}
    assert calls == {"promote", "score"}


def test_dask_connection_becomes_a_param(monkeypatch):
    """AIRFLOW_CONN_DASK_DEFAULT routes build_features to that scheduler; without it, the config decides."""
    import sys

    if str(DAG_FILE.parent) not in sys.path:
        sys.path.append(str(DAG_FILE.parent))
    import ltv_tasks

    monkeypatch.setenv("AIRFLOW_CONN_DASK_DEFAULT", "tcp://10.1.2.3:8786")
    assert ltv_tasks._params({"params": {"store_root": "x"}}) == {"store_root": "x",
                                                                   "dask_scheduler": "tcp://10.1.2.3:8786"}
    monkeypatch.delenv("AIRFLOW_CONN_DASK_DEFAULT")
    assert ltv_tasks._params({"params": {"store_root": "x"}}) == {"store_root": "x"}
