"""Synthetic data with a known Bayes-optimal oracle (see docs/GENERATOR.md).

``generate_dataset`` writes Smadex-shaped train/test partitions laid out like the Kaggle files, a
sample submission, and the oracle beside the data. The label model (``model.py``) reads only
observed columns, so the oracle is the best any model can do on the synthetic data.
``ltv_core.synthetic.gaming`` writes the gaming data set (one row per user, daily partitions);
``generate`` picks the generator the spec names (``generator:``).
"""

from typing import Any

from ltv_core.synthetic.features import BLOCK_PRESENCE, EMPTY_SHARE, NULL_TARGETS
from ltv_core.synthetic.model import COEF, LabelCoefficients, label_inputs, linear_predictors, map_entries, oracle
from ltv_core.synthetic.writer import KNOB_DEFAULTS, Knobs, generate_dataset, generate_partition, partition_rows

GENERATOR_ARGS = {
    "smadex": ("seed", "rows_per_partition", "start", "train_hours", "test_hours", "test_start",
               "files_per_partition"),
    "gaming": ("seed", "rows_per_partition", "start", "as_of", "train_days", "test_days", "files_per_partition"),
}


def generate(out: Any, *, spec_path: str = "config/datasets/smadex_d7.yaml", **kwargs: Any) -> dict:
    """Write synthetic data of the spec's shape with the generator its ``generator:`` field names
    (none: the Smadex generator). An argument the chosen generator does not take raises ValueError
    naming the generator and the arguments it takes."""
    from ltv_core.spec import load_spec

    name = load_spec(spec_path).generator or "smadex"
    unknown = sorted(k for k in kwargs if k not in GENERATOR_ARGS[name] and k != "log")
    if unknown:
        raise ValueError(f"the {name} generator (spec {spec_path}) does not take {unknown}; "
                         f"it takes {list(GENERATOR_ARGS[name])}")
    if name == "gaming":
        from ltv_core.synthetic.gaming import generate_gaming_dataset

        return generate_gaming_dataset(out, spec_path=spec_path, **kwargs)
    return generate_dataset(out, spec_path=spec_path, **kwargs)


__all__ = [
    "BLOCK_PRESENCE",
    "GENERATOR_ARGS",
    "COEF",
    "EMPTY_SHARE",
    "KNOB_DEFAULTS",
    "Knobs",
    "LabelCoefficients",
    "NULL_TARGETS",
    "generate",
    "generate_dataset",
    "generate_partition",
    "label_inputs",
    "linear_predictors",
    "map_entries",
    "oracle",
    "partition_rows",
]
