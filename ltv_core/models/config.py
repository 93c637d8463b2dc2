"""config/models.yaml, validated: what the modelling stages fit (docs/MODELS.md).

Unknown keys and bad values fail with the field's path (pydantic, ``extra="forbid"``), when the
config is loaded: before a modelling stage fits anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ltv_core import yamlconf

# The choices the config may name; each is implemented by the module named beside it. Kept here so
# that reading and checking the config imports no estimator (LightGBM, scikit-learn, pandas).
BASELINES = ("zero", "mean", "lgbm_log1p", "lgbm_tweedie")          # models/baselines.py
CALIBRATION_METHODS = ("isotonic", "platt", "beta", "none")         # models/classifier.py
OBJECTIVES = ("log1p_l2", "huber", "tweedie")                        # models/regressor.py
BASE_LEARNERS = ("hurdle", "direct_log1p", "tweedie", "cohorts")    # models/stacker.py

DEFAULT_MODELS_CONFIG = "config/models.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResampleStageConfig(_Strict):
    mode: Literal["resample", "weights", "off"] = "off"
    method: Literal["histos", "hhistus"]
    correction: Literal["weights", "prior", "none"] = "weights"
    settings: dict[str, float | int] = Field(default_factory=dict)


class ResampleConfig(_Strict):
    classifier: ResampleStageConfig = ResampleStageConfig(method="histos", correction="prior")
    regressor: ResampleStageConfig = ResampleStageConfig(method="hhistus", correction="weights")


class ClassifierConfig(_Strict):
    params: dict[str, Any] = Field(default_factory=dict)
    # Candidate overrides of ``params`` (e.g. tree shapes); each is fitted and early-stopped, and
    # the one with the lowest validation log loss is kept (every candidate's score is recorded).
    # Empty: ``params`` alone. ``{}`` is the plain ``params`` candidate.
    param_search: list[dict[str, Any]] = Field(default_factory=list)
    calibration_methods: list[str] = Field(default_factory=lambda: ["isotonic", "platt", "beta"])
    calibration_folds: int = Field(default=2, ge=2)
    n_seeds: int = Field(default=1, ge=1)


class RegressorConfig(_Strict):
    objective: str = "log1p_l2"
    params: dict[str, Any] = Field(default_factory=dict)
    # Candidates as for the classifier, chosen by the validation RMSE of log1p revenue of buyers at
    # the primary horizon.
    param_search: list[dict[str, Any]] = Field(default_factory=list)
    increment_params: dict[str, Any] = Field(default_factory=dict)
    huber_delta: float = Field(default=1.0, gt=0)
    tweedie_variance_power: float = Field(default=1.5, ge=1.0, lt=2.0)
    monotone: dict[str, int] = Field(default_factory=dict)


class StackerConfig(_Strict):
    enabled: bool = True
    learners: list[str] = Field(default_factory=lambda: ["hurdle", "direct_log1p"])
    n_folds: int = Field(default=3, ge=2)
    meta: Literal["lgbm", "linear"] = "lgbm"
    min_gain: float = 0.0
    value_head: bool = True
    value_min_gain: float = 0.0
    value_variance_power: float = Field(default=1.5, gt=1.0, lt=2.0)
    value_params: dict[str, Any] = Field(default_factory=dict)


class GateConfig(_Strict):
    enabled: bool = True
    metric: Literal["rmsle", "rmse", "mae"] = "rmsle"
    target_zero_rate: float | None = None
    min_improvement: float = 1e-5


class BaselinesConfig(_Strict):
    names: list[str] = Field(default_factory=lambda: list(BASELINES))
    tweedie_variance_power: float = Field(default=1.5, ge=1.0, lt=2.0)
    # The same kind of search for the LightGBM baselines, each by its own validation loss (L2 of
    # log1p for lgbm_log1p, Tweedie deviance for lgbm_tweedie): the model's components are tuned
    # on validation, so the baselines it is compared with are tuned the same way.
    param_search: list[dict[str, Any]] = Field(default_factory=list)


class CohortsConfig(_Strict):
    """The revenue-cohort strategy (models/cohorts.py): a candidate in the holdout table and, when
    ``stacker.learners`` lists ``cohorts``, a base learner of the stacker."""

    enabled: bool = True
    cuts: list[float] = Field(default_factory=lambda: [50.0, 80.0, 95.0, 99.0])  # payer revenue percentiles
    params: dict[str, Any] = Field(default_factory=dict)            # the cohort classifier (multiclass)
    regressor_params: dict[str, Any] = Field(default_factory=lambda: {"min_data_in_leaf": 50})
    min_rows: int = Field(default=200, ge=1)                        # fewer rows in a cohort: a constant

    @model_validator(mode="after")
    def _cuts(self) -> CohortsConfig:
        if not self.cuts or self.cuts != sorted(self.cuts) or not all(0 < c < 100 for c in self.cuts):
            raise ValueError(f"cohorts.cuts must be increasing percentiles in (0, 100), got {self.cuts}")
        return self


class RaceConfig(_Strict):
    """The candidates race (models/race.py): another fitted model replaces the stack's point (by
    validation RMSLE) or value (by validation Gini) only when the paired bootstrap interval of the
    difference lies beyond the margin."""

    enabled: bool = True
    margin_rmsle: float = Field(default=0.0, ge=0)
    margin_gini: float = Field(default=0.0, ge=0)
    n_boot: int = Field(default=200, ge=10)
    level: float = Field(default=0.95, gt=0, lt=1)
    # which fitted models may replace the stack: baselines and candidate strategies by name
    contenders: list[str] = Field(default_factory=lambda: ["lgbm_log1p", "lgbm_tweedie", "cohorts"])


class IntervalsConfig(_Strict):
    """Per-row quantiles of primary revenue and P(revenue > whale line) (models/intervals.py),
    fitted on the validation window by optimize_gate; scoring writes them as columns."""

    enabled: bool = True
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    whale_threshold: float | None = Field(default=None, gt=0)  # revenue; null: whale_quantile of validation buyers
    whale_quantile: float = Field(default=0.95, gt=0, lt=1)
    bins: int = Field(default=5, ge=1)                          # groups of rows by the buyers' E[log1p y]

    @model_validator(mode="after")
    def _levels(self) -> IntervalsConfig:
        if not self.quantiles or not all(0 < q < 1 for q in self.quantiles) or self.quantiles != sorted(self.quantiles):
            raise ValueError(f"intervals.quantiles must be increasing levels in (0, 1), got {self.quantiles}")
        return self


class EvaluationConfig(_Strict):
    n_boot: int = Field(default=1000, ge=10)
    level: float = Field(default=0.95, gt=0, lt=1)


class ModelsConfig(_Strict):
    """config/models.yaml, validated (unknown keys and bad values fail with the field's path)."""

    seed: int = 42
    lgbm: dict[str, Any] = Field(default_factory=dict)
    num_boost_round: int = Field(default=3000, gt=0)
    early_stopping_rounds: int = Field(default=100, gt=0)
    resample: ResampleConfig = Field(default_factory=ResampleConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    regressor: RegressorConfig = Field(default_factory=RegressorConfig)
    stacker: StackerConfig = Field(default_factory=StackerConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    cohorts: CohortsConfig = Field(default_factory=CohortsConfig)
    race: RaceConfig = Field(default_factory=RaceConfig)
    intervals: IntervalsConfig = Field(default_factory=IntervalsConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ModelsConfig:
        bad = [m for m in self.classifier.calibration_methods if m not in CALIBRATION_METHODS]
        if bad or not self.classifier.calibration_methods:
            raise ValueError(f"classifier.calibration_methods: unknown {bad}; known {CALIBRATION_METHODS}")
        if self.regressor.objective not in OBJECTIVES:
            raise ValueError(f"regressor.objective {self.regressor.objective!r}; known {OBJECTIVES}")
        if set(self.stacker.learners) - set(BASE_LEARNERS) or not self.stacker.learners:
            raise ValueError(f"stacker.learners {self.stacker.learners}; known {BASE_LEARNERS}")
        if "cohorts" in self.stacker.learners and not self.cohorts.enabled:
            raise ValueError("stacker.learners lists 'cohorts' but cohorts.enabled is false")
        if set(self.race.contenders) - set(BASELINES) - {"cohorts"}:
            raise ValueError(f"race.contenders {self.race.contenders}; known {[*BASELINES, 'cohorts']}")
        if set(self.baselines.names) - set(BASELINES):
            raise ValueError(f"baselines.names {self.baselines.names}; known {BASELINES}")
        if self.resample.regressor.correction == "prior":
            raise ValueError("resample.regressor.correction 'prior' only exists for the classifier")
        for stage in (self.resample.classifier, self.resample.regressor):
            if stage.mode == "weights" and stage.correction == "weights":
                raise ValueError("resample mode 'weights' with correction 'weights' cancels out (a no-op): "
                                 "use mode 'off', or correction 'prior'/'none'")
        return self

    def lgb(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.lgbm, **(extra or {})}


def load_models_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ModelsConfig:
    """Load config/models.yaml (or ``path``), apply a shallow-merged ``overrides`` dict, validate."""
    return yamlconf.load_model(ModelsConfig, path, DEFAULT_MODELS_CONFIG, "models config", overrides)
