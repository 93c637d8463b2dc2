"""The fitted stack: everything needed to predict, and its holdout evaluation.

Outputs per row (``FittedStack.predict``), for each horizon h of the spec:

* ``pred_<h>``: the RMSLE-optimal point expm1(E[log1p y_h | x]) (stacked/hurdle, then gated for the
  primary horizon), where the hurdle part is E[log1p y | x] = p * E[log1p y | buyer, x] + (1-p) * L_h
* ``value_<h>``: the expected revenue E[y_h | x] = p * E[y_h | buyer, x] + (1-p) * Lv_h, with the
  buyers' mean from Duan smearing (NOT p * expm1(pred), which is biased low by Jensen's inequality).
  This is the column to bid, rank and sum with. When the stacker's value head (a Tweedie
  meta-learner on the OOF meta-features, ``Stacker.fit_value``) beats this hurdle value in
  validation Gini, it replaces the primary level (longer horizons keep their hurdle distance).
* ``p_buyer``: calibrated P(revenue_primary > 0 | x)

When the candidates race (``models/race.py``) found another fitted model significantly better on
validation for an output, that model's prediction replaces the primary level of that output
(``FittedStack.race``); the other horizons keep their distance to it.

L_h / Lv_h are the training means of log1p(y_h) / y_h over rows that did not buy by the primary
horizon (late buyers; 0 for horizons up to the primary). Both columns are monotone across horizons
for every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ltv_core import metrics
from ltv_core.errors import DataError
from ltv_core.models.baselines import Baseline, compare
from ltv_core.models.classifier import BuyerClassifier
from ltv_core.models.gate import Gate
from ltv_core.models.intervals import RevenueQuantiles, interval_report
from ltv_core.models.labels import check_rows, primary_index, revenue_matrix
from ltv_core.models.matrix import DenseMatrix
from ltv_core.models.race import contender_outputs
from ltv_core.models.regressor import MultiHorizonRegressor
from ltv_core.models.stacker import Stacker
from ltv_core.spec import DatasetSpec

__all__ = ["FittedStack", "assemble_stack", "candidate_columns", "feature_gain"]


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
    # the candidates race (models/race.py): output ("point" | "value") -> the base_models entry
    # that replaces the stack's primary level for it; absent = the stack's own
    race: dict[str, str] = field(default_factory=dict)
    # quantiles of primary revenue and P(> whale line), from the hurdle's parts (models/intervals.py)
    intervals: RevenueQuantiles | None = None

    @property
    def primary_index(self) -> int:
        """Position of the primary horizon in ``horizons`` (a column of the per-horizon matrices)."""
        return self.horizons.index(self.primary)

    def used_features(self) -> set[str]:
        """Feature columns some tree of a booster that ``predict`` calls splits on.

        Every other column of the matrix can hold anything (scoring leaves it null) without
        changing a prediction: no tree reads it."""
        boosters = [self.classifier.booster_, *getattr(self.classifier, "extra_boosters_", []),
                    *self.regressor.boosters_]
        if self.stacker is not None and (getattr(self.stacker, "use_point", True) or self.has_value_head):
            boosters += [b for m in self.base_models.values() for b in m.boosters()]
        boosters += [b for name in self.race.values() for b in self.base_models[name].boosters()]
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
        parts = {"p": comp["p_raw"], "m": comp["m_log1p"][:, self.primary_index]}
        if "direct_log1p" in self.base_models:
            parts["direct"] = self.base_models["direct_log1p"].predict_raw(X)
        if "tweedie" in self.base_models:
            parts["tweedie"] = self.base_models["tweedie"].predict_raw(X)
        if self.stacker is not None and "cohorts" in self.stacker.learners:
            cohorts = self.base_models["cohorts"]
            parts["cohort_log1p"], parts["cohort_value"] = cohorts.predict_log1p(X), cohorts.predict_value(X)
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
        if "value" in self.race:
            v = self.race_output("value", X)
        elif self.has_value_head:
            v = self.stacker.predict_value(self.meta_parts(X, comp))
        else:
            return V
        return np.maximum(V - V[:, [self.primary_index]] + v[:, None], 0.0)

    def race_output(self, output: str, X: pd.DataFrame | DenseMatrix) -> np.ndarray:
        """The race winner's primary-horizon output (revenue scale) for ``output``."""
        model = self.base_models[self.race[output]]
        if output == "value" and hasattr(model, "predict_value"):
            return model.predict_value(X)
        return model.predict(X)

    def point_log1p(self, X: pd.DataFrame, comp: dict[str, np.ndarray]) -> np.ndarray:
        """Ungated E[log1p y_h | x]: hurdle, with the primary level replaced by the race winner or
        else the stacker when it was chosen (other horizons keep their hurdle distance to the primary: still monotone)."""
        H = self.hurdle_log1p(comp["p"], comp["m_log1p"])
        if "point" in self.race:
            s = np.log1p(np.maximum(self.race_output("point", X), 0.0))
        elif self.stacker is None or not getattr(self.stacker, "use_point", True):
            return H
        else:
            s = self.stacked_primary(X, comp)
        return np.maximum(H - H[:, [self.primary_index]] + s[:, None], 0.0)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """p_buyer, pred_<h> (RMSLE point, gated for the primary) and value_<h> (E[y]) per row."""
        X = self.dense(X)  # one conversion for every booster of the stack
        if len(X) == 0:  # an empty partition: LightGBM refuses zero rows, the answer is no rows
            cols = ["p_buyer", *(f"pred_{h}" for h in self.horizons), *(f"value_{h}" for h in self.horizons)]
            if self.intervals is not None:
                cols += list(self.intervals.columns(np.zeros(0), np.zeros(0), self.primary))
            return pd.DataFrame({c: np.zeros(0) for c in cols}, index=X.index)
        comp = self.components(X)
        P = np.expm1(self.point_log1p(X, comp))
        k = self.primary_index
        gated = self.gate.apply(P[:, k], comp["p"], comp["m_mean"][:, k])
        P[:, k] = gated
        P[:, k + 1:] = np.maximum(P[:, k + 1:], gated[:, None])  # keep the order after gating
        P[:, :k] = np.minimum(P[:, :k], gated[:, None])
        V = self.value_matrix(X, comp)
        out = {"p_buyer": comp["p"]}
        for j, h in enumerate(self.horizons):
            out[f"pred_{h}"] = P[:, j]
        for j, h in enumerate(self.horizons):
            out[f"value_{h}"] = V[:, j]
        if self.intervals is not None:
            out.update(self.intervals.columns(comp["p"], comp["m_log1p"][:, k], self.primary))
        return pd.DataFrame(out, index=X.index)

    def evaluate_on(self, X_hold: pd.DataFrame, labels_hold: pd.DataFrame,
                    oracle: dict[str, np.ndarray] | None = None, baselines: dict[str, Baseline] | None = None, *,
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                    candidates: dict[str, Any] | None = None) -> dict[str, Any]:
        """Holdout report: every metric per horizon for both output columns, classifier metrics,
        and (with baselines) the side-by-side table plus paired bootstrap CIs of model - best
        baseline (best on the holdout itself: the hardest comparison for the model) and of model -
        each candidate strategy (``candidates``: e.g. the cohort model, rows ``<name>_point`` judged
        by RMSLE and ``<name>_value`` by Gini, like the stack's two columns)."""
        check_rows(X_hold, labels_hold, "evaluate_on")
        missing = [c for c in self.revenue if c not in labels_hold.columns]
        if missing:
            raise DataError(f"evaluate_on: labels lack revenue columns {missing}")
        Y = labels_hold[self.revenue].to_numpy(dtype=np.float64)
        pred = self.predict(X_hold)
        report: dict[str, Any] = {"rows": int(len(X_hold)), "horizons": {}}
        for j, h in enumerate(self.horizons):
            report["horizons"][h] = {"point": metrics.evaluate(Y[:, j], pred[f"pred_{h}"].to_numpy()),
                                     "value": metrics.evaluate(Y[:, j], pred[f"value_{h}"].to_numpy())}
        y = Y[:, self.primary_index]
        report["classifier"] = metrics.classifier_metrics((y > 0).astype(float), pred["p_buyer"].to_numpy())
        if self.intervals is not None:
            comp = self.components(self.dense(X_hold))
            report["intervals"] = interval_report(self.intervals, y, comp["p"], comp["m_log1p"][:, self.primary_index])
        if baselines:
            report.update(self._versus(y, pred, X_hold, oracle, baselines, n_boot, level, seed, candidates or {}))
        return report

    def _versus(self, y: np.ndarray, pred: pd.DataFrame, X: pd.DataFrame, oracle: dict[str, np.ndarray] | None,
                baselines: dict[str, Baseline], n_boot: int, level: float, seed: int,
                candidates: dict[str, Any]) -> dict[str, Any]:
        point, value = pred[f"pred_{self.primary}"].to_numpy(), pred[f"value_{self.primary}"].to_numpy()
        base = {n: b.predict(X) for n, b in baselines.items()}
        cand = candidate_columns(candidates, X)
        table = compare(y, {"stack_point": point, "stack_value": value}, base, oracle, cand)
        versus_candidates = {
            n: {"rmsle_diff_ci": metrics.paired_bootstrap_ci(y, point, cand[f"{n}_point"], "rmsle", n_boot=n_boot,
                                                             level=level, seed=seed).to_dict(),
                "gini_diff_ci": metrics.paired_bootstrap_ci(y, value, cand[f"{n}_value"], "gini", n_boot=n_boot,
                                                            level=level, seed=seed).to_dict()}
            for n in candidates}
        b_rmsle, _ = table.best("rmsle")
        b_gini, _ = table.best("gini")
        r_ci = metrics.paired_bootstrap_ci(y, point, base[b_rmsle], "rmsle", n_boot=n_boot, level=level, seed=seed)
        g_ci = metrics.paired_bootstrap_ci(y, value, base[b_gini], "gini", n_boot=n_boot, level=level, seed=seed)
        return {"comparison": table.to_dict(), "comparison_markdown": table.to_markdown(),
                "best_baseline_rmsle": b_rmsle, "best_baseline_gini": b_gini,
                "rmsle_diff_ci": r_ci.to_dict(), "gini_diff_ci": g_ci.to_dict(), "candidates": versus_candidates}


def candidate_columns(candidates: dict[str, Any], X: pd.DataFrame) -> dict[str, np.ndarray]:
    """``<name>_point`` (expm1 of E[log1p y]) and ``<name>_value`` (E[y]) of each candidate strategy:
    the race's ``contender_outputs``, as flat table columns."""
    return {f"{name}_{output}": pred for name, outputs in contender_outputs(candidates, X).items()
            for output, pred in outputs.items()}


def _late_terms(Y: np.ndarray, k: int) -> tuple[list[float], list[float]]:
    """(L_h, Lv_h) per horizon: the means of log1p(y_h) and y_h over the rows that did not buy by
    the primary horizon (column ``k``), made non-decreasing across horizons; 0 up to the primary."""
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
    late_log, late_mean = _late_terms(Y, primary_index(spec))
    return FittedStack(horizons=[h.name for h in spec.labels.horizons], primary=spec.labels.primary,
                       revenue=[h.revenue for h in spec.labels.horizons], classifier=classifier, regressor=regressor,
                       late_log1p=late_log, late_mean=late_mean)

