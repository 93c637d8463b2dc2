"""Orchestration of the stack on in-memory frames, in stage-sized functions (one per Airflow task).

Data flow between the three time-ordered sets (rows of every frame must be in time order):

    training   -> resample_stage -> train_classifier, train_regressor (fits), fit_stacker (OOF fits)
    validation -> early stopping of every booster; calibration choice + fit; regressor smearing;
                  stacker-vs-hurdle decision; gate search
    holdout    -> FittedStack.evaluate_on only (metrics, bootstrap CIs, promotion evidence)

Stage order: resample -> train_classifier -> train_regressor -> fit_stacker -> optimize_gate. The
gate comes last because it must be searched on the very prediction it will gate at inference: a
gate searched on a differently composed prediction would make its "never worse than no gate on
validation" guarantee about another prediction than the one served.

The resampling plans are ``plans.resample_stage``, the fitted stack and its outputs are
``stack.FittedStack``, the candidate search is ``search.param_search``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd

from ltv_core import metrics
from ltv_core.models.baselines import Baseline
from ltv_core.models.cohorts import CohortModel
from ltv_core.models.intervals import RevenueQuantiles
from ltv_core.models.race import INCUMBENT, contender_outputs, run_race
from ltv_core.models.classifier import BuyerClassifier
from ltv_core.models.config import ModelsConfig, load_models_config
from ltv_core.models.gate import Gate, optimize_gate
from ltv_core.models.labels import check_rows, primary_index, revenue_matrix
from ltv_core.models.plans import ResamplePlan, resample_stage
from ltv_core.models.regressor import MultiHorizonRegressor
from ltv_core.models.search import param_search
from ltv_core.models.stack import FittedStack, assemble_stack
from ltv_core.models.stacker import Stacker
from ltv_core.spec import DatasetSpec

__all__ = [
    "fit_baseline_models",
    "fit_candidates",
    "fit_intervals",
    "fit_stacker",
    "optimize_gate_stage",
    "race_outputs",
    "train_classifier",
    "train_regressor",
    "train_stack",
]


# --- baselines ------------------------------------------------------------------------------------
def fit_baseline_models(X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray,
                        config: ModelsConfig) -> tuple[dict[str, Baseline], dict[str, Any]]:
    """The configured baselines; each LightGBM one searched over ``baselines.param_search`` by its
    own validation loss, exactly as the stack's components are."""
    bc = config.baselines
    out: dict[str, Baseline] = {}
    searches: dict[str, Any] = {}
    for name in bc.names:
        def fit(extra: dict[str, Any], name: str = name) -> tuple[Baseline, float]:
            model = Baseline(name, config.lgb(extra), config.num_boost_round, config.early_stopping_rounds,
                             bc.tweedie_variance_power, config.seed).fit(X, y, X_val, y_val)
            return model, model.validation_loss(X_val, y_val)
        if name in ("zero", "mean"):
            out[name] = fit({})[0]
            continue
        out[name], searches[name] = param_search(bc.param_search, fit, "own validation loss", f"baseline {name}")
    return out, searches


def fit_candidates(X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray,
                   config: ModelsConfig) -> dict[str, CohortModel]:
    """The other strategies the holdout table compares (and the stacker may use): today the
    revenue-cohort model (``models/cohorts.py``) when ``cohorts.enabled``."""
    cc = config.cohorts
    if not cc.enabled:
        return {}
    model = CohortModel(cc.cuts, config.lgb(cc.params), config.lgb(cc.regressor_params), cc.min_rows,
                        config.num_boost_round, config.early_stopping_rounds, config.seed + 11)
    return {"cohorts": model.fit(X, y, X_val, y_val)}


# --- stage 2: classifier --------------------------------------------------------------------------
def _take(X: pd.DataFrame, idx: np.ndarray | None) -> pd.DataFrame:
    return X if idx is None else X.iloc[idx]


def train_classifier(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame,
                     labels_val: pd.DataFrame, spec: DatasetSpec, config: ModelsConfig,
                     plan: ResamplePlan | None = None) -> tuple[BuyerClassifier, dict[str, Any]]:
    """Buyer classifier on the (resampled) training window; early stopping and calibration on
    validation. Returns the model and its validation metrics (raw and cross-fitted calibrated)."""
    check_rows(X_train, labels_train, "train_classifier(train)")
    check_rows(X_val, labels_val, "train_classifier(validation)")
    k = primary_index(spec)
    b = (revenue_matrix(labels_train, spec)[:, k] > 0).astype(np.float64)
    b_val = (revenue_matrix(labels_val, spec)[:, k] > 0).astype(np.float64)
    plan = plan or ResamplePlan(None, None, 1.0, {"mode": "off"})
    t0 = time.perf_counter()
    idx = plan.indices

    def fit(extra: dict[str, Any]) -> tuple[BuyerClassifier, float]:
        clf = BuyerClassifier(params=config.lgb({**config.classifier.params, **extra}),
                              num_boost_round=config.num_boost_round,
                              early_stopping_rounds=config.early_stopping_rounds,
                              calibration_methods=tuple(config.classifier.calibration_methods),
                              calibration_folds=config.classifier.calibration_folds, random_state=config.seed,
                              n_seeds=config.classifier.n_seeds)
        clf.fit(_take(X_train, idx), b if idx is None else b[idx], eval_set=(X_val, b_val),
                sample_weight=plan.weights, prior_factor=plan.prior_factor)
        return clf, metrics.log_loss(b_val, clf.predict_raw(X_val))

    clf, search = param_search(config.classifier.param_search, fit, "validation log loss", "classifier")
    info = {"seconds": round(time.perf_counter() - t0, 2), "calibration": clf.calibration_method_,
            "calibration_brier_crossfit": clf.calibration_scores_, **clf.validation_metrics_,
            "resample": plan.info, "param_search": search}
    return clf, info


# --- stage 3: regressor ---------------------------------------------------------------------------
def train_regressor(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame,
                    labels_val: pd.DataFrame, spec: DatasetSpec, config: ModelsConfig,
                    plan: ResamplePlan | None = None) -> tuple[MultiHorizonRegressor, dict[str, Any]]:
    """Multi-horizon regressor on the primary buyers of training (HHISTUS plan positions refer to
    that buyer subset), early-stopped and smearing-fitted on validation buyers."""
    check_rows(X_train, labels_train, "train_regressor(train)")
    check_rows(X_val, labels_val, "train_regressor(validation)")
    k = primary_index(spec)
    Y, Y_val = revenue_matrix(labels_train, spec), revenue_matrix(labels_val, spec)
    buyers, buyers_val = np.flatnonzero(Y[:, k] > 0), np.flatnonzero(Y_val[:, k] > 0)
    plan = plan or ResamplePlan(None, None, 1.0, {"mode": "off"})
    rows = buyers if plan.indices is None else buyers[plan.indices]
    rc = config.regressor
    t0 = time.perf_counter()
    y_val_log = np.log1p(Y_val[buyers_val])

    def fit(extra: dict[str, Any]) -> tuple[MultiHorizonRegressor, float]:
        reg = MultiHorizonRegressor(horizons=tuple(h.name for h in spec.labels.horizons), objective=rc.objective,
                                    params=config.lgb({**rc.params, **extra}),
                                    increment_params=rc.increment_params or None,
                                    num_boost_round=config.num_boost_round,
                                    early_stopping_rounds=config.early_stopping_rounds, huber_delta=rc.huber_delta,
                                    tweedie_variance_power=rc.tweedie_variance_power, monotone=rc.monotone or None,
                                    random_state=config.seed + 1)
        reg.fit(X_train.iloc[rows], Y[rows], eval_set=(X_val.iloc[buyers_val], Y_val[buyers_val]),
                sample_weight=plan.weights)
        L = reg.predict_log1p(X_val.iloc[buyers_val])
        return reg, float(np.sqrt(np.mean((L[:, k] - y_val_log[:, k]) ** 2)))

    reg, search = param_search(rc.param_search, fit, "validation RMSE of log1p revenue (buyers, primary)",
                               "regressor")
    L = reg.predict_log1p(X_val.iloc[buyers_val])
    info = {"seconds": round(time.perf_counter() - t0, 2), "best_iterations": reg.best_iterations_,
            "smearing": reg.smearing_, "train_buyers": int(len(rows)), "validation_buyers": int(len(buyers_val)),
            "validation_rmse_log1p_buyers": np.sqrt(np.mean((L - y_val_log) ** 2, axis=0)).tolist(),
            "resample": plan.info, "param_search": search}
    return reg, info



# --- stage 4: stacker -----------------------------------------------------------------------------
def fit_stacker(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame, labels_val: pd.DataFrame,
                spec: DatasetSpec, config: ModelsConfig, stack: FittedStack,
                base_models: dict[str, Baseline] | None = None,
                contenders: dict[str, Any] | None = None) -> tuple[FittedStack, dict[str, Any]]:
    """OOF stacker vs the plain hurdle on validation; keeps the better one (decision recorded);
    then the candidates race (``race_outputs``) of the result against ``contenders``.

    Two separate decisions on validation: the point meta-learner (``chosen``: by RMSLE) and the
    value head (``value``: by normalized Gini of value_<primary> against the hurdle value with
    cross-fitted calibration). The stacker is kept when either wins; ``Stacker.use_point`` and
    its value booster record which part is used.

    ``base_models`` may pass already-fitted full-window LightGBM baselines ('lgbm_log1p',
    'lgbm_tweedie', fitted on the same windows) so they are not fitted twice.
    """
    k = stack.primary_index
    y_val = revenue_matrix(labels_val, spec)[:, k]
    comp_val = stack.components(X_val)
    p_cf = stack.classifier.calibrator_.predict(comp_val["p_raw"])
    if len(np.unique(y_val > 0)) == 2:  # cross-fitted calibration: the hurdle is not scored in-sample
        p_cf = stack.classifier.crossfit_proba(comp_val["p_raw"], (y_val > 0).astype(float))
    hurdle_val = np.expm1(stack.hurdle_log1p(p_cf, comp_val["m_log1p"])[:, k])
    hurdle_value_val = p_cf * comp_val["m_mean"][:, k] + (1 - p_cf) * stack.late_mean[k]
    info: dict[str, Any] = {"hurdle_val_rmsle": metrics.rmsle(y_val, hurdle_val)}
    if not config.stacker.enabled:
        stack.decisions["stacker"] = {"chosen": "hurdle", "reason": "stacker disabled", **info}
        return race_outputs(stack, X_val, y_val, {"point": hurdle_val, "value": hurdle_value_val}, contenders,
                            config, info)
    t0 = time.perf_counter()
    sc = config.stacker
    y = revenue_matrix(labels_train, spec)[:, k]
    bases = _base_models(X_train, y, X_val, y_val, config, sc.learners, base_models or {})
    own = {"p": stack.classifier.params, "m": stack.regressor.params,
           "direct": getattr(bases.get("direct_log1p"), "params", None),
           "tweedie": getattr(bases.get("tweedie"), "params", None)}
    stacker = Stacker(learners=sc.learners, n_folds=sc.n_folds, meta=sc.meta, params=config.lgb(),
                      random_state=config.seed + 5, learner_params={part: v for part, v in own.items() if v})
    rounds = {"p": stack.classifier.best_iteration_, "m": stack.regressor.best_iterations_[0],
              "direct": bases["direct_log1p"].best_iteration if "direct_log1p" in bases else 0,
              "tweedie": bases["tweedie"].best_iteration if "tweedie" in bases else 0}
    oof = stacker.oof_parts(X_train, y, rounds, templates=bases)
    stacker.fit_meta(oof, y)
    candidate = dataclasses.replace(stack, stacker=stacker, base_models=bases)
    stacked_val = np.expm1(candidate.stacked_primary(X_val, comp_val))
    info.update({"stacker_val_rmsle": metrics.rmsle(y_val, stacked_val), "seconds": round(time.perf_counter() - t0, 2),
                 "oof_rounds": rounds, "meta": sc.meta, "learners": list(sc.learners),
                 "meta_rounds": getattr(stacker, "meta_rounds_", None),
                 "stacker_val_gini": metrics.normalized_gini(y_val, stacked_val),
                 "hurdle_val_gini": metrics.normalized_gini(y_val, hurdle_val)})
    keep = info["stacker_val_rmsle"] < info["hurdle_val_rmsle"] - sc.min_gain
    info["chosen"] = "stacker" if keep else "hurdle"
    keep_value = False
    if sc.value_head:
        t1 = time.perf_counter()
        stacker.fit_value(oof, y, variance_power=sc.value_variance_power, value_params=sc.value_params or None)
        head_val = stacker.predict_value(candidate.meta_parts(X_val, comp_val))
        info.update({"value_head_val_gini": metrics.normalized_gini(y_val, head_val),
                     "hurdle_value_val_gini": metrics.normalized_gini(y_val, hurdle_value_val),
                     "value_rounds": stacker.value_rounds_, "value_seconds": round(time.perf_counter() - t1, 2)})
        keep_value = info["value_head_val_gini"] > info["hurdle_value_val_gini"] + sc.value_min_gain
    info["value"] = "value_head" if keep_value else "hurdle"
    if not keep_value:
        stacker.value_booster_ = None
    stacker.use_point = keep
    chosen = candidate if keep or keep_value else stack
    chosen.decisions["stacker"] = info
    shipped = {"point": stacked_val if keep else hurdle_val, "value": head_val if keep_value else hurdle_value_val}
    return race_outputs(chosen, X_val, y_val, shipped, contenders, config, info)


def race_outputs(stack: FittedStack, X_val: pd.DataFrame, y_val: np.ndarray, shipped: dict[str, np.ndarray],
                 contenders: dict[str, Any] | None, config: ModelsConfig,
                 info: dict[str, Any]) -> tuple[FittedStack, dict[str, Any]]:
    """The candidates race (models/race.py) of the stack's validation outputs ``shipped`` (the same
    out-of-sample predictions its own decisions used) against the configured ``contenders``; a
    winner is attached to the stack as a base model and named in ``stack.race``."""
    rc = config.race
    pool = {n: m for n, m in (contenders or {}).items() if n in rc.contenders}
    if not rc.enabled or not pool:
        info["race"] = {"enabled": rc.enabled, "winners": {"point": "stack", "value": "stack"},
                        "reason": "race disabled" if not rc.enabled else "no contender fitted"}
        stack.decisions["race"] = info["race"]
        return stack, info
    result = run_race(y_val, shipped, contender_outputs(pool, X_val), margin_rmsle=rc.margin_rmsle,
                      margin_gini=rc.margin_gini, n_boot=rc.n_boot, level=rc.level, seed=config.seed)
    race = {output: name for output, name in result.winners.items() if name != INCUMBENT}
    if race:
        stack = dataclasses.replace(stack, base_models={**stack.base_models, **{n: pool[n] for n in race.values()}},
                                    race=race)
    info["race"] = {"enabled": True, **result.to_dict()}
    stack.decisions["race"] = info["race"]
    return stack, info


def _base_models(X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray, config: ModelsConfig,
                 learners: list[str], given: dict[str, Any]) -> dict[str, Any]:
    """Full-window direct models the stacker needs at inference (reusing fitted baselines and
    the fitted cohort model)."""
    out: dict[str, Any] = {}
    if "cohorts" in learners:
        out["cohorts"] = given.get("cohorts") or fit_candidates(X, y, X_val, y_val, config)["cohorts"]
    for learner, name in (("direct_log1p", "lgbm_log1p"), ("tweedie", "lgbm_tweedie")):
        if learner not in learners:
            continue
        if name in given:
            out[learner] = given[name]
            continue
        out[learner] = fit_baseline_models(X, y, X_val, y_val, config.model_copy(update={
            "baselines": config.baselines.model_copy(update={"names": [name]})}))[0][name]
    return out


# --- stage 5: gate --------------------------------------------------------------------------------
def optimize_gate_stage(stack: FittedStack, X_val: pd.DataFrame, labels_val: pd.DataFrame, spec: DatasetSpec,
                        config: ModelsConfig) -> tuple[Gate, dict[str, Any]]:
    """Search the gate on the validation predictions of the assembled (ungated) stack."""
    k = stack.primary_index
    y_val = revenue_matrix(labels_val, spec)[:, k]
    gc = config.gate
    if not gc.enabled:
        return Gate(metric=gc.metric), {"enabled": False}
    comp = stack.components(X_val)
    point = np.expm1(stack.point_log1p(X_val, comp)[:, k])
    gate = optimize_gate(y_val, comp["p"], point, whale_score=comp["m_mean"][:, k], metric=gc.metric,
                         target_zero_rate=gc.target_zero_rate, min_improvement=gc.min_improvement)
    return gate, {"enabled": True, **gate.to_dict()}


def fit_intervals(stack: FittedStack, X_val: pd.DataFrame, labels_val: pd.DataFrame, spec: DatasetSpec,
                  config: ModelsConfig) -> tuple[RevenueQuantiles | None, dict[str, Any]]:
    """Quantiles of primary revenue from the stack's calibrated p and buyers' E[log1p y], their
    residual spread learned on the validation window (models/intervals.py)."""
    ic = config.intervals
    if not ic.enabled:
        return None, {"enabled": False}
    k = stack.primary_index
    y_val = revenue_matrix(labels_val, spec)[:, k]
    comp = stack.components(X_val)
    model = RevenueQuantiles(ic.quantiles, ic.whale_threshold, ic.bins, ic.whale_quantile)
    model.fit(comp["p"], comp["m_log1p"][:, k], y_val)
    return model, {"enabled": True, "quantiles": list(ic.quantiles), "whale_threshold": model.whale_threshold_,
                   "bins": len(model.edges_) + 1}


# --- everything -----------------------------------------------------------------------------------
def train_stack(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame, labels_val: pd.DataFrame,
                spec: DatasetSpec, config: ModelsConfig | None = None,
                base_models: dict[str, Any] | None = None, contenders: dict[str, Any] | None = None) -> FittedStack:
    """resample -> classifier -> regressor -> stacker (+ the candidates race) -> gate; rows of both
    frames in time order. ``contenders`` default to the fitted ``base_models`` given."""
    config = config or load_models_config()
    plans, r_info = resample_stage(labels_train, spec, config)
    clf, c_info = train_classifier(X_train, labels_train, X_val, labels_val, spec, config, plans["classifier"])
    reg, g_info = train_regressor(X_train, labels_train, X_val, labels_val, spec, config, plans["regressor"])
    stack = assemble_stack(clf, reg, labels_train, spec)
    stack, s_info = fit_stacker(X_train, labels_train, X_val, labels_val, spec, config, stack, base_models,
                                base_models if contenders is None else contenders)
    gate, gate_info = optimize_gate_stage(stack, X_val, labels_val, spec, config)
    stack.gate = gate
    stack.intervals, i_info = fit_intervals(stack, X_val, labels_val, spec, config)
    stack.metrics = {"resample": r_info, "classifier": c_info, "regressor": g_info, "stacker": s_info,
                     "gate": gate_info, "intervals": i_info}
    return stack
