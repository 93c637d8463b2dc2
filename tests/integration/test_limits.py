"""The ingest stage's limits (config ``limits:``, ``ltv_core.limits``) on small generated data: a
split beyond a limit fails with one line naming the split, the share, the limit, the config key
and where to look, and the stage has no committed manifest; healthy data passes with the measured
shares in the manifest."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.configs import small_pipeline_config

from ltv_core import catalog
from ltv_core.context import RunContext, make_context
from ltv_core.errors import DataError
from ltv_core.spec import load_spec
from ltv_core.stages import ingest
from ltv_core.store import ArtifactStore

SPEC = load_spec("config/datasets/smadex_d7.yaml")
REV = SPEC.primary.revenue
LOGICAL = "2025-11-05T00:00:00+00:00"
TRAIN_HOURS = [f"2025-10-01-{h:02d}-00" for h in range(6)]
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-01T06:00",
    "validation_start": "2025-10-01T06:00", "validation_end": "2025-10-01T08:00",
    "holdout_start": "2025-10-01T08:00", "holdout_end": "2025-10-01T10:00",
    "scoring_start": "2025-10-02T10:00", "scoring_end": "2025-10-02T12:00",
}
DASK = {"n_workers": 1, "threads_per_worker": 1, "processes": False}
WHALE = 1e6


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """Generated raw data: 10 labelled hours (6 of them the training window), 2 test hours."""
    from ltv_core.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("raw")
    generate_dataset(root, seed=9, rows_per_partition=100, train_hours=10, test_hours=2)
    return root


def context(folder: Path, data: Path, **limits) -> tuple[RunContext, ArtifactStore, str]:
    """Run "r"'s context as a run builds it (params -> config file with ``limits`` overrides), its
    store, and the config file's path (the one the messages must name)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = small_pipeline_config(folder, dask=DASK, limits=limits, fast_models=False)
    ctx = make_context("r", LOGICAL, {"config": config, "data_root": str(data), "store_root": str(folder / "store"),
                                      **WINDOWS})
    return ctx, ctx.store, config


def rewrite_train(root: Path, value: str, change) -> None:
    """Apply ``change(table) -> table`` to every file of one raw training partition."""
    for f in (root / SPEC.roots.train / f"datetime={value}").glob("*.parquet"):
        pq.write_table(change(pq.read_table(f)), f)


def null_primary(share: float):
    """Null the primary revenue label in the first ``share`` of a table's rows."""
    def change(t: pa.Table) -> pa.Table:
        values = t.column(REV).to_pylist()
        values[: int(round(len(values) * share))] = [None] * int(round(len(values) * share))
        return t.set_column(t.schema.get_field_index(REV), REV, pa.array(values, t.schema.field(REV).type))
    return change


def make_whale(t: pa.Table) -> pa.Table:
    """The first row earns WHALE at every horizon (labels stay consistent: monotone, buyer flags)."""
    for h in SPEC.labels.horizons:
        for name, value in ((h.revenue, WHALE), (h.buyer, 1)):
            col = t.column(name).to_pylist()
            col[0] = value
            t = t.set_column(t.schema.get_field_index(name), name, pa.array(col, t.schema.field(name).type))
    return t


def test_healthy_data_passes_with_the_shares_in_the_manifest(tmp_path, raw, caplog):
    ctx, store, _ = context(tmp_path, raw)
    with caplog.at_level(logging.INFO, logger="ltv_core.stages.ingest"):
        ingest.run(ctx)
    out = store.read_manifest("r", "ingest")["outputs"]
    for split, o in out.items():
        assert o["dropped_share"] == 0.0 and o["rows_read"] == o["rows"] > 0, split
    staged = catalog.read_staged(store, "r", "train")
    values = staged.column(REV).to_numpy()
    i = int(np.argmax(values))
    train = out["train"]
    assert train["max_row_revenue_share"] == pytest.approx(values[i] / values.sum(), abs=1e-6)
    assert train["max_row_id"] == staged.column(SPEC.id_column)[i].as_py()
    assert train["max_row_revenue"] == values[i] and train["buyers"] == int((values > 0).sum())
    assert out["scoring"]["max_row_revenue_share"] is None and out["holdout"]["max_row_revenue_share"] is not None
    assert any(r.getMessage().startswith("split train: dropped share 0.0000 (limit 0.1); largest row's share")
               for r in caplog.records)


def test_mostly_null_labels_fail_naming_split_limit_key_and_partitions(tmp_path, raw):
    data = tmp_path / "raw"
    shutil.copytree(raw, data)
    for value in TRAIN_HOURS[:4]:
        rewrite_train(data, value, null_primary(1.0))
    rewrite_train(data, TRAIN_HOURS[4], null_primary(0.5))
    ctx, store, config = context(tmp_path, data)
    store.begin_stage("r", "ingest")
    store.commit_stage("r", "ingest", {"stage": "ingest", "earlier": True})  # an earlier, committed attempt
    store.abandon()
    with pytest.raises(DataError) as err:
        ingest.run(ctx)
    msg = str(err.value)
    assert "\n" not in msg
    assert "split 'train' dropped" in msg and f"for lacking the id or a label ({REV} " in msg
    assert " > limits.max_dropped_share 0.1;" in msg and f"raise limits.max_dropped_share in {config}" in msg
    share = float(msg.split("share ")[1].split(" ")[0])
    assert 0.6 < share < 0.9  # 4.5 of the 6 hours
    assert all(f"{v} (" in msg for v in TRAIN_HOURS[:3])  # the partitions that dropped most
    # the failed attempt committed nothing: the earlier attempt is still the one readers see
    assert store.read_manifest("r", "ingest")["earlier"] is True


def test_one_row_dominating_training_revenue_fails_naming_the_row(tmp_path, raw):
    data = tmp_path / "raw"
    shutil.copytree(raw, data)
    rewrite_train(data, TRAIN_HOURS[2], make_whale)
    whale_id = pq.read_table(next((data / SPEC.roots.train / f"datetime={TRAIN_HOURS[2]}").glob("*.parquet"))
                             ).column(SPEC.id_column)[0].as_py()
    ctx, store, config = context(tmp_path, data, revenue_share_min_buyers=1)
    with pytest.raises(DataError) as err:
        ingest.run(ctx)
    msg = str(err.value)
    assert "one row holds a share 0.99" in msg
    assert f"of split 'train''s {REV} > limits.max_row_revenue_share 0.25: " in msg
    assert f"{SPEC.id_column} {whale_id!r} in partition {TRAIN_HOURS[2]}, 1e+06 of " in msg
    assert f"raise limits.max_row_revenue_share in {config}" in msg
    assert not store.is_committed("r", "ingest")


def test_row_revenue_limit_recorded_not_enforced_below_its_buyers_or_when_null(tmp_path, raw):
    """Tiny windows: the share is noise below ``revenue_share_min_buyers`` (default 1000) and null
    disables the limit; either way the whale's share is in the manifest."""
    data = tmp_path / "raw"
    shutil.copytree(raw, data)
    rewrite_train(data, TRAIN_HOURS[2], make_whale)
    for i, limits in enumerate([{}, {"revenue_share_min_buyers": 1, "max_row_revenue_share": None}]):
        ctx, store, _ = context(tmp_path / str(i), data, **limits)
        ingest.run(ctx)
        train = store.read_manifest("r", "ingest")["outputs"]["train"]
        assert train["max_row_revenue_share"] > 0.99 and train["max_row_revenue"] == WHALE
        assert 0 < train["buyers"] < 1000
