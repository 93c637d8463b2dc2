"""Synthetic Smadex-shaped data with a known Bayes-optimal oracle (see docs/GENERATOR.md).

``generate_dataset`` writes train/test partitions laid out like the Kaggle files, a sample
submission, and the oracle beside the data. The label model (``model.py``) reads only observed
columns, so the oracle is the best any model can do on the synthetic data.
"""

from ltv_core.synthetic.features import BLOCK_PRESENCE, EMPTY_SHARE, NULL_TARGETS
from ltv_core.synthetic.model import COEF, LabelCoefficients, label_inputs, linear_predictors, map_entries, oracle
from ltv_core.synthetic.writer import KNOB_DEFAULTS, Knobs, generate_dataset, generate_partition, partition_rows

__all__ = [
    "BLOCK_PRESENCE",
    "COEF",
    "EMPTY_SHARE",
    "KNOB_DEFAULTS",
    "Knobs",
    "LabelCoefficients",
    "NULL_TARGETS",
    "generate_dataset",
    "generate_partition",
    "label_inputs",
    "linear_predictors",
    "map_entries",
    "oracle",
    "partition_rows",
]
