"""MultiHorizonRegressor: order-preserving for every row by construction (property test), every
objective fits, and bad labels fail loudly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ltv_core.errors import DataError
from ltv_core.models.regressor import MultiHorizonRegressor
from support.modeldata import FAST, make_data, split

HORIZONS = ("d7", "d14", "d28")


def _buyers(part: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    X, L = part
    b = L.iloc[:, 0].to_numpy() > 0
    return X[b].reset_index(drop=True), L.to_numpy()[b]


@pytest.fixture(scope="module")
def data() -> dict:
    X, L = make_data(10_000, seed=3)
    s = split(X, L)
    return {"train": _buyers(s["train"]), "val": _buyers(s["val"]), "hold": s["hold"][0]}


def _fit(data: dict, objective: str) -> MultiHorizonRegressor:
    (X, Y), (Xv, Yv) = data["train"], data["val"]
    reg = MultiHorizonRegressor(horizons=HORIZONS, objective=objective, params={**FAST["lgbm"], "min_data_in_leaf": 10},
                                num_boost_round=80, early_stopping_rounds=10, random_state=1)
    return reg.fit(X, Y, eval_set=(Xv, Yv))


@pytest.fixture(scope="module")
def fitted(data: dict) -> MultiHorizonRegressor:
    return _fit(data, "log1p_l2")


def _frame(values: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    X = pd.DataFrame({f"x{i}": values[:, i].astype(np.float32) for i in range(5)})
    X["cat"] = pd.Categorical.from_codes(codes, categories=[f"c{i}" for i in range(6)])
    return X


@settings(max_examples=40, deadline=None)
@given(values=arrays(np.float64, (7, 5), elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan))),
       codes=arrays(np.int64, 7, elements=st.integers(-1, 5)))
def test_horizons_monotone_for_arbitrary_rows(fitted: MultiHorizonRegressor, values: np.ndarray,
                                              codes: np.ndarray) -> None:
    X = _frame(values, codes)
    for out in (fitted.predict(X), fitted.predict_log1p(X), fitted.predict_mean(X)):
        assert out.shape == (7, 3)
        assert (out >= 0).all()
        assert (np.diff(out, axis=1) >= 0).all(), "pred_d7 <= pred_d14 <= pred_d28 must hold for every row"


def test_predictions_are_sensible(fitted: MultiHorizonRegressor, data: dict) -> None:
    Xv, Yv = data["val"]
    L = fitted.predict_log1p(Xv)
    assert np.corrcoef(L[:, 0], np.log1p(Yv[:, 0]))[0, 1] > 0.3
    # Duan smearing makes the buyers' mean match the validation total
    assert fitted.predict_mean(Xv)[:, 0].sum() == pytest.approx(Yv[:, 0].sum(), rel=0.05)
    assert all(s > 1 for s in fitted.smearing_), "E[y] > expm1(E[log1p y]) (Jensen)"


@pytest.mark.parametrize("objective", ["huber", "tweedie"])
def test_other_objectives(data: dict, objective: str) -> None:
    reg = _fit(data, objective)
    X = data["hold"]
    for out in (reg.predict(X), reg.predict_log1p(X), reg.predict_mean(X)):
        assert (np.diff(out, axis=1) >= 0).all() and (out >= 0).all()


def test_refuses_bad_labels_and_columns(fitted: MultiHorizonRegressor, data: dict) -> None:
    X, Y = data["train"]
    bad = Y.copy()
    bad[0, 1] = bad[0, 0] - 5.0
    with pytest.raises(DataError, match="decreasing"):
        MultiHorizonRegressor(horizons=HORIZONS).fit(X, bad, eval_set=data["val"])
    with pytest.raises(DataError, match="missing"):
        fitted.predict(X.drop(columns=["x1"]))
    with pytest.raises(ValueError, match="objective"):
        MultiHorizonRegressor(horizons=HORIZONS, objective="mape").fit(X, Y, eval_set=data["val"])
