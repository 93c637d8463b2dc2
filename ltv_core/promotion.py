"""Champion / challenger: a run's model ships only if it is not worse than the current champion.

Each run is evaluated on its holdout window next to the champion (the champion's own feature state
and models applied to the same rows), so both numbers come from data neither was tuned on. The
champion pointer (``<store>/champion.json``) is switched with one atomic write; every decision,
promoted or not, is recorded with its reason in ``runs/<run_id>/promote/decision.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ltv_core.errors import DataError
from ltv_core.store import ArtifactStore

log = logging.getLogger(__name__)

STAGE = "promote"
CHAMPION = "champion.json"
# Metrics where larger is better; everything else (rmsle, rmse, mae, ...) is a loss.
HIGHER_IS_BETTER = frozenset({"gini", "r2", "auc", "pr_auc", "top1_share", "top10_share"})


@dataclass
class Decision:
    run_id: str
    promoted: bool
    reason: str
    primary_metric: str
    tolerance: float
    candidate: dict[str, Any]
    champion_run_id: str | None = None
    champion: dict[str, Any] | None = None
    decided_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    run_id: str,
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    champion_run_id: str | None,
    *,
    primary_metric: str = "rmsle",
    tolerance: float = 0.0,
    failed_stages: list[str] | None = None,
) -> Decision:
    """Promote when every stage succeeded and the candidate is within ``tolerance`` of the champion.

    ``tolerance`` is relative: with a loss metric the candidate may be at most
    ``champion * (1 + tolerance)``; with a score, at least ``champion * (1 - tolerance)``.
    """
    base = dict(run_id=run_id, primary_metric=primary_metric, tolerance=tolerance, candidate=candidate,
                champion_run_id=champion_run_id, champion=champion)
    if failed_stages:
        return Decision(promoted=False, reason=f"stages failed: {', '.join(failed_stages)}", **base)
    value = candidate.get(primary_metric)
    if value is None or not math.isfinite(float(value)):
        return Decision(promoted=False, reason=f"candidate has no finite {primary_metric}: {value!r}", **base)
    if champion is None:
        return Decision(promoted=True, reason="no champion yet: the first successful run becomes champion", **base)
    ref = float(champion[primary_metric])
    higher = primary_metric in HIGHER_IS_BETTER
    limit = ref - abs(ref) * tolerance if higher else ref + abs(ref) * tolerance
    ok = float(value) >= limit if higher else float(value) <= limit
    rel = "at least" if higher else "at most"
    verdict = "promoted" if ok else "rejected"
    reason = (f"{verdict}: {primary_metric} {float(value):.6f} vs champion {champion_run_id} {ref:.6f} "
              f"on this run's holdout (must be {rel} {limit:.6f}, tolerance {tolerance:g})")
    return Decision(promoted=ok, reason=reason, **base)


def read_champion(store: ArtifactStore) -> dict[str, Any] | None:
    path = store.path(CHAMPION)
    return store.read_json(path) if store.exists(path) else None


def record(store: ArtifactStore, decision: Decision) -> str:
    """Write the decision; when promoted, switch the champion pointer (one atomic write)."""
    path = f"{store.stage_dir(decision.run_id, STAGE)}/decision.json"
    store.write_json(path, decision.to_dict())
    if decision.promoted:
        pointer = {"run_id": decision.run_id, "promoted_at": decision.decided_at,
                   "primary_metric": decision.primary_metric, "metrics": decision.candidate,
                   "previous": decision.champion_run_id}
        store.write_json(store.path(CHAMPION), pointer)
        log.info("champion is now %s (%s)", decision.run_id, decision.reason)
    else:
        log.warning("run %s not promoted: %s", decision.run_id, decision.reason)
    return path


def champion_run(store: ArtifactStore) -> str:
    pointer = read_champion(store)
    if pointer is None:
        raise DataError(f"no champion model in store {store.url}: no run has been promoted yet")
    return str(pointer["run_id"])


def failed_stages(store: ArtifactStore, run_id: str, required: tuple[str, ...]) -> list[str]:
    """Stages of ``required`` that did not commit (their manifest is the commit marker)."""
    return [s for s in required if not store.is_committed(run_id, s)]


def run_promote_stage(store: ArtifactStore, run_id: str, *, primary_metric: str = "rmsle",
                      tolerance: float = 0.0, required: tuple[str, ...] = ()) -> Decision:
    """Decide and record. Runs even when earlier stages failed (the DAG's trigger rule is
    ``all_done``), so that a failed run is recorded with its reason and never shipped."""
    failed = failed_stages(store, run_id, required)
    candidate: dict[str, Any] = {}
    champion, champion_id = None, None
    if "evaluate" not in failed and store.is_committed(run_id, "evaluate"):
        ev = store.read_manifest(run_id, "evaluate")
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
    record(store, decision)
    return decision
