"""Revenue quantiles: calibrated coverage with a zero atom, exceedance probabilities, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltv_core.errors import DataError
from ltv_core.models.intervals import RevenueQuantiles, coverage


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose true law is the model's: P(buy) = p, log1p y | buy = m + sd(m) * N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(1.2 * x - 1.5)))
    m = 1.5 + 0.5 * x
    sd = 0.4 + 0.3 * (m > 1.5)  # heteroscedastic: bins must pick it up
    y = np.where(rng.random(n) < p, np.expm1(np.maximum(m + sd * rng.normal(size=n), 1e-6)), 0.0)
    return p, m, y


def test_quantiles_cover_their_level_on_fresh_rows_despite_the_zero_atom() -> None:
    fit = RevenueQuantiles((0.1, 0.5, 0.9, 0.95)).fit(*_draw(40_000, 0))
    p, m, y = _draw(40_000, 1)
    for q in fit.quantiles:
        Q = fit.quantile(q, p, m)
        assert abs(coverage(y, Q, q, p) - q) < 0.01, q
    naive = float((y <= fit.quantile(0.1, p, m)).mean())
    assert naive > 0.5  # the plain share is meaningless at q below the zero share: why the PIT


def test_quantiles_are_monotone_and_zero_where_the_atom_covers_them() -> None:
    fit = RevenueQuantiles().fit(*_draw(20_000, 2))
    p, m, _ = _draw(5000, 3)
    q10, q50, q90 = (fit.quantile(q, p, m) for q in (0.1, 0.5, 0.9))
    assert (q10 <= q50).all() and (q50 <= q90).all()
    assert (q50[p < 0.5] == 0).all() and (q90[p > 0.2] > 0).all()


def test_whale_probability_is_calibrated() -> None:
    fit = RevenueQuantiles(whale_threshold=20.0).fit(*_draw(40_000, 4))
    p, m, y = _draw(40_000, 5)
    pw = fit.exceed_proba(p, m)
    assert abs(pw.mean() - (y > 20.0).mean()) < 0.004
    hi = pw > np.quantile(pw, 0.9)
    assert (y[hi] > 20).mean() > 3 * (y > 20).mean()  # it ranks whales too
    assert fit.columns(p, m, "d7").keys() == {"q10_d7", "q50_d7", "q90_d7", "p_whale_d7"}


def test_round_trip_and_bad_inputs() -> None:
    fit = RevenueQuantiles().fit(*_draw(5000, 6))
    again = RevenueQuantiles.from_state(json.loads(json.dumps(fit.to_state())))
    p, m, _ = _draw(1000, 7)
    np.testing.assert_array_equal(again.quantile(0.9, p, m), fit.quantile(0.9, p, m))
    assert again.whale_threshold_ == fit.whale_threshold_
    with pytest.raises(DataError, match="buyers in the validation window"):
        RevenueQuantiles().fit(np.full(10, 0.1), np.ones(10), np.zeros(10))
    with pytest.raises(ValueError, match="quantiles must lie"):
        RevenueQuantiles((0.0, 0.5)).fit(*_draw(1000, 8))


def test_the_stack_reports_interval_coverage_on_its_holdout() -> None:
    from ltv_core.models.config import load_models_config
    from ltv_core.models.training import train_stack
    from support.modeldata import FAST, SPEC, make_data, split

    s = split(*make_data(12_000, seed=9))
    stack = train_stack(*s["train"], *s["val"], SPEC, load_models_config(overrides=FAST))
    rep = stack.evaluate_on(*s["hold"])["intervals"]
    assert set(rep["coverage"]) == {"0.1", "0.5", "0.9"}
    assert rep["max_abs_error"] < 0.05  # the stand-in's law is a lognormal hurdle: close to nominal
    assert len(rep["curve"]["levels"]) == len(rep["curve"]["coverage"]) == 19
    assert 0 < rep["whale"]["mean_probability"] < 0.2
