"""MLflow tracking (ltv_core.tracking): the mirror against a local SQLite tracking store in tmp_path.

One SQLite store serves the module (MLflow's schema migration takes seconds); each test mirrors to
an experiment and a registered model of its own. The stage-level path (promote on real runs, an
``mlflow server`` over HTTP) is tests/integration/test_mlflow_server.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.processes import free_port

from ltv_core import tracking
from ltv_core.config import TrackingConfig
from ltv_core.lineage import MODEL_STAGES, Consumed
from ltv_core.pipeline import Stage
from ltv_core.store import ArtifactStore
from ltv_core.tracking import CHALLENGER, CHAMPION, ModelRef, RunRecord, Target, TrackingError


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def tgt(db, request) -> Target:
    """A target of its own (experiment, registered model) in the module's SQLite store."""
    name = request.node.name.replace("[", "_").replace("]", "")
    return Target(uri=f"sqlite:///{db}/mlflow.db", experiment=f"exp_{name}", registered_model=f"model_{name}",
                  artifact_location=str(db / "artefacts" / name))


@pytest.fixture
def mc(tgt):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tgt.uri, registry_uri=tgt.uri)


def files_of(ref: ModelRef) -> dict[str, bytes]:
    """Stand-in model files: which model it is, readable back from MLflow."""
    return {"train_classifier/classifier.json": json.dumps({"run": ref.run_id, "pins": dict(ref.pins)}).encode(),
            "lineage.json": b"{}"}


def record(run_id: str, attempt: str = "a1", **extra) -> RunRecord:
    model = ModelRef(run_id, {s.value: f"{attempt}-{s.value}" for s in MODEL_STAGES})
    base = dict(params={"run_id": run_id, "models.seed": "42"},
                metrics={"holdout.stack_point.rmsle": 0.41, "holdout.zero.rmsle": 0.9, "promoted": 1.0},
                tags={tracking.RUN_TAG: run_id, "ltv.promoted": "true"},
                files={"report/report.html": f"<html>{run_id}</html>".encode(), "promote/decision.json": b"{}"},
                model=model)
    return RunRecord(run_id, **{**base, **extra})


def track(tgt: Target, rec: RunRecord, champion: ModelRef | None, read=files_of) -> dict:
    result = tracking.track(tgt, rec, champion, read)
    assert result["status"] == "logged", result
    return result


def aliases(mc, tgt: Target) -> dict[str, str]:
    return {a: str(v) for a, v in mc.get_registered_model(tgt.registered_model).aliases.items()}


def runs_of(mc, tgt: Target, run_id: str) -> list:
    exp = mc.get_experiment_by_name(tgt.experiment).experiment_id
    return mc.search_runs([exp], filter_string=f"tags.`{tracking.RUN_TAG}` = '{run_id}'")


def test_the_target_is_off_without_a_uri_and_the_config_wins_over_the_variable():
    assert tracking.target(TrackingConfig(), "smadex_d7", environ={}) is None
    assert tracking.target(TrackingConfig(), "smadex_d7", environ={"MLFLOW_TRACKING_URI": "  "}) is None
    on = tracking.target(TrackingConfig(), "smadex_d7", environ={"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert on.uri == "http://mlflow:5000" and on.registered_model == "ltv_smadex_d7" and not on.required
    own = tracking.target(TrackingConfig(uri="sqlite:///x.db", registered_model="ltv", required=True), "s",
                          environ={"MLFLOW_TRACKING_URI": "http://other"})
    assert (own.uri, own.registered_model, own.required) == ("sqlite:///x.db", "ltv", True)
    with pytest.raises(ValueError, match="extra"):
        TrackingConfig(url="http://typo")
    with pytest.raises(ValueError, match="registered_model"):
        TrackingConfig(registered_model="it's")  # quoted in registry searches
    assert tracking.target(TrackingConfig(uri="x"), "my spec/v2").registered_model == "ltv_my_spec_v2"


def test_params_metrics_tags_artefacts_and_the_model_version_are_logged(tgt, mc):
    rec = record("run-a")
    result = track(tgt, rec, rec.model)
    run = mc.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run-a"
    assert run.data.params == {"run_id": "run-a", "models.seed": "42"}
    assert run.data.metrics == pytest.approx({"holdout.stack_point.rmsle": 0.41, "holdout.zero.rmsle": 0.9,
                                              "promoted": 1.0})
    assert run.data.tags[tracking.RUN_TAG] == "run-a" and run.data.tags["ltv.promoted"] == "true"
    report = mc.download_artifacts(run.info.run_id, "report/report.html", str(tgt_dir(tgt, "dl")))
    assert Path(report).read_text() == "<html>run-a</html>"
    digest = rec.model.digest
    version = mc.get_model_version(tgt.registered_model, result["model_version"])
    assert version.run_id == run.info.run_id and version.source.endswith(f"/model/{digest}")
    assert version.tags == {tracking.RUN_TAG: "run-a", tracking.MODEL_TAG: digest}
    model = mc.download_artifacts(run.info.run_id, f"model/{digest}", str(tgt_dir(tgt, "model")))
    assert json.loads(Path(model, "train_classifier", "classifier.json").read_text())["run"] == "run-a"
    assert result["champion_version"] == result["model_version"] == "1"
    assert aliases(mc, tgt) == {CHAMPION: "1"}
    assert result["run_url"] is None  # a SQLite store has no UI page


def tgt_dir(tgt: Target, name: str) -> Path:
    path = Path(tgt.artifact_location).parent.parent / "downloads" / tgt.experiment / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_re_logging_the_same_run_id_reuses_its_run_and_its_version(tgt, mc):
    first = track(tgt, record("run-a"), None)
    again = record("run-a", params={"run_id": "run-a", "models.seed": "7", "new": "x"},
                   metrics={"holdout.stack_point.rmsle": 0.40})
    second = track(tgt, again, None)
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    assert len(runs_of(mc, tgt, "run-a")) == 1
    assert second["model_version"] == first["model_version"]
    assert len(mc.search_model_versions(f"name = '{tgt.registered_model}'")) == 1
    run = mc.get_run(first["mlflow_run_id"])
    # params are immutable in MLflow: the first value stays, the re-run's is a tag; new ones are added
    assert run.data.params["models.seed"] == "42" and run.data.tags["param.models.seed"] == "7"
    assert run.data.params["new"] == "x"
    assert run.data.metrics["holdout.stack_point.rmsle"] == pytest.approx(0.40)  # the latest value
    # a re-run that wrote new attempts is a new model of the same run: a second version, same MLflow run
    third = track(tgt, record("run-a", attempt="a2"), None)
    assert third["mlflow_run_id"] == first["mlflow_run_id"] and third["model_version"] == "2"


def test_the_aliases_follow_the_stores_champion_pointer(tgt, mc):
    a, b, c = record("run-a"), record("run-b"), record("run-c")
    track(tgt, a, a.model)                                   # a: the first champion
    assert aliases(mc, tgt) == {CHAMPION: "1"}
    track(tgt, b, a.model)                                   # b lost: challenger, a stays champion
    assert aliases(mc, tgt) == {CHAMPION: "1", CHALLENGER: "2"}
    result = track(tgt, c, c.model)                          # c won: champion moves, b stays challenger
    assert aliases(mc, tgt) == {CHAMPION: "3", CHALLENGER: "2"}
    assert result["aliases"] == {CHAMPION: "3", CHALLENGER: "2"}
    track(tgt, b, b.model)                                   # b re-promoted: champion, no longer challenger
    assert aliases(mc, tgt) == {CHAMPION: "2"}
    version = mc.get_model_version_by_alias(tgt.registered_model, CHAMPION)
    assert version.tags[tracking.RUN_TAG] == "run-b"
    failed = record("run-d", model=None, tags={tracking.RUN_TAG: "run-d", "ltv.promoted": "false"})
    assert track(tgt, failed, b.model)["model_version"] is None  # a failed run: logged, no model
    assert aliases(mc, tgt) == {CHAMPION: "2"}
    track(tgt, failed, None)                                 # the store has no champion: nor has MLflow
    assert aliases(mc, tgt) == {}


def test_a_champion_mlflow_never_saw_is_registered_from_the_store(tgt, mc):
    old = ModelRef("run-old", {s.value: "old" for s in MODEL_STAGES})  # promoted before tracking was on
    read: list[str] = []

    def reader(ref: ModelRef) -> dict[str, bytes]:
        read.append(ref.run_id)
        return files_of(ref)

    result = track(tgt, record("run-new"), old, reader)     # run-new lost to run-old
    assert read == ["run-new", "run-old"]
    champion = mc.get_model_version_by_alias(tgt.registered_model, CHAMPION)
    assert str(champion.version) == result["champion_version"] and champion.tags[tracking.RUN_TAG] == "run-old"
    assert str(mc.get_model_version_by_alias(tgt.registered_model, CHALLENGER).version) == result["model_version"]
    [run] = runs_of(mc, tgt, "run-old")
    assert run.data.tags["ltv.registered_from_store"] == "true" and champion.run_id == run.info.run_id
    track(tgt, record("run-new"), old, reader)              # known now: nothing read again
    assert read == ["run-new", "run-old"]


def test_tracking_off_imports_nothing_and_reads_nothing(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # any import of mlflow now fails

    class NoStore:
        def __getattr__(self, name):
            raise AssertionError(f"the store was used ({name}) with tracking off")

    ctx = SimpleNamespace(config=SimpleNamespace(tracking=TrackingConfig()), spec=SimpleNamespace(name="s"),
                          store=NoStore(), run_id="r")
    assert tracking.log_promotion(ctx, None, Consumed(Stage.PROMOTE)) is None
    assert tracking.track(None, record("r"), None, files_of) is None
    code = ("import sys, ltv_core.stages.promote, ltv_core.tracking, ltv_core.inprocess; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_an_unreachable_server_is_a_warning_and_a_recorded_failure_in_seconds(caplog):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    tgt = tracking.target(TrackingConfig(uri=uri), "s")  # the default retries and timeout
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="ltv_core.tracking"):
        result = tracking.track(tgt, record("run-a"), None, files_of)
    seconds = time.perf_counter() - t0
    assert result["status"] == "failed" and result["uri"] == uri and result["error"]
    assert seconds < 15, f"an unreachable server took {seconds:.1f}s to give up"
    [warning] = [r for r in caplog.records if r.name == "ltv_core.tracking" and r.levelno == logging.WARNING]
    assert uri in warning.getMessage() and "run-a" in warning.getMessage()
    assert "\n" not in result["error"]
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the bounds are lifted afterwards


def test_an_unreachable_required_server_fails_in_one_line():
    uri = f"http://127.0.0.1:{free_port()}"
    tgt = tracking.target(TrackingConfig(uri=uri, required=True), "s")
    with pytest.raises(TrackingError) as err:
        tracking.track(tgt, record("run-a"), None, files_of)
    message = str(err.value)
    assert "\n" not in message and uri in message and "'run-a'" in message and "tracking.required" in message


def test_a_deployments_own_http_settings_win(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with tracking.http_bounds(Target(uri="http://x", experiment="e", registered_model="m", http_timeout=3)):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5" and "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_the_model_files_are_the_feature_state_and_the_model_files_of_the_pinned_attempts(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    for stage in MODEL_STAGES:
        folder = store.stage_dir("r", stage)
        store.write_text(f"{folder}/{stage.value}.json", stage.value)
        store.commit_stage("r", stage, {"stage": stage.value, "run_id": "r"})
    features = store.stage_dir("r", Stage.BUILD_FEATURES)
    store.write_text(f"{features}/feature_state.json", "{}")
    store.write_text(f"{features}/train/part-0.parquet", "rows")  # feature files: data, not model
    files = tracking.model_files(store, ModelRef("r"))
    expected = {f"{s.value}/{s.value}.json" for s in MODEL_STAGES if s != Stage.BUILD_FEATURES}
    assert set(files) == expected | {"build_features/feature_state.json", "lineage.json"}
    assert files["optimize_gate/optimize_gate.json"] == b"optimize_gate"
    consumed = Consumed(Stage.PROMOTE, lineage={s.value: None for s in MODEL_STAGES})
    assert tracking.model_ref(store, "r", consumed) == ModelRef("r", {})
    assert tracking.model_ref(store, "r", Consumed(Stage.PROMOTE, conflicts=["x"])) is None  # a mixed run
    store.rm(f"{store.stage_dir('r', Stage.OPTIMIZE_GATE)}/_manifest.json")
    assert tracking.model_ref(store, "r", consumed) is None  # a model stage did not commit


def test_config_blocks_become_params_and_metric_blocks_finite_metrics():
    params = tracking.flat_params("models", {"lgbm": {"num_leaves": 31}, "search": [{"a": 1}], "empty": {},
                                             "name": "x", "off": None, "odd key!": 1})
    assert params == {"models.lgbm.num_leaves": "31", "models.search": '[{"a": 1}]', "models.empty": "{}",
                      "models.name": "x", "models.off": "null", "models.odd key_": "1"}
    metrics = tracking.flat_metrics("holdout.m", {"rmsle": 0.4, "rows": 10, "flag": True, "none": None,
                                                  "nan": float("nan"), "ci": {"lo": -1.0}})
    assert metrics == {"holdout.m.rmsle": 0.4, "holdout.m.rows": 10.0, "holdout.m.ci.lo": -1.0}
