"""ltv_daily: nightly LTV retraining. Reads like the pipeline diagram; every task is one call into
ltv_core (the task wrappers live in dags/ltv_tasks.py).

Manual triggers and backfills take Params: any window (ISO times, UTC, end exclusive), the dataset
spec, the data root and the artefact store root. See docs/OPERATIONS.md.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag
from ltv_tasks import promote, score, stage

_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2})?)?)?(Z|[+-]\d{2}:\d{2})?$"


def _window_param(split: str, edge: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        pattern=_TIME,
        title=f"{split} window {edge}",
        description=f"ISO time (UTC) of the {split} window's {edge}; empty derives it from the logical date.",
    )


IO_RETRIES = {"retries": 3, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True,
              "max_retry_delay": timedelta(minutes=30)}


@dag(
    dag_id="ltv_daily",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ltv", "retries": 0},
    tags=["ltv", "ml"],
    doc_md=__doc__,
    params={
        "config": Param(None, type=["null", "string"], title="Pipeline config",
                        description="YAML like config/pipeline.yaml; empty: $LTV_PIPELINE_CONFIG, else that file."),
        "dataset_spec": Param(None, type=["null", "string"], title="Dataset spec",
                              description="YAML under config/datasets/; empty uses the pipeline config's."),
        "data_root": Param(None, type=["null", "string"], title="Raw data root (local path or s3://)"),
        "store_root": Param(None, type=["null", "string"], title="Artefact store root (local path or s3://)"),
        "models_config": Param(None, type=["null", "string"], title="Models config",
                               description="YAML like config/models.yaml; empty uses the pipeline config's."),
        "submission_csv": Param(None, type=["null", "boolean"], title="Also write a submission CSV"),
        **{f"{s}_{e}": _window_param(s, e)
           for s in ("train", "validation", "holdout", "scoring") for e in ("start", "end")},
    },
)
def ltv_daily():
    staged = stage("ingest", **IO_RETRIES)()
    features = stage("build_features")(stage("validate")(staged))
    plans = stage("resample")(features)
    classifier = stage("train_classifier")(plans)
    regressor = stage("train_regressor")(classifier)
    baselines = stage("train_baselines")(features)
    stack = stage("fit_stacker")(regressor, baselines)
    gated = stage("optimize_gate")(stack)
    evaluated = stage("evaluate")(gated)
    decision = promote(evaluated)
    score(decision)


ltv_daily()
