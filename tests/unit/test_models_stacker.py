"""Stacker: out-of-fold by construction (no in-sample leakage), and a pure-noise input cannot make
it look better than it is."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ltv_core.models.lgb import lgb_params, train_booster
from ltv_core.models.stacker import Stacker, meta_frame, time_blocks
from support.modeldata import FAST, make_data

ROUNDS = {"p": 20, "m": 15, "direct": 20, "tweedie": 15}


def _stacker(**kw: object) -> Stacker:
    return Stacker(learners=kw.pop("learners", ("hurdle", "direct_log1p")), n_folds=3, params=FAST["lgbm"],
                   random_state=0, **kw)


def test_oof_prediction_of_a_block_ignores_its_own_labels() -> None:
    X, L = make_data(4000, seed=11)
    y = L.iloc[:, 0].to_numpy()
    st = _stacker()
    base = st.oof_parts(X, y, ROUNDS)
    blocks = time_blocks(len(y), 3)
    y2 = y.copy()
    rng = np.random.default_rng(0)
    y2[blocks[1]] = np.where(rng.random(len(blocks[1])) < 0.5, rng.lognormal(2, 1, len(blocks[1])), 0.0)
    moved = st.oof_parts(X, y2, ROUNDS)
    for key in ("p", "m", "direct"):
        np.testing.assert_array_equal(base[key][blocks[1]], moved[key][blocks[1]])
        assert not np.array_equal(base[key][blocks[0]], moved[key][blocks[0]]), "other blocks did learn from it"


def test_pure_noise_feature_does_not_look_predictive_out_of_fold() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    X = pd.DataFrame({"noise": rng.standard_normal(n).astype(np.float32)})
    y = np.where(rng.random(n) < 0.2, np.round(rng.lognormal(1, 1, n), 2), 0.0)  # independent of X
    params = {**FAST["lgbm"], "num_leaves": 63, "min_data_in_leaf": 2, "lambda_l2": 0.0}
    rounds = {"p": 60, "m": 60, "direct": 60, "tweedie": 0}
    st = Stacker(learners=("direct_log1p",), n_folds=3, params=params, meta="linear")
    oof = st.oof_parts(X, y, rounds)
    t = np.log1p(y)
    in_sample = train_booster(lgb_params(params, 0, objective="regression"), X, t, num_boost_round=60).predict(X)
    assert np.corrcoef(in_sample, t)[0, 1] > 0.2, "in-sample predictions of noise look predictive (leakage)"
    assert abs(np.corrcoef(oof["direct"], t)[0, 1]) < 0.1, "out-of-fold predictions of noise must not"
    st.fit_meta(oof, y)
    pred = st.predict_log1p(oof)
    baseline = np.mean((t - t.mean()) ** 2)
    assert np.mean((pred - t) ** 2) > 0.97 * baseline, "the meta-learner gains ~nothing from noise"


@pytest.fixture(scope="module")
def oof() -> tuple[dict[str, np.ndarray], np.ndarray]:
    X, L = make_data(5000, seed=12)
    y = L.iloc[:, 0].to_numpy()
    return _stacker().oof_parts(X, y, ROUNDS), y


@pytest.mark.parametrize("meta", ["linear", "lgbm"])
def test_meta_learner_learns_and_round_trips(meta: str, oof: tuple[dict[str, np.ndarray], np.ndarray]) -> None:
    oof, y = oof
    st = _stacker(meta=meta, meta_params={"learning_rate": 0.2})
    st.fit_meta(oof, y)
    pred = st.predict_log1p(oof)
    t = np.log1p(y)
    assert (pred >= 0).all()
    assert np.mean((pred - t) ** 2) < 0.95 * np.mean((t - t.mean()) ** 2)
    back = Stacker.from_state(st.to_state())
    np.testing.assert_array_equal(back.predict_log1p(oof), pred)
    assert list(meta_frame(oof, st.learners).columns) == ["logit_p", "m_log1p", "hurdle_log1p", "direct_log1p"]
    with pytest.raises(ValueError):
        Stacker(learners=("ziln",))


def test_value_head_learns_revenue_and_round_trips(oof: tuple[dict[str, np.ndarray], np.ndarray]) -> None:
    from ltv_core import metrics as M

    oof, y = oof
    st = _stacker(meta="linear")
    st.fit_meta(oof, y)
    with pytest.raises(ValueError):
        st.predict_value(oof)
    st.fit_value(oof, y, value_params={"learning_rate": 0.2, "min_data_in_leaf": 50})
    v = st.predict_value(oof)
    assert (v >= 0).all() and st.value_rounds_ >= 1
    assert 0.5 < v.sum() / y.sum() < 2.0, "a revenue-scale mean (Tweedie, log link), not a log1p level"
    assert M.normalized_gini(y, v) > 0.3, "ranks revenue"
    state = json.loads(json.dumps(st.to_state()))
    back = Stacker.from_state(state)
    np.testing.assert_allclose(back.predict_value(oof), v)
    np.testing.assert_array_equal(back.predict_log1p(oof), st.predict_log1p(oof))
    assert back.use_point is True
    legacy = {k: v for k, v in state.items() if k not in ("use_point", "value_booster", "value_rounds",
                                                          "value_params")}
    old = Stacker.from_state(legacy)  # states written before the value head still load
    assert old.value_booster_ is None and old.use_point is True
