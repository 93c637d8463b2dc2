"""Feature-engineering config (``config/features.yaml``), validated with pydantic.

The config says which feature groups are built and with which knobs; the dataset spec says what
the columns are. Every group has an ``enabled`` switch. Cross-checks that need the spec (a lookup
naming a label column, an interaction naming an unknown feature) happen in ``columns.py`` (when
a builder is made) and at fit, which know both, and fail with the group and the name at fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ltv_core import yamlconf

if TYPE_CHECKING:
    from ltv_core.spec import DatasetSpec

DEFAULT_FEATURES_CONFIG = "config/features.yaml"
TOP_SHARE_RE = re.compile(r"^top([1-9][0-9]*)_share$")
MAP_STATS = ("count", "sum", "mean", "max", "entropy")
BASE_KINDS = ("numeric", "timestamp", "map_numeric", "histogram", "map_timestamp", "map_of_maps",
              "map_of_maps_timestamp", "list_string")  # categorical codes are their own group


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_map_stats(stats: list[str]) -> list[str]:
    for s in stats:
        if s not in MAP_STATS and not TOP_SHARE_RE.match(s):
            raise ValueError(f"unknown map statistic {s!r}; known: {list(MAP_STATS)} and topK_share (K >= 1)")
    if len(set(stats)) != len(stats):
        raise ValueError(f"duplicate map statistics in {stats}")
    return stats


class InnerKeysConfig(_Strict):
    """Inner keys of map_of_maps columns (click, install, ...) that get their own total column."""

    top_n: int = Field(default=8, ge=0)
    min_count: int = Field(default=20, ge=1)


class BaseConfig(_Strict):
    """Per-kind transforms of the spec's feature columns."""

    enabled: bool = True
    kinds: list[str] = list(BASE_KINDS)
    map_numeric_stats: list[str] = ["count", "sum", "mean", "max", "entropy", "top1_share"]
    histogram_stats: list[str] = ["count", "sum", "mean", "max", "entropy", "top1_share"]
    future_tolerance_days: float = Field(default=1.0, ge=0)
    inner_keys: InnerKeysConfig = InnerKeysConfig()

    @field_validator("map_numeric_stats", "histogram_stats")
    @classmethod
    def _known_stats(cls, v: list[str]) -> list[str]:
        return _check_map_stats(v)


class EventTimeConfig(_Strict):
    enabled: bool = True


class MissingIndicatorConfig(_Strict):
    enabled: bool = True
    threshold: float = Field(default=0.05, ge=0.0, le=1.0)


class CategoricalColumnConfig(_Strict):
    top_n: int | None = Field(default=None, ge=0)
    min_count: int | None = Field(default=None, ge=1)


class CategoricalConfig(_Strict):
    enabled: bool = True
    top_n: int = Field(default=500, ge=0)
    min_count: int = Field(default=20, ge=1)
    overrides: dict[str, CategoricalColumnConfig] = Field(default_factory=dict)

    def limits(self, column: str) -> tuple[int, int]:
        o = self.overrides.get(column, CategoricalColumnConfig())
        return (self.top_n if o.top_n is None else o.top_n, self.min_count if o.min_count is None else o.min_count)


class KeyLookup(_Strict):
    map: str
    key_column: str
    absent: Literal["nan", "zero"] = "nan"  # value when the map is present but lacks the row's key


class KeyLookupConfig(_Strict):
    enabled: bool = True
    lookups: list[KeyLookup] = Field(default_factory=list)


class Interaction(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    op: Literal["product", "ratio", "sum", "difference"]
    a: str
    b: str
    a_offset: float = 0.0
    b_offset: float = 0.0


class InteractionConfig(_Strict):
    enabled: bool = True
    features: list[Interaction] = Field(default_factory=list)


class GeoAggregate(_Strict):
    value: str  # an output feature name (numeric) computed without fitted state
    group: str  # a categorical spec column
    stats: list[Literal["pct", "dev_median", "ratio_median"]] = ["pct", "dev_median"]


class GeoConfig(_Strict):
    enabled: bool = True
    min_group_rows: int = Field(default=30, ge=1)
    max_points: int = Field(default=64, ge=3)
    significant_digits: int = Field(default=4, ge=1, le=15)
    aggregates: list[GeoAggregate] = Field(default_factory=list)


class TargetEncodingConfig(_Strict):
    enabled: bool = True
    columns: list[str] = Field(default_factory=list)
    targets: list[Literal["buyer", "log1p_revenue"]] = ["buyer", "log1p_revenue"]
    folds: int = Field(default=4, ge=2)
    smoothing: float = Field(default=20.0, ge=0.0)
    max_categories: int = Field(default=50_000, ge=1)


# The list of each optional group that names spec columns or features.
GROUP_LISTS = {"key_lookups": "lookups", "interactions": "features", "geo_aggregates": "aggregates",
               "target_encoding": "columns"}


class FeaturesConfig(_Strict):
    """The whole of ``config/features.yaml``."""

    version: int = 1
    exclude_columns: list[str] = Field(default_factory=list)
    base: BaseConfig = BaseConfig()
    event_time: EventTimeConfig = EventTimeConfig()
    missing_indicators: MissingIndicatorConfig = MissingIndicatorConfig()
    categorical: CategoricalConfig = CategoricalConfig()
    key_lookups: KeyLookupConfig = KeyLookupConfig()
    interactions: InteractionConfig = InteractionConfig()
    geo_aggregates: GeoConfig = GeoConfig()
    target_encoding: TargetEncodingConfig = TargetEncodingConfig()
    source_path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _disabled_groups_have_no_lists(cls, data: Any) -> Any:
        """A group with ``enabled: false`` has no effect, so its lists (lookups, aggregates, ...)
        are dropped before anything checks them against the spec: switching a group off is enough
        to reuse a config on another data set
        (``tests/unit/test_features_builder.py::test_a_disabled_group_is_not_validated``)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for group, key in GROUP_LISTS.items():
            g = data.get(group)
            if isinstance(g, dict) and g.get("enabled") is False and key in g:
                data[group] = {k: v for k, v in g.items() if k != key}
        return data

    def fingerprint(self) -> dict[str, Any]:
        """What the config hash covers: everything but where the file was read from."""
        return self.model_dump(mode="json", exclude={"source_path"})


def parse_features_config(raw: dict[str, Any], source: str = "<dict>") -> FeaturesConfig:
    try:
        return FeaturesConfig.model_validate(raw)
    except ValidationError as exc:
        raise yamlconf.invalid("features config", source, exc) from None


def features_config_for(spec: DatasetSpec, path: str | None = None) -> FeaturesConfig:
    """The features config of a run: ``path`` (a --features-config flag, a DAG param, the pipeline
    config's ``features_config``), else the one the dataset spec names, else the default: every
    group on, fitted from the spec's column kinds alone (base statistics, missing indicators,
    categoricals, event time), with no data-set-specific lists (lookups, geo aggregates, target
    encodings, interactions, exclusions). A new data set therefore needs only its spec
    (``tests/unit/test_features_builder.py::test_a_spec_without_features_config_gets_the_generic_default``)."""
    chosen = path or spec.features_config
    if chosen is not None:
        return load_features_config(chosen)
    return FeaturesConfig(source_path=f"<default for dataset {spec.name!r}>")


def load_features_config(path: str | Path | None = None) -> FeaturesConfig:
    """Load and validate ``config/features.yaml``; relative paths resolve against the project root."""
    return yamlconf.load_model(FeaturesConfig, path, DEFAULT_FEATURES_CONFIG, "features config")
