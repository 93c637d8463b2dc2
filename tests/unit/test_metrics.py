"""ltv_core.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ltv_core import metrics as M

Y = np.array([0.0, 1.0, 2.0, 3.0])
UP = np.array([0.1, 0.2, 0.3, 0.4])  # perfect order


def test_pointwise_errors_by_hand() -> None:
    y, p = np.array([0.0, 1.0, 3.0]), np.array([1.0, 1.0, 1.0])
    # log1p errors: log 2, 0, log 2 - log 4 = -log 2  ->  mean of squares = 2/3 (log 2)^2
    assert M.rmsle(y, p) == pytest.approx(math.sqrt(2 / 3) * math.log(2))
    assert M.rmse(y, p) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert M.mae(y, p) == pytest.approx(1.0)
    # SST = (4/3)^2 + (1/3)^2 + (5/3)^2 = 42/9; SSE = 5
    assert M.r2(y, p) == pytest.approx(1 - 5 / (42 / 9))
    assert M.calibration_ratio(y, p) == pytest.approx(3 / 4)


def test_gini_by_hand() -> None:
    # sorted by score: y = 3, 2, 1, 0 -> gain 3/6, 5/6, 1, 1 -> mean 5/6 -> raw 2/3 = perfect
    assert M.normalized_gini(Y, UP) == pytest.approx(1.0)
    # reversed: gain 0, 1/6, 3/6, 1 -> mean 5/12 -> raw -1/6 -> normalized -1/4
    assert M.normalized_gini(Y, UP[::-1]) == pytest.approx(-0.25)
    np.testing.assert_allclose(M.gain_curve(Y, UP), [0.5, 5 / 6, 1.0, 1.0])


def test_gini_ties_score_their_expected_value() -> None:
    # a constant score: the expected gain at k is k/n, raw = 1/n (the random-ranking value)
    raw_perfect = 2 / 3
    assert M.normalized_gini(Y, np.zeros(4)) == pytest.approx((1 / 4) / raw_perfect)
    # ties do not depend on row order
    rng = np.random.default_rng(0)
    y = np.where(rng.random(500) < 0.1, rng.lognormal(1, 1, 500), 0.0)
    s = np.round(rng.random(500), 1)
    perm = rng.permutation(500)
    assert M.normalized_gini(y, s) == pytest.approx(M.normalized_gini(y[perm], s[perm]))


def test_top_share_and_whales_by_hand() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1.0, 2.0, 10.0])
    s = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.0])  # worst order
    assert M.top_share(y, s, 0.1) == 0.0
    assert M.top_share(y, -s, 0.1) == pytest.approx(10 / 13)
    assert M.top_share(y, -s, 0.2) == pytest.approx(12 / 13)
    # whale = top 10% by revenue (the 10.0 row); top 20% of the worst order misses it
    assert M.whales_missed(y, s, whale_frac=0.1, top_frac=0.2) == 1.0
    assert M.whales_missed(y, -s, whale_frac=0.1, top_frac=0.2) == 0.0
    # constant score: the whale is in the top 2 of 10 with probability 2/10
    assert M.whales_missed(y, np.zeros(10), whale_frac=0.1, top_frac=0.2) == pytest.approx(0.8)


def test_classifier_metrics_by_hand() -> None:
    y = np.array([0, 0, 1, 1.0])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    assert M.roc_auc(y, p) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert M.brier(y, p) == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    # AP: ranks 0.9(+) 0.6(-) 0.4(+) 0.1(-): precision at the hits 1 and 2/3 -> mean 5/6
    assert M.pr_auc(y, p) == pytest.approx(5 / 6)
    # ECE with 2 equal-mass bins: {0.1, 0.4}: |0.5 - 0.25|; {0.6, 0.9}: |0.5 - 0.75| -> 0.25
    assert M.ece(y, p, n_bins=2) == pytest.approx(0.25)
    out = M.classifier_metrics(y, p)
    assert set(out) == {"auc", "pr_auc", "brier", "ece", "base_rate", "mean_p"}


def test_evaluate_keys_and_values() -> None:
    out = M.evaluate(Y, UP)
    assert out["gini"] == pytest.approx(1.0) and out["rows"] == 4
    assert {"rmsle", "rmse", "mae", "r2", "gini", "top1_share", "top10_share", "whales_missed_top10",
            "calibration_ratio"} <= set(out)


@pytest.mark.parametrize("bad", [
    (np.array([1.0, 2.0]), np.array([1.0])),
    (np.array([1.0, 2.0]), np.array([1.0, np.nan])),
    (np.array([1.0, 2.0]), np.array([1.0, -0.5])),
])
def test_bad_inputs_fail_loudly(bad: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError):
        M.rmsle(*bad)


def _toy(n: int = 3000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.1, np.round(rng.lognormal(1, 1, n), 2), 0.0)
    good = y * rng.lognormal(0, 0.3, n) + 0.1 * rng.random(n)
    noise = rng.random(n)
    return y, good, noise


def test_bootstrap_deterministic_and_sensible() -> None:
    y, good, noise = _toy()
    a = M.paired_bootstrap_ci(y, good, noise, "rmsle", n_boot=200, seed=3)
    b = M.paired_bootstrap_ci(y, good, noise, "rmsle", n_boot=200, seed=3)
    assert a == b
    assert a.diff == pytest.approx(M.rmsle(y, good) - M.rmsle(y, noise))
    assert a.hi < 0 and a.excludes_zero()  # the good predictor is clearly better
    g = M.paired_bootstrap_ci(y, good, noise, "gini", n_boot=200, seed=3)
    assert g.lo > 0
    same = M.paired_bootstrap_ci(y, good, good, "mae", n_boot=50)
    assert same.lo == same.hi == 0.0 and not same.excludes_zero()


def test_bootstrap_replicates_match_index_resampling() -> None:
    """The count-based closed forms equal the metric recomputed on the resampled rows."""
    y, good, noise = _toy(400)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(y), len(y))
    counts = np.bincount(idx, minlength=len(y)).astype(float)[None, :]
    want_g = M.normalized_gini(y[idx], good[idx]) - M.normalized_gini(y[idx], noise[idx])
    assert M._replicates("gini", y, good, noise, counts)[0] == pytest.approx(want_g)
    want_r = M.rmsle(y[idx], good[idx]) - M.rmsle(y[idx], noise[idx])
    assert M._replicates("rmsle", y, good, noise, counts)[0] == pytest.approx(want_r)
    # a callable metric takes the generic path and agrees in distribution with the built-in one
    c = M.paired_bootstrap_ci(y, good, noise, M.normalized_gini, n_boot=100, seed=0)
    assert c.diff == pytest.approx(M.normalized_gini(y, good) - M.normalized_gini(y, noise))


# The formulas these metrics had before they came from scikit-learn: the library must give the
# very same float (the gate and the stacker choose on them; evaluation.json prints them).
def _r2_formula(y: np.ndarray, p: np.ndarray) -> float:
    sst, sse = float(np.sum((y - y.mean()) ** 2)), float(np.sum((y - p) ** 2))
    if sst == 0.0:
        return 0.0 if sse == 0.0 else float("-inf")
    return 1.0 - sse / sst


def _tweedie_formula(y: np.ndarray, mu: np.ndarray, power: float) -> float:
    m = np.maximum(mu, 1e-12)
    dev = 2 * (np.power(y, 2 - power) / ((1 - power) * (2 - power)) - y * np.power(m, 1 - power) / (1 - power)
               + np.power(m, 2 - power) / (2 - power))
    return float(np.mean(dev))


FORMULAS = {
    "rmsle": lambda y, p: float(np.sqrt(np.mean((np.log1p(p) - np.log1p(y)) ** 2))),
    "rmse": lambda y, p: float(np.sqrt(np.mean((p - y) ** 2))),
    "mae": lambda y, p: float(np.mean(np.abs(p - y))),
    "r2": _r2_formula,
}


def _holdout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Zero-inflated revenue and one of the predictor shapes the pipeline scores."""
    n = int(rng.choice([1, 2, 3, 129, 4097, 20_000, 100_003]))
    p_true = rng.beta(1, float(rng.choice([10, 25, 100])), n)
    y = np.where(rng.random(n) < p_true, rng.lognormal(1, 1.2, n), 0.0)
    if rng.random() < 0.3:
        y = np.round(y, 2)
    if rng.random() < 0.1:
        y = np.full(n, float(rng.choice([0.0, 0.1, 3.3])))  # constant targets: R²'s own branch
    pred = [np.zeros(n), np.full(n, y.mean()), np.expm1(p_true * rng.uniform(0, 3, n)),
            y * rng.lognormal(0, 0.3, n), p_true * np.exp(rng.normal(1.5, 0.5, n)), y.copy()]
    return y, pred[int(rng.integers(len(pred)))]


def test_sklearn_metrics_are_bit_identical() -> None:
    rng = np.random.default_rng(20251104)
    for _ in range(60):
        y, p = _holdout(rng)
        for name, formula in FORMULAS.items():
            np.testing.assert_array_equal(getattr(M, name)(y, p), formula(y, p), err_msg=f"{name}, {len(y)} rows")
        power = float(rng.uniform(1.05, 1.95))
        np.testing.assert_array_equal(M.tweedie_deviance(y, p, power), _tweedie_formula(y, p, power),
                                      err_msg=f"tweedie {power}, {len(y)} rows")
    assert M.r2(np.full(4, 2.0), np.full(4, 2.0)) == 0.0, "exact on a constant target: sklearn says 1.0"
    assert M.r2(np.array([2.0]), np.array([1.0])) == -math.inf, "one row: sklearn would say NaN"
