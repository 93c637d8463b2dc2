"""Champion / challenger: a run's model ships only if it is not worse than the current champion.

Each run is evaluated on its holdout window next to the champion (the champion's own feature state
and models applied to the same rows), so both numbers come from data neither was tuned on. This
module holds the rule (:func:`decide`) and the champion pointer's reader; the promote stage
(``ltv_core.stages.promote``) records every decision, promoted or not, with its reason in
``runs/<run_id>/promote/decision.json`` and switches ``<store>/champion.json`` with one atomic write.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ltv_core.errors import DataError, StoreError
from ltv_core.store import CHAMPION_POINTER, ArtifactStore

log = logging.getLogger(__name__)

CHAMPION = CHAMPION_POINTER  # the store never prunes the attempts it pins (ArtifactStore.protected)
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
    """The champion pointer, None before the first promotion; a damaged one (empty, garbled, not an
    object naming a run) fails in one line saying how to repair it
    (``tests/unit/test_promotion.py::test_a_damaged_champion_pointer_is_named``)."""
    path = store.path(CHAMPION)
    if not store.exists(path):
        return None
    repair = (f"restore it, or promote a run again (python -m ltv_core promote --run-id <run>); "
              f"the champion's models are still under {store.path('runs')}")
    try:
        pointer = store.read_json(path)
    except StoreError as exc:
        raise StoreError(f"champion pointer damaged: {exc}; {repair}") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("run_id"), str):
        raise StoreError(f"champion pointer {store.uri(path)} is damaged: expected a JSON object with a "
                         f"'run_id', got {str(pointer)[:80]!r}; {repair}")
    return pointer


def champion_run(store: ArtifactStore) -> str:
    pointer = read_champion(store)
    if pointer is None:
        raise DataError(f"no champion model in store {store.url}: no run has been promoted yet")
    return str(pointer["run_id"])
