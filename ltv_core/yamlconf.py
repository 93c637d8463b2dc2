"""Reading YAML config files: one place for path resolution and error messages.

Dataset specs, the pipeline config, the features config and the models config all fail the same
way on bad input: the message names the file and, for pydantic errors, every field at fault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ltv_core.errors import SpecError


def project_root() -> Path:
    """The repository root: relative paths in specs and configs resolve against it."""
    env = os.environ.get("LTV_PROJECT_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def resolve(path: str | Path | None, default: str, what: str) -> Path:
    """``path`` (or ``default``) as given, else relative to the project root; fails when missing."""
    p = Path(path or default)
    if not p.is_absolute() and not p.exists():
        p = project_root() / p
    if not p.exists():
        raise SpecError(f"{what} not found: {path or default}")
    return p


def read_mapping(p: Path, what: str) -> dict[str, Any]:
    """The YAML file's top-level mapping (empty file: {})."""
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{what} {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{what} {p} must be a mapping at the top level")
    return raw


def invalid(what: str, path: str, exc: ValidationError) -> SpecError:
    """A SpecError listing every failing field as ``loc: message``."""
    lines = [f"invalid {what} {path}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  - {loc}: {err['msg']}")
    return SpecError("\n".join(lines))


Model = TypeVar("Model", bound=BaseModel)


def load_model(cls: type[Model], path: str | os.PathLike[str] | None, default: str, what: str,
               overrides: dict[str, Any] | None = None) -> Model:
    """Resolve, read and validate one YAML config file as ``cls``; a ``source_path`` field, when
    the model has one, records the file. ``overrides`` are merged into the file's top-level
    sections (one level deep: ``{"stacker": {"n_folds": 2}}`` keeps the file's other stacker
    keys). Fails naming the file and every field at fault."""
    p = resolve(path, default, what)
    raw = read_mapping(p, what)
    for k, v in (overrides or {}).items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    if "source_path" in cls.model_fields:
        raw["source_path"] = str(p)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise invalid(what, str(p), exc) from None
