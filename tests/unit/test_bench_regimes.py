"""benchmarks/regimes.py and the verdicts of benchmarks/quality_pipeline.py (issue 12.3): the
regime registry is complete and each regime's defining check is evaluated, not assumed."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import quality_pipeline as qp  # noqa: E402
from regimes import ALL, REGIMES, logical_date  # noqa: E402

from ltv_core.spec import load_spec  # noqa: E402


def test_the_registered_regimes_have_existing_specs():
    assert {"smadex", "small", "gaming"} <= set(ALL) == set(REGIMES)
    for r in REGIMES.values():
        assert Path(r.spec).exists(), r.spec
        assert r.generator_args(10_000)["rows_per_partition"] >= 1


def test_small_stays_under_25k_training_rows_at_its_default_size():
    # 96 of the 144 generated hours are the training window
    args = REGIMES["small"].generator_args(REGIMES["small"].rows)
    assert args["rows_per_partition"] * 96 <= 25_000 and args["train_hours"] == 144


def test_a_regime_with_an_export_date_runs_at_that_date(tmp_path):
    assert logical_date(REGIMES["gaming"], str(tmp_path)).isoformat() == "2024-03-13T00:00:00+00:00"


@pytest.mark.parametrize(("ci", "higher", "verdict"), [
    ([-0.02, -0.001], False, "better"), ([0.001, 0.02], False, "worse"), ([-0.01, 0.01], False, "tie"),
    ([0.001, 0.02], True, "better"), ([-0.02, -0.001], True, "worse"), ([-0.01, 0.01], True, "tie"),
])
def test_verdicts_follow_the_paired_interval(ci, higher, verdict):
    assert qp._verdict(ci, higher) == verdict


@pytest.mark.parametrize(("regime", "result", "holds"), [
    ("small", {"train_rows": 24_004}, True), ("small", {"train_rows": 25_001}, False),
    ("top1_share > 0.5", {"top1_share": 0.62}, True), ("top1_share > 0.5", {"top1_share": 0.31}, False),
    ("baseline_gap_closed_from_zero < 0.3", {"baseline_gap_closed_from_zero": 0.29}, True),
    ("baseline_gap_closed_from_zero < 0.3", {"baseline_gap_closed_from_zero": 0.45}, False),
    ("zero_share in [0.5, 0.7]", {"zero_share": 0.6}, True), ("zero_share in [0.5, 0.7]", {"zero_share": 0.9}, False),
    ("top1_share > 0.5", {}, False),
])
def test_the_regime_check_is_measured(regime, result, holds):
    r = REGIMES[regime] if regime in REGIMES else dataclasses.replace(REGIMES["smadex"], check=regime)
    out = qp._check(r, result)
    assert out["holds"] is holds and out["check"] == r.check


def test_a_regime_without_a_definition_reports_no_check():
    assert qp._check(REGIMES["smadex"], {}) is None
    assert load_spec(REGIMES["smadex"].spec).labels.primary == "d7"
