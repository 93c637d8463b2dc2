"""The hand-written expectations file: its schema, its loader, and the checks run when it is loaded.

Why it exists: the rules the spec cannot derive (allowed values, ranges, null-share bands) live in
``include/expectations/<dataset>.yaml`` in GX vocabulary (``type`` + ``kwargs``). The file is parsed
and checked against the spec once, up front, so a typo fails naming the entry instead of mid-run,
and every split reuses the parsed result.

Great Expectations takes seconds to import, so it is imported lazily inside the functions that
need it: importing this module (e.g. while Airflow parses a DAG) stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ltv_core.errors import SpecError
from ltv_core.pipeline import SPLITS
from ltv_core.spec import DatasetSpec
from ltv_core.validation.view import helper_columns
from ltv_core.yamlconf import project_root


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    applies_to: list[str] | None = None
    notes: str | None = None


class _ExpectationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    expectations: list[_Entry] = Field(default_factory=list)
    null_share: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @field_validator("null_share")
    @classmethod
    def _bands_ordered(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = {c: b for c, b in v.items() if not 0.0 <= b[0] <= b[1] <= 1.0}
        if bad:
            raise ValueError(f"null_share bands must satisfy 0 <= min <= max <= 1, got {bad}")
        return v


@dataclass(frozen=True)
class HandWrittenExpectations:
    """The parsed expectations file, checked against the spec once so every split reuses it."""

    source: str
    sha256: str  # recorded in the stage manifest: which rules a run was held to
    expectations: tuple[_Entry, ...]
    null_share: Mapping[str, tuple[float, float]]


def referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    """The columns an expectation's kwargs name (``column``, ``column_A``/``_B``, ``column_list``)."""
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    cols += [c for c in kwargs.get("column_list") or [] if isinstance(c, str)]
    return cols


def expectation_class(name: str) -> type:
    """The GX expectation class called ``name`` (``ExpectColumnValuesToBeBetween``)."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import Expectation

    cls = getattr(gxe, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Expectation)):
        raise ValueError(f"{name!r} is not an expectation in great_expectations.expectations")
    return cls


def _check_entry(i: int, entry: _Entry, spec: DatasetSpec, known: set[str], source: str) -> None:
    where = f"expectations file {source}, expectations[{i}] ({entry.type})"
    try:
        expectation_class(entry.type)(**entry.kwargs, meta={})
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise SpecError(f"{where}: {exc}") from None
    unknown = [c for c in referenced_columns(entry.kwargs) if c not in known]
    if unknown:
        raise SpecError(f"{where}: columns {unknown} are neither in spec {spec.name!r} nor helpers")
    splits = set(entry.applies_to or [])
    if splits and not splits <= {s.value for s in SPLITS}:
        raise SpecError(f"{where}: applies_to {sorted(splits)} names an unknown split")


def load_expectations_file(path: str | os.PathLike[str], spec: DatasetSpec) -> HandWrittenExpectations:
    """Parse and check the file up front, so a typo fails here naming the entry, not mid-run."""
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = project_root() / p
    if not p.exists():
        raise SpecError(f"expectations file not found: {path} (spec {spec.name!r})")
    text = p.read_text()
    try:
        parsed = _ExpectationsFile.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"invalid expectations file {p}: {exc}") from None
    declared = {c.name for c in spec.columns}
    known = declared | set(helper_columns(spec))
    for i, entry in enumerate(parsed.expectations):
        _check_entry(i, entry, spec, known, str(p))
    undeclared = sorted(set(parsed.null_share) - declared)
    if undeclared:
        raise SpecError(f"expectations file {p}: null_share names undeclared columns {undeclared}")
    unbanded = [c for c in spec.feature_names if c not in parsed.null_share]
    if unbanded:
        raise SpecError(f"expectations file {p}: null_share has no band for feature columns {unbanded}")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return HandWrittenExpectations(str(p), digest, tuple(parsed.expectations), dict(parsed.null_share))


def resolve_expectations(
    spec: DatasetSpec, expectations_file: str | os.PathLike[str] | HandWrittenExpectations | None
) -> HandWrittenExpectations | None:
    """A loaded file as it is, a path loaded; ``None`` loads the spec's own ``expectations`` path,
    if the spec names one (else there is no hand-written file: ``None``)."""
    if isinstance(expectations_file, HandWrittenExpectations):
        return expectations_file
    path = expectations_file if expectations_file is not None else spec.expectations
    return None if path is None else load_expectations_file(path, spec)
