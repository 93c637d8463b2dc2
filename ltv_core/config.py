"""Pipeline config (``config/pipeline.yaml``), validated with pydantic.

The config says what a run does; the dataset spec says what the data is. A run's params
(``ltv_core.params.RunParams``: DAG params, CLI flags) override a handful of fields (store root, data
root, spec, config files, windows) for manual runs and backfills.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ltv_core import yamlconf
from ltv_core.threads import ThreadsConfig
from ltv_core.timeutil import parse_time

DEFAULT_CONFIG = "config/pipeline.yaml"


class TimeRange(BaseModel):
    """A half-open time range [start, end) in UTC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> datetime:
        return parse_time(v)

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} must be after its start {self.start.isoformat()}")
        return self


# How long labels take to mature: the spec's longest or primary horizon, or a number of days (>= 0).
# One type for the pipeline config and a dataset spec's own windows (ltv_core/spec.py WindowsSpec).
Maturity = Literal["longest", "primary"] | Annotated[int, Field(ge=0)]


class WindowsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maturity: Maturity = "longest"
    train_hours: int = Field(default=96, gt=0)
    validation_hours: int = Field(default=24, gt=0)
    holdout_hours: int = Field(default=24, gt=0)
    gap_hours: int = Field(default=0, ge=0)
    scoring_hours: int = Field(default=24, gt=0)
    train: TimeRange | None = None
    validation: TimeRange | None = None
    holdout: TimeRange | None = None
    scoring: TimeRange | None = None


class DaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduler_address: str | None = None
    n_workers: int | None = Field(default=None, gt=0)
    threads_per_worker: int = Field(default=1, gt=0)
    memory_limit: str | int = "auto"
    processes: bool = True
    # glibc M_TRIM_THRESHOLD for LocalCluster worker processes. Dask's nanny sets 65536 by default,
    # which hands memory back to the OS after every large free: each partition's numpy buffers then
    # page-fault afresh and the feature build ran ~1.5x slower (docs/BENCHMARKS.md). null leaves
    # glibc's own dynamic threshold; the workers' peak RSS stays flat (one partition per task).
    malloc_trim_threshold: int | None = Field(default=None, ge=0)


class ValidationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rows_per_split: int | None = Field(default=300_000, gt=0)
    # A row id may appear in one split only: the same impression / user in train and holdout leaks
    # its label into the evaluation. Off for data sets whose scoring window re-scores known ids.
    ids_unique_across_splits: bool = True


class PromotionConfig(BaseModel):
    """Champion/challenger rule: promote when not worse than the champion by more than ``tolerance``
    (relative) on ``metric``, both measured on the candidate run's holdout window."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["rmsle", "rmse", "mae", "gini", "r2"] = "rmsle"
    tolerance: float = Field(default=0.0, ge=0.0, lt=1.0)


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    submission_csv: bool = False   # also write score/submission.csv (id, primary revenue)
    prune_features: bool = True    # compute only the features the champion's trees split on
    # Without a Dask scheduler address, score in the task's own process (every core) when the run
    # stages fewer rows than this: a LocalCluster's workers take ~10 s to start and import the
    # stack, more than they save on small runs (docs/BENCHMARKS.md). 0: always on the cluster.
    local_cluster_min_rows: int = Field(default=5_000_000, ge=0)


class DriftConfig(BaseModel):
    """The drift stage (``ltv_core.drift``; docs/OPERATIONS.md "Drift"): the scoring window against
    the training window. A flagged run still promotes and scores; the flag is recorded."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    sample_rows: int = Field(default=50_000, gt=0)  # rows of each window compared (uniform sample)
    bins: int = Field(default=10, ge=2)             # PSI's quantile bins of the training distribution
    psi_warn: float = Field(default=0.1, ge=0)      # a feature above: "warn" (moderate shift)
    psi_alert: float = Field(default=0.25, ge=0)    # a feature above: drifted
    max_drifted_share: float = Field(default=0.2, ge=0, le=1)  # run flagged above this share of drifted features
    max_unseen_share: float = Field(default=0.05, ge=0, le=1)  # run flagged when a category feature exceeds it
    prediction_psi: float = Field(default=0.25, ge=0)          # run flagged when the predictions' PSI exceeds it
    exclude_features: list[str] = Field(default_factory=list)  # fnmatch patterns left out of the comparison
    seed: int = 0

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"drift.psi_warn {self.psi_warn} must not exceed drift.psi_alert {self.psi_alert}")
        return self


class LimitsConfig(BaseModel):
    """What ingest refuses instead of warning about (``ltv_core.limits``; docs/OPERATIONS.md "Limits"):
    a split beyond a limit fails the stage before it commits. Shares compare with ``>``; null disables."""

    model_config = ConfigDict(extra="forbid")

    # Per split: rows dropped for lacking the id or a label / rows read. 92% of a training window once
    # went with a warning. Generated data drops none; 0.1 lets a few bad hours through (one empty-label
    # hour is 1% of the default training window, 4% of validation), not a broken label feed.
    max_dropped_share: float | None = Field(default=0.1, ge=0, le=1)
    # Training window: the largest share of the primary revenue held by one row. Above it one whale (or
    # one unit error) dominates the regressor's fit. Generated data: at most 0.13 over every 96-hour
    # window of demo-sized data (400 rows an hour, ~1,400 buyers); 0.19 in 1 of 1,000 draws of 1,000 buyers.
    max_row_revenue_share: float | None = Field(default=0.25, ge=0, le=1)
    # ... enforced from this many rows of positive primary revenue in the training window on: among a
    # few dozen buyers one row holding 30-90% is ordinary (the revenue is lognormal, sigma 1.85), and
    # the small windows of tests and backfills have that few. The share is recorded either way.
    revenue_share_min_buyers: int = Field(default=1000, ge=0)
    # Per split: fewer rows left than this fails (an empty split always fails). null: no minimum.
    min_rows_per_split: int | None = Field(default=None, gt=0)


class TrackingConfig(BaseModel):
    """MLflow tracking and model registry (``ltv_core.tracking``; docs/OPERATIONS.md "MLflow tracking"):
    promote mirrors each run (params, holdout metrics, report, model files, a model version) and
    moves the ``champion`` / ``challenger`` aliases in step with the store's champion pointer. Off
    unless ``uri`` or ``$MLFLOW_TRACKING_URI`` is set; the store stays the source of truth."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = Field(default=None, min_length=1)  # null: $MLFLOW_TRACKING_URI, else tracking off
    experiment: str = Field(default="ltv_daily", min_length=1)
    # null: ltv_<dataset spec name>. Letters, digits, _ . - and spaces: it is quoted in registry searches.
    registered_model: str | None = Field(default=None, pattern=r"^[\w.\- ]+$")
    # Artefact root of the experiment when this run creates it (file / SQLite stores); null: the
    # tracking server's default (mlflow-artifacts:/ when it serves artefacts), else MLflow's ./mlruns.
    artifact_location: str | None = Field(default=None, min_length=1)
    required: bool = False  # true: a failed mirror fails promote; false: a WARNING, recorded in the manifest
    # An unreachable server must fail in seconds, not MLflow's default ~4 minutes of retries
    # (MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT; those variables, when set, win).
    http_retries: int = Field(default=1, ge=0, le=10)
    http_timeout: int = Field(default=10, gt=0)


class ImmatureLabelsConfig(BaseModel):
    """Train also on users too young for the longest horizon (``ltv_core.immature``; docs/MODELS.md
    "Immature labels"): the install days after the labelled windows, their missing horizons inferred
    from each user's latest matured one by ``models.maturity.MaturityMultipliers`` fitted on the
    matured training rows. Validation and holdout stay matured users only."""

    model_config = ConfigDict(extra="forbid")

    # None: the dataset spec's choice (its `immature_labels: true|false`, default false), so that a
    # data set it was measured to help turns it on in its own file (docs/MODELS.md "Immature labels")
    enabled: bool | None = None
    min_horizon: str | None = None   # shortest source horizon used (a spec horizon name); None: any
    payer_quantiles: int = Field(default=4, ge=1)
    min_cohort_rows: int = Field(default=30, ge=1)
    zeros: Literal["keep", "sample"] = "keep"
    random_state: int = 0


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_spec: str = "config/datasets/smadex_d7.yaml"
    store_root: str | None = None
    data_root: str | None = None
    windows: WindowsConfig = WindowsConfig()
    dask: DaskConfig = DaskConfig()
    validation: ValidationConfig = ValidationConfig()
    models_config: str = "config/models.yaml"
    # None: the dataset spec's features_config, else a default derived from the spec's kinds
    features_config: str | None = None
    # None: the dataset spec's hand-written expectations file (if it names one)
    expectations: str | None = None
    promotion: PromotionConfig = PromotionConfig()
    scoring: ScoringConfig = ScoringConfig()
    drift: DriftConfig = DriftConfig()
    limits: LimitsConfig = LimitsConfig()
    immature_labels: ImmatureLabelsConfig = ImmatureLabelsConfig()
    threads: ThreadsConfig = ThreadsConfig()
    tracking: TrackingConfig = TrackingConfig()
    source_path: str | None = None


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Load ``path``, else ``$LTV_PIPELINE_CONFIG``, else ``config/pipeline.yaml``; relative paths
    resolve against the project root. The variable lets a deployment (or a backfill, which passes
    no conf) choose the config without touching the DAG's params."""
    return yamlconf.load_model(PipelineConfig, path or os.environ.get("LTV_PIPELINE_CONFIG"), DEFAULT_CONFIG,
                               "pipeline config")
