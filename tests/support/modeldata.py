"""A small stand-in feature matrix with a known hurdle label model, shared by the model tests.

The model components take plain frames, so their tests do not need the feature builder: this
module draws a time-ordered frame of float32 + category columns and three cumulative revenue
horizons from a zero-inflated lognormal (buyer logit and lognormal location depend on x).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from ltv_core.spec import load_spec

SPEC = load_spec("config/datasets/smadex_d7.yaml")
REV = [h.revenue for h in SPEC.labels.horizons]

# Fast LightGBM settings for tests (the real defaults are in config/models.yaml).
FAST = {
    "lgbm": {"learning_rate": 0.15, "num_leaves": 15, "min_data_in_leaf": 40, "num_threads": 2,
             "min_data_per_group": 20, "cat_smooth": 10.0, "lambda_l2": 1.0, "feature_fraction": 0.8},
    "num_boost_round": 80,
    "early_stopping_rounds": 10,
    "regressor": {"params": {"min_data_in_leaf": 20}},
    "stacker": {"n_folds": 2},
    "evaluation": {"n_boot": 50},
}


def make_data(n: int = 12_000, seed: int = 0, base_logit: float = -2.6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(X, labels) in time order; about 8-10% buyers, three cumulative horizons."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    x[rng.random(n) < 0.1, 3] = np.nan
    cat = rng.integers(0, 6, n)
    cat_eff = np.array([-0.5, 0.0, 0.3, 0.6, -0.2, 0.1])
    eta = base_logit + 1.1 * x[:, 0] + 0.7 * x[:, 1] + cat_eff[cat]
    buyer = rng.random(n) < expit(eta)
    mu = 1.2 + 0.6 * x[:, 2] + 0.3 * x[:, 0]
    y7 = np.where(buyer, np.round(np.clip(np.exp(mu + 1.0 * rng.standard_normal(n)), 0.01, 5000), 2), 0.0)
    inc14 = np.where(rng.random(n) < np.where(buyer, 0.35, 0.01), np.round(rng.lognormal(1.0, 1.0, n), 2), 0.0)
    inc28 = np.where(rng.random(n) < np.where(buyer, 0.30, 0.01), np.round(rng.lognormal(1.0, 1.0, n), 2), 0.0)
    X = pd.DataFrame({f"x{i}": x[:, i].astype(np.float32) for i in range(5)})
    X["cat"] = pd.Categorical.from_codes(cat, categories=[f"c{i}" for i in range(6)])
    labels = pd.DataFrame({REV[0]: y7, REV[1]: np.round(y7 + inc14, 2), REV[2]: np.round(y7 + inc14 + inc28, 2)})
    return X, labels


def split(X: pd.DataFrame, labels: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """60% training / 20% validation / 20% holdout, by row order (= time)."""
    n = len(X)
    cuts = [0, int(0.6 * n), int(0.8 * n), n]
    names = ("train", "val", "hold")
    return {nm: (X.iloc[a:b].reset_index(drop=True), labels.iloc[a:b].reset_index(drop=True))
            for nm, a, b in zip(names, cuts[:-1], cuts[1:])}


def test_stand_in_is_cumulative_and_zero_inflated() -> None:
    X, labels = make_data(3000)
    Y = labels.to_numpy()
    assert (np.diff(Y, axis=1) >= 0).all()
    assert 0.04 < (Y[:, 0] > 0).mean() < 0.2
    assert X["cat"].dtype.name == "category" and X["x0"].dtype == np.float32
