"""Fit and transform: raw staged rows -> a model matrix, driven by the spec and features.yaml.

``FeatureBuilder`` is a pure object (no I/O): ``partial_stats`` summarises one training partition,
``fit_state`` turns merged partials into a ``FeatureState``, ``transform`` maps any table to its
features with that state. The Dask stage (``stage.py``) only moves files around these calls.

Guarantees:

* Leakage guard: inputs are read by name from ``spec.feature_columns`` (the allow-list) and
  nothing else; every output records its source columns and ``assert_no_leakage`` refuses any
  output whose source or name is a label / post-outcome column. Extra input columns are ignored.
* Train/serve consistency: every transform is row-wise given the state (no statistic of the batch
  is used), so a row gets the same vector alone, in a training partition or in a scoring one. The
  only deliberate difference is target encoding of *training* rows, which is out-of-fold
  (``fold=k``); validation, holdout and scoring rows use the full-training encoding (``fold=None``).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.errors import DataError, SpecError
from ltv_core.features import fitting
from ltv_core.features import transforms as tf
from ltv_core.features.config import FeaturesConfig, GeoAggregate, KeyLookup, parse_features_config
from ltv_core.features.ragged import finite32, int_values, one_chunk
from ltv_core.features.state import FeatureState, GeoTable
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import ColumnSpec, DatasetSpec, FeatureKind
from ltv_core.store import config_hash

log = logging.getLogger(__name__)

K = FeatureKind
MAP_KINDS = (K.map_numeric, K.histogram, K.map_timestamp, K.map_of_maps, K.map_of_maps_timestamp)
EVENT_PREFIX = "event_time"
_Item = tuple[str, np.ndarray, list[str], bool]  # name, values, source columns, is categorical


# --- output collection ------------------------------------------------------------------------------
@dataclass
class _Out:
    """Ordered outputs of one transform: name -> array, plus sources and which are categorical."""

    arrays: dict[str, np.ndarray | None] = field(default_factory=dict)  # None: pruned (see _fill_pruned)
    sources: dict[str, list[str]] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray, sources: list[str], categorical: bool = False) -> None:
        if name in self.arrays:
            raise SpecError(f"two features would be named {name!r}; rename an interaction or a lookup")
        self.arrays[name] = values
        self.sources[name] = sorted(set(sources))
        if categorical:
            self.categorical.append(name)

    def numeric(self, name: str, group: str) -> np.ndarray:
        if name not in self.arrays:
            raise SpecError(f"{group}: feature {name!r} does not exist (known: {sorted(self.arrays)[:40]}...)")
        if name in self.categorical:
            raise SpecError(f"{group}: feature {name!r} is a categorical code, not a number")
        return self.arrays[name]


@dataclass(frozen=True)
class _Plan:
    """What a pruned transform computes: raw columns for base statistics and key lookups, and the
    geo aggregates, target encodings and interactions that some needed output comes from."""

    columns: frozenset[str]
    geo: frozenset[str]
    te: frozenset[str]
    interactions: frozenset[str]
    # per map / histogram / list column: the statistics some needed output is (the rest are skipped)
    stats: dict[str, frozenset[str]] = field(default_factory=dict)
    lookups: frozenset[int] = frozenset()  # positions in key_lookups.lookups of the lookups to run
    # map columns whose keys nothing reads (their statistics use values only; no lookup uses them):
    # a reader may take just their value leaf
    values_only: frozenset[str] = frozenset()


def to_float32(a: np.ndarray) -> np.ndarray:
    """Final float32 column. float32 inputs are already final (``Ragged.expand`` made them);
    anything else is converted with +-inf (incl. float32 overflow) turned into NaN, like null."""
    if a.dtype == np.float32:
        return a
    return finite32(a)


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


def inner_key_names(keys: list[str]) -> list[str]:
    """Safe, unique name fragments for inner keys (two keys sanitising alike get a suffix)."""
    names: list[str] = []
    for k in keys:
        base = tf.sanitize(k)
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return names


class FeatureBuilder:
    """Builds features for one dataset spec with one features config."""

    PLAN_SAMPLE_ROWS = 64  # rows of the sample ``plan_for`` transforms to learn each output's sources

    def __init__(self, spec: DatasetSpec, config: FeaturesConfig, threads: int = 1):
        """``threads`` > 1 computes columns in a thread pool (numpy and Arrow release the GIL); keep 1
        inside Dask workers, which already run one task per core."""
        self.spec = spec
        self.config = config
        self.threads = max(1, int(threads))
        self._executor: ThreadPoolExecutor | None = None
        self._features = {c.name: c for c in spec.feature_columns}
        self._check_config()
        excluded = set(config.exclude_columns)
        self.columns: list[ColumnSpec] = [c for c in spec.feature_columns if c.name not in excluded]
        self.tolerance_s = config.base.future_tolerance_days * 86_400.0
        # map columns read by a key lookup too: flattened once per partition, shared (see _flat)
        self._shared_maps = {lk.map for lk in config.key_lookups.lookups} if config.key_lookups.enabled else set()
        self._value_sets: dict[int, tuple[list[str], pa.Array]] = {}

    @classmethod
    def from_state(cls, spec: DatasetSpec, state: FeatureState, threads: int = 1) -> FeatureBuilder:
        """The builder exactly as fitted: the state carries its own features config."""
        if state.dataset != spec.name:
            raise SpecError(f"feature state was fitted on dataset {state.dataset!r}, not {spec.name!r}")
        return cls(spec, parse_features_config(state.config, "<feature state>"), threads)

    # --- config checks against the spec ---------------------------------------------------------------
    def _feature_column(self, name: str, where: str, kinds: tuple[FeatureKind, ...] | None = None) -> ColumnSpec:
        if is_forbidden(self.spec, name):
            raise SpecError(f"features config {where}: {name!r} is a label / post-outcome column; "
                            "it can never feed a feature")
        col = self._features.get(name)
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
            if name not in self._features:
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
        for it in cfg.interactions.features:
            for ref in (it.a, it.b):
                if is_forbidden(self.spec, ref) or is_forbidden(self.spec, ref.split("__")[0]):
                    raise SpecError(f"features config interactions[{it.name}]: {ref!r} is a label / post-outcome "
                                    "column; it can never feed a feature")
            if is_forbidden(self.spec, it.name):
                raise SpecError(f"features config interactions: name {it.name!r} is a label name")

    # --- input access ---------------------------------------------------------------------------------
    def _column(self, table: pa.Table, col: ColumnSpec) -> pa.Array:
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

    def _event_ts(self, table: pa.Table) -> np.ndarray:
        if EVENT_TS not in table.column_names:
            raise DataError(f"input table lacks {EVENT_TS!r} (Unix seconds of the row's event): stage it with ingest")
        arr = one_chunk(table.column(EVENT_TS))
        if arr.null_count:
            raise DataError(f"{EVENT_TS!r} has {arr.null_count} null value(s); every row needs an event time")
        return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64)

    def _kind_on(self, kind: FeatureKind) -> bool:
        return self.config.base.enabled and kind.value in self.config.base.kinds

    # --- transform ------------------------------------------------------------------------------------
    def _base(self, table: pa.Table, ev: np.ndarray, state: FeatureState | None, out: _Out,
              flats: dict[str, tf.Flat | tf.Nested], only: set[str] | None = None,
              stats: dict[str, frozenset[str]] | None = None) -> None:
        """Per-kind transforms of every allow-listed column (``state=None``: stateless ones only);
        ``only``/``stats``: a plan's columns and, per nested column, the statistics to compute."""
        stats = stats or {}
        jobs = [partial(self._column_items, table, col, ev, state, flats, stats.get(col.name)) for col in self.columns
                if (only is None or col.name in only) and stats.get(col.name, True)]
        self._run(jobs, out)

    def _flat(self, table: pa.Table, col: ColumnSpec, flats: dict[str, tf.Flat | tf.Nested]) -> tf.Flat | tf.Nested:
        """A map column flattened once per partition: kept in ``flats`` when a key lookup reads it too.

        Each column is flattened by one job only (base jobs run before lookup jobs), so a thread
        pool never builds the same entry twice.
        """
        f = flats.get(col.name)
        if f is None:
            nested = col.kind in (K.map_of_maps, K.map_of_maps_timestamp)
            f = (tf.Nested if nested else tf.Flat)(self._column(table, col))
            if col.name in self._shared_maps:
                flats[col.name] = f
        return f

    def _value_set(self, values: list[str]) -> pa.Array:
        """A fitted string list (vocabulary, categories, groups) as an Arrow array, converted once
        per list object of the state instead of once per partition."""
        hit = self._value_sets.get(id(values))
        if hit is None or hit[0] is not values or len(hit[1]) != len(values):
            if len(self._value_sets) > 256:
                self._value_sets.clear()
            hit = self._value_sets[id(values)] = (values, pa.array(values, type=pa.string()))
        return hit[1]

    def _column_items(self, table: pa.Table, col: ColumnSpec, ev: np.ndarray, state: FeatureState | None,
                      flats: dict[str, tf.Flat | tf.Nested], stats: frozenset[str] | None = None) -> list[_Item]:
        kind, name = col.kind, col.name
        if kind is K.categorical:
            if state is None or not self.config.categorical.enabled:
                return []
            codes = tf.categorical_codes(self._column(table, col), self._value_set(state.vocabularies.get(name, [])))
            return [(name, codes, [name], True)]
        if kind is K.numeric:
            return self._scalar(name, tf.numeric(self._column(table, col)), state, self._kind_on(kind), name)
        if kind is K.timestamp:
            age = tf.timestamp_age_days(self._column(table, col), ev, self.tolerance_s)
            return self._scalar(name, age, state, self._kind_on(kind), f"{name}__age_days")
        if not self._kind_on(kind):
            return []
        return [(f"{name}__{stat}", values, [name], False)
                for stat, values in self._nested(table, col, ev, state, flats, stats).items()]

    def _scalar(self, col: str, values: np.ndarray, state: FeatureState | None, on: bool, name: str) -> list[_Item]:
        items: list[_Item] = [(name, values, [col], False)] if on else []
        if state is not None and self.config.missing_indicators.enabled and col in state.missing_indicators:
            items.append((f"{col}__missing", np.isnan(values).astype(np.float64), [col], False))
        return items

    def _run(self, jobs: list[Callable[[], list[_Item]]], out: _Out) -> None:
        """Run column jobs (in a thread pool when threads > 1) and add their outputs in job order."""
        results = self._pool().map(lambda job: job(), jobs) if self.threads > 1 else (job() for job in jobs)
        for items in results:
            for name, values, sources, categorical in items:
                out.add(name, values, sources, categorical)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="features")
        return self._executor

    def _nested(self, table: pa.Table, col: ColumnSpec, ev: np.ndarray, state: FeatureState | None,
                flats: dict[str, tf.Flat | tf.Nested], stats: frozenset[str] | None = None) -> tf.Stats:
        kind = col.kind
        names = self._stat_names(kind)
        if stats is not None:  # a plan's subset, in the configured order
            names = [s for s in names if s in stats]
        if kind is K.list_string:
            return tf.list_string(self._column(table, col), names)
        arr = self._flat(table, col, flats)
        keys = state.inner_keys.get(col.name, []) if state is not None else []
        if kind in (K.map_numeric, K.histogram):
            return tf.map_numeric(arr, names)
        if kind is K.map_timestamp:
            return tf.map_timestamp(arr, ev, self.tolerance_s)
        if kind is K.map_of_maps:
            return _rename_inner(tf.map_of_maps(arr, keys), keys, "total__")
        if kind is K.map_of_maps_timestamp:
            return _rename_inner(tf.map_of_maps_timestamp(arr, ev, self.tolerance_s, keys), keys, "newest_age_days__")
        raise SpecError(f"column {col.name!r}: no transform for kind {kind.value!r}")  # pragma: no cover

    def _lookups(self, table: pa.Table, ev: np.ndarray, state: FeatureState | None, out: _Out,
                 flats: dict[str, tf.Flat | tf.Nested], only: set[str] | None = None,
                 plan: _Plan | None = None) -> None:
        if not self.config.key_lookups.enabled:
            return
        chosen = [lk for i, lk in enumerate(self.config.key_lookups.lookups)
                  if (only is None or lk.map in only) and (plan is None or i in plan.lookups)]
        codes = {c: tf.KeyCodes(self._column(table, self._features[c])) for c in {lk.key_column for lk in chosen}}
        self._run([partial(self._lookup_items, table, lk, ev, state, codes[lk.key_column], flats) for lk in chosen],
                  out)

    def _lookup_items(self, table: pa.Table, lk: KeyLookup, ev: np.ndarray, state: FeatureState | None,
                      key: tf.KeyCodes, flats: dict[str, tf.Flat | tf.Nested]) -> list[_Item]:
        items = []
        for stat, values in self._lookup(table, lk, ev, state, key, flats).items():
            head, _, rest = stat.partition("__")
            items.append((f"{lk.map}__{head}_{lk.key_column}" + (f"__{rest}" if rest else ""), values,
                          [lk.map, lk.key_column], False))
        return items

    def _lookup(self, table: pa.Table, lk: KeyLookup, ev: np.ndarray, state: FeatureState | None,
                key: tf.KeyCodes, flats: dict[str, tf.Flat | tf.Nested]) -> tf.Stats:
        col = self._features[lk.map]
        arr = self._flat(table, col, flats)
        if col.kind in (K.map_numeric, K.histogram):
            return tf.lookup_map(arr, key, lk.absent)
        if col.kind is K.map_timestamp:
            return tf.lookup_map_timestamp(arr, key, ev, self.tolerance_s)
        if col.kind is K.map_of_maps:
            keys = state.inner_keys.get(lk.map, []) if state is not None else []
            return _rename_inner(tf.lookup_map_of_maps(arr, key, keys, lk.absent), keys, "total_at__")
        return tf.lookup_map_of_maps_timestamp(arr, key, ev, self.tolerance_s)

    def _geo(self, table: pa.Table, state: FeatureState, out: _Out, plan: _Plan | None = None) -> None:
        if not self.config.geo_aggregates.enabled:
            return
        jobs = []
        for agg in self.config.geo_aggregates.aggregates:  # config order: JSON sorts the state's keys
            name = geo_name(agg)
            if plan is not None and name not in plan.geo:
                continue
            if name not in state.geo:
                raise DataError(f"feature state has no fitted geo aggregate {name!r}: refit the state")
            g = state.geo[name]
            values = out.numeric(g.value, f"geo_aggregates[{name}]")
            jobs.append(partial(self._geo_items, table, g, values, out.sources[g.value]))
        self._run(jobs, out)  # in the thread pool when threads > 1; outputs added in config order

    def _geo_items(self, table: pa.Table, g: GeoTable, values: np.ndarray, sources: list[str]) -> list[_Item]:
        group = self._column(table, self._features[g.group])
        stats = geo_features(g, values.astype(np.float64), group, self._value_set(g.groups))
        return [(f"{g.value}__{stat}_{g.group}", arr, [*sources, g.group], False) for stat, arr in stats.items()]

    def _te_items(self, table: pa.Table, state: FeatureState, fold: int | None,
                  plan: _Plan | None = None) -> list[_Item]:
        """Target encodings: they read raw columns only, so with threads they run beside the base jobs."""
        items: list[_Item] = []
        m = self.config.target_encoding.smoothing
        for col in self.config.target_encoding.columns:  # config order, not the state's (sorted) keys
            if plan is not None and col not in plan.te:
                continue
            t = state.target_encoding.get(col)
            if t is None:
                continue  # disabled, or skipped at fit time (see state.te_note)
            arr = self._column(table, self._features[col])
            idx = _index_in(arr, t.categories, self._value_set(t.categories))
            for target in state.te_targets:
                enc, prior = state.te_encodings(col, target, fold, m)
                values = np.where(idx >= 0, enc[np.clip(idx, 0, None)] if len(enc) else prior, prior)
                items.append((f"{col}__te_{target}", values.astype(np.float64), [col], False))
        return items

    def _interactions(self, out: _Out, plan: _Plan | None = None) -> None:
        if not self.config.interactions.enabled:
            return
        for it in self.config.interactions.features:
            if plan is not None and it.name not in plan.interactions:
                continue
            where = f"interactions[{it.name}]"
            a = out.numeric(it.a, where).astype(np.float64) + it.a_offset  # float64: no float32 overflow
            b = out.numeric(it.b, where).astype(np.float64) + it.b_offset
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                v = {"product": lambda: a * b, "sum": lambda: a + b, "difference": lambda: a - b,
                     "ratio": lambda: np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)}[it.op]()
            out.add(it.name, v, out.sources[it.a] + out.sources[it.b])

    def _compute(self, table: pa.Table, state: FeatureState, fold: int | None, plan: _Plan | None = None) -> _Out:
        ev = self._event_ts(table)
        out = _Out()
        flats: dict[str, tf.Flat | tf.Nested] = {}  # map columns shared by base statistics and lookups
        only = None if plan is None else set(plan.columns)
        te = self._pool().submit(self._te_items, table, state, fold, plan) if self.threads > 1 else None
        self._base(table, ev, state, out, flats, only=only, stats=None if plan is None else plan.stats)
        if self.config.event_time.enabled:
            for stat, values in tf.event_time(ev).items():
                out.add(f"{EVENT_PREFIX}__{stat}", values, [EVENT_TS])
        self._lookups(table, ev, state, out, flats, only=only, plan=plan)
        flats.clear()
        self._geo(table, state, out, plan)
        for name, values, sources, _ in (te.result() if te is not None else self._te_items(table, state, fold, plan)):
            out.add(name, values, sources)  # config order, after geo: as before
        self._interactions(out, plan)
        return out

    def plan_for(self, needed: Collection[str], state: FeatureState, sample: pa.Table) -> _Plan:
        """The smallest computation that still yields every ``needed`` output feature.

        Why: a champion's boosters usually split on a fraction of the features (a stump classifier
        and small regressor heads used about half of them), and at scoring time the rest is work
        whose result no tree reads. Which raw columns feed which output is taken from a full
        transform of a few rows of ``sample`` (``_Out.sources``), so it can never disagree with the
        transform itself."""
        unknown = sorted(set(needed) - set(state.feature_names))
        if unknown:
            raise DataError(f"needed features not in the fitted state: {unknown[:10]}")
        sources = self._compute(sample.slice(0, min(sample.num_rows, self.PLAN_SAMPLE_ROWS)), state, None).sources
        needed = set(needed)
        cols = frozenset(c for f in needed for c in sources[f])
        ga = self.config.geo_aggregates
        geo = frozenset(geo_name(g) for g in ga.aggregates if ga.enabled and any(
            f"{g.value}__{GEO_STAT_NAMES[stat]}_{g.group}" in needed for stat in g.stats))
        te = frozenset(c for c in self.config.target_encoding.columns
                       if any(f"{c}__te_{t}" in needed for t in state.te_targets))
        inter = frozenset(it.name for it in self.config.interactions.features if it.name in needed)
        # base outputs needed directly, or as the input of a kept geo aggregate or interaction
        outputs = set(needed) | {g.value for g in ga.aggregates if geo_name(g) in geo} | {
            x for it in self.config.interactions.features if it.name in inter for x in (it.a, it.b)}
        stats = {c.name: frozenset(st for st in self._stat_names(c.kind) if f"{c.name}__{st}" in outputs)
                 for c in self.columns if c.name in cols and self._stat_names(c.kind)}
        # a lookup runs when one of its outputs (sources: exactly its map and key columns) is needed
        lookups = frozenset(i for i, lk in enumerate(self.config.key_lookups.lookups) if any(
            n.startswith(f"{lk.map}__") and set(sources[n]) == {lk.map, lk.key_column} for n in outputs))
        lookup_maps = {lk.map for i, lk in enumerate(self.config.key_lookups.lookups) if i in lookups}
        values_only = frozenset(c.name for c in self.columns if c.name in cols and c.name not in lookup_maps
                                and c.kind in (K.map_numeric, K.histogram, K.map_timestamp))
        return _Plan(cols, geo, te, inter, stats, lookups, values_only)

    def _stat_names(self, kind: FeatureKind) -> list[str]:
        """The statistics a base transform of ``kind`` can skip one by one (others compute all)."""
        base = self.config.base
        return {K.map_numeric: base.map_numeric_stats, K.histogram: base.histogram_stats,
                K.list_string: ["length", "unique"]}.get(kind, [])

    def input_columns(self, plan: _Plan | None = None) -> list[str]:
        """Raw columns the transform can read (with ``plan``: the pruned transform), so callers read
        only these from a file: the event time, feature columns and key-lookup maps and keys."""
        if plan is not None:
            return sorted(plan.columns | {EVENT_TS})
        lookups = self.config.key_lookups.lookups
        wanted = [c.name for c in self.columns] + [lk.key_column for lk in lookups] + [lk.map for lk in lookups]
        return list(dict.fromkeys([*wanted, EVENT_TS]))

    def _checked(self, table: pa.Table, state: FeatureState, fold: int | None, plan: _Plan | None) -> _Out:
        """The computed outputs in the state's order, checked against the state and the leakage guard."""
        if fold is not None and not 0 <= fold < max(state.te_folds, 1):
            raise DataError(f"target-encoding fold {fold} is outside 0..{state.te_folds - 1}")
        out = self._compute(table, state, fold, plan)
        if plan is not None:
            self._fill_pruned(out, state, table.num_rows)
        names = list(out.arrays)
        if state.feature_names and names != state.feature_names:
            missing = sorted(set(state.feature_names) - set(names))
            extra = sorted(set(names) - set(state.feature_names))
            raise DataError(f"transform produced features that differ from the fitted state "
                            f"(missing {missing[:10]}, unexpected {extra[:10]}): refit the state")
        # a pruned transform's null columns are built from nothing: the guard checks what was computed
        assert_no_leakage(self.spec, names if plan is None else [n for n in names if out.sources[n]], out.sources)
        return out

    def matrix(self, table: pa.Table, state: FeatureState, plan: _Plan | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        """The model matrix itself, for scoring: float32, column-major (each feature one contiguous
        write), category codes as floats with NaN for null — what LightGBM converts a category frame
        to. It skips the Arrow table and pandas frame that ``transform`` + ``feature_frame`` +
        ``DenseMatrix.from_frame`` would build and copy for every partition; the values are the same (tested).

        ``out``: a float32 column-major array of the right shape to fill instead of a new one (a
        caller that consumes each matrix before the next saves the fresh pages of every partition).
        """
        res = self._checked(table, state, None, plan)
        cats = set(res.categorical)
        names = list(res.arrays)
        shape = (table.num_rows, len(names))
        if out is None:
            out = np.empty(shape, np.float32, order="F")
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.f_contiguous:
            raise DataError(f"matrix buffer {out.shape} {out.dtype} is not a float32 column-major {shape} array")

        def fill(cols: range) -> None:
            for j in cols:
                v = res.arrays[names[j]]
                if v is None:  # pruned: null (NaN codes included)
                    out[:, j] = np.nan
                elif names[j] in cats:
                    out[:, j] = v
                    out[v < 0, j] = np.nan
                else:
                    out[:, j] = to_float32(v)

        self._chunked(fill, len(names))
        return out

    def _chunked(self, fn: Callable[[range], None], n: int) -> None:
        """``fn`` over 0..n-1 in one contiguous block per thread (a task per column costs more in
        thread hand-offs than the copy itself)."""
        k = max(1, min(self.threads, n))
        blocks = [range(i * n // k, (i + 1) * n // k) for i in range(k)]
        if k > 1:
            list(self._pool().map(fn, blocks))
        else:
            fn(blocks[0])

    def transform(self, table: pa.Table, state: FeatureState, fold: int | None = None,
                  plan: _Plan | None = None) -> pa.Table:
        """Features of ``table`` (float32, int32 codes with -1 = null) in ``state.feature_names`` order.

        ``fold``: the target-encoding fold of a *training* partition (out-of-fold encoding); None
        for every other split. Extra input columns (labels, ids) are ignored, never read.
        ``plan`` (``plan_for``): compute only what some needed feature comes from; every other
        column of the result is null (NaN, or code -1), same names, same order.
        """
        out = self._checked(table, state, fold, plan)
        names = list(out.arrays)
        cats = set(out.categorical)

        def to_arrow(n: str) -> pa.Array:
            v = out.arrays[n]
            if v is None:  # pruned
                v = np.full(table.num_rows, -1, np.int32) if n in cats else np.full(table.num_rows, np.nan, np.float32)
            return pa.array(v.astype(np.int32, copy=False) if n in cats else to_float32(v))

        arrays: list[pa.Array] = [None] * len(names)  # type: ignore[list-item]

        def convert(cols: range) -> None:
            for j in cols:
                arrays[j] = to_arrow(names[j])

        self._chunked(convert, len(names))
        return pa.Table.from_arrays(arrays, names=names)

    @staticmethod
    def _fill_pruned(out: _Out, state: FeatureState, n: int) -> None:
        """Placeholders (None: null when materialised) for the outputs a plan skipped, everything in
        the state's order."""
        cats = set(state.categorical_features)
        arrays: dict[str, np.ndarray | None] = {}
        sources: dict[str, list[str]] = {}
        for name in state.feature_names:
            if name in out.arrays:
                arrays[name], sources[name] = out.arrays[name], out.sources[name]
            else:
                arrays[name], sources[name] = None, []
        out.arrays, out.sources = arrays, sources
        out.categorical = [c for c in state.feature_names if c in cats]

    def transform_partition(self, table: pa.Table, state: FeatureState, labelled: bool,
                            fold: int | None = None) -> pa.Table:
        """Features plus the carry-along columns (id, partition, event time, labels when labelled)."""
        feats = self.transform(table, state, fold)
        for name in carry_columns(self.spec, labelled):
            if name not in table.column_names:
                raise DataError(f"staged table lacks carry-along column {name!r}")
            feats = feats.append_column(name, table.column(name))
        return feats

    # --- fit ------------------------------------------------------------------------------------------
    def _needs_inner_keys(self) -> list[str]:
        cols = [c.name for c in self.columns if c.kind in (K.map_of_maps, K.map_of_maps_timestamp)
                and self._kind_on(c.kind)]
        if self.config.key_lookups.enabled:
            cols += [lk.map for lk in self.config.key_lookups.lookups if self._features[lk.map].kind is K.map_of_maps]
        return sorted(set(cols))

    def _te_targets(self, table: pa.Table) -> dict[str, np.ndarray]:
        h = self.spec.primary
        if h.revenue not in table.column_names:
            raise DataError(f"target encoding needs the primary label {h.revenue!r} in training partitions")
        rev = np.nan_to_num(np.asarray(one_chunk(table.column(h.revenue)).to_numpy(zero_copy_only=False),
                                       dtype=np.float64), nan=0.0)
        ys = {}
        for target in self.config.target_encoding.targets:
            if target == "buyer":
                if h.buyer and h.buyer in table.column_names:
                    ys[target] = np.nan_to_num(np.asarray(
                        one_chunk(table.column(h.buyer)).to_numpy(zero_copy_only=False), dtype=np.float64))
                else:
                    ys[target] = (rev > 0).astype(np.float64)
            else:
                ys[target] = np.log1p(np.clip(rev, 0.0, None))
        return ys

    def partial_stats(self, table: pa.Table, partition: str, fold: int | None) -> fitting.PartialStats:
        """Additive statistics of one training partition (run on a Dask worker)."""
        cfg = self.config
        ps = fitting.PartialStats(rows=table.num_rows, partitions=[partition])
        ev = self._event_ts(table)
        for col in self.columns:
            if col.kind is K.categorical and cfg.categorical.enabled:
                ps.value_counts[col.name] = fitting.value_counts(self._column(table, col))
            elif col.kind in (K.numeric, K.timestamp) and cfg.missing_indicators.enabled:
                arr = self._column(table, col)
                v = tf.numeric(arr) if col.kind is K.numeric else tf.timestamp_age_days(arr, ev, self.tolerance_s)
                ps.missing[col.name] = int(np.isnan(v).sum())
        for name in self._needs_inner_keys():
            ps.inner_key_counts[name] = fitting.value_counts(tf.Nested(self._column(table, self._features[name])).inner_keys)
        if cfg.geo_aggregates.enabled and cfg.geo_aggregates.aggregates:
            self._geo_partial(table, ev, ps)
        if cfg.target_encoding.enabled and cfg.target_encoding.columns and fold is not None:
            ys = self._te_targets(table)
            for c in cfg.target_encoding.columns:
                ps.te[c] = fitting.te_partial(self._column(table, self._features[c]), ys, fold)
            ps.te_folds = pd.DataFrame({"count": [float(table.num_rows)], **{k: [float(v.sum())] for k, v in ys.items()}},
                                               index=pd.Index([fold], name="fold"))
        return ps

    def _geo_partial(self, table: pa.Table, ev: np.ndarray, ps: fitting.PartialStats) -> None:
        sources = {g.value.split("__")[0] for g in self.config.geo_aggregates.aggregates}
        out, flats = _Out(), {}
        self._base(table, ev, None, out, flats, only=sources)
        self._lookups(table, ev, None, out, flats, only=sources)
        for g in self.config.geo_aggregates.aggregates:
            if g.value not in out.arrays:
                raise SpecError(f"features config geo_aggregates: value {g.value!r} is not a numeric feature computable "
                                f"from raw values alone (candidates: {sorted(out.arrays)[:30]})")
            group = self._column(table, self._features[g.group])
            per, glob = fitting.geo_counts(group, out.arrays[g.value].astype(np.float64),
                                           self.config.geo_aggregates.significant_digits)
            name = geo_name(g)
            ps.geo_counts[name], ps.geo_global[name] = per, glob

    def fit_state(self, merged: fitting.PartialStats, partition_folds: dict[str, int]) -> FeatureState:
        """Turn merged training statistics into the fitted state (runs on the client)."""
        cfg = self.config
        if merged.rows == 0:
            raise DataError("cannot fit features: the training split has no rows")
        state = FeatureState(dataset=self.spec.name, config=cfg.fingerprint(), config_hash=config_hash(cfg.fingerprint()),
                             train_rows=merged.rows, train_partitions=sorted(merged.partitions))
        for col in self.columns:
            if col.kind is K.categorical and cfg.categorical.enabled:
                top_n, min_count = cfg.categorical.limits(col.name)
                state.vocabularies[col.name] = fitting.top_values(merged.value_counts.get(col.name), top_n, min_count)
        state.missing_share = {c: n / merged.rows for c, n in sorted(merged.missing.items())}
        state.missing_indicators = [c for c, s in state.missing_share.items() if s >= cfg.missing_indicators.threshold]
        ik = cfg.base.inner_keys
        state.inner_keys = {c: fitting.top_values(merged.inner_key_counts.get(c), ik.top_n, ik.min_count)
                            for c in self._needs_inner_keys()}
        if cfg.geo_aggregates.enabled:
            gc = cfg.geo_aggregates
            for g in gc.aggregates:
                n = geo_name(g)
                state.geo[n] = fitting.finalize_geo(g.value, g.group, list(g.stats), merged.geo_counts.get(n),
                                                    merged.geo_global.get(n), gc.min_group_rows, gc.max_points)
        self._fit_te(state, merged, partition_folds)
        self._finish_names(state)
        return state

    def _fit_te(self, state: FeatureState, merged: fitting.PartialStats, partition_folds: dict[str, int]) -> None:
        te = self.config.target_encoding
        if not (te.enabled and te.columns):
            return
        k = len(set(partition_folds.values()))
        if k < 2:
            state.te_note = (f"target encoding skipped: {len(partition_folds)} training partition(s) cannot make "
                             "2 time-ordered folds")
            log.warning(state.te_note)
            return
        state.te_targets = list(te.targets)
        state.te_folds = k
        state.te_partition_folds = dict(sorted(partition_folds.items()))
        folds = merged.te_folds.reindex(range(k), fill_value=0.0)
        state.te_fold_counts = folds["count"].tolist()
        state.te_fold_sums = {t: folds[t].tolist() for t in te.targets}
        for c in te.columns:
            state.target_encoding[c] = fitting.finalize_te(c, merged.te.get(c), list(te.targets), k, te.max_categories)

    def _finish_names(self, state: FeatureState) -> None:
        """Feature names = what a transform of an empty table produces: one code path for both."""
        empty = self.spec.arrow_schema(labelled=False).empty_table().append_column(
            EVENT_TS, pa.array([], type=pa.int64()))
        out = self._compute(empty, state, None)
        state.feature_names = list(out.arrays)
        state.categorical_features = list(out.categorical)
        state.sources = out.sources
        assert_no_leakage(self.spec, state.feature_names, state.sources)

    def fit(self, partitions: Iterable[tuple[str, pa.Table]]) -> FeatureState:
        """In-process fit over (partition value, table) pairs: the same partials as the Dask stage."""
        items = list(partitions)
        folds = assign_folds([p for p, _ in items], self.config.target_encoding.folds)
        partials = [self.partial_stats(t, p, folds.get(p)) for p, t in items]
        return self.fit_state(fitting.merge_all(partials), folds)


def geo_name(g: GeoAggregate) -> str:
    return f"{g.value}__by_{g.group}"


def _rename_inner(stats: tf.Stats, keys: list[str], prefix: str) -> tf.Stats:
    """Per-inner-key outputs are keyed by the raw key; give them safe name fragments."""
    safe = dict(zip(keys, inner_key_names(keys)))
    return {(prefix + safe[k[len(prefix):]] if k.startswith(prefix) else k): v for k, v in stats.items()}


def _index_in(arr: pa.Array, values: list[str], value_set: pa.Array | None = None) -> np.ndarray:
    """Position of each row's value in ``values`` (-1: null or not listed); ``value_set``: the same
    list already as an Arrow array."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if not values:
        return np.full(len(arr), -1, dtype=np.int64)
    value_set = pa.array(values, type=arr.type) if value_set is None else value_set.cast(arr.type)
    idx = pc.index_in(arr, value_set=value_set)
    return int_values(idx, -1)


# config stat -> output name part: <value>__<part>_<group>, e.g. release_msrp__pct_in_country
GEO_STAT_NAMES = {"pct": "pct_in", "dev_median": "dev_median", "ratio_median": "ratio_median"}


def geo_features(g: GeoTable, values: np.ndarray, group: pa.Array,
                 group_set: pa.Array | None = None) -> dict[str, np.ndarray]:
    """Percentile of the value within its group's training distribution and distance to the median.

    Rows whose group is null, unseen or too small use the global training distribution. Groups are
    processed as contiguous slices after one sort of the rows by group (a loop over groups, not rows).
    """
    gidx = _index_in(group, g.groups, group_set)
    pct = np.full(len(values), np.nan)
    med = np.full(len(values), np.nan if g.global_median is None else g.global_median)
    if g.median:
        med = np.where(gidx >= 0, np.asarray(g.median)[np.clip(gidx, 0, None)], med)
    small = np.int16 if len(g.groups) < np.iinfo(np.int16).max else np.int64
    order = np.argsort(gidx.astype(small), kind="stable")  # same order; 16-bit keys get a radix sort
    bounds = np.searchsorted(gidx[order], np.arange(-1, len(g.groups) + 1))
    for j in range(-1, len(g.groups)):
        rows = order[bounds[j + 1]:bounds[j + 2]]
        if rows.size == 0:
            continue
        x, cdf = (g.global_x, g.global_cdf) if j < 0 else (g.x[j], g.cdf[j])
        if x:
            pct[rows] = np.interp(values[rows], x, cdf, left=0.0, right=1.0)
    pct[np.isnan(values)] = np.nan
    out = {}
    if "pct" in g.stats:
        out[GEO_STAT_NAMES["pct"]] = pct
    if "dev_median" in g.stats:
        out[GEO_STAT_NAMES["dev_median"]] = values - med
    if "ratio_median" in g.stats:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[GEO_STAT_NAMES["ratio_median"]] = np.where(med != 0, values / np.where(med != 0, med, 1.0), np.nan)
    return out
