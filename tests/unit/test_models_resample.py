"""HistOS / HHISTUS: they change the data, are seeded, keep the max row and aligned labels, and the
correction weights preserve the weighted mean of the target."""

from __future__ import annotations

import numpy as np
import pytest

from ltv_core.models.resample import design_weights, hhistus, histos, histos_copies, odds_factor


def _revenue(n: int = 20_000, seed: int = 0, price_share: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.05, np.round(rng.lognormal(1.5, 1.6, n), 2), 0.0)
    ties = (y > 0) & (rng.random(n) < price_share)
    return np.where(ties, rng.choice([0.99, 4.99, 9.99], n), y)


def test_histos_is_not_a_noop_and_preserves_the_weighted_mean() -> None:
    y = _revenue()
    r = histos(y, seed=1)
    assert len(r.indices) > len(y), "rare buyers must be replayed"
    copies = np.bincount(r.indices, minlength=len(y))
    assert (copies[y == 0] == 1).all(), "zeros are the frequent bin: never copied"
    top = np.argsort(-y)[:20]
    assert copies[top].min() > 1, "the revenue tail gets copies"
    assert np.sum(r.weights * y[r.indices]) / np.sum(r.weights) == pytest.approx(y.mean(), rel=1e-12)
    assert np.sum(r.weights) == pytest.approx(len(y))
    # the buyer share rises: this is what the classifier's prior correction undoes
    assert (y[r.indices] > 0).mean() > (y > 0).mean()
    assert odds_factor(y, copies) > 1.0


def test_histos_on_a_binary_label_shaped_target_still_acts() -> None:
    """On revenue, HistOS duplicates rows even with few buyers (on a binary label such as buyer_d7
    every positive falls in one bin and it would do nothing)."""
    y = _revenue(5000, seed=2)
    assert histos_copies(y).max() > 1


def test_resampling_is_deterministic_by_seed() -> None:
    y = _revenue(price_share=0.4)
    for fn in (histos, hhistus):
        a, b, c = fn(y[y > 0], seed=7), fn(y[y > 0], seed=7), fn(y[y > 0], seed=8)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert not np.array_equal(a.indices, c.indices)


def test_hhistus_thins_ties_keeps_max_and_aligns_labels() -> None:
    y_all = _revenue(price_share=0.4)
    buyers = np.flatnonzero(y_all > 0)
    y = y_all[buyers]
    d14 = y + np.arange(len(y)) * 1e-3  # a second horizon that identifies each row
    r = hhistus(y, seed=3)
    assert len(r.indices) < len(y), "price-point ties must be thinned"
    assert np.flatnonzero(y == y.max())[0] in set(r.indices), "the max row is never dropped"
    assert len(np.unique(r.indices)) == len(r.indices)
    # labels of every horizon come from the same kept rows (index-based, no second draw)
    np.testing.assert_allclose(d14[r.indices] - y[r.indices], np.arange(len(y))[r.indices] * 1e-3, atol=1e-9)
    assert np.sum(r.weights) == pytest.approx(len(y))
    # the thinned bins are tie groups, so the weighted mean is preserved exactly there; overall
    # it is unbiased and here within sampling noise
    assert np.sum(r.weights * y[r.indices]) / np.sum(r.weights) == pytest.approx(y.mean(), rel=0.02)
    assert r.info["max_kept"] and r.info["thinned_bins"] >= 1


def test_hhistus_continuous_target_barely_changes() -> None:
    y = _revenue(price_share=0.0)
    y = y[y > 0]
    r = hhistus(y, seed=0)
    assert len(r.indices) > 0.9 * len(y)


def test_hhistus_mean_unbiased_over_seeds() -> None:
    y = _revenue(price_share=0.5)
    y = y[y > 0]
    means = [np.sum(r.weights * y[r.indices]) / np.sum(r.weights) for r in (hhistus(y, seed=s) for s in range(30))]
    assert np.mean(means) == pytest.approx(y.mean(), rel=0.005)


def test_design_weights_and_bad_input() -> None:
    y = _revenue()
    w = design_weights("histos", y, {})
    np.testing.assert_array_equal(w, histos_copies(y))
    w2 = design_weights("hhistus", y[y > 0], {})
    assert (w2 > 0).all() and (w2 <= 1).all()
    with pytest.raises(ValueError):
        histos(np.array([1.0, -1.0]))
    with pytest.raises(ValueError):
        design_weights("smote", y, {})
