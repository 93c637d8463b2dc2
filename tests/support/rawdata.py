"""Tiny hand-made raw tables in a spec's exact Arrow schema, for unit tests of ingest and friends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ltv_core.spec import DatasetSpec


def _values(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    t = field.type
    if pa.types.is_string(t):
        if field.name == "row_id":
            return pa.array([str(uuid.UUID(int=int(rng.integers(0, 2**63)))) for _ in range(n)])
        return pa.array([f"{field.name}-{i % 5}" for i in range(n)])
    if pa.types.is_integer(t):
        return pa.array(rng.integers(0, 5, n), type=t)
    if pa.types.is_floating(t):
        return pa.array(rng.random(n) * 10, type=t)
    if pa.types.is_list(t):
        return pa.array([["a", "b"][: i % 3] for i in range(n)], type=t)
    if pa.types.is_map(t):
        if pa.types.is_map(t.item_type):
            return pa.array([[("k", [("click", 1)])] if i % 2 else None for i in range(n)], type=t)
        return pa.array([[("k1", 1), ("k2", 2)] if i % 2 else None for i in range(n)], type=t)
    raise AssertionError(f"no test values for {t}")


def make_table(spec: DatasetSpec, n: int, labelled: bool, seed: int = 0) -> pa.Table:
    """``n`` rows with valid labels: revenue monotone across horizons, buyer flag = revenue > 0."""
    rng = np.random.default_rng(seed)
    schema = spec.arrow_schema(labelled)
    cols = {f.name: _values(f, n, rng) for f in schema}
    if labelled:
        rev = np.where(rng.random(n) < 0.3, np.round(rng.lognormal(1.5, 1.0, n), 2), 0.0)
        for h in spec.labels.horizons:
            cols[h.revenue] = pa.array(rev)
            if h.buyer:
                cols[h.buyer] = pa.array((rev > 0).astype("int32"))
            rev = rev + np.where(rng.random(n) < 0.1, 1.0, 0.0)
    return pa.Table.from_pydict(cols, schema=schema)


def write_partition(root: Path, spec: DatasetSpec, value: str, table: pa.Table, n_files: int = 1) -> list[Path]:
    d = root / f"{spec.partition.key}={value}"
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    bounds = np.linspace(0, table.num_rows, n_files + 1).astype(int)
    for i in range(n_files):
        p = d / f"part-{i:05d}-{uuid.uuid4()}.c000.snappy.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), p, compression="snappy")
        paths.append(p)
    return paths


def write_dataset(root: Path, spec: DatasetSpec, train_values: list[str], test_values: list[str], rows: int = 20) -> None:
    for i, v in enumerate(train_values):
        write_partition(root / spec.roots.train, spec, v, make_table(spec, rows, True, seed=i))
    for i, v in enumerate(test_values):
        write_partition(root / spec.roots.test, spec, v, make_table(spec, rows, False, seed=1000 + i))


def hours(start_day: int, n: int, month: int = 10) -> list[str]:
    base = datetime(2025, month, start_day, tzinfo=UTC).timestamp()
    return [datetime.fromtimestamp(base + 3600 * i, tz=UTC).strftime("%Y-%m-%d-%H-%M") for i in range(n)]
