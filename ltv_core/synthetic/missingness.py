"""The missingness profile the generator reproduces: each nullable column's target null share,
read from ``missingness.yaml`` beside this module (data, so it is kept out of the code)."""

from __future__ import annotations

from pathlib import Path

import yaml

PROFILE = Path(__file__).with_name("missingness.yaml")


def null_targets() -> dict[str, float]:
    """Column -> target null share (0..1), in the file's order; columns not listed are never null."""
    return {str(k): float(v) for k, v in yaml.safe_load(PROFILE.read_text())["null_targets"].items()}


NULL_TARGETS: dict[str, float] = null_targets()
