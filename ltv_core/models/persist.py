"""Serialise fitted models to bytes / JSON and back (the store layer writes the bytes).

Everything is JSON: LightGBM boosters as ``model_to_string()`` text, calibrators as their
thresholds or coefficients, the gate and decisions as plain dicts. No pickle: a stored model can be
inspected with a text editor, and loading one never executes code. Each blob carries a ``kind`` and
a ``format`` version, and loading refuses anything else with a message naming what it got.
"""

from __future__ import annotations

import json
from typing import Any

from ltv_core.errors import DataError
from ltv_core.jsonutil import to_jsonable
from ltv_core.models.baselines import Baseline
from ltv_core.models.classifier import BuyerClassifier
from ltv_core.models.gate import Gate
from ltv_core.models.regressor import MultiHorizonRegressor
from ltv_core.models.cohorts import CohortModel
from ltv_core.models.intervals import RevenueQuantiles
from ltv_core.models.stacker import Stacker
from ltv_core.models.stack import FittedStack

__all__ = ["FORMAT", "dumps", "loads", "stack_to_blobs", "stack_from_blobs", "to_state", "from_state"]

FORMAT = 1
_KINDS: dict[str, type] = {
    "buyer_classifier": BuyerClassifier,
    "multi_horizon_regressor": MultiHorizonRegressor,
    "stacker": Stacker,
    "baseline": Baseline,
    "cohort_model": CohortModel,
    "revenue_quantiles": RevenueQuantiles,
    "gate": Gate,
}


def _kind(obj: Any) -> str:
    for name, cls in _KINDS.items():
        if isinstance(obj, cls):
            return name
    raise TypeError(f"cannot serialise {type(obj).__name__}; known: {sorted(_KINDS)} and FittedStack")


def to_state(obj: Any) -> dict[str, Any]:
    """``{"kind", "format", "state"}`` of one fitted component."""
    kind = _kind(obj)
    state = obj.to_dict() if kind == "gate" else obj.to_state()
    return {"kind": kind, "format": FORMAT, "state": to_jsonable(state)}


def from_state(doc: dict[str, Any]) -> Any:
    if not isinstance(doc, dict) or "kind" not in doc or "state" not in doc:
        raise DataError("not a serialised model: expected a JSON object with 'kind' and 'state'")
    if doc.get("format") != FORMAT:
        raise DataError(f"serialised model format {doc.get('format')!r} is not supported (expected {FORMAT})")
    cls = _KINDS.get(doc["kind"])
    if cls is None:
        raise DataError(f"unknown serialised model kind {doc['kind']!r}; known: {sorted(_KINDS)}")
    return cls.from_dict(doc["state"]) if cls is Gate else cls.from_state(doc["state"])


def dumps(obj: Any) -> bytes:
    """One fitted component as UTF-8 JSON bytes."""
    return json.dumps(to_state(obj), allow_nan=False).encode()


def loads(data: bytes) -> Any:
    try:
        doc = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"serialised model is not valid JSON: {exc}") from exc
    return from_state(doc)


def stack_to_blobs(stack: FittedStack) -> dict[str, bytes]:
    """A FittedStack as named blobs: one per model plus ``manifest.json`` (terms, decisions, metrics)."""
    blobs = {"classifier.json": dumps(stack.classifier), "regressor.json": dumps(stack.regressor),
             "gate.json": dumps(stack.gate)}
    if stack.stacker is not None:
        blobs["stacker.json"] = dumps(stack.stacker)
    for name, model in stack.base_models.items():
        blobs[f"base_{name}.json"] = dumps(model)
    if stack.intervals is not None:
        blobs["intervals.json"] = dumps(stack.intervals)
    manifest = {"format": FORMAT, "horizons": stack.horizons, "primary": stack.primary, "revenue": stack.revenue,
                "late_log1p": stack.late_log1p, "late_mean": stack.late_mean,
                "base_models": sorted(stack.base_models), "has_stacker": stack.stacker is not None,
                "decisions": stack.decisions, "metrics": stack.metrics, "race": stack.race}
    blobs["manifest.json"] = json.dumps(to_jsonable(manifest), allow_nan=False, indent=1).encode()
    return blobs


def stack_from_blobs(blobs: dict[str, bytes]) -> FittedStack:
    if "manifest.json" not in blobs:
        raise DataError(f"no manifest.json among the stack blobs {sorted(blobs)}")
    m = json.loads(blobs["manifest.json"].decode())
    if m.get("format") != FORMAT:
        raise DataError(f"stack manifest format {m.get('format')!r} is not supported (expected {FORMAT})")
    need = ["classifier.json", "regressor.json", "gate.json"] + [f"base_{n}.json" for n in m["base_models"]]
    need += ["stacker.json"] if m["has_stacker"] else []
    missing = [n for n in need if n not in blobs]
    if missing:
        raise DataError(f"stack blobs missing {missing}")
    return FittedStack(horizons=m["horizons"], primary=m["primary"], revenue=m["revenue"],
                       classifier=loads(blobs["classifier.json"]),
                       regressor=loads(blobs["regressor.json"]), late_log1p=m["late_log1p"],
                       late_mean=m["late_mean"],
                       stacker=loads(blobs["stacker.json"]) if m["has_stacker"] else None,
                       base_models={n: loads(blobs[f"base_{n}.json"]) for n in m["base_models"]},
                       gate=loads(blobs["gate.json"]), decisions=m["decisions"], metrics=m["metrics"],
                       race=m.get("race") or {},
                       intervals=loads(blobs["intervals.json"]) if "intervals.json" in blobs else None)
