"""The build_features stage on a real Dask cluster (scheduler + 2 worker processes) and a LocalCluster.

The real cluster is the session fixture ``dask_scheduler_address`` (tests/conftest.py).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltv_core.catalog import load_feature_matrix, load_feature_state
from ltv_core.context import RunContext
from ltv_core.errors import DataError
from ltv_core.features import FeatureBuilder
from ltv_core.features.columns import carry_columns
from ltv_core.ingest import EVENT_TS
from ltv_core.params import RunParams
from ltv_core.pipeline import Stage
from ltv_core.stages import build_features, ingest
from ltv_core.spec import load_spec
from ltv_core.store import ArtifactStore
from ltv_core.synthetic import generate_dataset

SPEC = load_spec("config/datasets/smadex_d7.yaml")
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-01T06:00",
    "validation_start": "2025-10-01T06:00", "validation_end": "2025-10-01T08:00",
    "holdout_start": "2025-10-01T08:00", "holdout_end": "2025-10-01T10:00",
    "scoring_start": "2025-10-02T10:00", "scoring_end": "2025-10-02T12:00",
}
EMPTY_PARTITION = "2025-10-01-07-00"  # a validation hour whose file holds zero rows
LOGICAL = datetime(2025, 11, 5, tzinfo=timezone.utc)
STAGE = Stage.BUILD_FEATURES


def run_features_stage(store: ArtifactStore, run_id: str, spec, cfg) -> dict:
    return build_features.run(RunContext(run_id, LOGICAL, cfg, spec, store))


def _config(data_root: Path, processes: bool = False):
    cfg = RunParams.parse({"data_root": str(data_root), **WINDOWS}).load_config()
    cfg.dask.n_workers = 2
    cfg.dask.processes = processes
    return cfg


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[ArtifactStore, Path]:
    """Synthetic raw data (one validation hour emptied), staged by the real ingest stage."""
    raw = tmp_path_factory.mktemp("raw")
    generate_dataset(raw, seed=9, rows_per_partition=150, train_hours=10, test_hours=2)
    d = raw / SPEC.roots.train / f"datetime={EMPTY_PARTITION}"
    f = next(d.glob("*.parquet"))
    pq.write_table(pq.read_table(f).slice(0, 0), f)
    store = ArtifactStore(str(tmp_path_factory.mktemp("store")))
    ingest.run(RunContext("run-f", LOGICAL, _config(raw), SPEC, store))
    store.commit_stage("run-f", "validate", {"stage": "validate"})  # build_features reads only validated runs
    return store, raw


def _check_stage_output(store: ArtifactStore, run_id: str, result: dict) -> None:
    ingest = store.read_manifest(run_id, "ingest")["outputs"]
    manifest = store.read_manifest(run_id, STAGE)
    state = load_feature_state(store, run_id)
    assert result["n_features"] == len(state.feature_names) == manifest["n_features"]
    assert result["rows"] == {s: o["rows"] for s, o in ingest.items()} == manifest["rows"]
    assert manifest["config_hash"] and manifest["feature_config_hash"] == state.config_hash
    assert set(manifest["timings"]) >= {"fit", "transform_train", "transform_scoring"}
    assert result["feature_state"] == f"{store.stage_dir(run_id, STAGE)}/feature_state.json"  # the committed attempt
    assert state.train_partitions == sorted(f["partition"] for f in ingest["train"]["files"])
    for split, info in ingest.items():
        files = manifest["outputs"][split]["files"]
        assert [f["partition"] for f in files] == [f["partition"] for f in info["files"]]
        labelled = info["labelled"]
        for f in files:
            assert f["path"] == f"{store.stage_dir(run_id, STAGE)}/{split}/datetime={f['partition']}/part-0.parquet"
            schema = store.parquet_schema(f["path"])
            assert schema.names == state.feature_names + carry_columns(SPEC, labelled)
        x, meta = load_feature_matrix(store, run_id, split)
        assert list(x.columns) == state.feature_names and len(x) == info["rows"]
        assert not set(meta.columns) & set(x.columns)
        assert ("iap_revenue_d7" in meta.columns) == labelled and "iap_revenue_d7" not in x.columns
        for name in state.categorical_features:
            assert isinstance(x[name].dtype, pd.CategoricalDtype)
            assert len(x[name].cat.categories) == len(state.vocabularies[name]) + 1  # full list + other
    zero = [f for f in manifest["outputs"]["validation"]["files"] if f["partition"] == EMPTY_PARTITION]
    assert zero and zero[0]["rows"] == 0


def _check_matches_in_process(store: ArtifactStore, run_id: str) -> None:
    """A worker-written training file equals the in-process transform with the saved state."""
    state = load_feature_state(store, run_id)
    builder = FeatureBuilder.from_state(SPEC, state)
    f = store.read_manifest(run_id, "ingest")["outputs"]["train"]["files"][1]
    staged = store.read_parquet(f["path"])
    expected = builder.transform_partition(staged, state, labelled=True, fold=state.fold_of(f["partition"]))
    got = store.read_parquet(f"{store.stage_dir(run_id, STAGE)}/train/datetime={f['partition']}/part-0.parquet")
    assert got.column_names == expected.column_names
    for name in state.feature_names:
        assert np.array_equal(got.column(name).to_numpy(), expected.column(name).to_numpy(), equal_nan=True), name


def test_stage_on_external_dask_scheduler_with_two_workers(staged, dask_scheduler_address, monkeypatch):
    """The session's real `dask scheduler` + two `dask worker` processes (tests/conftest.py)."""
    from distributed import Client

    store, raw = staged
    with Client(dask_scheduler_address, timeout="10s") as client:
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2, worker_pids
    monkeypatch.setenv("LTV_DASK_SCHEDULER", dask_scheduler_address)
    result = run_features_stage(store, "run-f", SPEC, _config(raw))
    _check_stage_output(store, "run-f", result)
    _check_matches_in_process(store, "run-f")
    manifest = store.read_manifest("run-f", STAGE)
    workers = {w for split in ("train", "validation", "holdout", "scoring") for w in manifest["outputs"][split]["workers"]}
    assert set(workers) == worker_pids, f"expected tasks on both worker processes {worker_pids}, got {workers}"
    assert os.getpid() not in workers


def test_stage_on_a_local_cluster_is_idempotent(staged):
    store, raw = staged
    cfg = _config(raw)
    first = run_features_stage(store, "run-f", SPEC, cfg)
    x1, m1 = load_feature_matrix(store, "run-f", "holdout")
    second = run_features_stage(store, "run-f", SPEC, cfg)
    x2, m2 = load_feature_matrix(store, "run-f", "holdout")
    _check_stage_output(store, "run-f", second)
    assert first["n_features"] == second["n_features"]
    pd.testing.assert_frame_equal(x1, x2)
    pd.testing.assert_frame_equal(m1, m2)


def test_stage_needs_a_committed_ingest(tmp_path, staged):
    _, raw = staged
    with pytest.raises(DataError, match="no manifest"):
        run_features_stage(ArtifactStore(str(tmp_path)), "nope", SPEC, _config(raw))


def test_stage_refuses_a_run_whose_validation_did_not_commit(tmp_path, staged):
    import shutil

    store, raw = staged
    copy = ArtifactStore(str(tmp_path / "store"))
    shutil.copytree(Path(store.stage_dir("run-f", "ingest")), Path(copy.stage_dir("run-f", "ingest")))
    with pytest.raises(DataError, match="stage 'validate' of run 'run-f' has no manifest"):
        run_features_stage(copy, "run-f", SPEC, _config(raw))
    assert not copy.is_committed("run-f", STAGE)


def test_load_feature_matrix_refuses_unknown_split(staged):
    store, raw = staged
    if not store.is_committed("run-f", STAGE):
        run_features_stage(store, "run-f", SPEC, _config(raw))
    with pytest.raises(DataError, match="no split 'nope'"):
        load_feature_matrix(store, "run-f", "nope")
    x, meta = load_feature_matrix(store, "run-f", "scoring")
    assert EVENT_TS in meta.columns and SPEC.id_column in meta.columns and len(x) == len(meta)
    assert x.select_dtypes("number").dtypes.map(str).isin(["float32"]).all()
    assert pa.Table.from_pandas(meta).num_rows == len(x)
