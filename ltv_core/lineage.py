"""Run lineage: a stage consumes exactly the attempts its upstream committed, never a mixed run.

Every committed stage is one *attempt* (``ltv_core.store``: a folder of its own, named by the
stage's pointer manifest). When a stage starts, :func:`consume` reads the committed manifest of each
of its inputs (``ltv_core.pipeline.INPUTS``) and their recorded lineage: the attempt of every stage
upstream of them. If two of them disagree on an attempt (a re-run replaced ``build_features`` but
the classifier was fitted on the old one), the stage refuses, naming both; otherwise it pins those
attempts in the store, so that everything it reads comes from them even if a new attempt is
committed meanwhile, and records them in its own manifest:

    "consumed": {"<input>": {"attempt": "...", "sha256": "<its manifest's hash>"}}
    "lineage":  {"<every stage upstream>": "<attempt>"}

The champion pointer records the lineage of the promoted run (``ltv_core.stages.promote``); the
model stages of that lineage are pinned whenever the champion is loaded (:func:`model_pins`,
``ArtifactStore.pinned``, :func:`verify_chain`), and the store never removes a pinned attempt: later runs, re-runs, clears or
kills of the champion's run id cannot change the model that scores
(``tests/integration/test_lineage.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ltv_core.errors import DataError
from ltv_core.pipeline import ADVISORY_STAGES, INPUTS, Stage
from ltv_core.store import ArtifactStore

# The stages whose artefacts make a model: what loading a run's model reads (feature state + stack).
MODEL_STAGES: tuple[Stage, ...] = (Stage.BUILD_FEATURES, Stage.TRAIN_CLASSIFIER, Stage.TRAIN_REGRESSOR,
                                   Stage.FIT_STACKER, Stage.OPTIMIZE_GATE)


class LineageError(DataError):
    """The committed inputs of a stage come from different attempts of an upstream stage."""


@dataclass
class Consumed:
    """What a stage consumed: its inputs' attempts and manifest hashes, the merged lineage, and
    (promote only, which records rather than raises) the disagreements found."""

    stage: Stage
    consumed: dict[str, dict[str, Any]] = field(default_factory=dict)
    lineage: dict[str, str | None] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # advisory inputs left out: made from other attempts

    def manifest_fields(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "lineage": self.lineage,
                **({"lineage_conflicts": self.conflicts} if self.conflicts else {}),
                **({"stale_inputs": self.stale} if self.stale else {})}


def _claims(store: ArtifactStore, run_id: str, inp: Stage) -> tuple[dict[str, Any], dict[str, str | None]]:
    """(the input's entry in ``consumed``, the attempts it claims: its own and its lineage's)."""
    manifest = store.read_manifest(run_id, inp)
    attempt = manifest.get("attempt")
    entry = {"attempt": attempt, "sha256": store.manifest_sha256(run_id, inp)}
    return entry, {**manifest.get("lineage", {}), inp.value: attempt}


def _disagreement(stage: Stage, upstream: str, first: tuple[str, str | None], second: tuple[str, str | None]) -> str:
    def said(by: str, attempt: str | None) -> str:
        return (f"the committed {upstream!r} is attempt {attempt}" if by == upstream
                else f"{by!r} was made from its attempt {attempt}")

    return (f"stage {stage.value!r}: its inputs come from different attempts of {upstream!r}: "
            f"{said(*first)}, but {said(*second)}; re-run the stages after {upstream!r} "
            f"(Airflow: clear {upstream!r} with its downstream tasks)")


def consume(store: ArtifactStore, run_id: str, stage: Stage, *, strict: bool = True) -> Consumed:
    """Check that the committed inputs of ``stage`` form one chain, pin their attempts in ``store``
    and return what the stage's manifest records. An input that did not commit is left out (the
    stage's own read of it fails naming it; promote records it as failed). ``strict=False``
    (promote) records disagreements in ``conflicts`` instead of raising."""
    out = Consumed(stage)
    seen: dict[str, tuple[str, str | None]] = {}  # upstream stage -> (who claimed it, attempt)
    advisory = set(ADVISORY_STAGES) if stage == Stage.PROMOTE else set()
    inputs = [s for s in INPUTS[stage] if store.is_committed(run_id, s)]
    # direct inputs first: the committed attempt of a stage is the reference its dependants must match
    for inp in sorted(inputs, key=lambda s: s in advisory):
        entry, claims = _claims(store, run_id, inp)
        problems = [_disagreement(stage, s, seen[s], (inp.value, a)) for s, a in claims.items()
                    if s in seen and seen[s][1] != a]
        if problems and inp in advisory:
            out.stale.append(inp.value)  # an old drift verdict: not this run's, so not recorded
            continue
        if problems and strict:
            raise LineageError(f"run {run_id!r}: {problems[0]}")
        out.conflicts.extend(problems)
        for s, a in claims.items():
            seen.setdefault(s, (inp.value, a))
        out.consumed[inp.value] = entry
        store.pin(run_id, inp, entry["attempt"])
    out.lineage = {s: a for s, (_, a) in sorted(seen.items())}
    return out


def model_pins(pointer: Mapping[str, Any] | None) -> dict[str, str]:
    """The attempts of the model stages a champion pointer names ({} for a pointer written before
    lineage existed: its stages are read through their pointers)."""
    lineage = (pointer or {}).get("lineage") or {}
    return {s.value: lineage[s.value] for s in MODEL_STAGES if lineage.get(s.value)}


def verify_chain(store: ArtifactStore, run_id: str, pins: Mapping[str, str]) -> None:
    """Every pinned attempt is in the store, and each one was made from the pinned attempts of the
    stages before it: a model is loaded whole or not at all. Call inside ``store.pinned(run_id, pins)``."""
    for s, attempt in pins.items():
        try:
            manifest = store.read_manifest(run_id, s)
        except DataError as exc:
            raise LineageError(f"run {run_id!r}: attempt {attempt} of stage {s!r}, which the champion pointer "
                               f"names, is not in the store ({exc}); promote a run again") from None
        for upstream, a in (manifest.get("lineage") or {}).items():
            if upstream in pins and pins[upstream] != a:
                raise LineageError(f"run {run_id!r}: stage {s!r} attempt {attempt} was made from {upstream!r} attempt "
                                   f"{a}, but the champion pointer names attempt {pins[upstream]}")
