"""Immature labels in ingest (``config.immature_labels``; docs/MODELS.md "Immature labels").

With the option on, ingest also stages the install partitions of the train root that are too young
for the labelled windows (from the end of the newest labelled window up to the logical date) as
extra TRAINING rows. Their missing horizons are inferred from each user's latest matured horizon by
``models.maturity.MaturityMultipliers``, fitted on the staged matured training rows only: the
validation and holdout splits are never read, and stay matured users only.

``Inference`` is the picklable per-partition hook ``ingest.stage_partition`` applies before it drops
incomplete rows: a row whose primary label is known keeps it; a row with no matured horizon (or
none as long as ``min_horizon``) keeps its nulls and is dropped, counted as unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ltv_core.config import ImmatureLabelsConfig
from ltv_core.errors import DataError, SpecError
from ltv_core.models.maturity import MaturityMultipliers
from ltv_core.spec import DatasetSpec
from ltv_core.store import ArtifactStore
from ltv_core.timeutil import parse_time
from ltv_core.windows import Partition, Window, list_partitions

__all__ = ["Inference", "fit_multipliers", "min_source", "summarise", "young_partitions"]


def min_source(cfg: ImmatureLabelsConfig, spec: DatasetSpec) -> int:
    """Index of the shortest horizon a young user's labels may be inferred from."""
    names = [h.name for h in spec.labels.horizons]
    if len(names) < 2:
        raise SpecError(f"immature_labels needs at least two label horizons to infer the longest from a "
                        f"shorter one; spec {spec.name!r} has {names}")
    if cfg.min_horizon is None:
        return 0
    if cfg.min_horizon not in names[:-1]:
        raise SpecError(f"immature_labels.min_horizon {cfg.min_horizon!r} is not one of spec {spec.name!r}'s "
                        f"horizons shorter than the longest: {names[:-1]}")
    return names.index(cfg.min_horizon)


def revenue_matrix(table: pa.Table, spec: DatasetSpec) -> np.ndarray:
    """(rows, horizons) revenue in spec order, null as NaN."""
    cols = [pc.cast(table.column(h.revenue), pa.float64()).to_numpy(zero_copy_only=False)
            for h in spec.labels.horizons]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def young_partitions(windows: dict[str, Window], logical_date: datetime, spec: DatasetSpec,
                     train_root: str, first: int) -> list[Partition]:
    """Train-root partitions after every labelled window, old enough for horizon ``first``."""
    # aware UTC on every side: Airflow hands a pendulum logical date, windows may come from params
    start = parse_time(max(parse_time(w.end) for w in windows.values()))
    end = parse_time(logical_date) - timedelta(days=spec.labels.horizons[first].days)
    return [p for p in list_partitions(train_root, spec) if start <= parse_time(p.time) < end and p.files]


def fit_multipliers(store: ArtifactStore, train_files: list[str], spec: DatasetSpec,
                    cfg: ImmatureLabelsConfig) -> MaturityMultipliers:
    """Fit on the staged TRAINING rows (matured: ingest dropped every row lacking a label)."""
    cols = [h.revenue for h in spec.labels.horizons]
    if not train_files:
        raise DataError("immature_labels: no staged training files to fit the multipliers on")
    Y = revenue_matrix(pa.concat_tables([store.read_parquet(p, columns=cols) for p in train_files]), spec)
    est = MaturityMultipliers(payer_quantiles=cfg.payer_quantiles, min_cohort_rows=cfg.min_cohort_rows,
                              zeros=cfg.zeros, random_state=cfg.random_state)
    return est.fit(Y)


@dataclass(frozen=True)
class Inference:
    """The hook of ``ingest.stage_partition``: fills a young partition's missing horizons."""

    estimator: MaturityMultipliers
    spec: DatasetSpec
    first: int  # shortest source horizon index allowed
    as_of: datetime  # the run's logical date: a horizon maturing after it is unknown, even if the file has it

    def __call__(self, table: pa.Table, installed: datetime) -> tuple[pa.Table, dict[str, Any]]:
        spec = self.spec
        Y = revenue_matrix(table, spec)
        # censor to what was known at the logical date (a backfill reads a later export)
        age_days = (self.as_of - installed).total_seconds() / 86400
        Y[:, [h.days > age_days for h in spec.labels.horizons]] = np.nan
        filled, src = self.estimator.transform(Y)
        H = Y.shape[1]
        keep = src >= self.first
        filled[~keep] = Y[~keep]  # too young even for the shortest allowed source: stays null, dropped
        names = [h.name for h in spec.labels.horizons]
        counts = np.bincount(np.where(keep, src, H), minlength=H + 1)
        for j, h in enumerate(spec.labels.horizons):
            col = pa.array(filled[:, j], mask=~np.isfinite(filled[:, j]), type=pa.float64())
            idx = table.schema.get_field_index(h.revenue)
            table = table.set_column(idx, table.schema.field(idx), col.cast(table.schema.field(idx).type))
            if h.buyer is not None:
                b = table.schema.get_field_index(h.buyer)
                buyer = pa.array(filled[:, j] > 0, mask=~np.isfinite(filled[:, j]))
                table = table.set_column(b, table.schema.field(b), buyer.cast(table.schema.field(b).type))
        return table, {"matured": int(counts[H - 1]), "unlabelled": int(counts[H]),
                       "inferred_from": {names[s]: int(counts[s]) for s in range(H - 1) if counts[s]}}


def summarise(results: list[dict[str, Any]], est: MaturityMultipliers, spec: DatasetSpec,
              cfg: ImmatureLabelsConfig) -> dict[str, Any]:
    """The manifest's record: rows, partitions, source horizons, the multipliers."""
    by_source: dict[str, int] = {}
    for r in results:
        for name, n in r["inferred"]["inferred_from"].items():
            by_source[name] = by_source.get(name, 0) + n
    order = [h.name for h in spec.labels.horizons]
    return {
        "enabled": True, "config": cfg.model_dump(mode="json"),
        "partitions": sorted(r["partition"] for r in results if r["rows"]),
        "rows": sum(r["rows"] for r in results),
        "rows_read": sum(r["rows_in"] for r in results),
        "rows_matured": sum(r["inferred"]["matured"] for r in results),
        "rows_inferred": sum(by_source.values()),
        "rows_unlabelled": sum(r["inferred"]["unlabelled"] for r in results),
        "inferred_from": {k: by_source[k] for k in order if k in by_source},
        "multipliers": est.summary(order),
    }
