"""Modelling core of the LTV pipeline: resampling, buyer classifier, multi-horizon regressor,
stacker, gate, baselines, the orchestration of the stack, and (de)serialisation.

Every component takes plain pandas/numpy inputs (a feature frame of float32 + pandas category
columns, label arrays), so it does not depend on how the features were built.

Modules (each imports what it needs from the module that defines it; this package only
re-exports):

* ``matrix``: the feature-schema guard (``FeatureSchema``), the once-converted float matrix
  (``DenseMatrix``), ``check_matrix`` / ``check_labels``
* ``lgb``: LightGBM defaults and parameter assembly, one early-stopped training call, prediction on
  a ``DenseMatrix``
* ``resample``, ``classifier``, ``regressor``, ``stacker``, ``gate``, ``baselines``: the components
* ``config``: config/models.yaml, validated (``ModelsConfig``)
* ``labels``: revenue per horizon from a label frame
* ``plans``: the resampling plans of the training window (``resample_stage``)
* ``search``: the validation search over parameter candidates (``param_search``)
* ``stack``: the fitted stack and its outputs (``FittedStack``, ``assemble_stack``)
* ``training``: the stage-sized fit functions (``train_classifier`` ... ``train_stack``)
* ``persist``: JSON (de)serialisation of every fitted model and of a stack
"""

from __future__ import annotations

from ltv_core.models.baselines import compare, fit_baselines
from ltv_core.models.classifier import BuyerClassifier
from ltv_core.models.config import ModelsConfig, load_models_config
from ltv_core.models.gate import Gate, optimize_gate
from ltv_core.models.lgb import (CLASS_WEIGHT_PARAMS, LGB_DEFAULTS, RESTRICTED_MAX_SHARE, booster_from_string,
                                 booster_split_features, lgb_params, predict_booster, train_booster)
from ltv_core.models.matrix import DenseMatrix, FeatureSchema, check_labels, check_matrix
from ltv_core.models.plans import resample_stage
from ltv_core.models.regressor import MultiHorizonRegressor
from ltv_core.models.resample import ResampleResult, hhistus, histos
from ltv_core.models.stack import FittedStack
from ltv_core.models.stacker import Stacker
from ltv_core.models.training import fit_stacker, train_classifier, train_regressor, train_stack

__all__ = [
    "CLASS_WEIGHT_PARAMS",
    "LGB_DEFAULTS",
    "RESTRICTED_MAX_SHARE",
    "BuyerClassifier",
    "DenseMatrix",
    "FeatureSchema",
    "FittedStack",
    "Gate",
    "ModelsConfig",
    "MultiHorizonRegressor",
    "ResampleResult",
    "Stacker",
    "booster_from_string",
    "booster_split_features",
    "check_labels",
    "check_matrix",
    "compare",
    "fit_baselines",
    "fit_stacker",
    "hhistus",
    "histos",
    "lgb_params",
    "load_models_config",
    "optimize_gate",
    "predict_booster",
    "resample_stage",
    "train_booster",
    "train_classifier",
    "train_regressor",
    "train_stack",
]
