"""The DAG file parses, its edges are the stages' declared inputs, its params come from RunParams,
and neither it nor its tasks hold logic of their own."""

import ast
import sys
from pathlib import Path

import pytest

from ltv_core.params import RunParams
from ltv_core.pipeline import DAG_ID, INPUTS, RUN_ALWAYS, STAGES

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "ltv_daily.py"
TASKS_FILE = DAG_FILE.parent / "ltv_tasks.py"


def _on_path() -> None:
    # Airflow 3 puts the DAG bundle's folder on sys.path when it parses or runs a DAG (BundleDagBag);
    # a plain DagBag does not, so do what the DAG processor does.
    if str(DAG_FILE.parent) not in sys.path:
        sys.path.append(str(DAG_FILE.parent))


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    _on_path()
    bag = DagBag(dag_folder=str(DAG_FILE.parent))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_dag_shape(dag):
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.timetable.expression == "0 3 * * *"
    assert set(dag.task_ids) == {s.value for s in STAGES}
    ingest = dag.get_task("ingest")
    assert ingest.retries >= 2 and ingest.retry_exponential_backoff
    assert [a.name for a in dag.get_task("promote").outlets] == ["ltv_champion_model"]
    assert [a.name for a in dag.get_task("score").outlets] == ["ltv_predictions"]


def test_edges_are_the_declared_inputs(dag):
    """Each task waits for exactly the stages whose artefacts it reads; the three model fits wait
    only for the features and the plans, so a parallel executor runs them side by side."""
    edges = {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids}
    assert edges == {s.value: {u.value for u in INPUTS[s]} for s in STAGES}
    fits = ("train_classifier", "train_regressor", "train_baselines")
    for a in fits:
        for b in fits:
            assert a == b or b not in dag.get_task(a).get_flat_relative_ids(upstream=True)


def test_promote_and_score_run_whatever_happened_upstream(dag):
    """promote records failures too; score serves the champion even when training failed."""
    rules = {t: dag.get_task(t).trigger_rule for t in dag.task_ids}
    assert {t for t, r in rules.items() if r == "all_done"} == {s.value for s in RUN_ALWAYS}
    assert {r for t, r in rules.items() if t not in {s.value for s in RUN_ALWAYS}} == {"all_success"}


def test_params_are_the_run_params(dag):
    assert set(dag.params) == set(RunParams.model_fields)
    for name in ("config", "dataset_spec", "store_root", "data_root", "features_config", "train_start",
                 "scoring_end"):
        assert dag.params.get_param(name).value is None


def test_params_are_validated(dag):
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = ParamsDict(dict(dag.params.items()))
    params["train_start"] = "2025-10-01T00:00"
    params.validate()
    with pytest.raises(ParamValidationError, match="does not match"):
        params["train_start"] = "last tuesday"
    with pytest.raises(ParamValidationError, match="is not of type"):
        params["submission_csv"] = "yes"


def test_dag_file_holds_no_logic():
    """The DAG file wires tasks: no loops, no I/O, no branching, no call but the tasks' and the
    params' own."""
    tree = ast.parse(DAG_FILE.read_text())
    banned = (ast.For, ast.While, ast.With, ast.Try, ast.If)
    assert not [n for n in ast.walk(tree) if isinstance(n, banned)]
    tasks = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "ltv_tasks"
             for a in n.names}
    assert tasks == {s.value for s in STAGES}
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ltv_daily").body
    called = {n.value.func.id for n in body if isinstance(n, (ast.Assign, ast.Expr)) and isinstance(n.value, ast.Call)}
    assert called == tasks


def _task_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(TASKS_FILE.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)
            and any(isinstance(d, ast.Call) and getattr(d.func, "id", None) == "task" for d in n.decorator_list)}


def test_every_task_is_one_call_of_its_stage():
    """Each of the thirteen tasks imports its own stage module and calls its ``run`` once with the
    stage context; promote and score also set their asset event. Nothing else."""
    tasks = _task_functions()
    assert set(tasks) == {s.value for s in STAGES}
    for name, fn in tasks.items():
        assert not [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While, ast.With, ast.If, ast.Try))], name
        imports = [(n.module, [a.name for a in n.names]) for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)]
        assert imports == [("ltv_core.stages", [name])], name
        runs = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "run"]
        assert len(runs) == 1 and runs[0].func.value.id == name, name
        assert [a.func.id for a in runs[0].args] == ["stage_context"], name
        statements = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        assert len(statements) == (4 if name in ("promote", "score") else 2), name


def test_task_arguments_are_its_inputs():
    """A task's parameters are the results of the stages it reads, in the DAG file's order."""
    tree = ast.parse(DAG_FILE.read_text())
    body = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "ltv_daily").body
    produced: dict[str, str] = {}
    for node in body:
        call = node.value
        args = [produced[a.id] for a in call.args]
        assert set(args) == {u.value for u in INPUTS[call.func.id]}, call.func.id
        if isinstance(node, ast.Assign):
            produced[node.targets[0].id] = call.func.id


def test_dask_connection_becomes_a_param(monkeypatch):
    """AIRFLOW_CONN_DASK_DEFAULT routes the Dask stages to that scheduler; without it, the config decides."""
    _on_path()
    import ltv_tasks

    monkeypatch.setenv("AIRFLOW_CONN_DASK_DEFAULT", "tcp://10.1.2.3:8786")
    assert ltv_tasks.run_params({"params": {"store_root": "x"}}) == {"store_root": "x",
                                                                      "dask_scheduler": "tcp://10.1.2.3:8786"}
    monkeypatch.delenv("AIRFLOW_CONN_DASK_DEFAULT")
    assert ltv_tasks.run_params({"params": {"store_root": "x"}}) == {"store_root": "x"}


def test_the_first_task_checks_every_config_before_any_work(tmp_path):
    """The DAG's ingest task runs the preflight (ltv_core.preflight): a models-config typo fails the
    task in seconds naming file and field, and nothing is written to the store."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    import yaml

    from ltv_core.errors import SpecError

    _on_path()
    import ltv_tasks

    root = Path(__file__).resolve().parents[2]
    models = yaml.safe_load((root / "config" / "models.yaml").read_text())
    models["num_boost_rounds"] = 10
    (tmp_path / "models-typo.yaml").write_text(yaml.safe_dump(models))
    (tmp_path / "data" / "train" / "train").mkdir(parents=True)
    store = tmp_path / "store"
    context = {"params": {"models_config": str(tmp_path / "models-typo.yaml"), "data_root": str(tmp_path / "data"),
                          "store_root": str(store)},
               "run_id": "manual__2025-11-04T03:00:00+00:00", "ti": SimpleNamespace(task_id="ingest"),
               "logical_date": datetime(2025, 11, 4, 3, tzinfo=timezone.utc), "dag_run": None}
    with pytest.raises(SpecError, match=r"models-typo.yaml:\n  - num_boost_rounds: Extra inputs are not permitted"):
        ltv_tasks.ingest.function(**context)
    assert not store.exists() or list(store.iterdir()) == []


def test_a_run_without_scoring_window_skips_score_and_sends_no_event():
    from airflow.sdk.exceptions import AirflowSkipException

    _on_path()
    import ltv_tasks

    context = {"outlet_events": {}}
    with pytest.raises(AirflowSkipException, match="no scoring window"):
        ltv_tasks.emit_predictions(context, {"skipped": "no scoring window: ...", "rows": 0})
    assert context["outlet_events"] == {}
