"""The transform: raw staged rows -> the features of a fitted state, as an Arrow table or a matrix.

``FeatureBuilder`` is a pure object (no I/O) that maps any table to its features with a fitted
``FeatureState``: ``transform`` (a feature table), ``matrix`` (the float32 matrix LightGBM predicts
on, for scoring) and ``transform_partition`` (features plus the carry-along columns). Fitting the
state is ``fitter.FeatureFitter``'s job, pruning a transform to the outputs a model needs is
``plan.py``'s, and checking and reading the input columns is ``columns.py``'s.

Train/serve consistency: every transform is row-wise given the state (no statistic of the batch
is used), so a row gets the same vector alone, in a training partition or in a scoring one. The
only deliberate difference is target encoding of *training* rows, which is out-of-fold
(``fold=k``); validation, holdout and scoring rows use the full-training encoding (``fold=None``).
The transform was tuned for speed (docs/BENCHMARKS.md): column jobs run in a thread pool when
``threads`` > 1, map columns are flattened once per partition, fitted string lists converted once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pyarrow as pa

from ltv_core.errors import DataError, SpecError
from ltv_core.features import plan as pruning
from ltv_core.features import transforms as tf
from ltv_core.features.columns import (
    FeatureColumns,
    assert_no_leakage,
    carry_columns,
    event_times,
    read_column,
)
from ltv_core.features.config import FeaturesConfig, KeyLookup, parse_features_config
from ltv_core.features.geo import geo_features, geo_name
from ltv_core.features.outputs import Item, Outputs
from ltv_core.features.plan import PrunePlan, fill_pruned
from ltv_core.features.ragged import finite32
from ltv_core.features.state import FeatureState, GeoTable
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import ColumnSpec, DatasetSpec, FeatureKind

K = FeatureKind
EVENT_PREFIX = "event_time"


class FeatureBuilder:
    """Transforms tables for one dataset spec with one features config."""

    def __init__(self, spec: DatasetSpec, config: FeaturesConfig, threads: int = 1):
        """``threads`` > 1 computes columns in a thread pool (numpy and Arrow release the GIL); keep 1
        inside Dask workers, which already run one task per core."""
        self.spec = spec
        self.config = config
        self.threads = max(1, int(threads))
        self._executor: ThreadPoolExecutor | None = None
        self.inputs = FeatureColumns(spec, config)  # checks every name of the config against the spec
        self._features = self.inputs.by_name
        self.columns: list[ColumnSpec] = self.inputs.columns
        self.tolerance_s = self.inputs.tolerance_s
        # map columns read by a key lookup too: flattened once per partition, shared (see _flat)
        self._shared_maps = {lk.map for lk in config.key_lookups.lookups} if config.key_lookups.enabled else set()
        self._value_sets: dict[int, tuple[list[str], pa.Array]] = {}

    @classmethod
    def from_state(cls, spec: DatasetSpec, state: FeatureState, threads: int = 1) -> FeatureBuilder:
        """The builder exactly as fitted: the state carries its own features config."""
        if state.dataset != spec.name:
            raise SpecError(f"feature state was fitted on dataset {state.dataset!r}, not {spec.name!r}")
        return cls(spec, parse_features_config(state.config, "<feature state>"), threads)

    # --- what the transform reads and computes ---------------------------------------------------------
    def input_columns(self, plan: PrunePlan | None = None) -> list[str]:
        """Raw columns the transform can read (with ``plan``: the pruned transform), so callers read
        only these from a file: the event time, feature columns and key-lookup maps and keys."""
        return self.inputs.input_columns() if plan is None else plan.input_columns()

    def plan_for(self, needed: Collection[str], state: FeatureState, sample: pa.Table) -> PrunePlan:
        """The prune plan (``plan.plan_for``) that still yields every ``needed`` output of this
        builder's transform, learnt from a full transform of the first rows of ``sample``."""
        return pruning.plan_for(self.inputs, needed, state, sample, self.compute)

    def stateless_outputs(self, table: pa.Table, ev: np.ndarray, only: set[str]) -> Outputs:
        """The outputs of the ``only`` columns that need no fitted state (base statistics and key
        lookups): the values the fit gathers geo aggregates over."""
        out, flats = Outputs(), {}
        self._base(table, ev, None, out, flats, only=only)
        self._lookups(table, ev, None, out, flats, only=only)
        return out

    # --- per-kind outputs -----------------------------------------------------------------------------
    def _base(self, table: pa.Table, ev: np.ndarray, state: FeatureState | None, out: Outputs,
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
            f = (tf.Nested if nested else tf.Flat)(read_column(table, col))
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
                      flats: dict[str, tf.Flat | tf.Nested], stats: frozenset[str] | None = None) -> list[Item]:
        kind, name = col.kind, col.name
        if kind is K.categorical:
            if state is None or not self.config.categorical.enabled:
                return []
            codes = tf.categorical_codes(read_column(table, col), self._value_set(state.vocabularies.get(name, [])))
            return [(name, codes, [name], True)]
        if kind is K.numeric:
            return self._scalar(name, tf.numeric(read_column(table, col)), state, self.inputs.kind_on(kind), name)
        if kind is K.timestamp:
            age = tf.timestamp_age_days(read_column(table, col), ev, self.tolerance_s)
            return self._scalar(name, age, state, self.inputs.kind_on(kind), f"{name}__age_days")
        if not self.inputs.kind_on(kind):
            return []
        return [(f"{name}__{stat}", values, [name], False)
                for stat, values in self._nested(table, col, ev, state, flats, stats).items()]

    def _scalar(self, col: str, values: np.ndarray, state: FeatureState | None, on: bool, name: str) -> list[Item]:
        items: list[Item] = [(name, values, [col], False)] if on else []
        if state is not None and self.config.missing_indicators.enabled and col in state.missing_indicators:
            items.append((f"{col}__missing", np.isnan(values).astype(np.float64), [col], False))
        return items

    def _run(self, jobs: list[Callable[[], list[Item]]], out: Outputs) -> None:
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
        names = self.inputs.stat_names(kind)
        if stats is not None:  # a plan's subset, in the configured order
            names = [s for s in names if s in stats]
        if kind is K.list_string:
            return tf.list_string(read_column(table, col), names)
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

    def _lookups(self, table: pa.Table, ev: np.ndarray, state: FeatureState | None, out: Outputs,
                 flats: dict[str, tf.Flat | tf.Nested], only: set[str] | None = None,
                 plan: PrunePlan | None = None) -> None:
        if not self.config.key_lookups.enabled:
            return
        chosen = [lk for i, lk in enumerate(self.config.key_lookups.lookups)
                  if (only is None or lk.map in only) and (plan is None or i in plan.lookups)]
        codes = {c: tf.KeyCodes(read_column(table, self._features[c])) for c in {lk.key_column for lk in chosen}}
        self._run([partial(self._lookup_items, table, lk, ev, state, codes[lk.key_column], flats) for lk in chosen],
                  out)

    def _lookup_items(self, table: pa.Table, lk: KeyLookup, ev: np.ndarray, state: FeatureState | None,
                      key: tf.KeyCodes, flats: dict[str, tf.Flat | tf.Nested]) -> list[Item]:
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

    def _geo(self, table: pa.Table, state: FeatureState, out: Outputs, plan: PrunePlan | None = None) -> None:
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

    def _geo_items(self, table: pa.Table, g: GeoTable, values: np.ndarray, sources: list[str]) -> list[Item]:
        group = read_column(table, self._features[g.group])
        stats = geo_features(g, values.astype(np.float64), group, self._value_set(g.groups))
        return [(f"{g.value}__{stat}_{g.group}", arr, [*sources, g.group], False) for stat, arr in stats.items()]

    def _te_items(self, table: pa.Table, state: FeatureState, fold: int | None,
                  plan: PrunePlan | None = None) -> list[Item]:
        """Target encodings: they read raw columns only, so with threads they run beside the base jobs."""
        items: list[Item] = []
        m = self.config.target_encoding.smoothing
        for col in self.config.target_encoding.columns:  # config order, not the state's (sorted) keys
            if plan is not None and col not in plan.te:
                continue
            t = state.target_encoding.get(col)
            if t is None:
                continue  # disabled, or skipped at fit time (see state.te_note)
            arr = read_column(table, self._features[col])
            idx = tf.index_in(arr, t.categories, self._value_set(t.categories))
            for target in state.te_targets:
                enc, prior = state.te_encodings(col, target, fold, m)
                values = np.where(idx >= 0, enc[np.clip(idx, 0, None)] if len(enc) else prior, prior)
                items.append((f"{col}__te_{target}", values.astype(np.float64), [col], False))
        return items

    def _interactions(self, out: Outputs, plan: PrunePlan | None = None) -> None:
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

    def compute(self, table: pa.Table, state: FeatureState, fold: int | None = None,
                plan: PrunePlan | None = None) -> Outputs:
        """Every output of ``table`` in build order, before the state's order and the leakage guard
        are checked (``_checked``): the fit names its features with it, the plan reads its sources."""
        ev = event_times(table)
        out = Outputs()
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

    def _checked(self, table: pa.Table, state: FeatureState, fold: int | None, plan: PrunePlan | None) -> Outputs:
        """The computed outputs in the state's order, checked against the state and the leakage guard."""
        if fold is not None and not 0 <= fold < max(state.te_folds, 1):
            raise DataError(f"target-encoding fold {fold} is outside 0..{state.te_folds - 1}")
        out = self.compute(table, state, fold, plan)
        if plan is not None:
            fill_pruned(out, state)
        names = list(out.arrays)
        if state.feature_names and names != state.feature_names:
            missing = sorted(set(state.feature_names) - set(names))
            extra = sorted(set(names) - set(state.feature_names))
            raise DataError(f"transform produced features that differ from the fitted state "
                            f"(missing {missing[:10]}, unexpected {extra[:10]}): refit the state")
        # a pruned transform's null columns are built from nothing: the guard checks what was computed
        assert_no_leakage(self.spec, names if plan is None else [n for n in names if out.sources[n]], out.sources)
        return out

    def matrix(self, table: pa.Table, state: FeatureState, plan: PrunePlan | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
        """The model matrix itself, for scoring: float32, column-major (each feature one contiguous
        write), category codes as floats with NaN for null — what LightGBM converts a category frame
        to. It skips the Arrow table and pandas frame that ``transform`` + ``feature_frame`` +
        ``DenseMatrix.from_frame`` would build and copy for every partition; the values are the same
        (``tests/unit/test_features_builder.py::test_matrix_equals_transform_then_dense_matrix``).

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
                  plan: PrunePlan | None = None) -> pa.Table:
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

    def transform_partition(self, table: pa.Table, state: FeatureState, labelled: bool,
                            fold: int | None = None) -> pa.Table:
        """Features plus the carry-along columns (id, partition, event time, labels when labelled)."""
        feats = self.transform(table, state, fold)
        for name in carry_columns(self.spec, labelled):
            if name not in table.column_names:
                raise DataError(f"staged table lacks carry-along column {name!r}")
            feats = feats.append_column(name, table.column(name))
        return feats


def to_float32(a: np.ndarray) -> np.ndarray:
    """Final float32 column. float32 inputs are already final (``Ragged.expand`` made them);
    anything else is converted with +-inf (incl. float32 overflow) turned into NaN, like null."""
    if a.dtype == np.float32:
        return a
    return finite32(a)


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


def _rename_inner(stats: tf.Stats, keys: list[str], prefix: str) -> tf.Stats:
    """Per-inner-key outputs are keyed by the raw key; give them safe name fragments."""
    safe = dict(zip(keys, inner_key_names(keys)))
    return {(prefix + safe[k[len(prefix):]] if k.startswith(prefix) else k): v for k, v in stats.items()}
