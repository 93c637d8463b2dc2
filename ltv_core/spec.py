"""Dataset spec: one YAML file describes a data set completely.

Every stage reads columns, types, labels and partitions from here, so a new data set needs a new
spec file, never a code change. The spec is validated with pydantic when it is loaded; a bad spec
fails with a message that names the file and the field at fault.
"""

from __future__ import annotations

import fnmatch
import os
import re
from functools import lru_cache
from datetime import datetime, timezone
from enum import Enum
from functools import cached_property
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ltv_core import yamlconf
from ltv_core.config import Maturity
from ltv_core.errors import SpecError
from ltv_core.yamlconf import project_root

__all__ = [
    "ColumnSpec",
    "DatasetSpec",
    "FeatureKind",
    "HorizonSpec",
    "Role",
    "WindowsSpec",
    "load_spec",
    "parse_arrow_type",
]


class Role(str, Enum):
    id = "id"
    label = "label"
    post_outcome = "post_outcome"
    feature = "feature"


class FeatureKind(str, Enum):
    """How a feature column is turned into model inputs (see docs/DATASET_SPEC.md)."""

    numeric = "numeric"
    categorical = "categorical"
    timestamp = "timestamp"  # Unix seconds, compared with the row's own event time
    map_numeric = "map_numeric"  # map<string, number>
    histogram = "histogram"  # map<value, count or share>
    map_timestamp = "map_timestamp"  # map<string, Unix seconds>
    map_of_maps = "map_of_maps"  # map<string, map<string, number>>
    map_of_maps_timestamp = "map_of_maps_timestamp"  # map<string, map<string, Unix seconds>>
    list_string = "list_string"  # list<string>


_SCALAR_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "large_string": pa.large_string(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
}


@lru_cache(maxsize=256)
def parse_arrow_type(text: str) -> pa.DataType:
    """Parse a type written as in Arrow's own notation: ``map<string, map<string, int64>>``."""
    s = text.replace(" ", "")

    def expect(j: int, ch: str) -> None:
        if j >= len(s) or s[j] != ch:
            raise ValueError(f"expected {ch!r} at position {j} of Arrow type {text!r}")

    def parse(i: int) -> tuple[pa.DataType, int]:
        m = re.match(r"[a-z_0-9]+", s[i:])
        if not m:
            raise ValueError(f"cannot parse Arrow type {text!r} at position {i}")
        name = m.group(0)
        j = i + len(name)
        if name in ("map", "list"):
            if j >= len(s) or s[j] != "<":
                raise ValueError(f"{name} needs type parameters in {text!r}")
            if name == "list":
                item, j = parse(j + 1)
                expect(j, ">")
                return pa.list_(item), j + 1
            key, j = parse(j + 1)
            expect(j, ",")
            value, j = parse(j + 1)
            expect(j, ">")
            return pa.map_(key, value), j + 1
        if name not in _SCALAR_TYPES:
            raise ValueError(f"unknown Arrow type {name!r} in {text!r}; known: {sorted(_SCALAR_TYPES)}")
        return _SCALAR_TYPES[name], j

    dtype, end = parse(0)
    if end != len(s):
        raise ValueError(f"trailing text after position {end} in Arrow type {text!r}")
    return dtype


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _kind_accepts(kind: FeatureKind, t: pa.DataType) -> bool:
    if kind is FeatureKind.numeric:
        return _is_numeric(t) or pa.types.is_boolean(t)
    if kind is FeatureKind.categorical:
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
    if kind is FeatureKind.timestamp:
        return _is_numeric(t)
    if kind is FeatureKind.list_string:
        return pa.types.is_list(t) and pa.types.is_string(t.value_type)
    if not pa.types.is_map(t) or not pa.types.is_string(t.key_type):
        return False
    item = t.item_type
    if kind in (FeatureKind.map_numeric, FeatureKind.histogram, FeatureKind.map_timestamp):
        return _is_numeric(item)
    # map of maps
    return pa.types.is_map(item) and _is_numeric(item.item_type)


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: str
    role: Role = Role.feature
    kind: FeatureKind | None = None
    required: bool = True
    description: str = ""

    @field_validator("type")
    @classmethod
    def _type_parses(cls, v: str) -> str:
        parse_arrow_type(v)
        return v

    @model_validator(mode="after")
    def _kind_matches(self) -> ColumnSpec:
        if self.role is Role.feature:
            if self.kind is None:
                raise ValueError(f"feature column {self.name!r} needs a 'kind'")
            if not _kind_accepts(self.kind, self.arrow_type):
                raise ValueError(
                    f"column {self.name!r}: kind {self.kind.value!r} does not fit Arrow type {self.type!r}"
                )
        elif self.kind is not None:
            raise ValueError(f"column {self.name!r} has role {self.role.value!r}; only features take a 'kind'")
        return self

    @property
    def arrow_type(self) -> pa.DataType:
        return parse_arrow_type(self.type)


class HorizonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    days: int = Field(gt=0)
    revenue: str
    buyer: str | None = None


class LabelsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: str
    horizons: list[HorizonSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> LabelsSpec:
        names = [h.name for h in self.horizons]
        if len(set(names)) != len(names):
            raise ValueError(f"horizon names must be unique, got {names}")
        if self.primary not in names:
            raise ValueError(f"primary horizon {self.primary!r} is not among horizons {names}")
        days = [h.days for h in self.horizons]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError(f"horizons must be listed by strictly increasing days, got {days}")
        return self


class PartitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = "datetime"
    format: str = "%Y-%m-%d-%H-%M"
    grain_hours: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _format_round_trips(self) -> PartitionSpec:
        """The format must tell apart every partition start of the grain: the hour for hourly
        partitions, the date alone (``install_date=%Y-%m-%d``) when the grain is whole days."""
        daily = self.grain_hours % 24 == 0
        probe = datetime(2025, 10, 13, 0 if daily else 13, 0, tzinfo=timezone.utc)
        v = self.format
        try:
            back = datetime.strptime(probe.strftime(v), v)
        except ValueError as exc:  # pragma: no cover - strptime message is enough
            raise ValueError(f"partition format {v!r} does not round-trip: {exc}") from exc
        if back.replace(tzinfo=timezone.utc) != probe:
            what = "the date" if daily else f"the hour (grain_hours {self.grain_hours})"
            raise ValueError(f"partition format {v!r} loses {what}; it cannot order the partitions")
        return self

    def parse(self, value: str) -> datetime:
        """Partition value to an aware UTC datetime; raises SpecError naming the value."""
        try:
            return datetime.strptime(value, self.format).replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise SpecError(f"partition value {self.key}={value!r} does not match format {self.format!r}") from exc

    def render(self, when: datetime) -> str:
        return when.astimezone(timezone.utc).strftime(self.format)


class EventTimeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["partition", "column"] = "partition"
    column: str | None = None  # Unix seconds, when source == "column"

    @model_validator(mode="after")
    def _check(self) -> EventTimeSpec:
        if self.source == "column" and not self.column:
            raise ValueError("event_time.source 'column' needs event_time.column")
        return self


class WindowsSpec(BaseModel):
    """The data set's own window lengths (hours) and label maturity, for runs that derive their
    windows from the logical date. Each field given replaces the pipeline config's ``windows``
    value for this data set (a daily, 120-day data set cannot use Smadex's 96 hours); explicit
    windows (``train: {start, end}``, the window params) still win over both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maturity: Maturity | None = None
    train_hours: int | None = Field(default=None, gt=0)
    validation_hours: int | None = Field(default=None, gt=0)
    holdout_hours: int | None = Field(default=None, gt=0)
    gap_hours: int | None = Field(default=None, ge=0)
    scoring_hours: int | None = Field(default=None, gt=0)

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RootsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: str
    test: str | None = None


class DatasetSpec(BaseModel):
    """A data set: where it lives, how it is partitioned, and what every column is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data_root: str
    roots: RootsSpec
    sample_submission: str | None = None
    oracle: str | None = None
    id_column: str
    partition: PartitionSpec = PartitionSpec()
    event_time: EventTimeSpec = EventTimeSpec()
    labels: LabelsSpec
    excluded_patterns: list[str] = Field(default_factory=list)
    columns: list[ColumnSpec] = Field(min_length=1)
    expectations: str | None = None
    # The data set's own features config (config/features.yaml is Smadex's); None: a default
    # derived from the spec's kinds (ltv_core.features.config.features_config_for).
    features_config: str | None = None
    # This data set's window lengths and maturity (replace the pipeline config's; see WindowsSpec).
    windows: WindowsSpec | None = None
    # The synthetic generator that writes data of this shape (`python -m ltv_core generate`);
    # None: the Smadex generator, which refuses a spec declaring a column it cannot produce.
    generator: Literal["smadex", "gaming"] | None = None
    # Whether runs on this data set also train on users too young for the longest horizon, labels
    # inferred (ltv_core/immature.py); the pipeline config's immature_labels.enabled overrides it.
    immature_labels: bool = False
    source_path: str | None = None  # set by load_spec

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns: duplicate names {dupes}")
        by_name = {c.name: c for c in self.columns}
        if self.id_column not in by_name:
            raise ValueError(f"id_column {self.id_column!r} is not declared in columns")
        if by_name[self.id_column].role is not Role.id:
            raise ValueError(f"id_column {self.id_column!r} must have role 'id'")
        if self.partition.key in by_name:
            raise ValueError(
                f"partition key {self.partition.key!r} must not be declared as a column: it is not inside the files"
            )
        for h in self.labels.horizons:
            for field, col in (("revenue", h.revenue), ("buyer", h.buyer)):
                if col is None:
                    continue
                if col not in by_name:
                    raise ValueError(f"labels.horizons[{h.name}].{field}: column {col!r} is not declared")
                if by_name[col].role is not Role.label:
                    raise ValueError(f"labels.horizons[{h.name}].{field}: column {col!r} must have role 'label'")
        for c in self.columns:
            if c.role is Role.feature and self.is_excluded_name(c.name):
                raise ValueError(
                    f"columns[{c.name}]: matches excluded_patterns {self.excluded_patterns}; "
                    "a label or post-outcome column can never be a feature"
                )
        grain = self.partition.grain_hours
        for key, hours in (self.windows.given() if self.windows else {}).items():
            if key.endswith("_hours") and hours % grain:
                raise ValueError(f"windows.{key} {hours} is not a multiple of partition.grain_hours {grain}")
        if self.event_time.source == "column":
            col = self.event_time.column
            if col not in by_name or not _is_numeric(by_name[col].arrow_type):
                raise ValueError(f"event_time.column {col!r} must be a declared numeric column (Unix seconds)")
        return self

    # --- derived views -------------------------------------------------------------------------
    def is_excluded_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.excluded_patterns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"column {name!r} is not in dataset spec {self.name!r}")

    @cached_property
    def feature_columns(self) -> list[ColumnSpec]:
        """The allow-list: the only columns that can ever reach a model matrix."""
        return [c for c in self.columns if c.role is Role.feature]

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.feature_columns]

    @property
    def label_names(self) -> list[str]:
        return [c.name for c in self.columns if c.role is Role.label]

    @property
    def outcome_names(self) -> list[str]:
        """Every column that only exists in labelled data (labels and post-outcome columns)."""
        return [c.name for c in self.columns if c.role in (Role.label, Role.post_outcome)]

    @property
    def primary(self) -> HorizonSpec:
        return next(h for h in self.labels.horizons if h.name == self.labels.primary)

    @property
    def max_horizon_days(self) -> int:
        return max(h.days for h in self.labels.horizons)

    def arrow_schema(self, labelled: bool = True) -> pa.Schema:
        """Schema of the raw files: train files hold every column, test files no outcome columns."""
        cols = [c for c in self.columns if labelled or c.role in (Role.id, Role.feature)]
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=True) for c in cols])

    # --- paths --------------------------------------------------------------------------------
    def resolved_data_root(self, override: str | None = None) -> str:
        root = override or os.environ.get("LTV_DATA_ROOT") or self.data_root
        if "://" in root or os.path.isabs(root):
            return root.rstrip("/")
        return str(project_root() / root)

    def root_path(self, split: Literal["train", "test"], data_root: str | None = None) -> str | None:
        sub = self.roots.train if split == "train" else self.roots.test
        if sub is None:
            return None
        return f"{self.resolved_data_root(data_root)}/{sub}"

    def optional_path(self, attr: Literal["sample_submission", "oracle"], data_root: str | None = None) -> str | None:
        sub = getattr(self, attr)
        return None if sub is None else f"{self.resolved_data_root(data_root)}/{sub}"


def load_spec(path: str | os.PathLike[str]) -> DatasetSpec:
    """Load and validate a dataset spec; relative paths resolve against the project root."""
    return yamlconf.load_model(DatasetSpec, path, "", "dataset spec")
