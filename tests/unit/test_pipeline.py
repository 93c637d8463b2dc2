"""ltv_core.pipeline: the registry every other module names stages and splits through."""

import pytest

from ltv_core.errors import SpecError
from ltv_core.pipeline import (
    ADVISORY_STAGES,
    INPUTS,
    LABELLED,
    REQUIRED_STAGES,
    RUN_ALWAYS,
    SPLITS,
    STAGES,
    Split,
    Stage,
    split,
    stage,
)


def test_inputs_point_backwards_so_the_order_is_a_topological_one():
    """Every stage reads only stages before it: running STAGES in order (the CLI's ``run``) never
    reads what is not written yet."""
    assert set(INPUTS) == set(STAGES)
    for s, inputs in INPUTS.items():
        assert all(STAGES.index(u) < STAGES.index(s) for u in inputs), s


def test_every_stage_reaches_ingest_and_promotion_needs_every_required_stage():
    def ancestors(s: Stage) -> set[Stage]:
        return {a for u in INPUTS[s] for a in {u} | ancestors(u)}

    assert all(Stage.INGEST in ancestors(s) for s in STAGES if s is not Stage.INGEST)
    assert set(REQUIRED_STAGES) == set(STAGES) - {Stage.PROMOTE, Stage.SCORE, Stage.DRIFT}
    assert set(INPUTS[Stage.PROMOTE]) == set(REQUIRED_STAGES) | set(ADVISORY_STAGES)
    assert RUN_ALWAYS == {Stage.PROMOTE, Stage.SCORE}


def test_drift_never_blocks_promotion_or_scoring():
    """drift is read by promote but not required for it, and score does not read it: a failed or
    flagged drift still lets the run promote (promote runs all_done) and score."""
    assert ADVISORY_STAGES == (Stage.DRIFT,) and Stage.DRIFT not in REQUIRED_STAGES
    assert Stage.DRIFT not in INPUTS[Stage.SCORE] and Stage.PROMOTE in RUN_ALWAYS
    assert STAGES.index(Stage.OPTIMIZE_GATE) < STAGES.index(Stage.DRIFT) < STAGES.index(Stage.PROMOTE)


def test_names_read_as_plain_strings():
    assert f"{Stage.BUILD_FEATURES}" == "build_features" and repr(Stage.VALIDATE) == "'validate'"
    assert {"train": 1}[Split.TRAIN] == 1 and list(LABELLED) + [Split.SCORING] == list(SPLITS)


def test_lookup_by_name_fails_listing_the_choices():
    assert stage("score") is Stage.SCORE and split("holdout") is Split.HOLDOUT
    with pytest.raises(SpecError, match="unknown stage 'trian'; stages: \\['ingest'"):
        stage("trian")
    with pytest.raises(SpecError, match="unknown split 'test'"):
        split("test")


def test_each_stage_module_declares_its_stage():
    from ltv_core.inprocess import MODULES

    assert list(MODULES) == list(STAGES)
    for s, module in MODULES.items():
        assert module.STAGE is s and module.__name__ == f"ltv_core.stages.{s.value}" and callable(module.run)
