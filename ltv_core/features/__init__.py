"""Feature engineering: per-kind vectorised transforms, fitted state, builder and the Dask stage.

See docs/FEATURES.md. Public API:

* ``FeatureBuilder(spec, config)``: ``partial_stats`` / ``fit_state`` / ``fit`` / ``transform``
* ``FeatureState``: the fitted state (JSON), ``load_features_config``: ``config/features.yaml``
* ``run_features_stage`` and ``load_feature_matrix``: the pipeline stage and its reader
"""

from ltv_core.features.builder import FeatureBuilder, assert_no_leakage, assign_folds, carry_columns
from ltv_core.features.config import FeaturesConfig, load_features_config, parse_features_config
from ltv_core.features.state import FeatureState
from ltv_core.features.stage import STAGE, load_feature_matrix, load_feature_state, run_features_stage

__all__ = [
    "STAGE",
    "FeatureBuilder",
    "FeatureState",
    "FeaturesConfig",
    "assert_no_leakage",
    "assign_folds",
    "carry_columns",
    "load_feature_matrix",
    "load_feature_state",
    "load_features_config",
    "parse_features_config",
    "run_features_stage",
]
