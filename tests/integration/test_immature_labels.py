"""immature_labels on (issue 14.4): a whole CLI run on generated gaming data also trains on the young
install days after the labelled windows, their d120 inferred, and still succeeds; validation and
holdout stay matured users; the manifests record the extra rows, their source horizons and the
multipliers. The data and dates are test_gaming_pipeline's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from support.configs import small_pipeline_config

from ltv_core import cli
from ltv_core.store import ArtifactStore

pytestmark = pytest.mark.integration

SPEC = "config/datasets/gaming_d120.yaml"
LOGICAL = "2024-03-16T00:00:00+00:00"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from ltv_core.synthetic.gaming import generate_gaming_dataset

    out = tmp_path_factory.mktemp("gaming-data")
    generate_gaming_dataset(out, seed=5, rows_per_partition=120, train_days=200, test_days=7, as_of="2024-03-13")
    return out


def config_with(tmp_path: Path, **immature: object) -> str:
    path = small_pipeline_config(tmp_path, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    raw = yaml.safe_load(Path(path).read_text())
    raw["immature_labels"] = immature
    Path(path).write_text(yaml.safe_dump(raw))
    return path


def test_a_run_with_immature_labels_trains_on_more_rows_and_succeeds(data, tmp_path, capsys):
    store_root = tmp_path / "store"
    config = config_with(tmp_path, enabled=True, min_horizon="d30")
    rc = cli.main(["run", "--spec", SPEC, "--config", config, "--data-root", str(data),
                   "--store-root", str(store_root), "--logical-date", LOGICAL, "--run-id", "young"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    assert json.loads(captured.out)["promote"]["promoted"] is True
    store = ArtifactStore(str(store_root))
    out = store.read_manifest("young", "ingest")["outputs"]
    train, young = out["train"], out["train"]["immature_labels"]
    assert train["rows"] == train["rows_matured"] + young["rows"] and young["rows"] > train["rows_matured"]
    assert young["rows_inferred"] > 0 and set(young["inferred_from"]) <= {"d30", "d60", "d90"}
    assert young["rows"] == young["rows_matured"] + young["rows_inferred"]
    mult = young["multipliers"]["sources"]["d90"]["payer_multipliers"]
    assert all(m >= 1.0 for m in mult) and young["multipliers"]["fit_rows"] == train["rows_matured"]
    # the young days come after every labelled window; validation and holdout hold matured rows only
    assert min(young["partitions"]) >= out["holdout"]["window"][1][:10]
    for split in ("validation", "holdout"):
        assert "immature_labels" not in out[split]
        for f in out[split]["files"]:
            assert np.isfinite(pq.read_table(f["path"], columns=["d120_rev"])["d120_rev"].to_numpy()).all()
    features = store.read_manifest("young", "build_features")["outputs"]
    assert sum(f["rows"] for f in features["train"]["files"]) == train["rows"]
    assert store.read_manifest("young", "validate")["failed"] == 0
