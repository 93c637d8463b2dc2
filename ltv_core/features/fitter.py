"""Fitting the feature state: training partitions -> additive partials -> one ``FeatureState``.

``FeatureFitter`` is a pure object (no I/O): ``partial_stats`` summarises one training partition
(on a Dask worker), ``fit_state`` turns the merged partials into the state (on the client), and
``fit`` does both in process. The statistics themselves (counting, merging, finalising) are
``fitting.py``'s; this module decides which columns get which statistic. The feature names of the
state are those of the transform (``builder.FeatureBuilder``) of an empty table, so the fit and the
transform cannot disagree; the geo aggregates are fitted on the transform's own stateless outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_core.errors import DataError, SpecError
from ltv_core.features import fitting
from ltv_core.features import transforms as tf
from ltv_core.features.builder import FeatureBuilder
from ltv_core.features.columns import assert_no_leakage, assign_folds, event_times, read_column
from ltv_core.features.config import FeaturesConfig
from ltv_core.features.geo import geo_name
from ltv_core.features.ragged import one_chunk
from ltv_core.features.state import FeatureState
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import DatasetSpec, FeatureKind
from ltv_core.store import config_hash

log = logging.getLogger(__name__)

K = FeatureKind


class FeatureFitter:
    """Fits the feature state of one dataset spec with one features config."""

    def __init__(self, spec: DatasetSpec, config: FeaturesConfig, threads: int = 1):
        """``threads``: those of ``builder``, the transform the fit uses (and hands back fitted)."""
        self.spec = spec
        self.config = config
        self.builder = FeatureBuilder(spec, config, threads)  # checks every name of the config against the spec
        self.inputs = self.builder.inputs

    # --- per training partition (on a worker) ------------------------------------------------------------
    def partial_stats(self, table: pa.Table, partition: str, fold: int | None) -> fitting.PartialStats:
        """Additive statistics of one training partition (run on a Dask worker)."""
        cfg = self.config
        ps = fitting.PartialStats(rows=table.num_rows, partitions=[partition])
        ev = event_times(table)
        self._column_partials(table, ev, ps)
        for name in self._needs_inner_keys():
            ps.inner_key_counts[name] = fitting.value_counts(
                tf.Nested(read_column(table, self.inputs.by_name[name])).inner_keys)
        if cfg.geo_aggregates.enabled and cfg.geo_aggregates.aggregates:
            self._geo_partial(table, ev, ps)
        if cfg.target_encoding.enabled and cfg.target_encoding.columns and fold is not None:
            self._te_partial(table, fold, ps)
        return ps

    def _column_partials(self, table: pa.Table, ev: np.ndarray, ps: fitting.PartialStats) -> None:
        """Value counts of categorical columns, missing counts of numeric and timestamp ones."""
        cfg = self.config
        for col in self.inputs.columns:
            if col.kind is K.categorical and cfg.categorical.enabled:
                ps.value_counts[col.name] = fitting.value_counts(read_column(table, col))
            elif col.kind in (K.numeric, K.timestamp) and cfg.missing_indicators.enabled:
                arr = read_column(table, col)
                v = (tf.numeric(arr) if col.kind is K.numeric
                     else tf.timestamp_age_days(arr, ev, self.inputs.tolerance_s))
                ps.missing[col.name] = int(np.isnan(v).sum())

    def _needs_inner_keys(self) -> list[str]:
        """Map-of-maps columns whose inner keys get their own outputs (base statistics or lookups)."""
        cols = [c.name for c in self.inputs.columns if c.kind in (K.map_of_maps, K.map_of_maps_timestamp)
                and self.inputs.kind_on(c.kind)]
        if self.config.key_lookups.enabled:
            cols += [lk.map for lk in self.config.key_lookups.lookups
                     if self.inputs.by_name[lk.map].kind is K.map_of_maps]
        return sorted(set(cols))

    def _geo_partial(self, table: pa.Table, ev: np.ndarray, ps: fitting.PartialStats) -> None:
        """(group, value) counts of every geo aggregate, over the transform's stateless outputs."""
        ga = self.config.geo_aggregates
        out = self.builder.stateless_outputs(table, ev, only={g.value.split("__")[0] for g in ga.aggregates})
        for g in ga.aggregates:
            if g.value not in out.arrays:
                raise SpecError(f"features config geo_aggregates: value {g.value!r} is not a numeric feature computable "
                                f"from raw values alone (candidates: {sorted(out.arrays)[:30]})")
            group = read_column(table, self.inputs.by_name[g.group])
            per, glob = fitting.geo_counts(group, out.arrays[g.value].astype(np.float64), ga.significant_digits)
            name = geo_name(g)
            ps.geo_counts[name], ps.geo_global[name] = per, glob

    def _te_partial(self, table: pa.Table, fold: int, ps: fitting.PartialStats) -> None:
        """Per-category and per-fold target sums of one training partition of fold ``fold``."""
        ys = self._te_targets(table)
        for c in self.config.target_encoding.columns:
            ps.te[c] = fitting.te_partial(read_column(table, self.inputs.by_name[c]), ys, fold)
        ps.te_folds = pd.DataFrame({"count": [float(table.num_rows)], **{k: [float(v.sum())] for k, v in ys.items()}},
                                   index=pd.Index([fold], name="fold"))

    def _te_targets(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The target-encoding targets of every row, from the primary horizon's labels."""
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

    # --- merged statistics -> state (on the client) --------------------------------------------------------
    def fit_state(self, merged: fitting.PartialStats, partition_folds: dict[str, int]) -> FeatureState:
        """Turn merged training statistics into the fitted state (runs on the client)."""
        cfg = self.config
        if merged.rows == 0:
            raise DataError("cannot fit features: the training split has no rows")
        state = FeatureState(dataset=self.spec.name, config=cfg.fingerprint(), config_hash=config_hash(cfg.fingerprint()),
                             train_rows=merged.rows, train_partitions=sorted(merged.partitions))
        for col in self.inputs.columns:
            if col.kind is K.categorical and cfg.categorical.enabled:
                top_n, min_count = cfg.categorical.limits(col.name)
                state.vocabularies[col.name] = fitting.top_values(merged.value_counts.get(col.name), top_n, min_count)
        state.missing_share = {c: n / merged.rows for c, n in sorted(merged.missing.items())}
        state.missing_indicators = [c for c, s in state.missing_share.items() if s >= cfg.missing_indicators.threshold]
        ik = cfg.base.inner_keys
        state.inner_keys = {c: fitting.top_values(merged.inner_key_counts.get(c), ik.top_n, ik.min_count)
                            for c in self._needs_inner_keys()}
        self._fit_geo(state, merged)
        self._fit_te(state, merged, partition_folds)
        self._finish_names(state)
        return state

    def _fit_geo(self, state: FeatureState, merged: fitting.PartialStats) -> None:
        gc = self.config.geo_aggregates
        if not gc.enabled:
            return
        for g in gc.aggregates:
            n = geo_name(g)
            state.geo[n] = fitting.finalize_geo(g.value, g.group, list(g.stats), merged.geo_counts.get(n),
                                                merged.geo_global.get(n), gc.min_group_rows, gc.max_points)

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
        out = self.builder.compute(empty, state, None)
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
