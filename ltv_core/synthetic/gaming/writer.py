"""Write the synthetic gaming data set: one row per user, daily install-date partitions.

<out>/train/install_date=YYYY-MM-DD/part-NNNNN-<uuid>.c000.snappy.parquet   users with labels (null when young)
<out>/test/install_date=YYYY-MM-DD/part-NNNNN-<uuid>.c000.snappy.parquet    the newest installs, features only
<out>/oracle/{train,test}/install_date=YYYY-MM-DD/part-0.parquet             Bayes-optimal d120 predictions

The data is exported on ``as_of`` (00:00 UTC): a user installed ``age`` days before it has every
horizon ``d{h}_rev`` (and its coins columns) with h <= age, and null for the younger horizons, so
``d120_rev`` is null exactly for users younger than 120 days. Partitions are generated one at a
time (memory: one day of users), each file written atomically, and a partition's bytes depend only
on (seed, split, install date, rows_per_partition, as_of, knobs): any day can be regenerated alone.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pyarrow as pa

from ltv_core.errors import SpecError
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.synthetic.gaming.model import (HORIZON_COLUMNS, HORIZON_DAYS, draw_future, draw_users, label_inputs,
                                             linear_predictors, oracle)
from ltv_core.synthetic.gaming.vocab import get_vocab
from ltv_core.synthetic.writer import SPLIT_CODES, _drop_stale_partitions, _table, write_partition
from ltv_core.timeutil import parse_time

__all__ = ["GAMING_KNOB_DEFAULTS", "GamingKnobs", "generate_gaming_dataset", "generate_gaming_partition",
           "users_on"]

Split = Literal["train", "test"]
DAY = timedelta(days=1)
WEEKEND_PEAK = 5.5  # installs peak between Saturday (5) and Sunday (6), Monday = 0
AS_OF = "2024-03-13"  # the seed's pipeline run date

GAMING_KNOB_DEFAULTS: dict[str, Any] = {
    "weekly_amplitude": 0.15,  # installs per day vary +-15% over the week, most on weekends
}


@dataclass(frozen=True)
class GamingKnobs:
    weekly_amplitude: float = 0.15

    @classmethod
    def from_kwargs(cls, knobs: dict[str, Any]) -> GamingKnobs:
        unknown = sorted(set(knobs) - set(GAMING_KNOB_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown gaming generator knob(s) {unknown}; known: {sorted(GAMING_KNOB_DEFAULTS)}")
        k = cls(**{**GAMING_KNOB_DEFAULTS, **knobs})
        if not isinstance(k.weekly_amplitude, (int, float)) or not 0.0 <= k.weekly_amplitude < 1.0:
            raise ValueError(f"knob weekly_amplitude must be in [0, 1), got {k.weekly_amplitude!r}")
        return k


def users_on(rows_per_partition: int, day: datetime, amplitude: float) -> int:
    """Installs on ``day``: a deterministic weekly curve around rows_per_partition."""
    phase = 2 * math.pi * (day.weekday() - WEEKEND_PEAK) / 7
    return max(1, int(round(rows_per_partition * (1 + amplitude * math.cos(phase)))))


def parse_day(text: str, what: str) -> datetime:
    when = parse_time(text)
    if (when.hour, when.minute, when.second, when.microsecond) != (0, 0, 0, 0):
        raise ValueError(f"{what} must be a date (YYYY-MM-DD), got {text!r}")
    return when


def _day_index(day: datetime) -> int:
    return int(day.timestamp()) // 86_400


@dataclass(frozen=True)
class GamingPartition:
    rows: int
    payers: int  # users with d120_rev > 0 (matured rows only)
    matured: int  # users with d120_rev present
    revenue: float  # sum of d120_rev over matured users


def _check_spec(spec: DatasetSpec) -> None:
    if spec.partition.grain_hours != 24:
        raise SpecError(f"the gaming generator writes daily partitions; spec {spec.name!r} has "
                        f"partition.grain_hours {spec.partition.grain_hours}")
    known = {f"d{h}" for h in HORIZON_DAYS}
    unknown = [h.name for h in spec.labels.horizons if h.name not in known or h.days != int(h.name[1:])]
    if unknown:
        raise SpecError(f"the gaming generator writes horizons {sorted(known)} (d<days>); spec {spec.name!r} "
                        f"declares {unknown}")


def generate_gaming_partition(out: str | os.PathLike[str], split: Split, day: datetime, *, seed: int,
                              rows_per_partition: int, files_per_partition: int, as_of: datetime,
                              spec: DatasetSpec, knobs: GamingKnobs) -> GamingPartition:
    """Generate and write one install day (data files + oracle file); idempotent and self-contained."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    vocab = get_vocab()
    rng = np.random.default_rng([seed, SPLIT_CODES[split], _day_index(day), 0x6A4D])
    n = users_on(rows_per_partition, day, knobs.weekly_amplitude)
    cols = draw_users(rng, n, vocab)
    features = _table(cols, spec.arrow_schema(labelled=False))
    x = label_inputs(features, vocab)
    eta, mu = linear_predictors(x)
    result = GamingPartition(rows=n, payers=0, matured=0, revenue=0.0)
    if split == "train":
        coins0 = (_values(features, "iap_coins_rev_d0"), _values(features, "iap_coins_count_d0").astype(np.int64))
        labels = draw_future(rng, x, eta, mu, coins0)
        age = (as_of - day) // DAY
        types = {c.name: c.arrow_type for c in spec.columns}
        for h, names in HORIZON_COLUMNS.items():
            young = age < h  # not matured at the export date: null for every user of the day
            for name in names:
                if name in types:
                    cols[name] = (pa.nulls(n, types[name]) if young else pa.array(labels[name]).cast(types[name]))
        d120 = labels["d120_rev"]
        if age >= 120:
            result = GamingPartition(rows=n, payers=int((d120 > 0).sum()), matured=n, revenue=float(d120.sum()))
        data = _table(cols, spec.arrow_schema(labelled=True))
    else:
        data = features
    write_partition(out, spec, split, day, data, seed, files_per_partition, cols[spec.id_column],
                    lambda: oracle(x, eta, mu))
    return result


def _values(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)


def _check_args(rows_per_partition: int, train_days: int, test_days: int, files_per_partition: int,
                seed: int) -> None:
    for name, val, low in (("rows_per_partition", rows_per_partition, 1), ("train_days", train_days, 0),
                           ("test_days", test_days, 0), ("files_per_partition", files_per_partition, 1),
                           ("seed", seed, 0)):
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {val!r}")
    if train_days + test_days == 0:
        raise ValueError("nothing to generate: train_days and test_days are both 0")


def generate_gaming_dataset(out: str | os.PathLike[str], *, seed: int = 7, rows_per_partition: int = 1000,
                            as_of: str | None = None, start: str | None = None, train_days: int = 240,
                            test_days: int = 7, files_per_partition: int = 1,
                            spec_path: str = "config/datasets/gaming_d120.yaml",
                            log: Callable[[str], None] | None = None, **knobs: Any) -> dict:
    """Generate the gaming data set under ``out``; returns a JSON-able summary.

    The export date ``as_of`` (default 2024-03-13, the seed's run date) ends the test window: the
    test root holds the ``test_days`` newest install days, the train root the ``train_days`` before
    them. ``start`` (the first train install date) may be given instead of ``as_of``. Everything is
    validated before the first byte is written.
    """
    _check_args(rows_per_partition, train_days, test_days, files_per_partition, seed)
    if as_of and start:
        raise ValueError("give as_of or start, not both")
    k = GamingKnobs.from_kwargs(knobs)
    spec = load_spec(spec_path)
    _check_spec(spec)
    if start:
        first = parse_day(start, "start")
        export = first + (train_days + test_days) * DAY
    else:
        export = parse_day(as_of or AS_OF, "as_of")
        first = export - (train_days + test_days) * DAY
    windows = {"train": [first + i * DAY for i in range(train_days)],
               "test": [first + (train_days + i) * DAY for i in range(test_days)]}
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    stats = {s: {"partitions": 0, "rows": 0} for s in windows}
    matured = payers = 0
    revenue = 0.0
    total = train_days + test_days
    for split, days in windows.items():
        for day in days:
            res = generate_gaming_partition(out_p, split, day, seed=seed, rows_per_partition=rows_per_partition,
                                            files_per_partition=files_per_partition, as_of=export, spec=spec,
                                            knobs=k)
            stats[split]["partitions"] += 1
            stats[split]["rows"] += res.rows
            matured, payers, revenue = matured + res.matured, payers + res.payers, revenue + res.revenue
            done = stats["train"]["partitions"] + stats["test"]["partitions"]
            if done == 1 or done == total or done % max(1, total // 10) == 0:
                say(f"generate: {done}/{total} partitions ({split} {day:%Y-%m-%d}), {time.perf_counter() - t0:.1f}s")
    _drop_stale_partitions(out_p, spec, windows)
    seconds = time.perf_counter() - t0
    rows = stats["train"]["rows"] + stats["test"]["rows"]
    return {
        "out": str(out_p.resolve()),
        "seed": seed,
        "spec": spec.name,
        "generator": "gaming",
        "as_of": f"{export:%Y-%m-%d}",
        "train_root": str(out_p / spec.roots.train),
        "test_root": str(out_p / spec.roots.test) if spec.roots.test else None,
        "oracle_root": str(out_p / spec.oracle) if spec.oracle else None,
        "train_window": [f"{d:%Y-%m-%d}" for d in windows["train"][:1] + windows["train"][-1:]],
        "test_window": [f"{d:%Y-%m-%d}" for d in windows["test"][:1] + windows["test"][-1:]],
        "partitions": {s: stats[s]["partitions"] for s in stats},
        "files_per_partition": files_per_partition,
        "rows": {s: stats[s]["rows"] for s in stats},
        "rows_d120_matured": matured,
        "payer_share_d120": payers / matured if matured else None,
        "mean_revenue_d120": revenue / matured if matured else None,
        "knobs": {name: getattr(k, name) for name in GAMING_KNOB_DEFAULTS},
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
    }
