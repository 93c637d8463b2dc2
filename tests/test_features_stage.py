"""The build_features stage on a real Dask cluster (scheduler + 2 worker processes) and a LocalCluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ltv_core.config import load_config
from ltv_core.errors import DataError
from ltv_core.features import (
    FeatureBuilder,
    STAGE,
    load_feature_matrix,
    load_feature_state,
    run_features_stage,
)
from ltv_core.features.builder import carry_columns
from ltv_core.ingest import EVENT_TS, run_ingest
from ltv_core.spec import load_spec
from ltv_core.store import ArtifactStore
from ltv_core.synthetic import generate_dataset

SPEC = load_spec("config/datasets/smadex_d7.yaml")
ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-01T06:00",
    "validation_start": "2025-10-01T06:00", "validation_end": "2025-10-01T08:00",
    "holdout_start": "2025-10-01T08:00", "holdout_end": "2025-10-01T10:00",
    "scoring_start": "2025-10-02T10:00", "scoring_end": "2025-10-02T12:00",
}
EMPTY_PARTITION = "2025-10-01-07-00"  # a validation hour whose file holds zero rows


def _config(data_root: Path, processes: bool = False):
    cfg = load_config().with_overrides({"data_root": str(data_root), **WINDOWS})
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
    run_ingest(store, "run-f", datetime(2025, 11, 5, tzinfo=timezone.utc), _config(raw), SPEC)
    return store, raw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster(request) -> str:
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1, always killed afterwards."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs: list[subprocess.Popen] = []

    def stop() -> None:
        for p in procs[::-1]:  # workers first, then the scheduler
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + 3
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    request.addfinalizer(stop)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=str(ROOT))
    procs.append(subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--dashboard-address", ":0", "--no-show"], **quiet))
    for _ in range(2):
        procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                       "--no-dashboard", "--memory-limit", "2GiB", "--host", "127.0.0.1"], **quiet))
    from distributed import Client

    deadline = time.time() + 60
    while True:
        try:
            with Client(address, timeout="5s") as client:
                client.wait_for_workers(2, timeout=max(1, deadline - time.time()))
                assert len(client.scheduler_info()["workers"]) == 2
            break
        except (OSError, TimeoutError) as exc:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"Dask cluster did not come up with 2 workers: {exc}") from exc
            time.sleep(0.5)
    return address


def _check_stage_output(store: ArtifactStore, run_id: str, result: dict) -> None:
    ingest = store.read_manifest(run_id, "ingest")["outputs"]
    manifest = store.read_manifest(run_id, STAGE)
    state = load_feature_state(store, run_id)
    assert result["n_features"] == len(state.feature_names) == manifest["n_features"]
    assert result["rows"] == {s: o["rows"] for s, o in ingest.items()} == manifest["rows"]
    assert manifest["config_hash"] and manifest["feature_config_hash"] == state.config_hash
    assert set(manifest["timings"]) >= {"fit", "transform_train", "transform_scoring"}
    assert result["feature_state"].endswith(f"runs/{run_id}/{STAGE}/feature_state.json")
    assert state.train_partitions == sorted(f["partition"] for f in ingest["train"]["files"])
    for split, info in ingest.items():
        files = manifest["outputs"][split]["files"]
        assert [f["partition"] for f in files] == [f["partition"] for f in info["files"]]
        labelled = info["labelled"]
        for f in files:
            assert f["path"].endswith(f"{STAGE}/{split}/datetime={f['partition']}/part-0.parquet")
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


def test_stage_on_external_dask_scheduler_with_two_workers(staged, dask_cluster, monkeypatch):
    store, raw = staged
    monkeypatch.setenv("LTV_DASK_SCHEDULER", dask_cluster)
    result = run_features_stage(store, "run-f", SPEC, _config(raw))
    _check_stage_output(store, "run-f", result)
    _check_matches_in_process(store, "run-f")
    manifest = store.read_manifest("run-f", STAGE)
    workers = {w for split in ("train", "validation", "holdout", "scoring") for w in manifest["outputs"][split]["workers"]}
    assert len(workers) == 2, f"expected tasks on both worker processes, got {workers}"
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
