"""ltv_core.runs_view: the store read model behind the "LTV runs" page, and its file allowlist;
plus the plugin's HTTP policy on top of that allowlist (``plugins/ltv_reports/files.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ltv_core.runs_view import (
    ArtefactNotFound,
    artefact_path,
    build_view,
    data_docs_path,
    is_valid_folder,
)
from ltv_core.store import ArtifactStore, safe_run_id

FILES = Path(__file__).resolve().parents[2] / "plugins" / "ltv_reports" / "files.py"

OLD = "scheduled__2025-11-03T03:00:00+00:00"
NEW = "scheduled__2025-11-04T03:00:00+00:00"


def _manifest(store: ArtifactStore, run_id: str, stage: str, started: str, **extra: Any) -> None:
    store.commit_stage(run_id, stage, {"stage": stage, "run_id": run_id, "started_at": started,
                                       "finished_at": started, "seconds": 1.5, **extra})


def _metrics(store: ArtifactStore, run_id: str, model: dict, baselines: dict, champion: dict | None,
             primary: str = "rmsle") -> None:
    store.write_json(f"{store.stage_dir(run_id, 'report')}/metrics.json", {
        "run_id": run_id, "logical_date": "2025-11-04T03:00:00+00:00", "primary_metric": primary,
        "metrics": {"model": model, "baselines": baselines, "oracle": None, "champion": champion}})


def _decision(store: ArtifactStore, run_id: str, promoted: bool, reason: str, **extra: Any) -> None:
    store.write_json(f"{store.stage_dir(run_id, 'promote')}/decision.json", {
        "run_id": run_id, "promoted": promoted, "reason": reason, "tolerance": 0.0,
        "decided_at": "2025-11-04T04:00:00+00:00", **extra})


def _files() -> ModuleType:
    """plugins/ltv_reports/files.py alone (importing the package would import Airflow)."""
    spec = importlib.util.spec_from_file_location("ltv_reports_files", FILES)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    s = ArtifactStore(tmp_path / "store")
    # The older run: promoted, champion, with report, data docs and a validate manifest.
    _manifest(s, OLD, "validate", "2025-11-03T03:05:00+00:00", success=True, evaluated=10, failed=0)
    _manifest(s, OLD, "ingest", "2025-11-03T03:00:00+00:00", inputs={"logical_date": "2025-11-03T03:00:00+00:00"})
    s.write_text(f"{s.stage_dir(OLD, 'report')}/report.html", "<html>old</html>")
    _metrics(s, OLD, {"rmsle": 0.6}, {"zero": {"rmsle": 0.9}, "mean": {"rmsle": 0.7}}, None)
    _decision(s, OLD, True, "no champion yet", candidate={"rmsle": 0.6})
    docs = f"{s.stage_dir(OLD, 'validate')}/data_docs"
    s.write_text(f"{docs}/index.html", "<html>docs</html>")
    s.write_text(f"{docs}/static/styles/a.css", "body{}")
    s.write_text(f"{docs}/validations/suite/{OLD}/r.html", "<html>r</html>")
    s.write_json(s.path("champion.json"), {"run_id": OLD, "promoted_at": "2025-11-03T04:00:00+00:00",
                                           "primary_metric": "rmsle", "metrics": {"rmsle": 0.6}})
    # The newer run: validation failed (result.json, no manifest), no report, no decision.
    _manifest(s, NEW, "ingest", "2025-11-04T03:00:00+00:00", inputs={"logical_date": "2025-11-04T03:00:00+00:00"})
    s.write_json(f"{s.stage_dir(NEW, 'validate')}/result.json", {"success": False, "evaluated": 10, "failed": 3})
    return s


def test_runs_newest_first_with_outcomes(store: ArtifactStore) -> None:
    view = build_view(store.url)
    assert view.store_exists and view.total_runs == 2
    assert [r.run_id for r in view.runs] == [NEW, OLD]
    new, old = view.runs
    assert new.folder == safe_run_id(NEW) and new.logical_date == "2025-11-04T03:00:00+00:00"
    assert [s.name for s in new.stages] == ["ingest"]
    assert (new.validation.status, new.validation.failed, new.validation.evaluated) == ("failed", 3, 10)
    assert new.promotion.status == "pending" and new.metrics is None and not new.is_champion
    assert new.artefacts == {"validation.json"}
    assert [s.name for s in old.stages] == ["ingest", "validate"], "in the order they ran"
    assert old.validation.status == "passed" and old.promotion.status == "promoted"
    assert old.promotion.reason == "no champion yet" and old.is_champion
    assert old.metrics is not None
    assert (old.metrics.name, old.metrics.model, old.metrics.best_baseline, old.metrics.baseline) == (
        "rmsle", 0.6, "mean", 0.7)
    assert old.artefacts == {"report.html", "metrics.json", "decision.json", "data_docs"}
    assert view.champion is not None and view.champion.folder == old.folder and view.champion.value == 0.6
    assert view.champion.has_report
    assert build_view(store.url, limit=1).runs == view.runs[:1]


def test_rejected_run_shows_reason_and_champion_metric(store: ArtifactStore) -> None:
    _metrics(store, NEW, {"rmsle": 0.65}, {"zero": {"rmsle": 0.9}}, {"rmsle": 0.6})
    _decision(store, NEW, False, "rejected: rmsle 0.65 vs champion 0.6")
    new = build_view(store.url).runs[0]
    assert new.promotion.status == "rejected" and new.promotion.reason == "rejected: rmsle 0.65 vs champion 0.6"
    assert new.metrics is not None and (new.metrics.model, new.metrics.champion) == (0.65, 0.6)


def test_metrics_fall_back_to_the_decision_and_scores_pick_the_max(store: ArtifactStore) -> None:
    _decision(store, NEW, False, "r", primary_metric="rmsle", candidate={"rmsle": 0.8}, champion={"rmsle": 0.6})
    new = build_view(store.url).runs[0]
    assert new.metrics is not None and (new.metrics.model, new.metrics.champion) == (0.8, 0.6)
    _metrics(store, NEW, {"gini": 0.3}, {"a": {"gini": 0.1}, "b": {"gini": 0.2}, "c": {"gini": None}}, None, "gini")
    new = build_view(store.url).runs[0]
    assert new.metrics is not None and new.metrics.higher_is_better
    assert (new.metrics.best_baseline, new.metrics.baseline) == ("b", 0.2)


def test_a_broken_run_is_listed_with_its_problem(store: ArtifactStore) -> None:
    store.write_text(f"{store.stage_dir(NEW, 'promote')}/decision.json", "{not json")
    view = build_view(store.url)
    new = view.runs[0]
    assert new.promotion.status == "pending" and any("decision.json" in p for p in new.problems)
    assert view.runs[1].problems == ()


def test_missing_and_empty_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = build_view(str(tmp_path / "absent"))
    assert not view.store_exists and view.runs == () and view.champion is None
    assert not (tmp_path / "absent").exists(), "a read-only view must not create the store"
    (tmp_path / "empty" / "runs" / ".tmp-x").mkdir(parents=True)
    (tmp_path / "empty" / "runs" / "not-a-dir.txt").write_text("x")
    monkeypatch.setenv("LTV_STORE_ROOT", str(tmp_path / "empty"))
    view = build_view()
    assert view.store_exists and view.runs == () and view.store_url == str(tmp_path / "empty")


def test_champion_pointer_with_an_unsafe_run_id(store: ArtifactStore) -> None:
    store.write_json(store.path("champion.json"), {"run_id": "../../etc", "metrics": {}})
    view = build_view(store.url)
    assert view.champion is not None and view.champion.folder is None and not view.champion.has_report
    assert not any(r.is_champion for r in view.runs)


def test_artefact_allowlist(store: ArtifactStore) -> None:
    old = safe_run_id(OLD)
    assert artefact_path(store, old, "report.html").endswith(f"/runs/{old}/report/report.html")
    assert artefact_path(store, old, "decision.json").endswith(f"/runs/{old}/promote/decision.json")
    for folder, name in [(old, "champion.json"), (old, "_manifest.json"), (old, "../report.html"),
                         ("..", "report.html"), (".", "report.html"), ("", "report.html"),
                         ("a/b", "report.html"), (".hidden", "report.html"),
                         (safe_run_id(NEW), "report.html")]:
        with pytest.raises(ArtefactNotFound):
            artefact_path(store, folder, name)


def test_data_docs_paths(store: ArtifactStore) -> None:
    public_asset_path = _files().public_asset_path
    old = safe_run_id(OLD)
    assert data_docs_path(store, old, "").endswith("/validate/data_docs/index.html")
    assert data_docs_path(store, old, f"validations/suite/{OLD}/r.html").endswith("/r.html")
    assert public_asset_path(store, old, "styles/a.css").endswith("/data_docs/static/styles/a.css")
    bad = ["../result.json", "static/../../report/report.html", "/etc/passwd", "static//a.css",
           "a\\..\\b.html", "index.html\n", "static/styles", "index.html/", ".", "..", "x.py",
           "static/styles/missing.css"]
    for relpath in bad:
        with pytest.raises(ArtefactNotFound):
            data_docs_path(store, old, relpath)
    for relpath in ["../index.html", "../../report/report.html", "styles/a.html"]:
        with pytest.raises(ArtefactNotFound):
            public_asset_path(store, old, relpath)


def test_folder_names_and_media_types() -> None:
    media_type = _files().media_type
    assert is_valid_folder(safe_run_id("manual__2026-11-23T09:05:12.211636+00:00"))
    assert not any(is_valid_folder(f) for f in ["..", ".x", "a/b", "a b", "", "a" * 300, "a\x00", "a\n"])
    assert media_type("x/report.html").startswith("text/html")
    assert media_type("metrics.json") == "application/json" and media_type("f.woff2") == "font/woff2"
    assert media_type("blob.bin") == "application/octet-stream"


def test_drift_verdict_comes_from_the_drift_manifest(store: ArtifactStore) -> None:
    assert all(r.drift is None for r in build_view(store.url).runs), "no drift stage: no verdict"
    _manifest(store, NEW, "drift", "2025-11-04T03:30:00+00:00", flagged=True, max_psi=0.71, prediction_psi=0.05,
              reasons=["dev_make: 0.400 of scoring rows have a category unseen in training (> 0.05)"], enabled=True)
    _manifest(store, OLD, "drift", "2025-11-03T03:30:00+00:00", flagged=False, max_psi=0.04, prediction_psi=None,
              reasons=[], enabled=True)
    store.write_json(f"{store.stage_dir(NEW, 'drift')}/drift.json", {"flagged": True})
    new, old = build_view(store.url).runs
    assert new.drift is not None and new.drift.flagged and new.drift.max_psi == 0.71
    assert new.drift.reasons[0].startswith("dev_make") and "drift.json" in new.artefacts
    assert old.drift is not None and not old.drift.flagged and old.drift.prediction_psi is None
    assert artefact_path(store, safe_run_id(NEW), "drift.json").endswith("/drift/drift.json")


def test_runs_page_has_a_drift_column(store: ArtifactStore) -> None:
    spec = importlib.util.spec_from_file_location("ltv_reports_render", FILES.with_name("render.py"))
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)  # alone: the package imports Airflow
    render_runs = render.render_runs
    _manifest(store, NEW, "drift", "2025-11-04T03:30:00+00:00", flagged=True, max_psi=0.71, reasons=["x"])
    page = render_runs(build_view(store.url), "ltv_daily")
    assert "<th>Drift</th>" in page and "drift-flagged" in page and "max PSI 0.7100" in page


def test_a_run_mirrored_to_mlflow_links_to_it_and_only_a_web_address_is_linked(store: ArtifactStore) -> None:
    url = "http://127.0.0.1:5000/#/experiments/1/runs/abc"
    _manifest(store, NEW, "promote", "2025-11-04T04:00:00+00:00", tracking={"status": "logged", "run_url": url})
    _manifest(store, OLD, "promote", "2025-11-03T04:00:00+00:00",
              tracking={"status": "logged", "run_url": "javascript:alert(1)"})
    new, old = build_view(store.url).runs
    assert new.mlflow_url == url and old.mlflow_url is None
    _manifest(store, NEW, "promote", "2025-11-04T04:00:00+00:00", tracking={"status": "failed", "run_url": url})
    assert build_view(store.url).runs[0].mlflow_url is None  # a failed mirror links nowhere

    spec = importlib.util.spec_from_file_location("ltv_reports_render", FILES.with_name("render.py"))
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    _manifest(store, NEW, "promote", "2025-11-04T04:00:00+00:00", tracking={"status": "logged", "run_url": url})
    page = render.render_runs(build_view(store.url), "ltv_daily")
    assert f'<a class="mlflow-link" href="{url}">MLflow run</a>' in page
