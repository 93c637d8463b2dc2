"""Feature engineering: per-kind vectorised transforms, the fitted state, the fit and the transform.

See docs/FEATURES.md. Public API:

* ``FeatureFitter(spec, config)``: ``partial_stats`` / ``fit_state`` / ``fit`` -> ``FeatureState``
* ``FeatureBuilder(spec, config)``: ``transform`` / ``matrix`` / ``transform_partition`` with a state,
  ``plan_for`` -> ``PrunePlan`` (compute only what some needed feature comes from)
* ``FeatureState``: the fitted state (JSON), ``load_features_config``: ``config/features.yaml``

The stage that runs them on Dask is ``ltv_core.stages.build_features``; its artefacts are read back
with ``ltv_core.catalog.load_feature_state`` / ``load_feature_matrix``.
"""

from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.columns import assert_no_leakage, assign_folds, carry_columns
from ltv_core.features.config import FeaturesConfig, load_features_config, parse_features_config
from ltv_core.features.fitter import FeatureFitter
from ltv_core.features.plan import PrunePlan
from ltv_core.features.state import FeatureState

__all__ = [
    "FeatureBuilder",
    "FeatureFitter",
    "FeatureState",
    "FeaturesConfig",
    "PrunePlan",
    "assert_no_leakage",
    "assign_folds",
    "carry_columns",
    "load_features_config",
    "parse_features_config",
]
