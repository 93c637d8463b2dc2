"""The input side of the features: which raw columns feed them, checked against the spec, and read.

Why a module of its own: the transform, the fit and the prune plan must agree on which columns
exist, which feature groups are switched on and which label names can never feed a feature.
``FeatureColumns`` checks every name of a features config against the dataset spec once (a label
or post-outcome column anywhere is a ``SpecError`` naming the group); ``read_column`` and
``event_times`` are the only ways the other modules read a raw table.

Leakage guard: inputs are read by name from ``spec.feature_columns`` (the allow-list) and nothing
else; every output records its source columns and ``assert_no_leakage`` refuses any output whose
source or name is a label / post-outcome column. Extra input columns are ignored.
"""

from __future__ import annotations

import fnmatch
import re

import numpy as np
import pyarrow as pa

from ltv_core.errors import DataError, SpecError
from ltv_core.features import transforms as tf
from ltv_core.features.config import FeaturesConfig
from ltv_core.features.ragged import one_chunk
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import ColumnSpec, DatasetSpec, FeatureKind

K = FeatureKind
MAP_KINDS = (K.map_numeric, K.histogram, K.map_timestamp, K.map_of_maps, K.map_of_maps_timestamp)


# --- leakage guard ---------------------------------------------------------------------------------
def forbidden_names(spec: DatasetSpec) -> set[str]:
    """Labels and post-outcome columns of the spec (plus every horizon's label columns)."""
    return set(spec.outcome_names) | {h.revenue for h in spec.labels.horizons} | {
        h.buyer for h in spec.labels.horizons if h.buyer}


def is_forbidden(spec: DatasetSpec, name: str) -> bool:
    return name in forbidden_names(spec) or spec.is_excluded_name(name)


def assert_no_leakage(spec: DatasetSpec, feature_names: list[str], sources: dict[str, list[str]]) -> None:
    """Refuse any output built from, or named like, a label or post-outcome column.

    Two independent checks: every output's recorded source columns must be allow-listed feature
    columns (or the event time), and no output name may be, or start with, a label name.
    """
    allowed = {c.name for c in spec.feature_columns} | {EVENT_TS}
    used = {s for name in feature_names for s in sources.get(name) or ["<none>"]}
    for s in sorted(used):
        if s not in allowed or is_forbidden(spec, s):
            culprit = next(n for n in feature_names if s in (sources.get(n) or ["<none>"]))
            raise DataError(f"leakage guard: feature {culprit!r} is built from {s!r}, which is not an allow-listed "
                            "feature column of the dataset spec")
    bad = forbidden_names(spec)
    pattern = re.compile("|".join(fnmatch.translate(p) for p in spec.excluded_patterns) or "(?!)")
    for name in feature_names:
        head = name.split("__", 1)[0]
        if name in bad or head in bad or pattern.match(name) or pattern.match(head):
            raise DataError(f"leakage guard: feature name {name!r} is a label / post-outcome name")


# --- columns beside the features, and the folds of the training partitions -----------------------------
def carry_columns(spec: DatasetSpec, labelled: bool) -> list[str]:
    """Columns copied beside the features (never features): id, partition, event time, labels."""
    cols = [spec.id_column, spec.partition.key, EVENT_TS]
    if labelled:
        for h in spec.labels.horizons:
            cols += [h.revenue] + ([h.buyer] if h.buyer else [])
    return cols


def assign_folds(partitions: list[str], folds: int) -> dict[str, int]:
    """Contiguous, time-ordered folds over the sorted training partitions."""
    parts = sorted(set(partitions))
    k = min(folds, len(parts))
    return {p: (i * k) // len(parts) for i, p in enumerate(parts)} if parts else {}


# --- reading a raw table ------------------------------------------------------------------------------
def _kind_fits(kind: FeatureKind, t: pa.DataType) -> bool:
    """Does an input Arrow type carry what the spec's kind declares (field names may differ)."""
    num = lambda x: pa.types.is_integer(x) or pa.types.is_floating(x)  # noqa: E731
    if kind is K.numeric:
        return num(t) or pa.types.is_boolean(t)
    if kind is K.timestamp:
        return num(t)
    if kind is K.categorical:
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
    if kind is K.list_string:
        return pa.types.is_list(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))
    if kind in (K.map_numeric, K.histogram, K.map_timestamp) and tf.is_values_only_map(t):
        return True  # read by its value leaf only (a pruned plan's values_only): keys never touched
    if not pa.types.is_map(t) or not pa.types.is_string(t.key_type):
        return False
    if kind in (K.map_of_maps, K.map_of_maps_timestamp):
        return pa.types.is_map(t.item_type) and pa.types.is_string(t.item_type.key_type) and num(t.item_type.item_type)
    return num(t.item_type)


def read_column(table: pa.Table, col: ColumnSpec) -> pa.Array:
    """The column as one Arrow chunk, checked against the spec's kind (fails naming the column)."""
    i = table.schema.get_field_index(col.name)  # -1: absent (or duplicated: table.column raises)
    if i < 0 and col.name not in table.column_names:
        if col.required:
            raise DataError(f"input table lacks the required feature column {col.name!r}")
        return pa.nulls(table.num_rows, col.arrow_type)
    arr = one_chunk(table.column(i if i >= 0 else col.name))
    if _kind_fits(col.kind, arr.type):
        return arr
    try:
        return arr.cast(col.arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"feature column {col.name!r} has Arrow type {arr.type}, which does not fit kind "
                        f"{col.kind.value!r} (spec type {col.type}): {exc}") from None


def event_times(table: pa.Table) -> np.ndarray:
    """Unix seconds of every row's event (float64); a missing or null event time is a DataError."""
    if EVENT_TS not in table.column_names:
        raise DataError(f"input table lacks {EVENT_TS!r} (Unix seconds of the row's event): stage it with ingest")
    arr = one_chunk(table.column(EVENT_TS))
    if arr.null_count:
        raise DataError(f"{EVENT_TS!r} has {arr.null_count} null value(s); every row needs an event time")
    return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64)


# --- the configured columns ------------------------------------------------------------------------------
class FeatureColumns:
    """The spec's feature columns as one features config uses them, every config name checked.

    ``columns``: the allow-listed columns minus ``exclude_columns``, in spec order; ``by_name``:
    every feature column of the spec (lookups, geo groups and target encodings name them).
    """

    def __init__(self, spec: DatasetSpec, config: FeaturesConfig):
        self.spec = spec
        self.config = config
        self.by_name = {c.name: c for c in spec.feature_columns}
        self._check_config()
        excluded = set(config.exclude_columns)
        self.columns: list[ColumnSpec] = [c for c in spec.feature_columns if c.name not in excluded]
        self.tolerance_s = config.base.future_tolerance_days * 86_400.0

    def kind_on(self, kind: FeatureKind) -> bool:
        """Does the base group transform columns of ``kind``."""
        return self.config.base.enabled and kind.value in self.config.base.kinds

    def stat_names(self, kind: FeatureKind) -> list[str]:
        """The statistics a base transform of ``kind`` can skip one by one (others compute all)."""
        base = self.config.base
        return {K.map_numeric: base.map_numeric_stats, K.histogram: base.histogram_stats,
                K.list_string: ["length", "unique"]}.get(kind, [])

    def input_columns(self) -> list[str]:
        """Raw columns the full transform can read, so callers read only these from a file: the
        feature columns, key-lookup keys and maps, and the event time."""
        lookups = self.config.key_lookups.lookups
        wanted = [c.name for c in self.columns] + [lk.key_column for lk in lookups] + [lk.map for lk in lookups]
        return list(dict.fromkeys([*wanted, EVENT_TS]))

    # --- config checks against the spec ---------------------------------------------------------------
    def _feature_column(self, name: str, where: str, kinds: tuple[FeatureKind, ...] | None = None) -> ColumnSpec:
        if is_forbidden(self.spec, name):
            raise SpecError(f"features config {where}: {name!r} is a label / post-outcome column; "
                            "it can never feed a feature")
        col = self.by_name.get(name)
        if col is None:
            raise SpecError(f"features config {where}: {name!r} is not a feature column of dataset {self.spec.name!r}")
        if name in self.config.exclude_columns:
            raise SpecError(f"features config {where}: {name!r} is listed in exclude_columns")
        if kinds and col.kind not in kinds:
            raise SpecError(f"features config {where}: column {name!r} has kind {col.kind.value!r}, "
                            f"expected one of {[k.value for k in kinds]}")
        return col

    def _check_config(self) -> None:
        cfg = self.config
        for name in cfg.exclude_columns:
            if name not in self.by_name:
                raise SpecError(f"features config exclude_columns: {name!r} is not a feature column")
        for name in cfg.base.kinds:
            if name not in K.__members__:
                raise SpecError(f"features config base.kinds: unknown kind {name!r}; known: {list(K.__members__)}")
        for lk in cfg.key_lookups.lookups:
            self._feature_column(lk.map, "key_lookups.map", MAP_KINDS)
            self._feature_column(lk.key_column, "key_lookups.key_column", (K.categorical,))
        for g in cfg.geo_aggregates.aggregates:
            self._feature_column(g.group, "geo_aggregates.group", (K.categorical,))
            self._feature_column(g.value.split("__")[0], "geo_aggregates.value")
        for c in cfg.target_encoding.columns:
            self._feature_column(c, "target_encoding.columns", (K.categorical,))
        self._check_interactions()

    def _check_interactions(self) -> None:
        """Interactions name output features, not columns: only their label-likeness is checked here
        (an unknown output fails at fit, naming it)."""
        for it in self.config.interactions.features:
            for ref in (it.a, it.b):
                if is_forbidden(self.spec, ref) or is_forbidden(self.spec, ref.split("__")[0]):
                    raise SpecError(f"features config interactions[{it.name}]: {ref!r} is a label / post-outcome "
                                    "column; it can never feed a feature")
            if is_forbidden(self.spec, it.name):
                raise SpecError(f"features config interactions: name {it.name!r} is a label name")
