"""Airflow glue of the ltv_daily DAG: each task is one call into ``ltv_core.runner``.

Kept out of the DAG file so that the DAG reads like the pipeline diagram. Listed in .airflowignore:
the DAG processor does not parse it as a DAG file (it is imported by ltv_daily.py).
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.sdk import Asset, Connection, TriggerRule, task

from ltv_core import runner


def _when(context):
    """A run triggered without a logical date (Airflow 3 allows it) is anchored at its run_after."""
    return context.get("logical_date") or context["dag_run"].run_after


DASK_CONN_ID = "dask_default"


def _params(context) -> dict:
    """The run's params, plus the Dask scheduler of the ``dask_default`` connection when one exists
    (e.g. AIRFLOW_CONN_DASK_DEFAULT=tcp://dask-scheduler:8786); without it the config decides."""
    params = dict(context["params"])
    try:
        conn = Connection.get(DASK_CONN_ID)
    except AirflowNotFoundException:  # no such connection: the config decides
        return params
    if conn.host and not params.get("dask_scheduler"):
        params["dask_scheduler"] = f"{conn.conn_type or 'tcp'}://{conn.host}:{conn.port or 8786}"
    return params


def stage(name: str, **task_kwargs):
    """One pipeline stage as a task: ``runner.<name>(run_id, logical date, params)``."""
    fn = getattr(runner, name)

    @task(task_id=name, **task_kwargs)
    def run_stage(*upstream, **context) -> dict:
        return fn(context["run_id"], _when(context), _params(context))

    return run_stage


# Data-aware scheduling: downstream DAGs can schedule on a new champion or new predictions.
CHAMPION_MODEL = Asset(name="ltv_champion_model", uri="ltv://champion_model")
PREDICTIONS = Asset(name="ltv_predictions", uri="ltv://predictions")


@task(trigger_rule=TriggerRule.ALL_DONE, outlets=[CHAMPION_MODEL])
def promote(evaluated, **context) -> dict:
    """Runs even when a stage failed, so that the failure is recorded; ships nothing then."""
    result = runner.promote(context["run_id"], _when(context), _params(context))
    context["outlet_events"][CHAMPION_MODEL].extra = {
        "promoted": result["promoted"], "champion_run_id": result["champion_run_id"]}
    return result


@task(trigger_rule=TriggerRule.ALL_DONE, outlets=[PREDICTIONS])
def score(decision, **context) -> dict:
    """Scores with the champion even when this run's training failed; refuses unvalidated data."""
    result = runner.score(context["run_id"], _when(context), _params(context))
    context["outlet_events"][PREDICTIONS].extra = {
        "predictions": result["predictions"], "model_run_id": result["model_run_id"], "rows": result["rows"]}
    return result


