"""Synthetic gaming data (one row per user, daily install-date partitions, d0..d120 revenue) with
a known Bayes-optimal oracle for ``d120_rev`` (docs/GENERATOR.md, "Gaming generator").

``generate_gaming_dataset`` writes the train root (labels null where the user is too young at the
export date), the test root (the newest installs, features only) and the oracle beside the data.
"""

from ltv_core.synthetic.gaming.model import (COEF, HORIZON_COLUMNS, HORIZON_DAYS, GamingCoefficients, draw_future,
                                             draw_users, label_inputs, linear_predictors, oracle)
from ltv_core.synthetic.gaming.vocab import get_vocab
from ltv_core.synthetic.gaming.writer import (GAMING_KNOB_DEFAULTS, GamingKnobs, generate_gaming_dataset,
                                              generate_gaming_partition, users_on)

__all__ = [
    "COEF",
    "GAMING_KNOB_DEFAULTS",
    "GamingCoefficients",
    "GamingKnobs",
    "HORIZON_COLUMNS",
    "HORIZON_DAYS",
    "draw_future",
    "draw_users",
    "generate_gaming_dataset",
    "generate_gaming_partition",
    "get_vocab",
    "label_inputs",
    "linear_predictors",
    "oracle",
    "users_on",
]
