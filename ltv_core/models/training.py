"""Orchestration of the stack on in-memory frames, in stage-sized functions (one per Airflow task).

Data flow between the three time-ordered sets (rows of every frame must be in time order):

    training   -> resample_stage -> train_classifier, train_regressor (fits), fit_stacker (OOF fits)
    validation -> early stopping of every booster; calibration choice + fit; regressor smearing;
                  stacker-vs-hurdle decision; gate search
    holdout    -> FittedStack.evaluate_on only (metrics, bootstrap CIs, promotion evidence)

Stage order: resample -> train_classifier -> train_regressor -> fit_stacker -> optimize_gate. The
gate comes last because it must be searched on the very prediction it will gate at inference (the
seed searched it on a differently composed prediction, seeds_report §4.7).

Outputs per row (``FittedStack.predict``), for each horizon h of the spec:

* ``pred_<h>``: the RMSLE-optimal point expm1(E[log1p y_h | x]) (stacked/hurdle, then gated for the
  primary horizon), where the hurdle part is E[log1p y | x] = p * E[log1p y | buyer, x] + (1-p) * L_h
* ``value_<h>``: the expected revenue E[y_h | x] = p * E[y_h | buyer, x] + (1-p) * Lv_h, with the
  buyers' mean from Duan smearing (NOT p * expm1(pred), which is biased low by Jensen's inequality).
  This is the column to bid, rank and sum with. When the stacker's value head (a Tweedie
  meta-learner on the OOF meta-features, ``Stacker.fit_value``) beats this hurdle value in
  validation Gini, it replaces the primary level (longer horizons keep their hurdle distance).
* ``p_buyer``: calibrated P(revenue_primary > 0 | x)

L_h / Lv_h are the training means of log1p(y_h) / y_h over rows that did not buy by the primary
horizon (late buyers; 0 for horizons up to the primary). Both columns are monotone across horizons
for every row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ltv_core import metrics
from ltv_core.errors import DataError
from ltv_core.models import DenseMatrix
from ltv_core.models.baselines import Baseline, compare
from ltv_core.models.classifier import BuyerClassifier
from ltv_core.models.config import ModelsConfig, ResampleStageConfig, load_models_config
from ltv_core.models.gate import Gate, optimize_gate
from ltv_core.models.regressor import MultiHorizonRegressor
from ltv_core.models.resample import design_weights, hhistus, histos, odds_factor
from ltv_core.models.stacker import Stacker
from ltv_core.spec import DatasetSpec

__all__ = [
    "FittedStack",
    "ModelsConfig",
    "ResamplePlan",
    "assemble_stack",
    "feature_gain",
    "fit_baseline_models",
    "fit_stacker",
    "load_models_config",
    "param_search",
    "optimize_gate_stage",
    "resample_stage",
    "train_classifier",
    "train_regressor",
    "train_stack",
]

log = logging.getLogger(__name__)

# --- labels -----------------------------------------------------------------------------------------
def revenue_matrix(labels: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """(rows, horizons) revenue in the spec's horizon order; fails naming a missing column."""
    cols = [h.revenue for h in spec.labels.horizons]
    missing = [c for c in cols if c not in labels.columns]
    if missing:
        raise DataError(f"labels frame lacks revenue columns {missing} (spec {spec.name!r})")
    Y = labels[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(Y).all() or (Y < 0).any():
        raise DataError("revenue labels must be finite and >= 0")
    return Y


def _primary_index(spec: DatasetSpec) -> int:
    return [h.name for h in spec.labels.horizons].index(spec.labels.primary)


def _check_rows(X: pd.DataFrame, labels: pd.DataFrame, what: str) -> None:
    if len(X) != len(labels):
        raise DataError(f"{what}: feature matrix has {len(X)} rows but labels have {len(labels)}")
    if len(X) == 0:
        raise DataError(f"{what}: empty window")


# --- stage 1: resampling plans --------------------------------------------------------------------
@dataclass(frozen=True)
class ResamplePlan:
    """Rows to fit on (None: all, in order), their fit weights (None: unweighted), the odds factor
    of the emphasis (classifier prior correction) and a JSON-able summary."""

    indices: np.ndarray | None
    weights: np.ndarray | None
    prior_factor: float
    info: dict[str, Any]


def _plan(stage: ResampleStageConfig, y: np.ndarray, seed: int) -> ResamplePlan:
    if stage.mode == "off":
        return ResamplePlan(None, None, 1.0, {"mode": "off"})
    settings = dict(stage.settings)
    if stage.mode == "weights":
        emphasis = design_weights(stage.method, y, settings)
        factor = odds_factor(y, emphasis) if stage.correction == "prior" else 1.0
        w = emphasis if stage.correction in ("prior", "none") else None
        return ResamplePlan(None, w, factor, {"mode": "weights", "method": stage.method, "odds_factor": factor})
    res = (histos if stage.method == "histos" else hhistus)(y, seed=seed, **settings)
    appearances = np.bincount(res.indices, minlength=len(y)).astype(np.float64)
    factor = odds_factor(y, appearances) if stage.correction == "prior" else 1.0
    w = res.weights if stage.correction == "weights" else None
    return ResamplePlan(res.indices, w, factor, {"mode": "resample", "correction": stage.correction,
                                                 "odds_factor": factor, **res.info})


def resample_stage(labels_train: pd.DataFrame, spec: DatasetSpec,
                   config: ModelsConfig) -> tuple[dict[str, ResamplePlan], dict[str, Any]]:
    """Resampling plans of the training window: 'classifier' (over all rows, on primary revenue)
    and 'regressor' (over primary buyers, positions relative to the buyer subset)."""
    Y = revenue_matrix(labels_train, spec)
    y = Y[:, _primary_index(spec)]
    buyers = np.flatnonzero(y > 0)
    plans = {"classifier": _plan(config.resample.classifier, y, config.seed + 11),
             "regressor": _plan(config.resample.regressor, y[buyers], config.seed + 12)}
    return plans, {k: v.info for k, v in plans.items()}


# --- validation search over parameter candidates -----------------------------------------------------
def param_search(candidates: list[dict[str, Any]], fit: Any, criterion: str, what: str) -> tuple[Any, dict[str, Any]]:
    """Fit ``fit(extra_params) -> (model, validation loss)`` for every candidate, keep the lowest.

    Why: the best tree shape differs between components (the buyer classifier's logit is close to
    additive, a log1p regression of p * revenue is not) and between data sets, so each component
    picks it on its own validation loss instead of one shared guess. Ties keep the earlier
    candidate; the record lists every candidate's loss and time."""
    tried, best, best_i = [], None, -1
    for i, extra in enumerate(candidates or [{}]):
        t0 = time.perf_counter()
        model, loss = fit(extra)
        tried.append({"params": extra, "loss": float(loss), "seconds": round(time.perf_counter() - t0, 2)})
        log.info("%s candidate %s: %s %.6f", what, extra or "{} (config params)", criterion, loss)
        if loss < (tried[best_i]["loss"] if best is not None else np.inf):
            best, best_i = model, i
    if best is None:
        raise DataError(f"{what}: no parameter candidate gave a finite {criterion}: {tried}")
    return best, {"criterion": criterion, "candidates": tried, "chosen": tried[best_i]["params"]}


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


# --- stage 2: classifier --------------------------------------------------------------------------
def _take(X: pd.DataFrame, idx: np.ndarray | None) -> pd.DataFrame:
    return X if idx is None else X.iloc[idx]


def train_classifier(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame,
                     labels_val: pd.DataFrame, spec: DatasetSpec, config: ModelsConfig,
                     plan: ResamplePlan | None = None) -> tuple[BuyerClassifier, dict[str, Any]]:
    """Buyer classifier on the (resampled) training window; early stopping and calibration on
    validation. Returns the model and its validation metrics (raw and cross-fitted calibrated)."""
    _check_rows(X_train, labels_train, "train_classifier(train)")
    _check_rows(X_val, labels_val, "train_classifier(validation)")
    k = _primary_index(spec)
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
    _check_rows(X_train, labels_train, "train_regressor(train)")
    _check_rows(X_val, labels_val, "train_regressor(validation)")
    k = _primary_index(spec)
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


# --- the assembled stack --------------------------------------------------------------------------
@dataclass
class FittedStack:
    """Everything needed to predict: classifier, regressor, late-buyer terms, optional stacker with
    its full-window base models, gate, and the decisions/metrics recorded while fitting."""

    horizons: list[str]
    primary: str
    revenue: list[str]
    classifier: BuyerClassifier
    regressor: MultiHorizonRegressor
    late_log1p: list[float]
    late_mean: list[float]
    stacker: Stacker | None = None
    base_models: dict[str, Baseline] = field(default_factory=dict)
    gate: Gate = field(default_factory=Gate)
    decisions: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.horizons.index(self.primary)

    def used_features(self) -> set[str]:
        """Feature columns some tree of a booster that ``predict`` calls splits on.

        Every other column of the matrix can hold anything (scoring leaves it null) without
        changing a prediction: no tree reads it."""
        boosters = [self.classifier.booster_, *getattr(self.classifier, "extra_boosters_", []),
                    *self.regressor.boosters_]
        if self.stacker is not None and (getattr(self.stacker, "use_point", True) or self.has_value_head):
            boosters += [m.booster_ for m in self.base_models.values() if m.booster_ is not None]
        used: set[str] = set()
        for b in boosters:
            used |= {n for n, c in zip(b.feature_name(), b.feature_importance("split"), strict=True) if c > 0}
        return used

    def dense(self, X: pd.DataFrame | DenseMatrix) -> DenseMatrix:
        """X in the classifier's column order, converted once for all boosters (DenseMatrix)."""
        if isinstance(X, DenseMatrix):
            return X
        return DenseMatrix.from_frame(self.classifier.schema_.check(X, "FittedStack"))

    def components(self, X: pd.DataFrame | DenseMatrix, p_raw: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-row pieces: raw and calibrated p, buyers' E[log1p y] and E[y] per horizon."""
        raw = self.classifier.predict_raw(X) if p_raw is None else p_raw
        P = self.regressor.predict(X)  # every head once; both scales derive from it
        return {"p_raw": raw, "p": self.classifier.calibrator_.predict(raw),
                "m_log1p": self.regressor.log1p_from_scale(P), "m_mean": self.regressor.mean_from_scale(P)}

    def hurdle_log1p(self, p: np.ndarray, m_log1p: np.ndarray) -> np.ndarray:
        """E[log1p y_h | x] of the hurdle, every horizon (monotone: p fixed, M and L monotone)."""
        return p[:, None] * m_log1p + (1 - p[:, None]) * np.asarray(self.late_log1p)[None, :]

    def meta_parts(self, X: pd.DataFrame, comp: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Base predictions of the full-window models, as the stacker's meta-features expect."""
        parts = {"p": comp["p_raw"], "m": comp["m_log1p"][:, self.k]}
        if "direct_log1p" in self.base_models:
            parts["direct"] = self.base_models["direct_log1p"].predict_raw(X)
        if "tweedie" in self.base_models:
            parts["tweedie"] = self.base_models["tweedie"].predict_raw(X)
        return parts

    def stacked_primary(self, X: pd.DataFrame, comp: dict[str, np.ndarray]) -> np.ndarray:
        return self.stacker.predict_log1p(self.meta_parts(X, comp))

    @property
    def has_value_head(self) -> bool:
        return self.stacker is not None and getattr(self.stacker, "value_booster_", None) is not None

    def value_matrix(self, X: pd.DataFrame, comp: dict[str, np.ndarray]) -> np.ndarray:
        """E[y_h | x] per horizon: the hurdle's p*E[y|buyer] + (1-p)*Lv, with the primary level
        replaced by the stacker's value head when it was chosen (other horizons keep their hurdle
        distance to the primary, clipped >= 0: still monotone)."""
        p = comp["p"][:, None]
        V = p * comp["m_mean"] + (1 - p) * np.asarray(self.late_mean)[None, :]
        if not self.has_value_head:
            return V
        v = self.stacker.predict_value(self.meta_parts(X, comp))
        return np.maximum(V - V[:, [self.k]] + v[:, None], 0.0)

    def point_log1p(self, X: pd.DataFrame, comp: dict[str, np.ndarray]) -> np.ndarray:
        """Ungated E[log1p y_h | x]: hurdle, with the primary level replaced by the stacker when it
        was chosen (other horizons keep their hurdle distance to the primary: still monotone)."""
        H = self.hurdle_log1p(comp["p"], comp["m_log1p"])
        if self.stacker is None or not getattr(self.stacker, "use_point", True):
            return H
        s = self.stacked_primary(X, comp)
        return np.maximum(H - H[:, [self.k]] + s[:, None], 0.0)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """p_buyer, pred_<h> (RMSLE point, gated for the primary) and value_<h> (E[y]) per row."""
        X = self.dense(X)  # one conversion for every booster of the stack
        if len(X) == 0:  # an empty partition: LightGBM refuses zero rows, the answer is no rows
            cols = ["p_buyer", *(f"pred_{h}" for h in self.horizons), *(f"value_{h}" for h in self.horizons)]
            return pd.DataFrame({c: np.zeros(0) for c in cols}, index=X.index)
        comp = self.components(X)
        P = np.expm1(self.point_log1p(X, comp))
        gated = self.gate.apply(P[:, self.k], comp["p"], comp["m_mean"][:, self.k])
        P[:, self.k] = gated
        P[:, self.k + 1:] = np.maximum(P[:, self.k + 1:], gated[:, None])  # keep the order after gating
        P[:, :self.k] = np.minimum(P[:, :self.k], gated[:, None])
        V = self.value_matrix(X, comp)
        out = {"p_buyer": comp["p"]}
        for j, h in enumerate(self.horizons):
            out[f"pred_{h}"] = P[:, j]
        for j, h in enumerate(self.horizons):
            out[f"value_{h}"] = V[:, j]
        return pd.DataFrame(out, index=X.index)

    def evaluate_on(self, X_hold: pd.DataFrame, labels_hold: pd.DataFrame,
                    oracle: dict[str, np.ndarray] | None = None, baselines: dict[str, Baseline] | None = None, *,
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
        """Holdout report: every metric per horizon for both output columns, classifier metrics,
        and (with baselines) the side-by-side table plus paired bootstrap CIs of model - best
        baseline (best on the holdout itself: the hardest comparison for the model)."""
        _check_rows(X_hold, labels_hold, "evaluate_on")
        missing = [c for c in self.revenue if c not in labels_hold.columns]
        if missing:
            raise DataError(f"evaluate_on: labels lack revenue columns {missing}")
        Y = labels_hold[self.revenue].to_numpy(dtype=np.float64)
        pred = self.predict(X_hold)
        report: dict[str, Any] = {"rows": int(len(X_hold)), "horizons": {}}
        for j, h in enumerate(self.horizons):
            report["horizons"][h] = {"point": metrics.evaluate(Y[:, j], pred[f"pred_{h}"].to_numpy()),
                                     "value": metrics.evaluate(Y[:, j], pred[f"value_{h}"].to_numpy())}
        y = Y[:, self.k]
        report["classifier"] = metrics.classifier_metrics((y > 0).astype(float), pred["p_buyer"].to_numpy())
        if baselines:
            report.update(self._versus(y, pred, X_hold, oracle, baselines, n_boot, level, seed))
        return report

    def _versus(self, y: np.ndarray, pred: pd.DataFrame, X: pd.DataFrame, oracle: dict[str, np.ndarray] | None,
                baselines: dict[str, Baseline], n_boot: int, level: float, seed: int) -> dict[str, Any]:
        point, value = pred[f"pred_{self.primary}"].to_numpy(), pred[f"value_{self.primary}"].to_numpy()
        base = {n: b.predict(X) for n, b in baselines.items()}
        table = compare(y, {"stack_point": point, "stack_value": value}, base, oracle)
        b_rmsle, _ = table.best("rmsle")
        b_gini, _ = table.best("gini")
        r_ci = metrics.paired_bootstrap_ci(y, point, base[b_rmsle], "rmsle", n_boot=n_boot, level=level, seed=seed)
        g_ci = metrics.paired_bootstrap_ci(y, value, base[b_gini], "gini", n_boot=n_boot, level=level, seed=seed)
        return {"comparison": table.to_dict(), "comparison_markdown": table.to_markdown(),
                "best_baseline_rmsle": b_rmsle, "best_baseline_gini": b_gini,
                "rmsle_diff_ci": r_ci.to_dict(), "gini_diff_ci": g_ci.to_dict()}


def _late_terms(Y: np.ndarray, k: int) -> tuple[list[float], list[float]]:
    non = Y[:, k] <= 0
    if not non.any():
        return [0.0] * Y.shape[1], [0.0] * Y.shape[1]
    log_m = np.maximum.accumulate(np.log1p(Y[non]).mean(axis=0))
    mean_m = np.maximum.accumulate(Y[non].mean(axis=0))
    log_m[: k + 1] = 0.0
    mean_m[: k + 1] = 0.0
    return log_m.tolist(), mean_m.tolist()


def feature_gain(classifier: BuyerClassifier, regressor: MultiHorizonRegressor) -> dict[str, float]:
    """Gain of each feature, summed over the classifier and the regressor heads, each model's gains
    normalised to sum 1 first so that neither dominates by its scale (the report's importance plot)."""
    total: dict[str, float] = {}
    for booster in [classifier.booster_, *regressor.boosters_]:
        gain = booster.feature_importance("gain")
        if gain.sum() <= 0:
            continue
        for name, g in zip(booster.feature_name(), gain / gain.sum(), strict=True):
            total[name] = total.get(name, 0.0) + float(g)
    return total


def assemble_stack(classifier: BuyerClassifier, regressor: MultiHorizonRegressor, labels_train: pd.DataFrame,
                   spec: DatasetSpec) -> FittedStack:
    """The hurdle stack (no stacker, identity gate) from a fitted classifier and regressor."""
    Y = revenue_matrix(labels_train, spec)
    late_log, late_mean = _late_terms(Y, _primary_index(spec))
    return FittedStack(horizons=[h.name for h in spec.labels.horizons], primary=spec.labels.primary,
                       revenue=[h.revenue for h in spec.labels.horizons], classifier=classifier, regressor=regressor, late_log1p=late_log, late_mean=late_mean)


# --- stage 4: stacker -----------------------------------------------------------------------------
def fit_stacker(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame, labels_val: pd.DataFrame,
                spec: DatasetSpec, config: ModelsConfig, stack: FittedStack,
                base_models: dict[str, Baseline] | None = None) -> tuple[FittedStack, dict[str, Any]]:
    """OOF stacker vs the plain hurdle on validation; keeps the better one (decision recorded).

    Two separate decisions on validation: the point meta-learner (``chosen``: by RMSLE) and the
    value head (``value``: by normalized Gini of value_<primary> against the hurdle value with
    cross-fitted calibration). The stacker is kept when either wins; ``Stacker.use_point`` and
    its value booster record which part is used.

    ``base_models`` may pass already-fitted full-window LightGBM baselines ('lgbm_log1p',
    'lgbm_tweedie', fitted on the same windows) so they are not fitted twice.
    """
    k = stack.k
    y_val = revenue_matrix(labels_val, spec)[:, k]
    comp_val = stack.components(X_val)
    p_cf = stack.classifier.calibrator_.predict(comp_val["p_raw"])
    if len(np.unique(y_val > 0)) == 2:  # cross-fitted calibration: the hurdle is not scored in-sample
        p_cf = stack.classifier.crossfit_proba(comp_val["p_raw"], (y_val > 0).astype(float))
    hurdle_val = np.expm1(stack.hurdle_log1p(p_cf, comp_val["m_log1p"])[:, k])
    info: dict[str, Any] = {"hurdle_val_rmsle": metrics.rmsle(y_val, hurdle_val)}
    if not config.stacker.enabled:
        stack.decisions["stacker"] = {"chosen": "hurdle", "reason": "stacker disabled", **info}
        return stack, info
    t0 = time.perf_counter()
    sc = config.stacker
    y = revenue_matrix(labels_train, spec)[:, k]
    bases = _base_models(X_train, y, X_val, y_val, config, sc.learners, base_models or {})
    own = {"p": stack.classifier.params, "m": stack.regressor.params,
           "direct": getattr(bases.get("direct_log1p"), "params", None),
           "tweedie": getattr(bases.get("tweedie"), "params", None)}
    stacker = Stacker(learners=sc.learners, n_folds=sc.n_folds, meta=sc.meta, params=config.lgb(),
                      random_state=config.seed + 5, learner_params={k: v for k, v in own.items() if v})
    rounds = {"p": stack.classifier.best_iteration_, "m": stack.regressor.best_iterations_[0],
              "direct": bases["direct_log1p"].best_iteration if "direct_log1p" in bases else 0,
              "tweedie": bases["tweedie"].best_iteration if "tweedie" in bases else 0}
    oof = stacker.oof_parts(X_train, y, rounds)
    stacker.fit_meta(oof, y)
    candidate = FittedStack(**{**stack.__dict__, "stacker": stacker, "base_models": bases})
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
        hurdle_value_val = p_cf * comp_val["m_mean"][:, k] + (1 - p_cf) * stack.late_mean[k]
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
    return chosen, info


def _base_models(X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray, config: ModelsConfig,
                 learners: list[str], given: dict[str, Baseline]) -> dict[str, Baseline]:
    """Full-window direct models the stacker needs at inference (reusing fitted baselines)."""
    out: dict[str, Baseline] = {}
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
    y_val = revenue_matrix(labels_val, spec)[:, stack.k]
    gc = config.gate
    if not gc.enabled:
        return Gate(metric=gc.metric), {"enabled": False}
    comp = stack.components(X_val)
    point = np.expm1(stack.point_log1p(X_val, comp)[:, stack.k])
    gate = optimize_gate(y_val, comp["p"], point, whale_score=comp["m_mean"][:, stack.k], metric=gc.metric,
                         target_zero_rate=gc.target_zero_rate, min_improvement=gc.min_improvement)
    return gate, {"enabled": True, **gate.to_dict()}


# --- everything -----------------------------------------------------------------------------------
def train_stack(X_train: pd.DataFrame, labels_train: pd.DataFrame, X_val: pd.DataFrame, labels_val: pd.DataFrame,
                spec: DatasetSpec, config: ModelsConfig | None = None,
                base_models: dict[str, Baseline] | None = None) -> FittedStack:
    """resample -> classifier -> regressor -> stacker -> gate; rows of both frames in time order."""
    config = config or load_models_config()
    plans, r_info = resample_stage(labels_train, spec, config)
    clf, c_info = train_classifier(X_train, labels_train, X_val, labels_val, spec, config, plans["classifier"])
    reg, g_info = train_regressor(X_train, labels_train, X_val, labels_val, spec, config, plans["regressor"])
    stack = assemble_stack(clf, reg, labels_train, spec)
    stack, s_info = fit_stacker(X_train, labels_train, X_val, labels_val, spec, config, stack, base_models)
    gate, gate_info = optimize_gate_stage(stack, X_val, labels_val, spec, config)
    stack.gate = gate
    stack.metrics = {"resample": r_info, "classifier": c_info, "regressor": g_info, "stacker": s_info,
                     "gate": gate_info}
    return stack
