"""ltv_daily: nightly LTV retraining. Reads like the pipeline diagram: each task is one stage of
``ltv_core.stages`` (the tasks live in dags/ltv_tasks.py) and each edge is a value passed, the
result of a stage that the next one reads (``ltv_core.pipeline.INPUTS``). train_classifier,
train_regressor and train_baselines depend only on the features and the resampling plans, so a
parallel executor runs them side by side; drift runs beside evaluate, and promote reads its verdict
without waiting on its success (promote runs whatever happened upstream).

Manual triggers and backfills take Params (``ltv_core.params.RunParams``): any window (ISO times,
UTC, end exclusive), the dataset spec, the config files, the data root and the artefact store root.
See docs/OPERATIONS.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag
from ltv_tasks import (
    build_features,
    drift,
    evaluate,
    fit_stacker,
    ingest,
    optimize_gate,
    promote,
    resample,
    score,
    train_baselines,
    train_classifier,
    train_regressor,
    validate,
)

from ltv_core.params import airflow_param_specs
from ltv_core.pipeline import DAG_ID
from ltv_core.threads import dag_parallel_tasks


@dag(
    dag_id=DAG_ID,
    schedule="0 3 * * *",
    # A run whose logical date precedes start_date gets no tasks (and "succeeds"): keep it before
    # any data set's dates (the gaming seed's export is 2024-03-13). catchup=False: it schedules nothing.
    start_date=pendulum.datetime(2020, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # never more CPU-bound tasks at once than cores; each gets its share (ltv_core/threads.py)
    max_active_tasks=dag_parallel_tasks(),
    default_args={"owner": "ltv", "retries": 0},
    tags=["ltv", "ml"],
    doc_md=__doc__,
    params={name: Param(**spec) for name, spec in airflow_param_specs().items()},
)
def ltv_daily():
    staged = ingest()
    validated = validate(staged)
    features = build_features(staged, validated)
    plans = resample(features)
    classifier = train_classifier(features, plans)
    regressor = train_regressor(features, plans)
    baselines = train_baselines(features)
    stack = fit_stacker(features, classifier, regressor, baselines)
    gate = optimize_gate(features, classifier, regressor, stack)
    evaluation = evaluate(staged, features, classifier, regressor, baselines, stack, gate)
    drifted = drift(staged, features, classifier, regressor, stack, gate)
    decision = promote(staged, validated, features, plans, classifier, regressor, baselines, stack, gate, evaluation,
                       drifted)
    score(staged, validated, decision)


ltv_daily()
