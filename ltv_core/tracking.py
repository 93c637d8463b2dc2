"""MLflow tracking of a run: a mirror of what the store decided, written by the promote stage.

The artefact store stays the source of truth (``champion.json`` names the model that scores); MLflow
mirrors it for the people and tools that look there. When tracking is on (``tracking.uri`` in
``config/pipeline.yaml``, else ``$MLFLOW_TRACKING_URI``), promote mirrors each run
(docs/OPERATIONS.md "MLflow tracking"):

* one MLflow run per pipeline run id, found by its tag ``ltv.run_id`` and reused by a re-run;
* params (run id, logical date, spec, windows, promotion rule, models config), the holdout metrics
  (``holdout.<predictor>.<metric>``), the decision as tags, and artefacts: the report, the decision,
  the champion pointer, the evaluation;
* the run's model files (the attempts its lineage names) under ``model/<digest>/`` and one model
  version per model (run id + attempts: tag ``ltv.model``) with that folder as its source;
* the aliases ``champion`` (the version of the model ``champion.json`` names, registered from the
  store when MLflow lacks it) and ``challenger`` (this run's version when it is not the champion).

An unreachable or failing MLflow never loses the run: the decision and the pointer are written
before. It is a WARNING and ``{"status": "failed", ...}`` in promote's manifest or, with
``tracking.required``, a :class:`TrackingError` in one line. MLflow is imported only when tracking
is on: with it off nothing is read, imported or logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltv_core import catalog
from ltv_core.config import TrackingConfig
from ltv_core.errors import LtvError, describe
from ltv_core.lineage import MODEL_STAGES, Consumed, model_pins
from ltv_core.pipeline import REPORT_DIR, Stage
from ltv_core.promotion import Decision, read_champion
from ltv_core.store import ArtifactStore, code_version

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from ltv_core.context import RunContext

log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
RUN_TAG = "ltv.run_id"      # on MLflow runs and model versions: the pipeline run id
MODEL_TAG = "ltv.model"     # on model versions: ModelRef.digest
CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_DIR = "model"
BATCH = 100                 # params / tags / metrics per log_batch request (MLflow allows 100 params)
PARAM_CHARS = 500           # a param value's length every MLflow server accepts
TAG_CHARS = 5000
_KEY = re.compile(r"[^\w\-. /]")  # characters MLflow refuses in a param or metric name
_MODEL_NAME = re.compile(r"[^\w.\-]")  # characters left out of the default registered model name


class TrackingError(LtvError):
    """MLflow tracking is required (``tracking.required: true``) and failed; names the URI."""


@dataclass(frozen=True)
class Target:
    """Where and how runs are mirrored: the ``tracking`` config, resolved."""

    uri: str
    experiment: str
    registered_model: str
    required: bool = False
    artifact_location: str | None = None
    http_retries: int = 1
    http_timeout: int = 10


def target(config: TrackingConfig, spec_name: str, environ: Mapping[str, str] | None = None) -> Target | None:
    """The tracking target; None (tracking off) when neither ``uri`` nor ``$MLFLOW_TRACKING_URI`` is set."""
    env = os.environ if environ is None else environ
    uri = config.uri or env.get(ENV_URI, "").strip() or None
    if uri is None:
        return None
    model = config.registered_model or "ltv_" + _MODEL_NAME.sub("_", spec_name)
    return Target(uri=uri, experiment=config.experiment, registered_model=model,
                  required=config.required, artifact_location=config.artifact_location,
                  http_retries=config.http_retries, http_timeout=config.http_timeout)


@dataclass(frozen=True)
class ModelRef:
    """A model as the store knows it: its run id and the attempt of each model stage (what a champion
    pointer pins). The digest names its folder and its version: a re-run that wrote new attempts is
    a new version, the same attempts are always the same version."""

    run_id: str
    pins: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        blob = json.dumps({"run_id": self.run_id, "pins": dict(self.pins)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    """What one pipeline run puts into MLflow; gathered from the store by :func:`run_record`."""

    run_id: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # artefact path in the MLflow run -> content
    model: ModelRef | None = None


ModelReader = Callable[[ModelRef], dict[str, bytes]]  # a model's files: "<stage>/<name>" -> content


# --- the promote stage's entry -------------------------------------------------------------------
def log_promotion(ctx: RunContext, decision: Decision, consumed: Consumed) -> dict[str, Any] | None:
    """Mirror the run promote just decided, after the decision and the pointer are written; None
    when tracking is off (then nothing is read or imported)."""
    tgt = target(ctx.config.tracking, ctx.spec.name)
    if tgt is None:
        return None
    record = run_record(ctx, decision, model_ref(ctx.store, ctx.run_id, consumed))
    pointer = read_champion(ctx.store)
    champion = None if pointer is None else ModelRef(str(pointer["run_id"]), model_pins(pointer))
    return track(tgt, record, champion, lambda ref: model_files(ctx.store, ref))


def track(tgt: Target | None, record: RunRecord, champion: ModelRef | None,
          read_model: ModelReader) -> dict[str, Any] | None:
    """Mirror ``record`` and the champion pointer's model with the failure policy: a failure is a
    WARNING and ``status: failed`` (the store holds the run already), or a :class:`TrackingError`
    when the target is required. None when tracking is off."""
    if tgt is None:
        return None
    t0 = time.perf_counter()
    try:
        with http_bounds(tgt):
            result = mirror(client(tgt), tgt, record, champion, read_model)
    except Exception as exc:  # noqa: BLE001 - MLflow, HTTP, SQL and store errors alike: the policy decides
        reason = one_line(exc)
        if tgt.required:
            raise TrackingError(
                f"MLflow tracking at {tgt.uri} failed for run {record.run_id!r}: {reason}; the decision and "
                "champion.json are written: fix the tracking server and re-run promote, or set "
                "tracking.required: false in the pipeline config") from None
        log.warning("MLflow tracking at %s failed for run %s: %s (tracking.required is false: the run is kept in "
                    "the store; re-run promote to mirror it)", tgt.uri, record.run_id, reason)
        return {"status": "failed", "uri": tgt.uri, "error": reason}
    log.info("MLflow: run %s mirrored to %s (MLflow run %s, model version %s, champion version %s) in %.1fs",
             record.run_id, tgt.uri, result["mlflow_run_id"], result["model_version"], result["champion_version"],
             time.perf_counter() - t0)
    return {"status": "logged", "uri": tgt.uri, **result}


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one bounded line (MLflow's messages can span lines and pages)."""
    text = " ".join(describe(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def http_bounds(tgt: Target) -> Iterator[None]:
    """Bound MLflow's HTTP retries and timeout while mirroring: its defaults (7 retries, 120 s)
    keep an unreachable server busy for minutes. A variable the deployment set itself wins."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": tgt.http_retries, "MLFLOW_HTTP_REQUEST_TIMEOUT": tgt.http_timeout}
    added = [k for k in wanted if k not in os.environ]
    for k in added:
        os.environ[k] = str(wanted[k])
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def client(tgt: Target) -> MlflowClient:
    """An MLflow client of the target (tracking and registry); mlflow is imported here only."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tgt.uri, registry_uri=tgt.uri)


# --- the mirror ----------------------------------------------------------------------------------
def mirror(mc: MlflowClient, tgt: Target, record: RunRecord, champion: ModelRef | None,
           read_model: ModelReader) -> dict[str, Any]:
    """Log the run, register its model, register the champion's if MLflow lacks it, move the
    aliases to where the store's pointer says; what was logged, for promote's manifest."""
    exp = experiment_id(mc, tgt)
    run, _ = find_or_create_run(mc, exp, record.run_id)
    rid = run.info.run_id
    log_record(mc, run, record)
    ensure_registered_model(mc, tgt.registered_model)
    version = register(mc, tgt.registered_model, run, record.model, read_model) if record.model else None
    champ = None
    if champion is not None:
        same = record.model is not None and champion.digest == record.model.digest
        champ = version if same else register_from_store(mc, tgt.registered_model, exp, champion, read_model)
    aliases = move_aliases(mc, tgt.registered_model, champ, version)
    mc.set_terminated(rid, "FINISHED")
    return {"experiment_id": exp, "mlflow_run_id": rid, "run_url": run_url(tgt.uri, exp, rid),
            "registered_model": tgt.registered_model, "model_version": version, "champion_version": champ,
            "aliases": aliases}


def experiment_id(mc: MlflowClient, tgt: Target) -> str:
    """The experiment's id, created on first use (with ``artifact_location`` when configured)."""
    exp = mc.get_experiment_by_name(tgt.experiment)
    if exp is not None:
        return str(exp.experiment_id)
    return str(mc.create_experiment(tgt.experiment, artifact_location=tgt.artifact_location))


def find_or_create_run(mc: MlflowClient, experiment: str, run_id: str) -> tuple[Run, bool]:
    """The MLflow run of a pipeline run id (tag ``ltv.run_id``; the oldest if several), else a new
    one: a re-run of the same pipeline run reuses it, never a duplicate. (Run ids hold no quotes:
    ``store.safe_run_id``.)"""
    found = mc.search_runs([experiment], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'", max_results=5,
                           order_by=["attributes.start_time ASC"])
    if found:
        return found[0], False
    return mc.create_run(experiment, run_name=run_id, tags={RUN_TAG: run_id}), True


def log_record(mc: MlflowClient, run: Run, record: RunRecord) -> None:
    """Params, metrics, tags and files of the record. MLflow params are immutable: a re-run's
    changed value is kept as tag ``param.<key>`` (and logged), not refused."""
    from mlflow.entities import Metric, Param, RunTag

    old = run.data.params
    changed = {k: v for k, v in record.params.items() if k in old and old[k] != v}
    if changed:
        log.info("MLflow run %s: params changed since it was first logged, kept as tags param.<key>: %s",
                 run.info.run_id, sorted(changed))
    params = [Param(k, v) for k, v in record.params.items() if k not in old]
    tagged = {**record.tags, **{f"param.{k}": v for k, v in changed.items()}}
    tags = [RunTag(k, v[:TAG_CHARS]) for k, v in tagged.items()]
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in record.metrics.items()]
    for i in range(0, max(len(params), len(tags), len(metrics)), BATCH):
        mc.log_batch(run.info.run_id, metrics=metrics[i:i + BATCH], params=params[i:i + BATCH], tags=tags[i:i + BATCH])
    upload(mc, run.info.run_id, record.files)


def upload(mc: MlflowClient, mlflow_run_id: str, files: Mapping[str, bytes]) -> None:
    """Files (artefact path -> content) as artefacts of the run, in one upload of a temporary tree:
    the store may be S3, MLflow logs local files."""
    if not files:
        return
    with tempfile.TemporaryDirectory(prefix="ltv-mlflow-") as tmp:
        for rel, data in files.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        mc.log_artifacts(mlflow_run_id, tmp)


def ensure_registered_model(mc: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mc.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        mc.create_registered_model(name, description="LTV stack of ltv_core; aliases champion / challenger "
                                                     "follow the artefact store's champion.json")


def register(mc: MlflowClient, name: str, run: Run, model: ModelRef, read_model: ModelReader) -> str:
    """The model version of ``model`` (found by its digest tag, else its files uploaded under
    ``model/<digest>/`` of ``run`` and a version created with that folder as its source)."""
    found = mc.search_model_versions(f"name = '{name}' and tags.`{MODEL_TAG}` = '{model.digest}'")
    if found:
        return str(min(int(v.version) for v in found))
    folder = f"{MODEL_DIR}/{model.digest}"
    upload(mc, run.info.run_id, {f"{folder}/{k}": v for k, v in read_model(model).items()})
    mv = mc.create_model_version(name, f"{run.info.artifact_uri}/{folder}", run.info.run_id,
                                 tags={RUN_TAG: model.run_id, MODEL_TAG: model.digest},
                                 description=f"pipeline run {model.run_id}, attempts {json.dumps(dict(model.pins))}")
    return str(mv.version)


def register_from_store(mc: MlflowClient, name: str, experiment: str, model: ModelRef, read_model: ModelReader) -> str:
    """The version of a champion this mirror has not seen (tracking switched on after it was
    promoted): registered from the store, under the MLflow run of its pipeline run id."""
    run, created = find_or_create_run(mc, experiment, model.run_id)
    version = register(mc, name, run, model, read_model)
    if created:
        mc.set_tag(run.info.run_id, "ltv.registered_from_store", "true")
        mc.set_terminated(run.info.run_id, "FINISHED")
    return version


def move_aliases(mc: MlflowClient, name: str, champion: str | None, candidate: str | None) -> dict[str, str | None]:
    """``champion`` to the pointer's version (removed when the store has no champion);
    ``challenger`` to this run's version when it is not the champion, else left where it is unless
    it names the champion (a version is never both). Returns alias -> version."""
    current = {a: str(v) for a, v in mc.get_registered_model(name).aliases.items()}
    challenger = candidate if candidate != champion else current.get(CHALLENGER)
    want = {CHAMPION: champion, CHALLENGER: None if challenger == champion else challenger}
    for alias, version in want.items():
        if version is None and alias in current:
            mc.delete_registered_model_alias(name, alias)
        elif version is not None and current.get(alias) != version:
            mc.set_registered_model_alias(name, alias, version)
    return want


def run_url(uri: str, experiment: str, mlflow_run_id: str) -> str | None:
    """The run's page in the MLflow UI, for a tracking server's URI."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{mlflow_run_id}"


# --- what the store holds of a run ---------------------------------------------------------------
def model_ref(store: ArtifactStore, run_id: str, consumed: Consumed) -> ModelRef | None:
    """The run's model, when every model stage committed and promote's inputs form one chain (a
    mixed run has no model to register); its attempts are those promote consumed."""
    if consumed.conflicts or not all(store.is_committed(run_id, s) for s in MODEL_STAGES):
        return None
    return ModelRef(run_id, model_pins({"lineage": consumed.lineage}))


def model_files(store: ArtifactStore, ref: ModelRef) -> dict[str, bytes]:
    """The files that make the model (``<stage>/<name>``: the feature state and every model file
    of the pinned attempts; the scoring code loads exactly these) and ``lineage.json``."""
    files: dict[str, bytes] = {}
    with store.pinned(ref.run_id, dict(ref.pins)):
        for stage in MODEL_STAGES:
            folder = store.stage_dir(ref.run_id, stage)
            names = [catalog.FEATURE_STATE] if stage == Stage.BUILD_FEATURES else _stage_files(store, folder)
            for name in names:
                files[f"{stage.value}/{name}"] = store.read_bytes(f"{folder}/{name}")
    files["lineage.json"] = json.dumps({"run_id": ref.run_id, "attempts": dict(ref.pins)}, indent=2).encode()
    return files


def _stage_files(store: ArtifactStore, folder: str) -> list[str]:
    """The artefact files of a stage's folder (not its manifest, temporaries or sub-folders)."""
    entries = store.fs.ls(folder, detail=True)
    names = (e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file")
    return sorted(n for n in names if not n.startswith(("_", ".")))


def run_record(ctx: RunContext, decision: Decision, model: ModelRef | None) -> RunRecord:
    """Params, holdout metrics, tags and artefacts of the run, from what its stages committed."""
    store, rid = ctx.store, ctx.run_id
    champion_id = rid if decision.promoted else decision.champion_run_id
    params = {"run_id": rid, "logical_date": ctx.logical_date.isoformat(), "dataset_spec": ctx.spec.name,
              "promotion.metric": decision.primary_metric, "promotion.tolerance": str(decision.tolerance),
              **flat_params("windows", ctx.config.windows.model_dump(mode="json")),
              **flat_params("models", ctx.models.model_dump(mode="json"))}
    metrics = {"promoted": float(decision.promoted), **flat_metrics("holdout.model", decision.candidate),
               **flat_metrics("holdout.champion", decision.champion or {})}
    if store.is_committed(rid, Stage.INGEST):
        for split, out in store.read_manifest(rid, Stage.INGEST)["outputs"].items():
            params[f"window.{split}"] = "/".join(out.get("window") or [])
            metrics |= flat_metrics(f"rows.{split}", out.get("rows"))
    files = {"promote/decision.json": _json(decision.to_dict()), "promote/champion.json": _json(read_champion(store))}
    if store.is_committed(rid, Stage.EVALUATE):
        evaluation = catalog.load_evaluation(store, rid)
        for name, row in (evaluation.get("comparison") or {}).get("rows", {}).items():
            metrics |= flat_metrics(f"holdout.{name}", row)
        metrics |= flat_metrics("holdout.classifier", evaluation.get("classifier") or {})
        files["evaluate/evaluation.json"] = _json(evaluation)
    if store.is_committed(rid, REPORT_DIR):
        folder = store.stage_dir(rid, REPORT_DIR)
        for name in ("report.html", "metrics.json"):
            files[f"report/{name}"] = store.read_bytes(f"{folder}/{name}")
    tags = {RUN_TAG: rid, "ltv.logical_date": ctx.logical_date.isoformat(), "ltv.dataset_spec": ctx.spec.name,
            "ltv.promoted": str(decision.promoted).lower(), "ltv.reason": decision.reason,
            "ltv.champion_run_id": champion_id or "", "ltv.code_version": code_version(),
            "mlflow.note.content": decision.reason}
    return RunRecord(rid, params, metrics, tags, files, model)


def flat_params(prefix: str, value: Any) -> dict[str, str]:
    """Nested config values as ``prefix.key.key`` params; lists, numbers and null as JSON."""
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in flat_params(_name(prefix, key), item).items()}
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return {prefix: text[:PARAM_CHARS]}


def flat_metrics(prefix: str, value: Any) -> dict[str, float]:
    """The finite numbers of a (nested) metrics block as ``prefix.name`` metrics (no booleans, no nulls)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat_metrics(_name(prefix, key), item).items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return {prefix: float(value)}
    return {}


def _name(prefix: str, key: Any) -> str:
    return f"{prefix}.{_KEY.sub('_', str(key))}"


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
