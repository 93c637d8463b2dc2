"""Limits on what ingest may silently drop or let dominate (the ``limits:`` block of the pipeline
config; docs/OPERATIONS.md "Limits").

A split that lost most of its rows to missing labels, or whose revenue is mostly one row, still
stages and trains, and nothing downstream notices: 92% of the training rows once went with a
warning. The ingest stage measures both from its per-partition results
(``ltv_core.ingest.stage_partition``: ``rows_in``, ``rows``, ``dropped``, ``revenue``) and
fails before it commits, with one line naming the split, the share, the limit and the key to change.
Pure functions: no I/O, no cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ltv_core.config import LimitsConfig
from ltv_core.errors import DataError

TOP_PARTITIONS = 3  # partitions named in a dropped-share message: where to look first


def immature_rows(results: Sequence[dict[str, Any]]) -> int:
    """Rows of partitions whose longest horizons have no value yet (``ltv_core.ingest.immature_horizons``):
    excluded like any unlabelled row, but young, not broken, so not held to ``max_dropped_share``."""
    return sum(r.get("immature_rows", 0) for r in results)


def dropped_share(results: Sequence[dict[str, Any]]) -> float:
    """Share of the rows read from matured partitions that ingest dropped (lacking the id or a
    label); 0 for no such rows. Counted as rows in minus rows out: a row lacking both the id and a
    label is one row. Immature partitions are left out of both counts."""
    young = immature_rows(results)
    rows_in = sum(r["rows_in"] for r in results) - young
    return (rows_in - sum(r["rows"] for r in results if not r.get("immature_rows"))) / rows_in if rows_in else 0.0


def largest_row(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The split's row with the largest primary revenue and its share of the split's revenue, from
    the partitions' sums and maxima; None for an unlabelled split or no positive revenue (no share
    to speak of: a share of zero or of a negative total would mean nothing)."""
    stats = [(r["partition"], r["revenue"]) for r in results if r.get("revenue") and r["revenue"]["max"] is not None]
    total = sum(s["sum"] for _, s in stats)
    if not stats or not math.isfinite(total) or total <= 0:
        return None
    # ties broken by partition value: the same row whatever order the partition tasks finished in
    partition, top = max(stats, key=lambda ps: (ps[1]["max"], ps[0]))
    return {"share": top["max"] / total, "row_id": top["max_id"], "revenue": top["max"], "total": total,
            "partition": partition, "buyers": sum(s["buyers"] for _, s in stats)}


def measure(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The split's measured shares as recorded in the ingest manifest (rounded for reading)."""
    top = largest_row(results)
    return {
        "dropped_share": round(dropped_share(results), 6),
        "rows_immature": immature_rows(results),
        "immature_partitions": sorted(r["partition"] for r in results if r.get("immature_rows")),
        "max_row_revenue_share": None if top is None else round(top["share"], 6),
        "max_row_id": None if top is None else top["row_id"],
        "max_row_revenue": None if top is None else top["revenue"],
        "buyers": None if top is None else top["buyers"],
    }


def _most_dropped(results: Sequence[dict[str, Any]]) -> str:
    """The partitions that dropped the most rows, as ``value (dropped/read)``."""
    worst = sorted(results, key=lambda r: (-(r["rows_in"] - r["rows"]), r["partition"]))[:TOP_PARTITIONS]
    return ", ".join(f"{r['partition']} ({r['rows_in'] - r['rows']}/{r['rows_in']})" for r in worst)


def _dropped_by_column(results: Sequence[dict[str, Any]]) -> str:
    """Rows lacking each column over the split (a row may lack several)."""
    counts: dict[str, int] = {}
    for r in results:
        for col, n in r["dropped"].items():
            counts[col] = counts.get(col, 0) + n
    return ", ".join(f"{col} {n}" for col, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def check_dropped(split: str, results: Sequence[dict[str, Any]], limit: float | None, config_file: str) -> None:
    """Fail when more than ``limit`` of the split's rows were dropped (None: no limit)."""
    share = dropped_share(results)
    if limit is None or share <= limit:
        return
    results = [r for r in results if not r.get("immature_rows")]
    rows_in = sum(r["rows_in"] for r in results)
    dropped = rows_in - sum(r["rows"] for r in results)
    raise DataError(
        f"ingest: split {split!r} dropped {dropped} of its {rows_in} rows for lacking the id or a label "
        f"({_dropped_by_column(results)}): share {share:.4f} > limits.max_dropped_share {limit:g}; most in "
        f"partitions {_most_dropped(results)}; fix the data or raise limits.max_dropped_share in {config_file} "
        f"(null disables it)")


def check_row_revenue(split: str, results: Sequence[dict[str, Any]], limit: float | None, min_buyers: int,
                      config_file: str, revenue_column: str, id_column: str) -> None:
    """Fail when one row holds more than ``limit`` of the split's primary revenue (None: no limit),
    once the split has ``min_buyers`` rows of positive revenue: among fewer, a large share is noise."""
    top = largest_row(results)
    if limit is None or top is None or top["buyers"] < min_buyers or top["share"] <= limit:
        return
    raise DataError(
        f"ingest: one row holds a share {top['share']:.4f} of split {split!r}'s {revenue_column} > "
        f"limits.max_row_revenue_share {limit:g}: {id_column} {top['row_id']!r} in partition {top['partition']}, "
        f"{top['revenue']:g} of {top['total']:g} over {top['buyers']} buyers; check that row or raise "
        f"limits.max_row_revenue_share in {config_file} (null disables it)")


def check_rows(split: str, results: Sequence[dict[str, Any]], minimum: int | None, config_file: str) -> None:
    """Fail when the split keeps fewer than ``minimum`` rows (None: only an empty split fails)."""
    rows = sum(r["rows"] for r in results)
    if minimum is not None and 0 < rows < minimum:
        raise DataError(
            f"ingest: split {split!r} has {rows} rows after dropping incomplete rows, below "
            f"limits.min_rows_per_split {minimum}; widen its window or lower limits.min_rows_per_split "
            f"in {config_file} (null disables it)")


def enforce(split: str, results: Sequence[dict[str, Any]], limits: LimitsConfig, config_file: str, *,
            revenue_column: str, id_column: str, revenue_limited: bool) -> None:
    """Every limit on one split; the revenue limit only where ``revenue_limited`` (the training
    window: the one the models fit on)."""
    check_dropped(split, results, limits.max_dropped_share, config_file)
    check_rows(split, results, limits.min_rows_per_split, config_file)
    if revenue_limited:
        check_row_revenue(split, results, limits.max_row_revenue_share, limits.revenue_share_min_buyers,
                          config_file, revenue_column, id_column)
