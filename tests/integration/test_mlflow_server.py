"""MLflow tracking against a real ``mlflow server`` on loopback (issue 14, item 5; docs/OPERATIONS.md
"MLflow tracking"): the real stages, in this process, with ``MLFLOW_TRACKING_URI`` pointing at the
server, mirror each run, and the registry's ``champion`` alias follows the store's champion.json.

Three promotions of two runs on one small generated data set: 'weak' (a deliberately weak model)
becomes the first champion; 'good' (the same featurised windows, the test-sized real model) beats
it; 'weak' re-evaluated against the new champion loses and becomes the challenger, reusing its
MLflow run and its model version."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.configs import small_pipeline_config
from support.processes import ProcessGroup, free_port

from ltv_core import catalog
from ltv_core.context import make_context
from ltv_core.inprocess import run_stages
from ltv_core.lineage import model_pins
from ltv_core.pipeline import REPORT_DIR, TRAINING_STAGES, Stage
from ltv_core.promotion import read_champion
from ltv_core.store import ArtifactStore
from ltv_core.tracking import CHALLENGER, CHAMPION, MODEL_TAG, RUN_TAG, ModelRef

pytestmark = pytest.mark.integration

LOGICAL = "2025-10-31T00:00:00+00:00"
WINDOWS = {
    "train_start": "2025-10-01T00:00", "train_end": "2025-10-02T00:00",
    "validation_start": "2025-10-02T00:00", "validation_end": "2025-10-02T08:00",
    "holdout_start": "2025-10-02T08:00", "holdout_end": "2025-10-02T16:00",
}
FEATURISED = (Stage.INGEST, Stage.VALIDATE, Stage.BUILD_FEATURES)
MLFLOW = str(Path(sys.executable).parent / "mlflow")


@dataclass
class Server:
    """An ``mlflow server`` started by the test; :meth:`wait` until it answers ``/health``."""

    url: str
    group: ProcessGroup

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
            return resp.read().strip() == b"OK"

    def wait(self) -> None:
        self.group.wait_until(self.healthy, f"mlflow server {self.url} did not answer /health", timeout=150)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[Server]:
    """``mlflow server`` on a free loopback port: SQLite backend, artefacts served by the server
    (``mlflow-artifacts:/``, uploaded over HTTP as in production), stopped with its whole process
    group afterwards, pass or fail. The test waits for it only when it first needs it."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    group = ProcessGroup(root / "logs")
    try:
        group.start("mlflow", [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{root}/db.sqlite",
                               "--artifacts-destination", str(root / "artefacts")])
        yield Server(f"http://127.0.0.1:{port}", group)
    finally:
        group.stop(grace=10)


def run(run_id: str, params: dict, *stages: Stage) -> dict:
    return run_stages(make_context(run_id, LOGICAL, params), stages)


def weak_models_config(folder: Path, fast: str) -> str:
    """The test-sized models config made deliberately weak (one round, no stacker, a gate zeroing
    99.9% of the rows): any trained model beats it on the holdout."""
    raw = yaml.safe_load(Path(fast).read_text())
    raw.update(num_boost_round=1)
    raw["lgbm"]["learning_rate"] = 0.001
    raw["stacker"]["enabled"] = False
    raw["gate"]["target_zero_rate"] = 0.999
    path = folder / "models-weak.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def clone_featurised(store: ArtifactStore, src: str, dst: str) -> None:
    """Run ``dst`` on the same windows: ``src``'s committed ingest, validate and build_features
    copied under the new run id (the feature files stay ``src``'s, read-only)."""
    runs = Path(store.root) / "runs"
    for stage in FEATURISED:
        shutil.copytree(runs / src / stage, runs / dst / stage)
        manifest = runs / dst / stage / "_manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "run_id": dst}))


def mirror_of(mc, run_id: str):
    exp = mc.get_experiment_by_name("ltv_daily").experiment_id
    runs = mc.search_runs([exp], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
    assert len(runs) == 1, f"{len(runs)} MLflow runs for pipeline run {run_id!r}"
    return runs[0]


def version_of(mc, model: str, alias: str):
    return mc.get_model_version_by_alias(model, alias)


def test_runs_metrics_report_versions_and_the_champion_alias_follow_the_store(mlflow_server, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from ltv_core.synthetic import generate_dataset

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    generate_dataset(tmp_path / "data", seed=11, rows_per_partition=150, train_hours=40, test_hours=6)
    config = small_pipeline_config(tmp_path, dask={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    store = ArtifactStore(str(tmp_path / "store"))
    params = {"config": config, "data_root": str(tmp_path / "data"), "store_root": store.url, **WINDOWS}
    fast = yaml.safe_load(Path(config).read_text())["models_config"]
    weak = {**params, "models_config": weak_models_config(tmp_path, fast)}
    mc, model = MlflowClient(mlflow_server.url), "ltv_smadex_d7"

    run("weak", weak, *FEATURISED, *TRAINING_STAGES, Stage.EVALUATE)
    mlflow_server.wait()
    first = run("weak", weak, Stage.PROMOTE)[Stage.PROMOTE.value]
    assert first["promoted"] and first["tracking"]["status"] == "logged", first.get("tracking")
    assert version_of(mc, model, CHAMPION).tags[RUN_TAG] == "weak"

    clone_featurised(store, "weak", "good")
    good = run("good", params, *TRAINING_STAGES, Stage.EVALUATE, Stage.PROMOTE)[Stage.PROMOTE.value]
    assert good["promoted"], good["reason"]  # the champion changes
    again = run("weak", weak, Stage.EVALUATE, Stage.PROMOTE)[Stage.PROMOTE.value]
    assert not again["promoted"] and "rejected" in again["reason"], again["reason"]  # measured against 'good'

    # one MLflow run per pipeline run id: 'weak' was mirrored twice into the same one
    exp = mc.get_experiment_by_name("ltv_daily").experiment_id
    assert sorted(r.data.tags[RUN_TAG] for r in mc.search_runs([exp])) == ["good", "weak"]
    assert again["tracking"]["mlflow_run_id"] == first["tracking"]["mlflow_run_id"] == mirror_of(mc, "weak").info.run_id
    # its model (the same attempts) is the same version: two versions in all, one per model
    assert again["tracking"]["model_version"] == first["tracking"]["model_version"]
    versions = mc.search_model_versions(f"name = '{model}'")
    assert sorted(v.tags[RUN_TAG] for v in versions) == ["good", "weak"]

    # params, holdout metrics (the evaluation's table, the decision's candidate) and the report
    mirrored = mirror_of(mc, "good")
    assert mirrored.info.artifact_uri.startswith("mlflow-artifacts:/")  # uploaded through the server
    assert mirrored.data.params["run_id"] == "good" and mirrored.data.params["logical_date"] == LOGICAL
    assert mirrored.data.params["window.holdout"] == "2025-10-02T08:00:00+00:00/2025-10-02T16:00:00+00:00"
    assert mirrored.data.params["models.num_boost_round"] == "300"
    assert mirror_of(mc, "weak").data.params["models.num_boost_round"] == "1"
    evaluation = catalog.load_evaluation(store, "good")
    for name, row in evaluation["comparison"]["rows"].items():
        assert mirrored.data.metrics[f"holdout.{name}.rmsle"] == pytest.approx(row["rmsle"]), name
        assert mirrored.data.metrics[f"holdout.{name}.gini"] == pytest.approx(row["gini"]), name
    decision = store.read_json(f"{store.stage_dir('good', Stage.PROMOTE)}/decision.json")
    assert mirrored.data.metrics["holdout.model.rmsle"] == pytest.approx(decision["candidate"]["rmsle"])
    assert mirrored.data.metrics["holdout.champion.rmsle"] == pytest.approx(decision["champion"]["rmsle"])
    assert mirrored.data.metrics["promoted"] == 1.0 and mirror_of(mc, "weak").data.metrics["promoted"] == 0.0
    downloads = tmp_path / "downloads"
    report = Path(mc.download_artifacts(mirrored.info.run_id, "report/report.html", str(downloads)))
    assert report.read_bytes() == Path(store.stage_dir("good", REPORT_DIR), "report.html").read_bytes()
    assert {f.path for f in mc.list_artifacts(mirrored.info.run_id, "promote")} == {
        "promote/decision.json", "promote/champion.json"}

    # the champion alias names the model champion.json names: same run, same attempts, same files
    pointer = read_champion(store)
    champion = version_of(mc, model, CHAMPION)
    assert champion.tags[RUN_TAG] == pointer["run_id"] == "good"
    assert champion.tags[MODEL_TAG] == ModelRef("good", model_pins(pointer)).digest
    assert champion.run_id == mirrored.info.run_id and str(champion.version) == good["tracking"]["model_version"]
    folder = Path(mc.download_artifacts(mirrored.info.run_id, f"model/{champion.tags[MODEL_TAG]}", str(downloads)))
    with store.pinned("good", model_pins(pointer)):
        for stage, name in ((Stage.TRAIN_CLASSIFIER, "classifier.json"), (Stage.OPTIMIZE_GATE, "gate.json"),
                            (Stage.BUILD_FEATURES, catalog.FEATURE_STATE)):
            assert (folder / stage.value / name).read_bytes() == Path(store.stage_dir("good", stage), name).read_bytes()
    challenger = version_of(mc, model, CHALLENGER)
    assert challenger.tags[RUN_TAG] == "weak" and str(challenger.version) == again["tracking"]["model_version"]

    # promote's manifest records what was mirrored, with a link to the run's page
    manifest = store.read_manifest("good", Stage.PROMOTE)["tracking"]
    assert manifest["status"] == "logged" and manifest["mlflow_run_id"] == mirrored.info.run_id
    assert manifest["champion_version"] == manifest["model_version"] == str(champion.version)
    assert manifest["run_url"] == f"{mlflow_server.url}/#/experiments/{exp}/runs/{mirrored.info.run_id}"
