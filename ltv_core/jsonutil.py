"""The one JSON sanitiser: what manifests, models, reports and validation results are made of.

numpy scalars and arrays, tuples, sets and objects with ``to_dict`` become plain JSON types, keys
become strings, sets are sorted (the same content always writes the same bytes). ``strict`` also
turns NaN and infinities into null, for files that must be strict JSON (``report/metrics.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def to_jsonable(obj: Any, *, strict: bool = False) -> Any:
    """A copy of ``obj`` made of dict, list, str, int, float, bool and None (tested in
    ``tests/unit/test_jsonutil.py``). Anything else is written as its ``str``."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, strict=strict) for k, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v, strict=strict) for v in sorted(obj, key=str)]
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, list | tuple):
        return [to_jsonable(v, strict=strict) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return None if strict and not math.isfinite(obj) else obj
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict(), strict=strict)
    return str(obj)


def default(obj: Any) -> Any:
    """``json.dumps(default=...)``: the same conversions for what the encoder does not know."""
    return to_jsonable(obj)
