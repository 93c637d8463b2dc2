"""The prune plan: the part of a transform that some needed output feature comes from.

Why: a champion's boosters usually split on a fraction of the features (a stump classifier and
small regressor heads used about half of them), and at scoring time the rest is work whose result
no tree reads. A ``PrunePlan`` names the raw columns to read, the statistics to compute per nested
column, and the key lookups, geo aggregates, target encodings and interactions to run; the
transform leaves every other output null (``fill_pruned``), same names, same order. The needed
outputs are bit-identical to the full transform's
(``tests/unit/test_features_builder.py::test_pruned_transform_keeps_needed_features_bit_identical``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ltv_core.errors import DataError
from ltv_core.features.columns import FeatureColumns
from ltv_core.features.geo import GEO_STAT_NAMES, geo_name
from ltv_core.features.outputs import Outputs
from ltv_core.features.state import FeatureState
from ltv_core.ingest import EVENT_TS
from ltv_core.spec import FeatureKind

K = FeatureKind
PLAN_SAMPLE_ROWS = 64  # rows of the sample ``plan_for`` transforms to learn each output's sources


@dataclass(frozen=True)
class PrunePlan:
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

    def input_columns(self) -> list[str]:
        """Raw columns the pruned transform reads: the plan's columns and the event time."""
        return sorted(self.columns | {EVENT_TS})


def plan_for(inputs: FeatureColumns, needed: Collection[str], state: FeatureState, sample: pa.Table,
             transform: Callable[[pa.Table, FeatureState], Outputs]) -> PrunePlan:
    """The smallest computation that still yields every ``needed`` output feature.

    Which raw columns feed which output is taken from ``transform`` (the full transform) of the
    first ``PLAN_SAMPLE_ROWS`` rows of ``sample`` (``Outputs.sources``), so it can never disagree
    with the transform itself.
    """
    unknown = sorted(set(needed) - set(state.feature_names))
    if unknown:
        raise DataError(f"needed features not in the fitted state: {unknown[:10]}")
    sources = transform(sample.slice(0, min(sample.num_rows, PLAN_SAMPLE_ROWS)), state).sources
    needed = set(needed)
    cols = frozenset(c for f in needed for c in sources[f])
    cfg = inputs.config
    ga = cfg.geo_aggregates
    geo = frozenset(geo_name(g) for g in ga.aggregates if ga.enabled and any(
        f"{g.value}__{GEO_STAT_NAMES[stat]}_{g.group}" in needed for stat in g.stats))
    te = frozenset(c for c in cfg.target_encoding.columns
                   if any(f"{c}__te_{t}" in needed for t in state.te_targets))
    inter = frozenset(it.name for it in cfg.interactions.features if it.name in needed)
    # base outputs needed directly, or as the input of a kept geo aggregate or interaction
    outputs = set(needed) | {g.value for g in ga.aggregates if geo_name(g) in geo} | {
        x for it in cfg.interactions.features if it.name in inter for x in (it.a, it.b)}
    lookups = _lookups(inputs, outputs, sources)
    return PrunePlan(cols, geo, te, inter, _stats(inputs, cols, outputs), lookups,
                     _values_only(inputs, cols, lookups))


def _stats(inputs: FeatureColumns, cols: frozenset[str], outputs: set[str]) -> dict[str, frozenset[str]]:
    """Per read column whose statistics can be skipped one by one: the ones some output is."""
    return {c.name: frozenset(st for st in inputs.stat_names(c.kind) if f"{c.name}__{st}" in outputs)
            for c in inputs.columns if c.name in cols and inputs.stat_names(c.kind)}


def _lookups(inputs: FeatureColumns, outputs: set[str], sources: dict[str, list[str]]) -> frozenset[int]:
    """A lookup runs when one of its outputs (sources: exactly its map and key columns) is needed."""
    return frozenset(i for i, lk in enumerate(inputs.config.key_lookups.lookups) if any(
        n.startswith(f"{lk.map}__") and set(sources[n]) == {lk.map, lk.key_column} for n in outputs))


def _values_only(inputs: FeatureColumns, cols: frozenset[str], lookups: frozenset[int]) -> frozenset[str]:
    """Read map columns whose keys nothing reads (their statistics use values only and no kept
    lookup reads them): a reader may take just their value leaf."""
    lookup_maps = {lk.map for i, lk in enumerate(inputs.config.key_lookups.lookups) if i in lookups}
    return frozenset(c.name for c in inputs.columns if c.name in cols and c.name not in lookup_maps
                     and c.kind in (K.map_numeric, K.histogram, K.map_timestamp))


def fill_pruned(out: Outputs, state: FeatureState) -> None:
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
