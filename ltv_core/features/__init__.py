"""Feature engineering: per-kind vectorised transforms, the fitted state and the builder.

See docs/FEATURES.md. Public API:

* ``FeatureBuilder(spec, config)``: ``partial_stats`` / ``fit_state`` / ``fit`` / ``transform``
* ``FeatureState``: the fitted state (JSON), ``load_features_config``: ``config/features.yaml``

The stage that runs them on Dask is ``ltv_core.stages.build_features``; its artefacts are read back
with ``ltv_core.catalog.load_feature_state`` / ``load_feature_matrix``.
"""

from ltv_core.features.builder import FeatureBuilder, assert_no_leakage, assign_folds, carry_columns
from ltv_core.features.config import FeaturesConfig, load_features_config, parse_features_config
from ltv_core.features.state import FeatureState

__all__ = [
    "FeatureBuilder",
    "FeatureState",
    "FeaturesConfig",
    "assert_no_leakage",
    "assign_folds",
    "carry_columns",
    "load_features_config",
    "parse_features_config",
]
