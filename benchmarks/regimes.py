"""The data regimes of the quality benchmark (issue 12.3): each a dataset spec, a generator and its
arguments, so that `bench_quality.py --regime NAME` runs the product on data of that shape.

They differ the way real data sets do: the grain (impression, user, customer), the horizon (7 to 365
days), the size, how much of the signal a plain LightGBM can learn, and how heavy the revenue tail
is. Every generator writes its Bayes-optimal oracle beside the data, so each regime reports the gap
closed to it. The regime's defining property is measured in every run and printed in its JSON
(``regime_check``), so a regime that drifted from its definition shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

GAMING_AS_OF = "2024-03-13"  # the gaming generator's default export date
CUSTOMERS_AS_OF = "2024-06-30"  # the customers generator's default export date (see its docs)


def _smadex_args(rows: int) -> dict[str, Any]:
    # 144 hourly train partitions = the pipeline's default 96 h / 24 h / 24 h windows; 24 test hours
    return {"rows_per_partition": max(1, round(rows / 144)), "train_hours": 144, "test_hours": 24}


def _gaming_args(rows: int) -> dict[str, Any]:
    return {"rows_per_partition": max(1, round(rows / 247)), "train_days": 240, "test_days": 7,
            "as_of": GAMING_AS_OF}


def _customers_args(regime: str) -> Callable[[int], dict[str, Any]]:
    def args(rows: int) -> dict[str, Any]:
        from ltv_core.synthetic.customers import DEFAULT_DAYS  # train + test days the generator writes

        return {"rows_per_partition": max(1, round(rows / DEFAULT_DAYS)), "regime": regime}
    return args


@dataclass(frozen=True)
class Regime:
    """One regime: ``generator_args(rows)`` are the generator's arguments for about ``rows`` rows in
    the data set (train and test roots); ``check`` names the property that defines it."""

    name: str
    spec: str
    rows: int
    generator_args: Callable[[int], dict[str, Any]]
    description: str
    check: str = ""
    as_of: str | None = None  # logical date = the export date; None: the earliest matured one
    extra: dict[str, Any] = field(default_factory=dict)


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("smadex", "config/datasets/smadex_d7.yaml", 300_000, _smadex_args,
           "per impression, hourly partitions, 7-day in-app revenue, ~2% buyers (today's Smadex shape)"),
    Regime("small", "config/datasets/smadex_d7.yaml", 36_000, _smadex_args,
           "the Smadex shape with <= 25k training rows (96 of 144 hours: ~24k)", check="train_rows <= 25000"),
    Regime("gaming", "config/datasets/gaming_d120.yaml", 240_000, _gaming_args,
           "one row per installing user, daily partitions, 120-day revenue, mostly ad revenue on day 0",
           as_of=GAMING_AS_OF),
)}

# `--all`: every registered regime. customers / low_signal / whales (the customers generator) are
# not registered yet: docs/BENCHMARKS.md "Data regimes" says what is missing.
ALL = tuple(REGIMES)


def logical_date(regime: Regime, data_root: str) -> datetime:
    """The run's logical date: the export date, or the earliest one at which every labelled window
    has matured (the demo's choice)."""
    if regime.as_of:
        return datetime.fromisoformat(regime.as_of).replace(tzinfo=timezone.utc)
    from ltv_core.config import load_config
    from ltv_core.spec import load_spec
    from ltv_core.windows import suggest_logical_date

    return suggest_logical_date(load_spec(regime.spec), load_config(), data_root)


def regime_for_dataset(dataset: str) -> Regime:
    """``--dataset NAME`` (the earlier flag): the regime that runs that spec at its default size."""
    for r in REGIMES.values():
        if r.spec == f"config/datasets/{dataset}.yaml" and not r.check:
            return r
    raise SystemExit(f"no quality regime runs spec config/datasets/{dataset}.yaml; regimes: {sorted(REGIMES)}")
