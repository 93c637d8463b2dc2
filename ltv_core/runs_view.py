"""The runs view: a read-only model of the runs in the artefact store, for the "LTV runs" page.

Pure (no Airflow, no HTTP): lists ``<store>/runs/*``, reads each run's stage manifests, validation
outcome, promotion decision and report metrics, and the champion pointer. A run whose files are
unreadable is still listed, with the problem named, so one bad run never hides the others.

It also resolves which of a run's files exist to be shown, from an allowlist: a run folder must be
an existing ``runs/<folder>`` with a path-safe name, an artefact one of :data:`ARTEFACTS`, and a
data-docs file a plain relative path (no ``..``, no absolute path) of a type a data-docs site is
made of (:data:`DATA_DOCS_FILE_TYPES`). How files are served (media types, which need no login) is
the plugin's business (``plugins/ltv_reports/files.py``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ltv_core.errors import DataError, StoreError
from ltv_core.promotion import CHAMPION, HIGHER_IS_BETTER, read_champion
from ltv_core.store import MANIFEST, ArtifactStore, open_store, safe_run_id, store_root
from ltv_core.timeutil import try_parse_time

DEFAULT_PRIMARY_METRIC = "rmsle"

# Artefacts the page links to and serves: URL name -> (stage folder, file name) under runs/<folder>/.
ARTEFACTS: dict[str, tuple[str, str]] = {
    "report.html": ("report", "report.html"),
    "metrics.json": ("report", "metrics.json"),
    "decision.json": ("promote", "decision.json"),
    "validation.json": ("validate", "result.json"),
    "drift.json": ("drift", "drift.json"),
}
DATA_DOCS = ("validate", "data_docs")
DATA_DOCS_INDEX = "index.html"

# The types of file a Great Expectations data-docs site is made of: any other is never shown.
DATA_DOCS_FILE_TYPES = frozenset({".html", ".json", ".css", ".js", ".png", ".jpg", ".svg", ".ico",
                                  ".otf", ".ttf", ".woff", ".woff2"})

# safe_run_id() output: Airflow run ids with ':' -> '-' and '+' -> '_'. No leading dot, so never '..'.
_FOLDER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}")
# One segment of a data-docs path; GE names validation folders after the raw run id (':' and '+').
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+\-]{0,249}")

ValidationStatus = Literal["passed", "failed", "not run"]
PromotionStatus = Literal["promoted", "rejected", "pending"]


class ArtefactNotFound(LookupError):
    """The name is of no allowlisted artefact: unknown name, unsafe path, or no such file."""


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
class DriftSummary:
    """The drift verdict of a run, from its drift stage's manifest (``ltv_core.stages.drift``)."""

    flagged: bool
    max_psi: float | None = None
    prediction_psi: float | None = None
    enabled: bool = True
    reasons: tuple[str, ...] = ()


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
    drift: DriftSummary | None = None  # None: no committed drift stage
    mlflow_url: str | None = None  # the run in MLflow, when promote mirrored it (ltv_core/tracking.py)


@dataclass(frozen=True)
class Champion:
    run_id: str
    folder: str | None
    promoted_at: str | None
    primary_metric: str
    value: float | None
    has_report: bool = False


@dataclass(frozen=True)
class RunsView:
    store_url: str
    store_exists: bool
    champion: Champion | None
    runs: tuple[RunSummary, ...]
    total_runs: int
    problems: tuple[str, ...] = field(default_factory=tuple)


# --- store access --------------------------------------------------------------------------------
def open_readonly(root: str | None = None) -> ArtifactStore | None:
    """The store :func:`ltv_core.store.open_store` opens (``root``, else ``LTV_STORE_ROOT``, else
    ``<project>/store``), or None when that is a local folder that does not exist (opening it would
    create it)."""
    chosen = store_root(root)
    if "://" not in chosen and not os.path.isdir(chosen):
        return None
    return open_store(chosen)


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
    """``runs/<folder>/<stage>/<rest>``, the stage resolved to its committed attempt (or, when it
    has none, its newest: a failed validation's result is shown too); ``*`` stays a glob."""
    if not is_valid_folder(folder):
        raise ArtefactNotFound(f"not a run folder name: {folder!r}")
    if not parts or parts[0] == "*":
        return store.path("runs", folder, *parts)
    stage, rest = parts[0], parts[1:]
    base = store.stage_dir(folder, stage)
    if not store.is_committed(folder, stage):
        base = store.newest_attempt_dir(folder, stage) or base
    return "/".join([base, *rest])


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
    if os.path.splitext(segments[-1])[1].lower() not in DATA_DOCS_FILE_TYPES:
        raise ArtefactNotFound(f"not a data-docs file type: {relpath!r}")
    path = _run_path(store, folder, *DATA_DOCS, *segments)
    if not store.exists(path) or store.fs.isdir(path):
        raise ArtefactNotFound(f"run {folder!r} has no data-docs file {rel!r}")
    return path


# --- summaries -----------------------------------------------------------------------------------
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
    except (DataError, StoreError, ValueError, OSError) as exc:
        problems.append(f"unreadable {path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}: {exc}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path.rsplit('/', 1)[-1]} is not a JSON object")
        return None
    return data


def champion_summary(store: ArtifactStore, problems: list[str]) -> Champion | None:
    """The champion pointer (``ltv_core.promotion.read_champion``) as shown on the page; None when
    there is none or it is unreadable (the problem is added to ``problems``)."""
    try:
        pointer = read_champion(store)
    except (DataError, StoreError, ValueError, OSError) as exc:
        problems.append(f"unreadable {CHAMPION}: {exc}")
        return None
    if pointer is not None and not isinstance(pointer, dict):
        problems.append(f"{CHAMPION} is not a JSON object")
        return None
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
    found.sort(key=lambda sm: (try_parse_time(sm[0].started_at) or epoch, sm[0].name))
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


def _drift(manifest: Mapping[str, Any] | None) -> DriftSummary | None:
    if manifest is None:
        return None
    reasons = manifest.get("reasons")
    return DriftSummary(flagged=manifest.get("flagged") is True, max_psi=_number(manifest.get("max_psi")),
                        prediction_psi=_number(manifest.get("prediction_psi")),
                        enabled=manifest.get("enabled") is not False,
                        reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else ())


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
        drift=_drift(manifests.get("drift")),
        mlflow_url=_mlflow_url(manifests.get("promote")),
    )


def _mlflow_url(manifest: Mapping[str, Any] | None) -> str | None:
    """The MLflow run's address recorded by promote, only when it is a web address (a link the page
    can show safely) and the mirror succeeded."""
    tracking = (manifest or {}).get("tracking")
    if not isinstance(tracking, Mapping) or tracking.get("status") != "logged":
        return None
    url = tracking.get("run_url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def _newest_first(run: RunSummary) -> tuple[datetime, datetime, str]:
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return (try_parse_time(run.started_at) or epoch, try_parse_time(run.logical_date) or epoch, run.folder)


def build_view(root: str | None = None, limit: int | None = None) -> RunsView:
    """Every run in the store (newest first, at most ``limit``), the champion, and any problems."""
    store = open_readonly(root)
    if store is None:
        return RunsView(store_url=store_root(root), store_exists=False, champion=None, runs=(), total_runs=0)
    problems: list[str] = []
    champion = champion_summary(store, problems)
    runs = sorted((summarize_run(store, f, champion) for f in list_run_folders(store)),
                  key=_newest_first, reverse=True)
    shown = runs if limit is None else runs[:limit]
    return RunsView(store_url=store.url, store_exists=True, champion=champion,
                        runs=tuple(shown), total_runs=len(runs), problems=tuple(problems))
