"""The assembled stack: determinism by seed, output contract, persistence, stage functions, the
baselines table, and config validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ltv_core.errors import DataError, SpecError
from ltv_core.models import persist
from ltv_core.models.baselines import TABLE_METRICS, compare, fit_baselines
from ltv_core.models.config import load_models_config
from ltv_core.models.plans import resample_stage
from ltv_core.models.training import train_classifier, train_regressor, train_stack
from support.modeldata import FAST, SPEC, make_data, split


@pytest.fixture(scope="module")
def sets() -> dict:
    X, L = make_data(7000, seed=21)
    return split(X, L)


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    return load_models_config(overrides=FAST)


@pytest.fixture(scope="module")
def baselines(sets: dict, config) -> dict:  # type: ignore[no-untyped-def]
    (X, L), (Xv, Lv) = sets["train"], sets["val"]
    return fit_baselines(X, L.iloc[:, 0].to_numpy(), Xv, Lv.iloc[:, 0].to_numpy(), params=config.lgb(),
                         num_boost_round=config.num_boost_round, early_stopping_rounds=config.early_stopping_rounds)


@pytest.fixture(scope="module")
def stack(sets: dict, config, baselines: dict):  # type: ignore[no-untyped-def]
    (X, L), (Xv, Lv) = sets["train"], sets["val"]
    return train_stack(X, L, Xv, Lv, SPEC, config, base_models=baselines)


def test_same_seed_same_predictions(stack, sets: dict, config, baselines: dict) -> None:  # type: ignore[no-untyped-def]
    (X, L), (Xv, Lv), (Xh, _) = sets["train"], sets["val"], sets["hold"]
    again = train_stack(X, L, Xv, Lv, SPEC, config, base_models=baselines)
    pd.testing.assert_frame_equal(stack.predict(Xh), again.predict(Xh))


def test_output_contract(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    Xh, _ = sets["hold"]
    P = stack.predict(Xh)
    hs = [h.name for h in SPEC.labels.horizons]
    intervals = ["q10_d7", "q50_d7", "q90_d7", "p_whale_d7"]  # primary horizon (models/intervals.py)
    assert list(P.columns) == ["p_buyer"] + [f"pred_{h}" for h in hs] + [f"value_{h}" for h in hs] + intervals
    assert (P.to_numpy() >= 0).all() and (P["p_buyer"] <= 1).all() and (P["p_whale_d7"] <= 1).all()
    assert (P["q10_d7"] <= P["q50_d7"]).all() and (P["q50_d7"] <= P["q90_d7"]).all()
    for col in ("pred", "value"):
        M = P[[f"{col}_{h}" for h in hs]].to_numpy()
        assert (np.diff(M, axis=1) >= 0).all(), f"{col} columns must be monotone across horizons"
    # E[y] >= the RMSLE point expm1(E[log1p y]) (Jensen), up to the gate
    assert P["value_d7"].mean() > P["pred_d7"].mean()
    assert stack.decisions["stacker"]["chosen"] in ("stacker", "hurdle")
    json.dumps(stack.metrics)  # every stage's metrics are JSON-able


def test_evaluate_on_holdout_and_table(stack, sets: dict, baselines: dict) -> None:  # type: ignore[no-untyped-def]
    Xh, Lh = sets["hold"]
    rep = stack.evaluate_on(Xh, Lh, baselines=baselines, n_boot=30)
    assert set(rep["horizons"]) == {"d7", "d14", "d28"}
    assert {"point", "value"} == set(rep["horizons"]["d7"])
    assert rep["classifier"]["auc"] > 0.6
    table = rep["comparison"]["rows"]
    assert set(table) == {"stack_point", "stack_value", "zero", "mean", "lgbm_log1p", "lgbm_tweedie"}
    assert rep["rmsle_diff_ci"]["lo"] <= rep["rmsle_diff_ci"]["diff"] <= rep["rmsle_diff_ci"]["hi"]
    lines = rep["comparison_markdown"].splitlines()
    assert len(lines) == 2 + len(table) and lines[0].count("|") == len(TABLE_METRICS) + 3


def test_compare_with_oracle_shape() -> None:
    y = np.array([0.0, 0, 1, 5, 0, 2])
    t = compare(y, {"m": y * 0.9}, {"zero": np.zeros(6), "mean": np.full(6, y.mean())}, {"oracle": y})
    assert t.kinds == {"m": "model", "zero": "baseline", "mean": "baseline", "oracle": "oracle"}
    want = min(("zero", "mean"), key=lambda n: t.rows[n]["rmsle"])
    assert t.best("rmsle")[0] == want and t.best("gini", "model")[1] == pytest.approx(1.0)
    assert t.best("gini", "oracle") == ("oracle", pytest.approx(1.0))
    json.dumps(t.to_dict())


def test_persist_round_trip(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    Xh, _ = sets["hold"]
    blobs = persist.stack_to_blobs(stack)
    assert all(isinstance(v, bytes) for v in blobs.values())
    back = persist.stack_from_blobs(blobs)
    pd.testing.assert_frame_equal(back.predict(Xh), stack.predict(Xh))
    with pytest.raises(DataError):
        persist.loads(b'{"kind": "buyer_classifier", "format": 99, "state": {}}')
    with pytest.raises(DataError, match="missing"):
        persist.stack_from_blobs({k: v for k, v in blobs.items() if k != "regressor.json"})


def test_stage_functions_with_resampling(sets: dict) -> None:
    (X, L), (Xv, Lv) = sets["train"], sets["val"]
    cfg = load_models_config(overrides={**FAST, "resample": {
        "classifier": {"mode": "resample", "method": "histos", "correction": "prior", "settings": {}},
        "regressor": {"mode": "resample", "method": "hhistus", "correction": "weights", "settings": {}}}})
    plans, info = resample_stage(L, SPEC, cfg)
    json.dumps(info)
    assert info["classifier"]["rows_out"] > len(X) and plans["classifier"].prior_factor > 1
    clf, c_info = train_classifier(X, L, Xv, Lv, SPEC, cfg, plans["classifier"])
    reg, r_info = train_regressor(X, L, Xv, Lv, SPEC, cfg, plans["regressor"])
    json.dumps(c_info)
    json.dumps(r_info)
    assert r_info["train_buyers"] == info["regressor"]["rows_out"]
    assert abs(clf.predict_proba(Xv)[:, 1].mean() - (Lv.iloc[:, 0] > 0).mean()) < 0.03


def test_bad_config_and_inputs_fail_loudly(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="objective"):
        load_models_config(overrides={"regressor": {"objective": "mape"}})
    with pytest.raises(SpecError):
        load_models_config(overrides={"stacker": {"n_folds": 1}})
    with pytest.raises(SpecError, match="no-op"):
        load_models_config(overrides={"resample": {"regressor": {"mode": "weights", "method": "hhistus",
                                                                 "correction": "weights"}}})
    Xh, Lh = sets["hold"]
    with pytest.raises(DataError):
        stack.predict(Xh.drop(columns=["x2"]))
    with pytest.raises(DataError, match="revenue"):
        stack.evaluate_on(Xh, Lh.drop(columns=["iap_revenue_d14"]))


def test_value_head_decision_is_separate_from_the_point_stacker(sets: dict, baselines: dict) -> None:
    (X, L), (Xv, Lv), (Xh, _) = sets["train"], sets["val"], sets["hold"]
    # value head forced in, point stacker forced out: pred_* is the hurdle's, value_<primary> the head's
    cfg = load_models_config(overrides={**FAST, "classifier": {"n_seeds": 2},
                                        "stacker": {**FAST["stacker"], "min_gain": 1e9, "value_min_gain": -1.0}})
    st = train_stack(X, L, Xv, Lv, SPEC, cfg, base_models=baselines)
    d = st.decisions["stacker"]
    assert d["chosen"] == "hurdle" and d["value"] == "value_head"
    assert {"value_head_val_gini", "hurdle_value_val_gini", "value_rounds"} <= set(d)
    assert st.stacker is not None and not st.stacker.use_point and st.has_value_head
    assert len(st.classifier.extra_boosters_) == 1
    P = st.predict(Xh)
    comp = st.components(Xh)
    np.testing.assert_allclose(P["value_d7"], st.stacker.predict_value(st.meta_parts(Xh, comp)))
    hurdle = np.expm1(st.hurdle_log1p(comp["p"], comp["m_log1p"]))
    np.testing.assert_allclose(P["pred_d14"], np.maximum(hurdle[:, 1], P["pred_d7"]))
    V = P[["value_d7", "value_d14", "value_d28"]].to_numpy()
    assert (np.diff(V, axis=1) >= 0).all() and (V >= 0).all()
    back = persist.stack_from_blobs(persist.stack_to_blobs(st))
    pd.testing.assert_frame_equal(back.predict(Xh), P)
    # and forced out: no value head kept
    cfg = load_models_config(overrides={**FAST, "stacker": {**FAST["stacker"], "value_min_gain": 1.0}})
    st = train_stack(X, L, Xv, Lv, SPEC, cfg, base_models=baselines)
    assert st.decisions["stacker"]["value"] == "hurdle" and not st.has_value_head
    if st.stacker is not None:
        assert st.stacker.use_point


def test_dense_matrix_predictions_equal_the_dataframe_path(stack, sets: dict, baselines: dict) -> None:  # type: ignore[no-untyped-def]
    """One float conversion for every booster gives bit-identical predictions; null and unseen
    category values behave as in LightGBM's own pandas conversion."""
    from ltv_core.models.lgb import predict_booster
    from ltv_core.models.matrix import DenseMatrix

    Xh, _ = sets["hold"]
    X = Xh.copy()
    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    assert cats, "the stand-in data must have categorical columns"
    X.loc[X.index[:50], cats[0]] = None  # nulls -> code -1 -> NaN
    D = DenseMatrix.from_frame(X)
    assert D.values.shape == X.shape and np.isnan(D.values[:50, list(X.columns).index(cats[0])]).all()
    booster = stack.classifier.booster_
    np.testing.assert_array_equal(predict_booster(booster, D), booster.predict(X))
    reg = [b.predict(X) for b in stack.regressor.boosters_]
    np.testing.assert_array_equal(np.column_stack([predict_booster(b, D) for b in stack.regressor.boosters_]),
                                  np.column_stack(reg))
    # the whole stack: DataFrame in, same frame as before the dense path existed (per-booster pandas)
    pd.testing.assert_frame_equal(stack.predict(X), stack.predict(D))
    b = baselines["lgbm_log1p"]
    np.testing.assert_array_equal(b.predict(D), b.predict(X))


def test_dense_matrix_falls_back_when_category_levels_differ(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    from ltv_core.models.lgb import predict_booster
    from ltv_core.models.matrix import DenseMatrix

    Xh, _ = sets["hold"]
    X = Xh.copy()
    c = next(c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype))
    # same values, levels in another order: codes differ, so the dense values must not be used
    X[c] = X[c].cat.reorder_categories(list(reversed(X[c].cat.categories)))
    D = DenseMatrix.from_frame(X)
    booster = stack.classifier.booster_
    np.testing.assert_array_equal(predict_booster(booster, D), booster.predict(X))
    np.testing.assert_array_equal(predict_booster(booster, D), booster.predict(Xh))


def test_dense_matrix_in_another_column_order_is_reordered(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    Xh, _ = sets["hold"]
    from ltv_core.models.matrix import DenseMatrix

    shuffled = Xh[list(reversed(Xh.columns))]
    pd.testing.assert_frame_equal(stack.predict(DenseMatrix.from_frame(shuffled)), stack.predict(Xh))


def test_dense_matrix_from_values_matches_the_category_frame(stack, sets: dict) -> None:  # type: ignore[no-untyped-def]
    """The scoring path builds the float matrix itself (category codes as floats, NaN = null; no
    category frame); it must predict exactly like the category frame, and build that frame only on
    demand."""
    from ltv_core.models.matrix import DenseMatrix

    Xh = sets["hold"][0].reset_index(drop=True)
    cats = {c: list(Xh[c].cat.categories) for c in Xh.columns if isinstance(Xh[c].dtype, pd.CategoricalDtype)}
    codes = Xh.copy()
    for c in cats:
        codes[c] = Xh[c].cat.codes.astype(np.int32)
    codes.iloc[:20, codes.columns.get_loc(next(iter(cats)))] = -1
    values = codes.to_numpy(dtype=np.float32)
    for c in cats:
        j = codes.columns.get_loc(c)
        values[values[:, j] < 0, j] = np.nan
    D = DenseMatrix.from_values(values, list(codes.columns), cats)
    assert "frame" not in D.__dict__  # not built yet
    expected = Xh.copy()
    expected.iloc[:20, expected.columns.get_loc(next(iter(cats)))] = None
    pd.testing.assert_frame_equal(D.frame, expected)
    pd.testing.assert_frame_equal(stack.predict(D), stack.predict(expected))
    bad = values.copy()
    bad[0, codes.columns.get_loc(next(iter(cats)))] = len(cats[next(iter(cats))])
    with pytest.raises(DataError, match="category codes"):
        DenseMatrix.from_values(bad, list(codes.columns), cats)


def test_param_search_keeps_the_lowest_validation_loss(sets: dict) -> None:
    """Each component picks its tree shape on its own validation loss; every candidate is recorded
    and the kept model is the one with the lowest loss (recomputed here)."""
    from ltv_core import metrics
    from ltv_core.models.training import fit_baseline_models

    (X, L), (Xv, Lv) = sets["train"], sets["val"]
    grid = [{}, {"num_leaves": 2, "learning_rate": 0.3}, {"num_leaves": 63, "min_data_in_leaf": 5}]
    cfg = load_models_config(overrides={**FAST, "classifier": {"param_search": grid},
                                        "regressor": {"params": {"min_data_in_leaf": 20}, "param_search": grid},
                                        "baselines": {"param_search": grid}})
    clf, info = train_classifier(X, L, Xv, Lv, SPEC, cfg)
    json.dumps(info)
    losses = [c["loss"] for c in info["param_search"]["candidates"]]
    assert [c["params"] for c in info["param_search"]["candidates"]] == grid
    assert info["param_search"]["chosen"] == grid[int(np.argmin(losses))]
    yv = (Lv.iloc[:, 0] > 0).to_numpy(float)
    assert metrics.log_loss(yv, clf.predict_raw(Xv)) == pytest.approx(min(losses))
    assert clf.params["num_leaves"] == {**cfg.lgb(), **info["param_search"]["chosen"]}["num_leaves"]

    reg, r_info = train_regressor(X, L, Xv, Lv, SPEC, cfg)
    r_losses = [c["loss"] for c in r_info["param_search"]["candidates"]]
    assert r_info["validation_rmse_log1p_buyers"][0] == pytest.approx(min(r_losses))

    base, searches = fit_baseline_models(X, L.iloc[:, 0].to_numpy(), Xv, Lv.iloc[:, 0].to_numpy(), cfg)
    assert set(base) == set(cfg.baselines.names) and set(searches) == {"lgbm_log1p", "lgbm_tweedie"}
    for name, search in searches.items():
        got = base[name].validation_loss(Xv, Lv.iloc[:, 0].to_numpy())
        assert got == pytest.approx(min(c["loss"] for c in search["candidates"])), name


def test_stacker_oof_models_use_each_components_own_params(sets: dict, baselines: dict) -> None:
    from ltv_core.models.stacker import Stacker

    (X, L), (Xv, Lv) = sets["train"], sets["val"]
    forced = load_models_config(overrides={**FAST, "stacker": {**FAST.get("stacker", {}), "min_gain": -1e9}})
    kept = train_stack(X, L, Xv, Lv, SPEC, forced, base_models=baselines)
    assert kept.stacker is not None and kept.decisions["stacker"]["chosen"] == "stacker"
    lp = kept.stacker.learner_params
    assert lp["p"] == kept.classifier.params and lp["m"] == kept.regressor.params
    again = Stacker.from_state(json.loads(json.dumps(kept.stacker.to_state())))
    assert again.learner_params == lp


def test_log_loss_and_tweedie_deviance() -> None:
    from ltv_core import metrics

    y = np.array([0.0, 1.0, 1.0, 0.0])
    p = np.array([0.1, 0.8, 0.6, 0.3])
    expected = -np.mean(np.log([0.9, 0.8, 0.6, 0.7]))
    assert metrics.log_loss(y, p) == pytest.approx(expected)
    r = np.array([0.5, 2.0, 5.0])
    assert metrics.tweedie_deviance(r, r, 1.5) == pytest.approx(0.0, abs=1e-12)
    assert metrics.tweedie_deviance(r, np.array([1.0, 1.0, 1.0]), 1.5) > 0
    assert metrics.tweedie_deviance(np.zeros(2), np.array([1.0, 4.0]), 1.5) == pytest.approx(2 * (2 + 4) / 2)
    with pytest.raises(ValueError):
        metrics.tweedie_deviance(r, r, 2.0)


def test_booster_on_few_features_predicts_on_their_values_alone() -> None:
    """A booster that splits on few of the columns gets a CSR matrix of just those columns' values
    (zeros, NaN and category codes included); its predictions are bit-identical to the dense
    ones. A booster on most columns, and any call with extra predict arguments, stay dense."""
    import lightgbm as lgb

    from ltv_core.models.lgb import RESTRICTED_MAX_SHARE, booster_split_features, predict_booster
    from ltv_core.models.matrix import DenseMatrix

    rng = np.random.default_rng(0)
    n, k = 3000, 40
    X = pd.DataFrame(rng.normal(size=(n, k)).astype(np.float32), columns=[f"f{i}" for i in range(k)])
    X.iloc[rng.random(n) < 0.2, 0] = np.nan
    X.iloc[rng.random(n) < 0.3, 1] = 0.0
    X["cat"] = pd.Categorical(rng.choice(["a", "b", "c", "d"], n))
    X.loc[X.index[:100], "cat"] = None
    y = (X["f0"].fillna(-1) + X["f1"] + (X["cat"] == "b") + rng.normal(size=n) * 0.1).to_numpy()
    few = lgb.train({"objective": "regression", "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 5,
                     "max_cat_to_onehot": 8}, lgb.Dataset(X, y), num_boost_round=5)
    used = booster_split_features(few)
    assert 0 < len(used) <= RESTRICTED_MAX_SHARE * X.shape[1]
    D = DenseMatrix.from_frame(X)
    got = predict_booster(few, D)
    assert list(D._restricted) == [np.asarray(used, np.int32).tobytes()]  # the restricted path was taken
    np.testing.assert_array_equal(got, few.predict(X))
    np.testing.assert_array_equal(got, few.predict(D.values))
    R = D.restricted(used)
    assert R.shape == D.values.shape and R.nnz == n * len(used)
    assert np.isnan(R.toarray()[:, 0]).sum() == np.isnan(D.values[:, 0]).sum()
    # extra predict arguments: the dense matrix (pred_contrib on a sparse input answers sparse)
    contrib = predict_booster(few, D, pred_contrib=True)
    assert isinstance(contrib, np.ndarray) and contrib.shape == (n, X.shape[1] + 1)
    # a booster without a split (a constant head): no column stored at all
    const = lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": n}, lgb.Dataset(X, y),
                      num_boost_round=2)
    assert len(booster_split_features(const)) == 0
    np.testing.assert_array_equal(predict_booster(const, D), const.predict(X))
    assert D.restricted([]).nnz == 0
    # a booster splitting on most columns predicts on the dense values
    many = lgb.train({"objective": "regression", "num_leaves": 31, "verbose": -1, "min_data_in_leaf": 5,
                      "feature_fraction": 0.5, "seed": 1},
                     lgb.Dataset(X, X[[f"f{i}" for i in range(k)]].sum(axis=1).to_numpy()), num_boost_round=30)
    assert len(booster_split_features(many)) > RESTRICTED_MAX_SHARE * X.shape[1]
    D2 = DenseMatrix.from_frame(X)
    np.testing.assert_array_equal(predict_booster(many, D2), many.predict(X))
    assert not D2._restricted
