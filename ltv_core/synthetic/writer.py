"""Write a synthetic data set laid out exactly like the Kaggle Smadex files: the same folders, file
names, hive partitions and Parquet types.

<out>/train/train/datetime=YYYY-MM-DD-HH-00/part-NNNNN-<uuid>.c000.snappy.parquet   (labels + features)
<out>/test/test/datetime=.../part-NNNNN-<uuid>.c000.snappy.parquet                  (features only)
<out>/sample_submission.csv                                                         (row_id,iap_revenue_d7)
<out>/oracle/{train,test}/datetime=.../part-0.parquet                               (Bayes-optimal predictions)

Partitions are generated and written one at a time (memory is one partition), each file atomically
(temporary dot-name, then ``os.replace``). A partition's content depends only on (seed, split,
partition time) and the knobs, so any partition can be regenerated alone, byte-identically.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ltv_core.errors import SpecError
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.synthetic.features import build_features
from ltv_core.synthetic.model import draw_labels, label_inputs, linear_predictors, oracle
from ltv_core.synthetic.vocab import get_vocab
from ltv_core.timeutil import parse_time

__all__ = ["KNOB_DEFAULTS", "Knobs", "generate_dataset", "generate_partition", "partition_rows", "parse_start"]

Split = Literal["train", "test"]
SPLIT_CODES: dict[str, int] = {"train": 1, "test": 2}
WEEKDAY_CONVENTIONS = ("iso", "sunday0", "monday0")
N_PART_NUMBERS = 100_000  # part-NNNNN: five digits
DIURNAL_PEAK_HOUR = 20  # UTC hour with the most traffic

KNOB_DEFAULTS: dict[str, Any] = {
    "zero_revenue_buyer_share": 0.0,  # buyers (buyer_d7 = 1) whose d7 revenue is 0
    "price_point_share": 0.0,  # buyer revenues snapped to store price-point sums (creates ties)
    "invalid_ts_share": 0.0001,  # timestamps replaced by 0 or a far-future value
    "diurnal_amplitude": 0.3,  # rows per partition vary +-30% with the hour
    "weekday_convention": "iso",  # iso: Mon=1..Sun=7; sunday0: Sun=0..Sat=6; monday0: Mon=0..Sun=6
}


@dataclass(frozen=True)
class Knobs:
    """Validated generator knobs (see KNOB_DEFAULTS); unknown names or bad values fail loudly."""

    zero_revenue_buyer_share: float = 0.0
    price_point_share: float = 0.0
    invalid_ts_share: float = 0.0001
    diurnal_amplitude: float = 0.3
    weekday_convention: str = "iso"

    @classmethod
    def from_kwargs(cls, knobs: dict[str, Any]) -> Knobs:
        unknown = sorted(set(knobs) - set(KNOB_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown generator knob(s) {unknown}; known: {sorted(KNOB_DEFAULTS)}")
        k = cls(**{**KNOB_DEFAULTS, **knobs})
        for name in ("zero_revenue_buyer_share", "price_point_share", "invalid_ts_share"):
            val = getattr(k, name)
            if not isinstance(val, (int, float)) or not 0.0 <= val <= 1.0:
                raise ValueError(f"knob {name} must be a share in [0, 1], got {val!r}")
        if not isinstance(k.diurnal_amplitude, (int, float)) or not 0.0 <= k.diurnal_amplitude < 1.0:
            raise ValueError(f"knob diurnal_amplitude must be in [0, 1), got {k.diurnal_amplitude!r}")
        if k.weekday_convention not in WEEKDAY_CONVENTIONS:
            raise ValueError(f"knob weekday_convention must be one of {WEEKDAY_CONVENTIONS}, "
                             f"got {k.weekday_convention!r}")
        return k

    def weekday(self, when: datetime) -> int:
        iso = when.isoweekday()
        return {"iso": iso, "sunday0": iso % 7, "monday0": iso - 1}[self.weekday_convention]


def parse_start(text: str) -> datetime:
    """An hour to start generating at: any ISO time on the hour ('2025-10-01', '2025-10-01T05'), as
    aware UTC (``ltv_core.timeutil.parse_time``)."""
    when = parse_time(text)
    if (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise SpecError(f"start/test_start must be on the hour (YYYY-MM-DD or YYYY-MM-DDTHH), got {text!r}")
    return when


def partition_rows(rows_per_partition: int, when: datetime, amplitude: float) -> int:
    """Rows in the partition at ``when``: a deterministic diurnal curve around rows_per_partition."""
    phase = 2 * math.pi * (when.hour - DIURNAL_PEAK_HOUR) / 24
    return max(1, int(round(rows_per_partition * (1 + amplitude * math.cos(phase)))))


def _hours_since_epoch(when: datetime) -> int:
    return int(when.timestamp()) // 3600


def _split_uuid(seed: int, split: Split) -> str:
    """One write UUID per split (Spark style), derived from the seed only."""
    return str(uuid.UUID(bytes=np.random.default_rng([seed, SPLIT_CODES[split], 0x5555]).bytes(16), version=4))


@lru_cache(maxsize=8)
def _part_permutation(seed: int, split: Split) -> np.ndarray:
    return np.random.default_rng([seed, SPLIT_CODES[split], 0x5041]).permutation(N_PART_NUMBERS)


def _part_numbers(seed: int, split: Split, when: datetime, files: int) -> list[int]:
    """Random-looking, distinct 5-digit part numbers; a function of (seed, split, hour) only."""
    perm = _part_permutation(seed, split)
    base = _hours_since_epoch(when) * files
    return [int(perm[(base + j) % N_PART_NUMBERS]) for j in range(files)]


def _string_leaves(name: str, t: pa.DataType) -> list[str]:
    """Parquet leaf paths holding strings (``m.key_value.key``, ``l.list.element``...)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return [name]
    if pa.types.is_map(t):
        return (_string_leaves(f"{name}.key_value.key", t.key_type)
                + _string_leaves(f"{name}.key_value.value", t.item_type))
    if pa.types.is_list(t):
        return _string_leaves(f"{name}.list.element", t.value_type)
    return []


def _atomic_write(table: pa.Table, path: Path, unique_column: str | None = None) -> None:
    """Write to a hidden temporary name, then rename: readers never see a half-written file.

    Dictionary encoding is limited to string leaves (minus the unique id) and statistics to flat
    columns: on numbers and nested leaves both cost a quarter of the write time for nothing.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    flat = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
    dict_cols = [p for f in table.schema for p in _string_leaves(f.name, f.type) if p != unique_column]
    pq.write_table(table, tmp, compression="snappy", write_statistics=flat, use_dictionary=dict_cols)
    os.replace(tmp, path)


def _table(cols: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    missing = [f.name for f in schema if f.name not in cols]
    if missing:
        raise SpecError(f"the synthetic generator cannot produce spec column(s) {missing}")
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def _label_arrays(labels: dict[str, np.ndarray], types: dict[str, pa.DataType]) -> dict[str, pa.Array]:
    return {k: pa.array(v, from_pandas=True).cast(types[k]) for k, v in labels.items() if k in types}


@dataclass(frozen=True)
class PartitionResult:
    rows: int
    buyers: int
    revenue: float
    row_ids: pa.Array  # in file order


def generate_partition(out: str | os.PathLike[str], split: Split, when: datetime, *, seed: int,
                       rows_per_partition: int, files_per_partition: int, spec: DatasetSpec,
                       knobs: Knobs) -> PartitionResult:
    """Generate and write one partition (data files + oracle file); idempotent and self-contained."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, SPLIT_CODES[split], _hours_since_epoch(when)])
    n = partition_rows(rows_per_partition, when, knobs.diurnal_amplitude)
    t = int(when.timestamp())
    types = {c.name: c.arrow_type for c in spec.columns}
    cols = build_features(rng, n, t, when.hour, knobs.weekday(when), get_vocab(), types, knobs.invalid_ts_share)
    features = _table(cols, spec.arrow_schema(labelled=False))
    eta, mu = linear_predictors(label_inputs(features, t))
    share = dict(zero_revenue_buyer_share=knobs.zero_revenue_buyer_share, price_point_share=knobs.price_point_share)
    buyers, revenue = 0, 0.0
    if split == "train":
        labels = draw_labels(rng, eta, mu, **share)
        cols.update(_label_arrays(labels, types))
        buyers, revenue = int(labels["buyer_d7"].sum()), float(labels["iap_revenue_d7"].sum())
        data = _table(cols, spec.arrow_schema(labelled=True))
    else:
        data = features
    write_partition(out, spec, split, when, data, seed, files_per_partition, cols[spec.id_column],
                    (lambda: oracle(eta, mu, **share)) if spec.oracle else None)
    return PartitionResult(rows=n, buyers=buyers, revenue=revenue, row_ids=cols[spec.id_column])


def write_partition(out: str | os.PathLike[str], spec: DatasetSpec, split: str, when: datetime, data: pa.Table,
                    seed: int, files_per_partition: int, ids: pa.Array,
                    oracle_columns: Callable[[], dict[str, np.ndarray]] | None) -> Path:
    """One partition's files under the spec's root for ``split``, and its oracle file beside the data
    (``oracle/<split>/<partition>/part-0.parquet``: the id and ``oracle_columns()``); both generators
    (Smadex, gaming) write through here, every file atomically."""
    root = spec.roots.train if split == "train" else spec.roots.test
    if root is None:
        raise SpecError(f"spec {spec.name!r} has no {split} root")
    part_dir = Path(out) / root / f"{spec.partition.key}={spec.partition.render(when)}"
    _write_files(data, part_dir, _part_numbers(seed, split, when, files_per_partition), _split_uuid(seed, split),
                 spec.id_column)
    if spec.oracle and oracle_columns is not None:
        table = pa.table({spec.id_column: ids, **{k: pa.array(v) for k, v in oracle_columns().items()}})
        orc_dir = Path(out) / spec.oracle / split / part_dir.name
        orc_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(table, orc_dir / "part-0.parquet", spec.id_column)
    return part_dir


def _write_files(data: pa.Table, part_dir: Path, part_numbers: list[int], write_uuid: str,
                 unique_column: str) -> None:
    """Split rows over the files, write each atomically, then drop stale files of earlier runs."""
    part_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, data.num_rows, len(part_numbers) + 1).round().astype(int)
    names = set()
    for j, num in enumerate(part_numbers):
        name = f"part-{num:05d}-{write_uuid}.c000.snappy.parquet"
        names.add(name)
        _atomic_write(data.slice(bounds[j], bounds[j + 1] - bounds[j]), part_dir / name, unique_column)
    for stale in part_dir.glob("part-*.parquet"):
        if stale.name not in names:
            stale.unlink()


def _drop_stale_partitions(out: Path, spec: DatasetSpec, windows: dict[str, list[datetime]]) -> None:
    """Remove partitions of an earlier run outside the new window, so data, oracle and the sample
    submission always describe the same rows. Only ``<key>=...`` directories under the split roots
    the generator owns are touched."""
    for split, hours in windows.items():
        keep = {f"{spec.partition.key}={spec.partition.render(h)}" for h in hours}
        root = spec.roots.train if split == "train" else spec.roots.test
        roots = [out / root] if root else []
        if spec.oracle:
            roots.append(out / spec.oracle / split)
        for r in roots:
            for d in r.glob(f"{spec.partition.key}=*"):
                if d.is_dir() and d.name not in keep:
                    shutil.rmtree(d)


def _csv_body(row_ids: pa.Array) -> bytes:
    """'row_id,0.0\\n' lines built by one Arrow kernel (no per-row Python)."""
    lines = pc.binary_join_element_wise(row_ids, pa.scalar("0.0\n"), ",")
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def _check_args(rows_per_partition: int, train_hours: int, test_hours: int, files_per_partition: int) -> None:
    for name, val, low in (("rows_per_partition", rows_per_partition, 1), ("train_hours", train_hours, 0),
                           ("test_hours", test_hours, 0), ("files_per_partition", files_per_partition, 1)):
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {val!r}")
    if train_hours + test_hours == 0:
        raise ValueError("nothing to generate: train_hours and test_hours are both 0")


def generate_dataset(out: str | os.PathLike[str], *, seed: int = 7, rows_per_partition: int = 2000,
                     start: str = "2025-10-01", train_hours: int = 144, test_hours: int = 96,
                     test_start: str | None = None, files_per_partition: int = 1,
                     spec_path: str = "config/datasets/smadex_d7.yaml",
                     log: Callable[[str], None] | None = None, **knobs: Any) -> dict:
    """Generate a synthetic Smadex-shaped data set under ``out``; returns a JSON-able summary.

    ``test_start`` defaults to 24 h after the last train hour (real data: train Oct 1-6, test from
    Oct 8), or to ``start`` when there are no train hours. Knobs: see ``KNOB_DEFAULTS`` (unknown
    names raise). Everything is validated before the first byte is written.
    """
    _check_args(rows_per_partition, train_hours, test_hours, files_per_partition)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    k = Knobs.from_kwargs(knobs)
    spec = load_spec(spec_path)
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    train_start = parse_start(start)
    gap = timedelta(hours=train_hours + 24) if train_hours else timedelta(0)
    test_first = parse_start(test_start) if test_start else train_start + gap
    windows = {"train": [train_start + timedelta(hours=h) for h in range(train_hours)],
               "test": [test_first + timedelta(hours=h) for h in range(test_hours)]}
    if train_hours and test_hours and test_first <= windows["train"][-1]:
        raise ValueError(f"test_start {test_first:%Y-%m-%dT%H} overlaps the train window")
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    stats = {s: {"partitions": 0, "rows": 0, "buyers": 0, "revenue": 0.0} for s in windows}
    sub_path = out_p / (spec.sample_submission or "sample_submission.csv")
    sub_tmp = sub_path.with_name(f".{sub_path.name}.tmp")
    primary = spec.primary.revenue
    total = train_hours + test_hours
    with open(sub_tmp, "wb") as sub:
        sub.write(f"{spec.id_column},{primary}\n".encode())
        for split, hours in windows.items():
            for when in hours:
                res = generate_partition(out_p, split, when, seed=seed, rows_per_partition=rows_per_partition,
                                         files_per_partition=files_per_partition, spec=spec, knobs=k)
                st = stats[split]
                st["partitions"] += 1
                st["rows"] += res.rows
                st["buyers"] += res.buyers
                st["revenue"] += res.revenue
                if split == "test":
                    sub.write(_csv_body(res.row_ids))
                done = stats["train"]["partitions"] + stats["test"]["partitions"]
                if done == 1 or done == total or done % max(1, total // 10) == 0:
                    say(f"generate: {done}/{total} partitions ({split} {when:%Y-%m-%dT%H}), "
                        f"{time.perf_counter() - t0:.1f}s")
    os.replace(sub_tmp, sub_path)
    _drop_stale_partitions(out_p, spec, windows)
    seconds = time.perf_counter() - t0
    rows = stats["train"]["rows"] + stats["test"]["rows"]
    tr = stats["train"]
    return {
        "out": str(out_p.resolve()),
        "seed": seed,
        "spec": spec.name,
        "train_root": str(out_p / spec.roots.train),
        "test_root": str(out_p / spec.roots.test) if spec.roots.test else None,
        "sample_submission": str(sub_path),
        "oracle_root": str(out_p / spec.oracle) if spec.oracle else None,
        "train_window": [f"{h:%Y-%m-%dT%H}" for h in windows["train"][:1] + windows["train"][-1:]],
        "test_window": [f"{h:%Y-%m-%dT%H}" for h in windows["test"][:1] + windows["test"][-1:]],
        "partitions": {s: stats[s]["partitions"] for s in stats},
        "files_per_partition": files_per_partition,
        "rows": {s: stats[s]["rows"] for s in stats},
        "buyer_rate_d7": tr["buyers"] / tr["rows"] if tr["rows"] else None,
        "mean_revenue_d7": tr["revenue"] / tr["rows"] if tr["rows"] else None,
        "knobs": {name: getattr(k, name) for name in KNOB_DEFAULTS},
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
    }
