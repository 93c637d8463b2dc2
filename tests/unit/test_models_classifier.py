"""BuyerClassifier: calibration fixes a shifted prior, no class weights, strict feature schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltv_core import metrics as M
from ltv_core.errors import DataError
from ltv_core.models.classifier import BuyerClassifier, Calibrator, fit_calibrator, prior_correct
from ltv_core.models.resample import histos, odds_factor
from support.modeldata import FAST, make_data, split


@pytest.fixture(scope="module")
def parts() -> dict:
    X, L = make_data(12_000, seed=5)
    s = split(X, L)
    return {k: (x, (l.iloc[:, 0].to_numpy() > 0).astype(float), l.iloc[:, 0].to_numpy()) for k, (x, l) in s.items()}


def _clf() -> BuyerClassifier:
    return BuyerClassifier(params=FAST["lgbm"], num_boost_round=150, early_stopping_rounds=15, random_state=0)


@pytest.fixture(scope="module")
def shifted(parts: dict) -> BuyerClassifier:
    """Trained on HistOS-oversampled rows (~ 3x the buyer odds) with NO prior correction."""
    X, b, y = parts["train"]
    r = histos(y, seed=0, max_copies=10, target_quantile=1.0)
    idx = np.concatenate([r.indices, np.flatnonzero(b > 0).repeat(2)])  # push the prior further
    Xv, bv, _ = parts["val"]
    return _clf().fit(X.iloc[idx], b[idx], eval_set=(Xv, bv))


def test_calibration_improves_brier_on_a_shifted_prior(shifted: BuyerClassifier, parts: dict) -> None:
    Xh, bh, _ = parts["hold"]
    raw = shifted.predict_raw(Xh)
    cal = shifted.predict_proba(Xh)[:, 1]
    assert raw.mean() > 1.5 * bh.mean(), "the shifted training prior inflates raw probabilities"
    assert M.brier(bh, cal) < M.brier(bh, raw) - 0.002
    assert abs(cal.mean() - bh.mean()) < 0.02
    assert shifted.calibration_method_ in ("isotonic", "platt", "beta")
    assert set(shifted.calibration_scores_) >= {"isotonic", "platt", "beta", "raw"}


def test_prior_correction_moves_towards_the_true_rate(parts: dict) -> None:
    """The odds-factor correction is approximate (copies differ by revenue bin, and early stopping
    on the true-prior validation window also pulls the booster back): calibration finishes it."""
    X, b, y = parts["train"]
    r = histos(y, seed=0)
    factor = odds_factor(y, np.bincount(r.indices, minlength=len(y)))
    Xv, bv, _ = parts["val"]
    clf = _clf().fit(X.iloc[r.indices], b[r.indices], eval_set=(Xv, bv), prior_factor=factor)
    Xh, bh, _ = parts["hold"]
    assert factor > 1.05
    uncorrected = clf.booster_.predict(Xh).mean()
    assert abs(clf.predict_raw(Xh).mean() - bh.mean()) < abs(uncorrected - bh.mean())
    np.testing.assert_allclose(prior_correct(np.array([0.5]), 3.0), [0.25])


def test_reports_and_refuses(parts: dict, shifted: BuyerClassifier) -> None:
    Xh, bh, _ = parts["hold"]
    rep = shifted.report(Xh, bh)
    assert {"auc", "pr_auc", "brier", "ece"} <= set(rep) and rep["auc"] > 0.7
    with pytest.raises(DataError, match="missing"):
        shifted.predict_proba(Xh.drop(columns=["x0"]))
    with pytest.raises(DataError, match="extra"):
        shifted.predict_proba(Xh.assign(noise=np.float32(0)))
    X, b, _ = parts["train"]
    with pytest.raises(ValueError, match="class-weight"):
        BuyerClassifier(params={"scale_pos_weight": 29}).fit(X, b, eval_set=(parts["val"][0], parts["val"][1]))
    # column order does not matter, the set does
    np.testing.assert_array_equal(shifted.predict_proba(Xh[Xh.columns[::-1]]), shifted.predict_proba(Xh))


@pytest.mark.parametrize("method", ["isotonic", "platt", "beta", "none"])
def test_calibrators_are_monotone_and_json(method: str) -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 8, 4000)
    y = (rng.random(4000) < np.clip(0.5 * p, 0, 1)).astype(float)
    cal = fit_calibrator(method, p, y)
    grid = np.linspace(0, 1, 101)
    assert (np.diff(cal.predict(grid)) >= -1e-12).all()
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back.predict(p), cal.predict(p))


def test_seed_bagging_averages_boosters_and_round_trips(parts: dict) -> None:
    X, b, _ = parts["train"]
    Xv, bv, _ = parts["val"]
    single = _clf().fit(X, b, eval_set=(Xv, bv))
    bag = BuyerClassifier(params=FAST["lgbm"], num_boost_round=150, early_stopping_rounds=15, random_state=0,
                          n_seeds=3).fit(X, b, eval_set=(Xv, bv))
    assert len(bag.extra_boosters_) == 2 and single.extra_boosters_ == []
    # the first booster of the bag is the single model; the bag is the mean of all three
    np.testing.assert_allclose(bag.booster_.predict(Xv), single.booster_.predict(Xv))
    mean = np.mean([m.predict(Xv) for m in [bag.booster_, *bag.extra_boosters_]], axis=0)
    np.testing.assert_allclose(bag.predict_raw(Xv), mean)
    assert not np.allclose(bag.predict_raw(Xv), single.predict_raw(Xv)), "seeds differ"
    back = BuyerClassifier.from_state(json.loads(json.dumps(bag.to_state())))
    np.testing.assert_allclose(back.predict_proba(Xv), bag.predict_proba(Xv))
    legacy = {k: v for k, v in single.to_state().items() if k != "extra_boosters"}
    legacy["params"] = {k: v for k, v in legacy["params"].items() if k != "n_seeds"}
    np.testing.assert_allclose(BuyerClassifier.from_state(legacy).predict_raw(Xv), single.predict_raw(Xv))
    with pytest.raises(ValueError):
        BuyerClassifier(params=FAST["lgbm"], n_seeds=0).fit(X, b, eval_set=(Xv, bv))
