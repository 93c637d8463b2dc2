"""A read-only view of the runs in the artefact store, for the "LTV runs" page of the Airflow UI.

Pure (no Airflow import): lists ``<store>/runs/*``, reads each run's stage manifests, validation
outcome, promotion decision and report metrics, and the champion pointer. A run whose files are
unreadable is still listed, with the problem named, so one bad run never hides the others.

It also resolves the artefact files the page may serve, from an allowlist: a run folder must be
an existing ``runs/<folder>`` with a path-safe name, an artefact one of :data:`ARTEFACTS`, and a
data-docs file a plain relative path (no ``..``, no absolute path) with a known extension.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ltv_core.errors import DataError
from ltv_core.promotion import CHAMPION, HIGHER_IS_BETTER
from ltv_core.store import MANIFEST, ArtifactStore, open_store, safe_run_id

DEFAULT_PRIMARY_METRIC = "rmsle"

# Artefacts the page links to and serves: URL name -> (stage folder, file name) under runs/<folder>/.
ARTEFACTS: dict[str, tuple[str, str]] = {
    "report.html": ("report", "report.html"),
    "metrics.json": ("report", "metrics.json"),
    "decision.json": ("promote", "decision.json"),
    "validation.json": ("validate", "result.json"),
}
DATA_DOCS = ("validate", "data_docs")
DATA_DOCS_INDEX = "index.html"

# Files a Great Expectations data-docs site is made of, with the media type they are served as.
MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
# The data docs' generic assets (GE's bundle under static/), which need no login to be served.
PUBLIC_ASSET_TYPES = frozenset({".css", ".png", ".jpg", ".svg", ".ico", ".otf", ".ttf", ".woff", ".woff2"})
DATA_DOCS_ASSETS = "static"

# safe_run_id() output: Airflow run ids with ':' -> '-' and '+' -> '_'. No leading dot, so never '..'.
_FOLDER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}")
# One segment of a data-docs path; GE names validation folders after the raw run id (':' and '+').
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+\-]{0,249}")

ValidationStatus = Literal["passed", "failed", "not run"]
PromotionStatus = Literal["promoted", "rejected", "pending"]


class ArtefactNotFound(LookupError):
    """The request names no servable artefact: unknown name, unsafe path, or no such file."""


@dataclass(frozen=True)
class StageInfo:
    name: str
    started_at: str | None
    seconds: float | None


@dataclass(frozen=True)
class Validation:
    status: ValidationStatus
    evaluated: int | None = None
    failed: int | None = None


@dataclass(frozen=True)
class Promotion:
    status: PromotionStatus
    reason: str | None = None
    decided_at: str | None = None
    champion_run_id: str | None = None


@dataclass(frozen=True)
class MetricSummary:
    """The primary metric of the run's model next to its best baseline and the champion."""

    name: str
    higher_is_better: bool
    model: float | None = None
    best_baseline: str | None = None
    baseline: float | None = None
    champion: float | None = None


@dataclass(frozen=True)
class RunSummary:
    folder: str  # the run's folder under runs/ (path-safe run id): the key used in URLs
    run_id: str  # Airflow's run id as recorded in the manifests
    logical_date: str | None
    started_at: str | None
    stages: tuple[StageInfo, ...]
    validation: Validation
    promotion: Promotion
    metrics: MetricSummary | None
    artefacts: frozenset[str]  # keys of ARTEFACTS present, plus "data_docs"
    is_champion: bool = False
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Champion:
    run_id: str
    folder: str | None
    promoted_at: str | None
    primary_metric: str
    value: float | None
    has_report: bool = False


@dataclass(frozen=True)
class RegistryView:
    store_url: str
    store_exists: bool
    champion: Champion | None
    runs: tuple[RunSummary, ...]
    total_runs: int
    problems: tuple[str, ...] = field(default_factory=tuple)


# --- store access --------------------------------------------------------------------------------
def store_root_from_env() -> str | None:
    """``LTV_STORE_ROOT`` (what the DAG uses when no param/config overrides it), else the default."""
    return os.environ.get("LTV_STORE_ROOT") or None


def store_label(root: str | None = None) -> str:
    """The store root the page reads: ``root``, else ``LTV_STORE_ROOT``, else ``<project>/store``."""
    chosen = root or store_root_from_env()
    if chosen:
        return chosen if "://" in chosen else os.path.abspath(chosen)
    from ltv_core.yamlconf import project_root

    return str(project_root() / "store")


def open_readonly(root: str | None = None) -> ArtifactStore | None:
    """The store, or None when a local root does not exist (opening it would create it)."""
    label = store_label(root)
    if "://" not in label and not os.path.isdir(label):
        return None
    return open_store(label)


def is_valid_folder(folder: str) -> bool:
    return _FOLDER_RE.fullmatch(folder) is not None


def list_run_folders(store: ArtifactStore) -> list[str]:
    runs = store.path("runs")
    if not store.exists(runs):
        return []
    entries = store.fs.ls(runs, detail=True)
    names = (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "directory")
    return sorted(n for n in names if is_valid_folder(n))


def _run_path(store: ArtifactStore, folder: str, *parts: str) -> str:
    if not is_valid_folder(folder):
        raise ArtefactNotFound(f"not a run folder name: {folder!r}")
    return store.path("runs", folder, *parts)


def artefact_path(store: ArtifactStore, folder: str, name: str) -> str:
    """Store path of an allowlisted artefact of a run; raises ArtefactNotFound otherwise."""
    if name not in ARTEFACTS:
        raise ArtefactNotFound(f"unknown artefact {name!r}; known: {sorted(ARTEFACTS)}")
    path = _run_path(store, folder, *ARTEFACTS[name])
    if not store.exists(path):
        raise ArtefactNotFound(f"run {folder!r} has no {name}")
    return path


def data_docs_path(store: ArtifactStore, folder: str, relpath: str) -> str:
    """Store path of a file of a run's validation data docs; raises ArtefactNotFound otherwise."""
    rel = relpath or DATA_DOCS_INDEX
    segments = rel.split("/")
    if any(_SEGMENT_RE.fullmatch(s) is None for s in segments):
        raise ArtefactNotFound(f"not a data-docs path: {relpath!r}")
    if os.path.splitext(segments[-1])[1].lower() not in MEDIA_TYPES:
        raise ArtefactNotFound(f"not a data-docs file type: {relpath!r}")
    path = _run_path(store, folder, *DATA_DOCS, *segments)
    if not store.exists(path) or store.fs.isdir(path):
        raise ArtefactNotFound(f"run {folder!r} has no data-docs file {rel!r}")
    return path


def data_docs_asset_path(store: ArtifactStore, folder: str, relpath: str) -> str:
    """Store path of a file under a run's ``data_docs/static/`` of a :data:`PUBLIC_ASSET_TYPES` type."""
    if os.path.splitext(relpath)[1].lower() not in PUBLIC_ASSET_TYPES:
        raise ArtefactNotFound(f"not a data-docs asset: {relpath!r}")
    return data_docs_path(store, folder, f"{DATA_DOCS_ASSETS}/{relpath}")


def media_type(path: str) -> str:
    return MEDIA_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


# --- summaries -----------------------------------------------------------------------------------
def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metric(block: Any, name: str) -> float | None:
    return _number(block.get(name)) if isinstance(block, Mapping) else None


def _read_json(store: ArtifactStore, path: str, problems: list[str]) -> dict[str, Any] | None:
    if not store.exists(path):
        return None
    try:
        data = store.read_json(path)
    except (DataError, ValueError, OSError) as exc:
        problems.append(f"unreadable {path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}: {exc}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.rsplit('/', 1)[-1]} is not a JSON object")
        return None
    return data


def read_champion(store: ArtifactStore, problems: list[str]) -> Champion | None:
    pointer = _read_json(store, store.path(CHAMPION), problems)
    if pointer is None or not isinstance(pointer.get("run_id"), str):
        if pointer is not None:
            problems.append(f"{CHAMPION} has no run_id")
        return None
    run_id = pointer["run_id"]
    try:
        folder: str | None = safe_run_id(run_id)
    except ValueError:
        folder = None
    primary = str(pointer.get("primary_metric") or DEFAULT_PRIMARY_METRIC)
    has_report = folder is not None and store.exists(_run_path(store, folder, *ARTEFACTS["report.html"]))
    return Champion(run_id=run_id, folder=folder, promoted_at=pointer.get("promoted_at"),
                    primary_metric=primary, value=_metric(pointer.get("metrics"), primary),
                    has_report=has_report)


def _stages(store: ArtifactStore, folder: str, problems: list[str]) -> list[tuple[StageInfo, dict]]:
    found = []
    for path in store.fs.glob(_run_path(store, folder, "*", MANIFEST)):
        manifest = _read_json(store, str(path), problems)
        if manifest is None:
            continue
        name = str(path).rstrip("/").rsplit("/", 2)[-2]
        found.append((StageInfo(name, manifest.get("started_at"), _number(manifest.get("seconds"))),
                      manifest))
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    found.sort(key=lambda sm: (_parse_time(sm[0].started_at) or epoch, sm[0].name))
    return found


def _validation(store: ArtifactStore, folder: str, manifests: dict[str, dict],
                problems: list[str]) -> Validation:
    manifest = manifests.get("validate")
    if manifest is not None:  # committed only when every split passed
        return Validation("passed", manifest.get("evaluated"), manifest.get("failed"))
    result = _read_json(store, _run_path(store, folder, "validate", "result.json"), problems)
    if result is None:
        return Validation("not run")
    status: ValidationStatus = "passed" if result.get("success") is True else "failed"
    return Validation(status, result.get("evaluated"), result.get("failed"))


def _promotion(decision: dict[str, Any] | None) -> Promotion:
    if decision is None or not isinstance(decision.get("promoted"), bool):
        return Promotion("pending")
    return Promotion("promoted" if decision["promoted"] else "rejected",
                     str(decision.get("reason") or ""), decision.get("decided_at"),
                     decision.get("champion_run_id"))


def _best_baseline(baselines: Any, name: str, higher: bool) -> tuple[str | None, float | None]:
    if not isinstance(baselines, Mapping):
        return None, None
    scored = [(v, str(k)) for k, b in baselines.items() if (v := _metric(b, name)) is not None]
    if not scored:
        return None, None
    value, label = max(scored) if higher else min(scored)
    return label, value


def _metrics(report: dict[str, Any] | None, decision: dict[str, Any] | None) -> MetricSummary | None:
    if report is None and decision is None:
        return None
    name = str((report or {}).get("primary_metric") or (decision or {}).get("primary_metric")
               or DEFAULT_PRIMARY_METRIC)
    higher = name in HIGHER_IS_BETTER
    block = (report or {}).get("metrics")
    block = block if isinstance(block, Mapping) else {}
    model = _metric(block.get("model"), name)
    champion = _metric(block.get("champion"), name)
    if decision is not None:
        model = model if model is not None else _metric(decision.get("candidate"), name)
        champion = champion if champion is not None else _metric(decision.get("champion"), name)
    label, baseline = _best_baseline(block.get("baselines"), name, higher)
    return MetricSummary(name, higher, model, label, baseline, champion)


def summarize_run(store: ArtifactStore, folder: str, champion: Champion | None = None) -> RunSummary:
    problems: list[str] = []
    stages = _stages(store, folder, problems)
    manifests = {s.name: m for s, m in stages}
    report = _read_json(store, _run_path(store, folder, *ARTEFACTS["metrics.json"]), problems)
    decision = _read_json(store, _run_path(store, folder, *ARTEFACTS["decision.json"]), problems)
    run_id = next((str(m["run_id"]) for _, m in stages if isinstance(m.get("run_id"), str)), None)
    run_id = run_id or str((report or decision or {}).get("run_id") or folder)
    ingest_inputs = manifests.get("ingest", {}).get("inputs")
    logical = (report or {}).get("logical_date") or (
        ingest_inputs.get("logical_date") if isinstance(ingest_inputs, Mapping) else None)
    artefacts = {k for k, (stage, name) in ARTEFACTS.items()
                 if store.exists(_run_path(store, folder, stage, name))}
    if store.exists(_run_path(store, folder, *DATA_DOCS, DATA_DOCS_INDEX)):
        artefacts.add("data_docs")
    return RunSummary(
        folder=folder,
        run_id=run_id,
        logical_date=logical if isinstance(logical, str) else None,
        started_at=stages[0][0].started_at if stages else None,
        stages=tuple(s for s, _ in stages),
        validation=_validation(store, folder, manifests, problems),
        promotion=_promotion(decision),
        metrics=_metrics(report, decision),
        artefacts=frozenset(artefacts),
        is_champion=champion is not None and champion.folder == folder,
        problems=tuple(problems),
    )


def _newest_first(run: RunSummary) -> tuple[datetime, datetime, str]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return (_parse_time(run.started_at) or epoch, _parse_time(run.logical_date) or epoch, run.folder)


def build_view(root: str | None = None, limit: int | None = None) -> RegistryView:
    """Every run in the store (newest first, at most ``limit``), the champion, and any problems."""
    label = store_label(root)
    store = open_readonly(root)
    if store is None:
        return RegistryView(store_url=label, store_exists=False, champion=None, runs=(), total_runs=0)
    problems: list[str] = []
    champion = read_champion(store, problems)
    runs = sorted((summarize_run(store, f, champion) for f in list_run_folders(store)),
                  key=_newest_first, reverse=True)
    shown = runs if limit is None else runs[:limit]
    return RegistryView(store_url=store.url, store_exists=True, champion=champion,
                        runs=tuple(shown), total_runs=len(runs), problems=tuple(problems))
