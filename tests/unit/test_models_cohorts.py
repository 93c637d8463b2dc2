"""CohortModel: edges fitted on training payers only, calibrated cohort probabilities, and the
expectation over cohorts beating the seed's hard routing on whales."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltv_core import metrics
from ltv_core.errors import DataError
from ltv_core.models.cohorts import CohortModel, assign_cohorts, cohort_edges
from support.modeldata import FAST, make_data, split


def _fitted(n: int = 12_000, seed: int = 3) -> tuple[CohortModel, dict]:
    X, L = make_data(n, seed=seed)
    s = split(X, L)
    (Xt, Lt), (Xv, Lv) = s["train"], s["val"]
    m = CohortModel(params=FAST["lgbm"], regressor_params=FAST["lgbm"], min_rows=60, num_boost_round=80,
                    early_stopping_rounds=10).fit(Xt, Lt.iloc[:, 0].to_numpy(), Xv, Lv.iloc[:, 0].to_numpy())
    return m, s


def test_edges_are_percentiles_of_payers_only_and_classes_follow_them() -> None:
    y = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=float)
    edges = cohort_edges(y, (50, 90))
    np.testing.assert_allclose(edges, np.percentile(np.arange(1, 11), [50, 90]))
    c = assign_cohorts(y, edges)
    assert (c[:4] == 0).all()  # no revenue: class 0, whatever the edges
    assert c[4] == 1 and c[-1] == 3
    assert (np.diff(c[4:]) >= 0).all()


def test_no_payer_or_bad_cuts_fail_loudly() -> None:
    with pytest.raises(DataError, match="no payer"):
        cohort_edges(np.zeros(10))
    with pytest.raises(ValueError, match="increasing percentiles"):
        cohort_edges(np.ones(10), (90, 50))


def test_probabilities_are_calibrated_on_unseen_rows() -> None:
    m, s = _fitted()
    Xh, Lh = s["hold"]
    P = m.predict_proba(Xh)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    payer_rate = float((Lh.iloc[:, 0].to_numpy() > 0).mean())
    assert abs(float(1 - P[:, 0].mean()) - payer_rate) < 0.02  # no rebalancing: P(payer) stays the base rate


def test_point_and_value_beat_constants_and_value_ranks() -> None:
    m, s = _fitted()
    Xh, Lh = s["hold"]
    y = Lh.iloc[:, 0].to_numpy()
    point, value = m.predict(Xh), m.predict_value(Xh)
    assert (point >= 0).all() and (value >= point * 0.5).all()
    const = np.full(len(y), np.expm1(np.log1p(s["train"][1].iloc[:, 0].to_numpy()).mean()))
    assert metrics.rmsle(y, point) < metrics.rmsle(y, const) - 0.01
    assert metrics.normalized_gini(y, value) > 0.3
    assert abs(value.sum() / y.sum() - 1) < 0.35  # smearing keeps the mean scale


def test_expectation_beats_routing() -> None:
    """Routing a row to its argmax cohort's regressor loses whales; the expectation does not."""
    m, s = _fitted()
    Xh, Lh = s["hold"]
    y = Lh.iloc[:, 0].to_numpy()
    value, routed = m.predict_value(Xh), m.predict_routed(Xh)
    assert metrics.normalized_gini(y, value) > metrics.normalized_gini(y, routed)
    top = y >= np.quantile(y[y > 0], 0.95)
    assert value[top].sum() > routed[top].sum()


def test_state_round_trip_predicts_the_same() -> None:
    m, s = _fitted(6000)
    Xh, _ = s["hold"]
    again = CohortModel.from_state(json.loads(json.dumps(m.to_state())))
    np.testing.assert_array_equal(again.predict_value(Xh), m.predict_value(Xh))
    np.testing.assert_array_equal(again.predict(Xh), m.predict(Xh))


def test_refit_keeps_tree_counts_and_learns_only_its_rows() -> None:
    m, s = _fitted(8000)
    Xt, Lt = s["train"]
    y = Lt.iloc[:, 0].to_numpy()
    half = len(y) // 2
    a = m.refit(Xt.iloc[:half], y[:half], random_state=5)
    assert a.best_iteration == m.best_iteration
    for full, fold in zip(m.regressors_, a.regressors_, strict=True):  # never more trees than the template's
        assert fold is None or (full is not None and fold.current_iteration() <= full.current_iteration())
    y2 = y.copy()
    y2[half:] = 0.0  # labels of rows it does not train on cannot move it
    b = m.refit(Xt.iloc[:half], y2[:half], random_state=5)
    np.testing.assert_array_equal(a.predict_value(s["hold"][0]), b.predict_value(s["hold"][0]))


def test_stacker_with_the_cohort_learner_is_out_of_fold_and_round_trips() -> None:
    """'cohorts' as a stacker base learner: its OOF block predictions ignore the block's labels,
    and the stack persisted with its cohort base model predicts the same after loading."""
    from ltv_core.models import persist
    from ltv_core.models.config import load_models_config
    from ltv_core.models.stacker import Stacker, time_blocks
    from ltv_core.models.training import train_stack
    from support.modeldata import SPEC

    m, s = _fitted(8000)
    Xt, Lt = s["train"]
    y = Lt.iloc[:, 0].to_numpy()
    st = Stacker(learners=("hurdle", "cohorts"), n_folds=3, params=FAST["lgbm"])
    rounds = {"p": 15, "m": 10}
    base = st.oof_parts(Xt, y, rounds, templates={"cohorts": m})
    blocks = time_blocks(len(y), 3)
    y2 = y.copy()
    y2[blocks[2]] = 0.0
    moved = st.oof_parts(Xt, y2, rounds, templates={"cohorts": m})
    np.testing.assert_array_equal(base["cohort_value"][blocks[2]], moved["cohort_value"][blocks[2]])
    assert not np.array_equal(base["cohort_value"][blocks[0]], moved["cohort_value"][blocks[0]])

    config = load_models_config(overrides={**FAST, "stacker": {"n_folds": 2, "learners": ["hurdle", "cohorts"],
                                                               "min_gain": -1.0},
                                           "cohorts": {"min_rows": 60}})
    stack = train_stack(Xt, Lt, *s["val"], SPEC, config)
    assert "cohorts" in stack.base_models and stack.stacker is not None and stack.stacker.use_point
    again = persist.stack_from_blobs(persist.stack_to_blobs(stack))
    Xh = s["hold"][0]
    np.testing.assert_array_equal(again.predict(Xh).to_numpy(), stack.predict(Xh).to_numpy())
    cm = stack.base_models["cohorts"]  # scoring computes only used features: the cohort trees' count too
    split = {n for b in cm.boosters() for n, c in zip(b.feature_name(), b.feature_importance("split")) if c > 0}
    assert split and split <= stack.used_features()


def test_models_config_refuses_cohorts_learner_when_disabled_and_bad_cuts() -> None:
    from ltv_core.errors import SpecError
    from ltv_core.models.config import load_models_config

    with pytest.raises(SpecError, match="cohorts.enabled is false"):
        load_models_config(overrides={"cohorts": {"enabled": False}, "stacker": {"learners": ["hurdle", "cohorts"]}})
    with pytest.raises(SpecError, match="increasing percentiles"):
        load_models_config(overrides={"cohorts": {"cuts": [80, 50]}})
