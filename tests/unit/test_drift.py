"""ltv_core.drift: the statistics against hand computations and known distributions, the verdict's
thresholds at their edge, and the awkward columns (empty, constant, missing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ltv_core import drift as D
from ltv_core.errors import DataError

RNG = np.random.default_rng(0)


def test_two_samples_of_one_distribution_do_not_drift():
    a, b = RNG.normal(size=20_000), RNG.normal(size=10_000)
    row = D.numeric_drift("x", a, b)
    assert row.psi < 0.01 and row.statistic < 0.03 and row.p_value > 0.001
    report = D.assess([row], None, D.Thresholds())
    assert not report.flagged and report.flagged_features == [] and report.features[0].level == "ok"


def test_shifted_mean_is_flagged_with_its_name_in_the_log_line():
    a, b = RNG.normal(size=20_000), RNG.normal(1.0, 1.0, size=10_000)
    rows = D.feature_drift(pd.DataFrame({"x": a[:10_000], "y": a[10_000:]}),
                           pd.DataFrame({"x": b, "y": RNG.normal(size=10_000)}), ["x", "y"])
    assert rows[0].psi > 0.5 and rows[0].statistic > 0.3 and rows[0].p_value < 1e-10
    report = D.assess(rows, None, D.Thresholds(max_drifted_share=0.2))
    assert report.flagged and report.flagged_features == ["x"] and report.drifted_share == 0.5
    assert "x" in report.reasons[0] and report.features[0].level == "alert"
    line = D.log_line(report, "r1")
    assert line.startswith("DRIFT FLAGGED for run r1") and f"x PSI {rows[0].psi:.3f}" in line


def test_psi_equals_a_hand_computation():
    """Categories a, b, c in training 50/30/20 and scoring 20/30/50 (no unseen, no missing):
    PSI = (.2-.5)ln(.2/.5) + 0 + (.5-.2)ln(.5/.2) = 0.6 ln 2.5; the two empty bins (unseen,
    missing) are floored at EPS on both sides and add nothing."""
    train = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    score = ["a"] * 20 + ["b"] * 30 + ["c"] * 50
    row = D.categorical_drift("cat", train, score)
    assert row.psi == pytest.approx(0.6 * math.log(2.5), rel=1e-12)
    assert row.unseen_share == 0.0 and row.test == "chi2" and row.statistic > 0
    # numeric: edges are the training quantiles 0, 1, 2, 3 of 0..3 each 25%; the bins of the edge
    # values hold everything; scoring all at 3: (1-.25)ln(1/.25) + 3 * (EPS-.25)ln(EPS/.25)
    e = D.EPS
    want = 0.75 * math.log(4) + 3 * (e - 0.25) * math.log(e / 0.25)
    assert D.numeric_psi(np.repeat([0.0, 1, 2, 3], 25), np.full(40, 3.0), bins=4) == pytest.approx(want)


def test_unseen_share_is_exact_and_ignores_missing():
    train = pd.Series(["x", "y", "z", None])
    score = pd.Series(["x", "new", "new2", None, "y", None, "z", "new"])  # 6 non-null, 3 unseen
    assert D.unseen_share(train, score) == 0.5
    row = D.categorical_drift("c", train, score)
    assert row.unseen_share == 0.5 and row.score_missing == 0.25 and row.train_missing == 0.25
    assert D.unseen_share(train, [None, None]) == 0.0
    # the share given from the raw values replaces the share on the codes
    rows = D.feature_drift(pd.DataFrame({"c": pd.Categorical(["a", "b"])}),
                           pd.DataFrame({"c": pd.Categorical(["a", "b"])}), ["c"], unseen={"c": 0.3})
    assert rows[0].unseen_share == 0.3


def test_thresholds_are_exceeded_only_strictly():
    row = D.categorical_drift("cat", ["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    at = D.Thresholds(psi_warn=row.psi, psi_alert=row.psi, max_drifted_share=0.0)
    report = D.assess([row], None, at)
    assert report.features[0].level == "ok" and not report.flagged
    below = D.Thresholds(psi_warn=row.psi / 2, psi_alert=row.psi - 1e-9, max_drifted_share=0.0)
    assert D.assess([row], None, below).flagged
    # unseen share: equal to the limit is fine, above it flags, naming the feature
    u = D.categorical_drift("dev", ["a", "b"], ["a", "a", "a", "new"])
    assert not D.assess([u], None, D.Thresholds(max_unseen_share=0.25, psi_alert=99)).flagged
    flagged = D.assess([u], None, D.Thresholds(max_unseen_share=0.2, psi_alert=99))
    assert flagged.flagged and flagged.reasons[0].startswith("dev: 0.250") and flagged.max_unseen_share == 0.25


def test_constant_column_moving_is_seen_both_ways_and_staying_is_not():
    same = D.numeric_drift("k", np.zeros(100), np.zeros(50))
    assert same.psi == pytest.approx(0.0) and same.statistic == 0.0
    assert D.numeric_psi(np.zeros(100), np.full(50, 2.0)) > 1
    assert D.numeric_psi(np.zeros(100), np.full(50, -2.0)) > 1
    # zero-inflated: the point mass at 0 keeps its own bin
    train = np.where(RNG.random(10_000) < 0.7, 0.0, RNG.exponential(size=10_000))
    more_zeros = np.where(RNG.random(10_000) < 0.95, 0.0, RNG.exponential(size=10_000))
    assert D.numeric_psi(train, more_zeros) > 0.25


def test_missing_values_are_a_bin_of_their_own():
    a = RNG.normal(size=5000)
    b = RNG.normal(size=5000)
    b[: 2500] = np.nan  # half the scoring rows lose the value
    row = D.numeric_drift("m", a, b)
    assert row.score_missing == 0.5 and row.train_missing == 0.0 and row.psi > 1
    assert row.statistic < 0.05  # KS sees only the values that are there: same distribution
    # an all-missing scoring column: no KS, PSI from the missing bin alone
    empty = D.numeric_drift("m", a, np.full(10, np.nan))
    assert empty.statistic is None and empty.p_value is None and empty.psi > 5


def test_no_rows_fails_naming_the_feature():
    with pytest.raises(DataError, match="feature 'x'"):
        D.numeric_drift("x", np.zeros(0), np.zeros(3))
    with pytest.raises(DataError, match="feature 'c'"):
        D.categorical_drift("c", ["a"], [])
    with pytest.raises(DataError, match="lacks.*'gone'"):
        D.compared_features({"gone", "a"}, ["a", "b"])
    assert D.compared_features({"a", "weekday_sin", "b"}, ["b", "weekday_sin", "a"], ["weekday*"]) == ["b", "a"]


def test_prediction_drift_against_the_reference():
    ref = np.where(RNG.random(20_000) < 0.9, 0.0, RNG.lognormal(0, 1, 20_000))
    same = D.prediction_drift(ref[:10_000], ref[10_000:], column="value_d7", reference_name="champion",
                              reference_run_id="c")
    assert same.psi < 0.02 and len(same.reference_quantiles) == D.QUANTILES
    # the buyers' values tripled: the zeros (90%) are unchanged, the positive part is cut into its own bins
    tripled = D.prediction_drift(ref[:10_000], ref[10_000:] * 3, column="value_d7", reference_name="champion")
    assert 0.05 < tripled.psi and tripled.current_mean == pytest.approx(3 * np.mean(ref[10_000:]))
    # four times the rows predicted to spend
    cur = np.where(RNG.random(10_000) < 0.6, 0.0, RNG.lognormal(0, 1, 10_000))
    doubled = D.prediction_drift(ref[:10_000], cur, column="value_d7", reference_name="champion")
    assert doubled.psi > 0.25
    report = D.assess([], doubled, D.Thresholds())
    assert report.flagged and "prediction value_d7" in report.reasons[0] and report.max_psi is None
    assert not D.assess([], same, D.Thresholds()).flagged


def test_report_round_trips_through_json_and_samples_are_stable():
    rows = [D.numeric_drift("x", RNG.normal(size=100), RNG.normal(size=100))]
    report = D.assess(rows, None, D.Thresholds(), train_rows=100, score_rows=100)
    again = D.DriftReport.model_validate_json(report.model_dump_json())
    assert again == report and again.summary()["features"] == 1
    np.testing.assert_array_equal(D.sample_positions(1000, 10, seed=3), D.sample_positions(1000, 10, seed=3))
    assert len(D.sample_positions(1000, 10)) == 10 and list(D.sample_positions(5, 10)) == [0, 1, 2, 3, 4]
