"""promote: the champion/challenger decision, the run's HTML report, the champion pointer.

Runs whatever happened upstream (Airflow's ``all_done``), so a failed run is recorded with the
reason and never shipped. The decision itself is pure (``ltv_core.promotion.decide``): every
required stage committed, and the candidate is not worse than the champion, both measured on this
run's holdout. This module gathers the evidence, writes ``promote/decision.json``, switches
``champion.json`` with one atomic write when promoted, writes ``report/report.html`` +
``metrics.json`` (``ltv_core.report.build_report``) and commits both folders.

The drift verdict (``ltv_core.stages.drift``) is advisory: it is recorded in this stage's manifest
and shown in the report, but a flagged, failed or missing drift never changes the decision.

With MLflow tracking on (``ltv_core.tracking``), the run is then mirrored to MLflow, after the
decision and the pointer are written; what was logged (or why not) is in the manifest's ``tracking``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ltv_core import catalog, tracking
from ltv_core.context import RunContext
from ltv_core.models import artefacts
from ltv_core.models.stack import feature_gain
from ltv_core.drift import DriftReport
from ltv_core.pipeline import REPORT_DIR, REQUIRED_STAGES, Stage
from ltv_core.promotion import CHAMPION, Decision, decide, read_champion
from ltv_core.report import ReportInputs, build_report
from ltv_core.store import ArtifactStore, StageTimer

log = logging.getLogger(__name__)

STAGE = Stage.PROMOTE
DECISION = "decision.json"
REPORT_HTML = "report.html"
REPORT_METRICS = "metrics.json"
# What the report shows of each modelling stage's manifest.
STAGE_INFO_KEYS = ("calibration", "chosen", "gate", "best_iterations", "auc", "brier", "plans", "race")
REPORTED_STAGES = (Stage.RESAMPLE, Stage.TRAIN_CLASSIFIER, Stage.TRAIN_REGRESSOR, Stage.FIT_STACKER,
                   Stage.OPTIMIZE_GATE)


def record_decision(store: ArtifactStore, decision: Decision, lineage: dict[str, Any] | None = None) -> str:
    """Write the decision; when promoted, switch the champion pointer (one atomic write). The
    pointer names the attempt of every stage of the promoted run (``lineage``): those are what the
    champion's model is loaded from, and the store never removes them (``ltv_core.lineage``)."""
    path = catalog.path(store, decision.run_id, STAGE, DECISION)
    store.write_json(path, decision.to_dict())
    if decision.promoted:
        previous = read_champion(store)
        pointer = {"run_id": decision.run_id, "promoted_at": decision.decided_at,
                   "primary_metric": decision.primary_metric, "metrics": decision.candidate,
                   "previous": decision.champion_run_id, "lineage": dict(lineage or {}),
                   "previous_pointer": None if previous is None else
                   {"run_id": previous.get("run_id"), "lineage": previous.get("lineage") or {}}}
        store.write_json(store.path(CHAMPION), pointer)
        log.info("champion is now %s (%s)", decision.run_id, decision.reason)
    else:
        log.warning("run %s not promoted: %s", decision.run_id, decision.reason)
    return path


def decide_run(store: ArtifactStore, run_id: str, *, primary_metric: str = "rmsle", tolerance: float = 0.0,
               required: tuple[str, ...] = REQUIRED_STAGES, lineage: dict[str, Any] | None = None,
               conflicts: list[str] | tuple[str, ...] = ()) -> Decision:
    """Gather the evidence of a run (which required stages committed, its holdout metrics and the
    champion's on the same rows), decide and record. ``conflicts``: stages whose committed attempts
    do not form one chain (``ltv_core.lineage.consume``): a mixed run is never promoted."""
    failed = [s for s in required if not store.is_committed(run_id, s)]
    failed += [f"mixed attempts ({c})" for c in conflicts]
    candidate: dict[str, Any] = {}
    champion, champion_id = None, None
    if Stage.EVALUATE not in failed and store.is_committed(run_id, Stage.EVALUATE):
        ev = store.read_manifest(run_id, Stage.EVALUATE)
        candidate, champion, champion_id = ev["model"], ev.get("champion"), ev.get("champion_run_id")
    pointer = read_champion(store)
    if champion is None and pointer is not None and pointer["run_id"] != run_id and not failed:
        # a champion exists but was not measured on this holdout: never compare across windows
        failed = ["evaluate (champion not measured on this holdout)"]
    if pointer is not None and pointer["run_id"] == run_id:
        champion_id = run_id  # a re-run of the champion's own run: it competes with itself
        champion = candidate or None
    decision = decide(run_id, candidate, champion, champion_id, primary_metric=primary_metric,
                      tolerance=tolerance, failed_stages=failed)
    record_decision(store, decision, lineage)
    return decision


def read_drift(store: ArtifactStore, run_id: str, stale: bool = False) -> DriftReport | None:
    """The run's drift report, or None when its drift stage did not commit (failed, or not run) or
    was made from other attempts than this run's model (``stale``): drift never blocks promotion, so
    its absence is logged, not raised."""
    if stale:
        log.warning("run %s: the committed drift stage was made from other attempts than this run's model: "
                    "drift not recorded", run_id)
        return None
    if not store.is_committed(run_id, Stage.DRIFT):
        log.warning("run %s has no committed drift stage: drift not recorded", run_id)
        return None
    report = catalog.load_drift(store, run_id)
    if report.flagged:
        log.warning("run %s: drift flagged (recorded, does not block promotion): %s", run_id, "; ".join(report.reasons))
    return report


def report_inputs(ctx: RunContext, decision: dict[str, Any] | None, drift: DriftReport | None = None) -> ReportInputs:
    """Everything the report shows, read back from what the run's stages committed."""
    store, run_id = ctx.store, ctx.run_id
    frame = catalog.load_holdout(store, run_id)
    manifest = store.read_manifest(run_id, Stage.EVALUATE)
    stage_info = {s.value: {k: v for k, v in store.read_manifest(run_id, s).items() if k in STAGE_INFO_KEYS}
                  for s in REPORTED_STAGES}
    champion = None
    if "champion_value" in frame:
        champion = {"run_id": manifest["champion_run_id"], "metrics": manifest["champion"],
                    "value": frame["champion_value"].to_numpy()}
    oracle = {c: frame[c].to_numpy() for c in ("oracle_point", "oracle_mean") if c in frame} or None
    gain = feature_gain(artefacts.load_model(store, run_id, Stage.TRAIN_CLASSIFIER, artefacts.CLASSIFIER),
                        artefacts.load_model(store, run_id, Stage.TRAIN_REGRESSOR, artefacts.REGRESSOR))
    return ReportInputs(
        run_id=run_id, logical_date=ctx.logical_date.isoformat(), primary=ctx.spec.labels.primary,
        primary_metric=(decision or {}).get("primary_metric", "rmsle"), y_true=frame["y"].to_numpy(),
        point=frame["point"].to_numpy(), value=frame["value"].to_numpy(), p_buyer=frame["p_buyer"].to_numpy(),
        baselines={c.removeprefix("baseline_"): frame[c].to_numpy() for c in frame if c.startswith("baseline_")},
        candidates={c.removeprefix("candidate_").removesuffix("_point"):
                    (frame[c].to_numpy(), frame[c.removesuffix("_point") + "_value"].to_numpy())
                    for c in frame if c.startswith("candidate_") and c.endswith("_point")},
        evaluation=catalog.load_evaluation(store, run_id), feature_importance=gain,
        champion=champion, decision=decision, oracle=oracle, stage_info=stage_info,
        drift=None if drift is None else drift.model_dump(mode="json"))


def write_report(store: ArtifactStore, run_id: str, inputs: ReportInputs) -> dict[str, str]:
    """``report/report.html`` and ``metrics.json`` of the run, each written atomically, the folder
    committed by its manifest; their URIs by name."""
    if run_id != inputs.run_id:
        raise ValueError(f"report of run {inputs.run_id!r} cannot be written under run {run_id!r}")
    timer = StageTimer(REPORT_DIR, run_id)
    page, doc = build_report(inputs)
    folder = store.begin_stage(run_id, REPORT_DIR)
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    paths = {REPORT_HTML: store.uri(store.write_text(f"{folder}/{REPORT_HTML}", page)),  # first: the UI lists metrics.json
             REPORT_METRICS: store.uri(store.write_text(f"{folder}/{REPORT_METRICS}", text))}
    timer.outputs = dict(paths)
    store.commit_stage(run_id, REPORT_DIR, timer.finish())
    return paths


def run(ctx: RunContext) -> dict[str, Any]:
    timer = ctx.timer(STAGE)
    consumed = timer.consumed
    rule = ctx.config.promotion
    ctx.store.begin_stage(ctx.run_id, STAGE)
    decision = decide_run(ctx.store, ctx.run_id, primary_metric=rule.metric, tolerance=rule.tolerance,
                          lineage=consumed.lineage, conflicts=consumed.conflicts)
    drift = read_drift(ctx.store, ctx.run_id, stale=Stage.DRIFT.value in consumed.stale)
    report = None
    if ctx.store.is_committed(ctx.run_id, Stage.EVALUATE):
        report = write_report(ctx.store, ctx.run_id, report_inputs(ctx, decision.to_dict(), drift))
    else:
        log.warning("run %s has no committed evaluation: no report", ctx.run_id)
    drift_summary = None if drift is None else drift.summary()
    tracked = tracking.log_promotion(ctx, decision, consumed)
    mirrored = {} if tracked is None else {"tracking": tracked}  # tracking off: manifest and result unchanged
    manifest = ctx.commit(timer, None, {"promoted": decision.promoted, "reason": decision.reason, "report": report,
                                        "drift": drift_summary, **mirrored})
    return {"run_id": ctx.run_id, "stage": STAGE.value, "manifest": manifest, "promoted": decision.promoted,
            "reason": decision.reason, "report": report,
            "champion_run_id": ctx.run_id if decision.promoted else decision.champion_run_id,
            "drift_flagged": None if drift is None else drift.flagged, **mirrored}
