"""The tasks of the ltv_daily DAG: one ``@task`` per stage, each one call of
``ltv_core.stages.<stage>.run`` with the run's context.

A task's arguments are the results of the stages it reads (``ltv_core.pipeline.INPUTS``); they
become ``ctx.upstream``, and the stage records their manifests among its inputs. Stage modules are
imported inside the tasks: parsing the DAG stays cheap (no LightGBM, pandas or Dask import).
Listed in .airflowignore: the DAG processor does not parse this file as a DAG file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Connection, TriggerRule, task
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

from ltv_core.pipeline import Stage

DASK_CONN_ID = "dask_default"
# ingest reads the raw data (object store, network): retried with backoff; the others fail fast.
IO_RETRIES = {"retries": 3, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True,
              "max_retry_delay": timedelta(minutes=30)}
# Data-aware scheduling: downstream DAGs can schedule on a new champion or new predictions.
CHAMPION_MODEL = Asset(name="ltv_champion_model", uri="ltv://champion_model")
PREDICTIONS = Asset(name="ltv_predictions", uri="ltv://predictions")


def run_params(context: dict[str, Any]) -> dict[str, Any]:
    """The run's params, plus the Dask scheduler of the ``dask_default`` connection when one exists
    (e.g. AIRFLOW_CONN_DASK_DEFAULT=tcp://dask-scheduler:8786) and no param names one."""
    params = dict(context["params"])
    try:
        conn = Connection.get(DASK_CONN_ID)
    except AirflowNotFoundException:  # no such connection: the config decides
        return params
    if conn.host and not params.get("dask_scheduler"):
        params["dask_scheduler"] = f"{conn.conn_type or 'tcp'}://{conn.host}:{conn.port or 8786}"
    return params


def stage_context(context: dict[str, Any], *upstream: dict[str, Any] | None):
    """The stage's RunContext; a run triggered without a logical date (Airflow 3 allows it) is
    anchored at its run_after. A failed upstream (promote and score run anyway) passes None."""
    from ltv_core.context import make_context

    from ltv_core import threads

    when = context.get("logical_date") or context["dag_run"].run_after
    ctx = make_context(context["run_id"], when, run_params(context),
                       upstream={u["stage"]: u for u in upstream if u})
    # this stage's share of the cores, beside the tasks the DAG may run with it (ltv_core.threads)
    threads.apply(threads.resolve(ctx.config.threads, in_dag=True).for_stage(Stage(context["ti"].task_id)))
    return ctx


@task(task_id=Stage.INGEST.value, **IO_RETRIES)
def ingest(**context) -> dict:
    """Stages the run's windows from the raw data (retried: object-store reads fail transiently)."""
    from ltv_core.stages import ingest

    return ingest.run(stage_context(context))


@task(task_id=Stage.VALIDATE.value)
def validate(staged: dict, **context) -> dict:
    """Great Expectations on the staged splits; a failure stops training and scoring."""
    from ltv_core.stages import validate

    return validate.run(stage_context(context, staged))


@task(task_id=Stage.BUILD_FEATURES.value)
def build_features(staged: dict, validated: dict, **context) -> dict:
    """Fits the feature state on train and transforms every staged split, once validation passed.

    Reads the staged files of ``staged``; ``validated`` only has to exist (it committed)."""
    from ltv_core.stages import build_features

    return build_features.run(stage_context(context, staged, validated))


@task(task_id=Stage.RESAMPLE.value)
def resample(features: dict, **context) -> dict:
    """Resampling plans of the training window."""
    from ltv_core.stages import resample

    return resample.run(stage_context(context, features))


@task(task_id=Stage.TRAIN_CLASSIFIER.value)
def train_classifier(features: dict, plans: dict, **context) -> dict:
    """The calibrated buyer classifier: the features and the plans, nothing else, so it runs
    beside train_regressor and train_baselines."""
    from ltv_core.stages import train_classifier

    return train_classifier.run(stage_context(context, features, plans))


@task(task_id=Stage.TRAIN_REGRESSOR.value)
def train_regressor(features: dict, plans: dict, **context) -> dict:
    """The multi-horizon regressor of buyers' revenue."""
    from ltv_core.stages import train_regressor

    return train_regressor.run(stage_context(context, features, plans))


@task(task_id=Stage.TRAIN_BASELINES.value)
def train_baselines(features: dict, **context) -> dict:
    """The baselines promotion and the report compare against; needs no plan, so it may start
    right after build_features.

    Same windows and same tree-shape search as the stack."""
    from ltv_core.stages import train_baselines

    return train_baselines.run(stage_context(context, features))


@task(task_id=Stage.FIT_STACKER.value)
def fit_stacker(features: dict, classifier: dict, regressor: dict, baselines: dict, **context) -> dict:
    """The out-of-fold stacker, over the classifier, the regressor and two baselines."""
    from ltv_core.stages import fit_stacker

    return fit_stacker.run(stage_context(context, features, classifier, regressor, baselines))


@task(task_id=Stage.OPTIMIZE_GATE.value)
def optimize_gate(features: dict, classifier: dict, regressor: dict, stack: dict, **context) -> dict:
    """The gate, searched on validation predictions of the assembled stack.

    After the stacker: it must be searched on the very prediction it gates."""
    from ltv_core.stages import optimize_gate

    return optimize_gate.run(stage_context(context, features, classifier, regressor, stack))


@task(task_id=Stage.EVALUATE.value)
def evaluate(staged: dict, features: dict, classifier: dict, regressor: dict, baselines: dict, stack: dict,
             gate: dict, **context) -> dict:
    """Holdout metrics of the stack, the baselines, the champion (on this run's staged holdout) and
    the oracle."""
    from ltv_core.stages import evaluate

    return evaluate.run(stage_context(context, staged, features, classifier, regressor, baselines, stack, gate))


@task(task_id=Stage.DRIFT.value)
def drift(staged: dict, features: dict, classifier: dict, regressor: dict, stack: dict, gate: dict,
          **context) -> dict:
    """The scoring window against the training window (features, unseen categories, predictions);
    a flag is logged and recorded, never blocking: promote and score run either way."""
    from ltv_core.stages import drift

    return drift.run(stage_context(context, staged, features, classifier, regressor, stack, gate))


@task(task_id=Stage.PROMOTE.value, trigger_rule=TriggerRule.ALL_DONE, outlets=[CHAMPION_MODEL])
def promote(*required: dict | None, **context) -> dict:
    """Runs even when a stage failed, so that the failure is recorded; ships nothing then."""
    from ltv_core.stages import promote

    result = promote.run(stage_context(context, *required))
    context["outlet_events"][CHAMPION_MODEL].extra = {
        "promoted": result["promoted"], "champion_run_id": result["champion_run_id"]}
    return result


@task(task_id=Stage.SCORE.value, trigger_rule=TriggerRule.ALL_DONE, outlets=[PREDICTIONS])
def score(staged: dict | None, validated: dict | None, decision: dict | None, **context) -> dict:
    """Scores with the champion even when this run's training failed; refuses unvalidated data."""
    from ltv_core.stages import score

    result = score.run(stage_context(context, staged, validated, decision))
    emit_predictions(context, result)
    return result


def emit_predictions(context: dict[str, Any], result: dict[str, Any]) -> None:
    """The predictions Asset event of a scored run; a run without a scoring window (a data set with
    no test partitions) marks the task skipped instead: the run succeeds and no event is sent."""
    if result.get("skipped"):
        raise AirflowSkipException(result["skipped"])
    context["outlet_events"][PREDICTIONS].extra = {
        "predictions": result["predictions"], "model_run_id": result["model_run_id"], "rows": result["rows"]}
