"""The report's numbers and its page: metric blocks of every predictor, and the HTML rendered by
Jinja2 (``templates/report.html.j2``, autoescaped) from plain values and the PNGs of ``plots``.

Which column each metric is computed from, and why, is in ``ltv_core.report``'s docstring and
docs/REPORT.md.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache, partial
from numbers import Real
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from ltv_core import metrics as M
from ltv_core.jsonutil import to_jsonable
from ltv_core.promotion import HIGHER_IS_BETTER
from ltv_core.report import plots

__all__ = ["METRIC_COLUMNS", "ReportInputs", "build_report", "json_safe", "score"]

Metric = Callable[[np.ndarray, np.ndarray], float]

# Which prediction column each model metric is computed from (docs/MODELS.md "two columns").
POINT_METRICS: dict[str, Metric] = {
    "rmsle": M.rmsle, "rmse": M.rmse, "mae": M.mae, "r2": M.r2,
    "zero_rate_pred": lambda y, p: float(np.mean(p == 0)),
}
VALUE_METRICS: dict[str, Metric] = {
    "gini": M.normalized_gini, "top1_share": partial(M.top_share, frac=0.01),
    "top10_share": partial(M.top_share, frac=0.10), "whales_missed_top10": M.whales_missed,
    "calibration_ratio": M.calibration_ratio, "mean_pred": lambda y, p: float(np.mean(p)),
}
PROBA_METRICS: dict[str, Metric] = {"auc": M.roc_auc, "pr_auc": M.pr_auc, "brier": M.brier, "ece": M.ece}
METRIC_COLUMNS: dict[str, str] = {**{k: "point" for k in POINT_METRICS}, **{k: "value" for k in VALUE_METRICS},
                                  **{k: "p_buyer" for k in PROBA_METRICS}}
TABLE = ("rmsle", "gini", "top1_share", "top10_share", "whales_missed_top10", "calibration_ratio",
         "rmse", "mae", "r2", "mean_pred", "zero_rate_pred")
_DIRECTION = {"calibration_ratio": "(best 1)", "mean_pred": "", "zero_rate_pred": ""}  # no better/worse


@dataclass
class ReportInputs:
    """Everything the report shows, as plain arrays over the same holdout rows (primary horizon)."""

    run_id: str
    logical_date: str | None
    primary: str
    primary_metric: str
    y_true: np.ndarray
    point: np.ndarray
    value: np.ndarray
    p_buyer: np.ndarray
    baselines: dict[str, np.ndarray]
    evaluation: dict[str, Any]
    feature_importance: dict[str, float]
    champion: dict[str, Any] | None = None  # {"run_id", "metrics": {...}, "value": array | None}
    decision: dict[str, Any] | None = None  # promotion.Decision.to_dict()
    oracle: dict[str, np.ndarray] | None = None  # e.g. {"oracle_point": ..., "oracle_mean": ...}
    stage_info: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] | None = None  # ltv_core.drift.DriftReport as JSON (None: not measured)
    # other strategies on the same rows, e.g. {"cohorts": (point, value)}: a row of the metrics table
    candidates: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


# --- metrics ---------------------------------------------------------------------------------------
def _safe(fn: Metric, y: np.ndarray, p: np.ndarray) -> float | None:
    """The metric, or None where it is undefined (ltv_core.metrics raises ValueError then)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn(y, p))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def score(y_true: np.ndarray, point: np.ndarray, value: np.ndarray | None = None,
          p_buyer: np.ndarray | None = None) -> dict[str, float | int | None]:
    """Metric block of one predictor: errors from ``point``, ranking/totals from ``value`` (default:
    ``point``, for one-column predictors), classifier metrics from ``p_buyer`` when given.
    Public so the promotion step can use the very numbers the report shows."""
    value = point if value is None else value
    out: dict[str, float | int | None] = {k: _safe(f, y_true, point) for k, f in POINT_METRICS.items()}
    out.update({k: _safe(f, y_true, value) for k, f in VALUE_METRICS.items()})
    if p_buyer is not None:
        buyer = (y_true > 0).astype(np.float64)
        out.update({k: _safe(f, buyer, p_buyer) for k, f in PROBA_METRICS.items()})
    out.update(mean_true=float(np.mean(y_true)), rows=int(len(y_true)))
    return out


def _array(name: str, a: Any, n: int | None, *, proba: bool = False) -> np.ndarray:
    """A validated float64 vector: silently wrong inputs would put wrong numbers in front of people."""
    x = np.asarray(a, dtype=np.float64).ravel()
    if n is not None and len(x) != n:
        raise ValueError(f"{name} has {len(x)} rows but y_true has {n}")
    if len(x) == 0 or not np.isfinite(x).all() or (x < 0).any() or (proba and (x > 1).any()):
        raise ValueError(f"{name} must be a non-empty, finite, non-negative vector"
                         + (" in [0, 1]" if proba else ""))
    return x


def _oracle_pair(oracle: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's (point, value) columns: names ending in point / mean|value, else the first."""
    first = next(iter(oracle.values()))
    point = next((v for k, v in oracle.items() if k.endswith("point")), first)
    value = next((v for k, v in oracle.items() if k.endswith(("mean", "value"))), point)
    return point, value


def _blocks(inp: ReportInputs) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metrics.json ``metrics`` object and the ranking score of every curve to plot."""
    n = len(y := _array("y_true", inp.y_true, None))
    point, value = _array("point", inp.point, n), _array("value", inp.value, n)
    p = _array("p_buyer", inp.p_buyer, n, proba=True)
    base = {k: _array(f"baseline {k}", v, n) for k, v in inp.baselines.items()}
    curves = {f"model (value_{inp.primary})": value}
    model = score(y, point, value, p)
    blocks: dict[str, Any] = {"model": model, "champion": None, "oracle": None,
                              "baselines": {k: score(y, v) for k, v in base.items()},
                              "candidates": {k: score(y, _array(f"candidate {k} point", pv[0], n),
                                                      _array(f"candidate {k} value", pv[1], n))
                                             for k, pv in inp.candidates.items()}}
    if inp.oracle:
        orc = {k: _array(k, v, n) for k, v in inp.oracle.items()}
        o_point, o_value = _oracle_pair(orc)
        blocks["oracle"] = score(y, o_point, o_value)
        curves["oracle"] = o_value
    ranked = sorted(((b["gini"], k) for k, b in blocks["baselines"].items()  # constants rank like "random"
                     if b["gini"] is not None and np.ptp(base[k]) > 0), reverse=True)
    curves.update({f"baseline {k}": base[k] for _, k in ranked[:2]})
    if inp.champion is not None:
        given = inp.champion.get("metrics") or {}
        champ = {str(k): float(v) for k, v in given.items() if isinstance(v, Real) and not isinstance(v, bool)}
        if inp.champion.get("value") is not None:  # ranking on the same rows, the same way as the model
            c_value = _array("champion value", inp.champion["value"], n)
            champ.update({k: _safe(f, y, c_value) for k, f in VALUE_METRICS.items()})
            curves[f"champion {inp.champion.get('run_id', '')}"] = c_value
        blocks["champion"] = champ
    return blocks, curves


def json_safe(obj: Any) -> Any:
    """A strict-JSON-able copy: arrays to lists, numpy scalars to Python, NaN/inf to None."""
    return to_jsonable(obj, strict=True)


# --- the page ------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    """A table cell: n/a for None and non-finite, thousands separators for large values. Plain text:
    the template escapes it."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "n/a" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return "n/a" if not math.isfinite(v) else f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4f}"


def _compact_json(v: Any) -> str:
    return json.dumps(json_safe(v), sort_keys=True)


@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("ltv_core.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters.update(num=_fmt, compact_json=_compact_json)
    return env


def _metrics_table(inp: ReportInputs, blocks: dict[str, Any]) -> dict[str, Any]:
    """Columns (name, direction, model column) and rows (label, kind, values) of the metrics table."""
    model, champ = blocks["model"], blocks["champion"]
    names = [m for m in TABLE if m in model]
    winners = (_race(inp.stage_info) or {}).get("winners") or {}
    shipped = ", ".join(f"{o} ← {w}" for o, w in winners.items() if w != "stack")
    rows: list[dict[str, Any]] = [{"label": "model", "kind": "model", "values": [model[m] for m in names],
                                   "note": shipped}]
    if champ is not None:
        rows.append({"label": "champion", "kind": "champion", "run_id": (inp.champion or {}).get("run_id", ""),
                     "values": [champ.get(m) for m in names]})
        rows.append({"label": "model − champion", "kind": "difference", "values": [
            None if champ.get(m) is None or model[m] is None else model[m] - champ[m] for m in names]})
    rows += [{"label": k, "kind": "candidate", "values": [b.get(m) for m in names]}
             for k, b in blocks["candidates"].items()]
    rows += [{"label": k, "kind": "baseline", "values": [b[m] for m in names]}
             for k, b in blocks["baselines"].items()]
    if blocks["oracle"] is not None:
        rows.append({"label": "oracle", "kind": "oracle", "values": [blocks["oracle"][m] for m in names]})
    columns = [{"name": m, "direction": _DIRECTION.get(m, "↑" if m in HIGHER_IS_BETTER else "↓"),
                "column": METRIC_COLUMNS[m]} for m in names]
    return {"columns": columns, "rows": rows,
            "uses": ", ".join(f"{m}: {c}" for m, c in METRIC_COLUMNS.items())}


RACE_HEAD = ["output", "metric", "predictor", "validation", "− stack", "lo", "hi", "significantly better", "shipped"]


def _race(stage_info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The candidates race recorded by fit_stacker (models/race.py): winners and one row per
    output and contender, from the validation window."""
    race = (stage_info.get("fit_stacker") or {}).get("race")
    if not isinstance(race, Mapping):
        return None
    winners = race.get("winners") or {}
    rows = []
    for output in ("point", "value"):
        block = race.get(output)
        if not isinstance(block, Mapping):
            continue
        metric = block.get("metric")
        for name, c in (block.get("candidates") or {}).items():
            ci = c.get("diff_vs_stack_ci") or {}
            rows.append([output, metric, name, c.get(metric), ci.get("diff"), ci.get("lo"), ci.get("hi"),
                         "" if name == "stack" else ("yes" if c.get("significantly_better") else "no"),
                         "✔" if winners.get(output) == name else ""])
    return {"winners": winners, "rows": rows, "reason": race.get("reason"), "margin": race.get("margin")}


def _intervals(ev: Mapping[str, Any]) -> dict[str, Any] | None:
    """Coverage rows, the whale probability check and the coverage plot (models/intervals.py)."""
    block = ev.get("intervals")
    if not isinstance(block, Mapping) or not isinstance(block.get("coverage"), Mapping):
        return None
    rows = [[f"q{float(q) * 100:.0f}", c, c - float(q)] for q, c in block["coverage"].items()]
    curve = block.get("curve") or {}
    png = plots.coverage_plot(curve["levels"], curve["coverage"]) if curve.get("levels") else None
    return {"rows": rows, "whale": block.get("whale") or {}, "png": png}


def _ci_rows(ev: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for key, vs in (("rmsle_diff_ci", "best_baseline_rmsle"), ("gini_diff_ci", "best_baseline_gini")):
        ci = ev.get(key)
        if isinstance(ci, Mapping):
            rows.append([ci.get("metric"), ev.get(vs), ci.get("diff"), ci.get("lo"), ci.get("hi"), ci.get("level"),
                         "yes" if ci.get("excludes_zero") else "no"])
    return rows


def _horizon_rows(ev: Mapping[str, Any]) -> list[list[Any]]:
    hz = ev.get("horizons")
    if not isinstance(hz, Mapping):
        return []
    return [[h, col, *(m.get(k) for k in TABLE)] for h, cols in hz.items() if isinstance(cols, Mapping)
            for col, m in cols.items() if isinstance(m, Mapping)]


def _decision(decision: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    promoted = decision.get("promoted")
    return {"promoted": bool(promoted),
            "verdict": "promoted" if promoted is True else "not promoted" if promoted is False else "unknown",
            "reason": decision.get("reason", ""), "champion_run_id": decision.get("champion_run_id") or "none",
            "tolerance": decision.get("tolerance"), "decided_at": decision.get("decided_at", "n/a")}


DRIFT_HEAD = ["feature", "kind", "PSI", "level", "test", "statistic", "p-value", "missing train", "missing scoring",
              "unseen share"]


def _drift(drift: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The report's drift section: verdict, table of the top features and the two plots."""
    if drift is None:
        return None
    t = drift.get("thresholds") or {}
    features = sorted(drift.get("features") or [], key=lambda f: -float(f.get("psi") or 0.0))
    pred = drift.get("prediction")
    return {
        "enabled": bool(drift.get("enabled", True)), "flagged": bool(drift.get("flagged")),
        "reasons": list(drift.get("reasons") or []), "notes": list(drift.get("notes") or []),
        "max_psi": drift.get("max_psi"), "drifted_share": drift.get("drifted_share"),
        "max_unseen_share": drift.get("max_unseen_share"), "thresholds": t, "compared": len(features),
        "prediction": pred, "head": DRIFT_HEAD,
        "rows": [[f["feature"], f["kind"], f["psi"], f.get("level"), f["test"], f.get("statistic"), f.get("p_value"),
                  f["train_missing"], f["score_missing"], f.get("unseen_share")] for f in features[:25]],
        "psi_png": plots.drift_psi_plot(features, float(t.get("psi_warn", 0.1)), float(t.get("psi_alert", 0.25))),
        "prediction_png": None if not pred else plots.prediction_drift_plot(
            pred["reference_quantiles"], pred["current_quantiles"],
            f"{pred['reference']} {pred.get('reference_run_id') or ''}".strip(), pred["column"])}


def build_report(inputs: ReportInputs) -> tuple[str, dict[str, Any]]:
    """(self-contained HTML, strict-JSON-able metrics dict) of one run's holdout evaluation."""
    blocks, curves = _blocks(inputs)
    y = np.asarray(inputs.y_true, dtype=np.float64).ravel()
    value, p = np.asarray(inputs.value, dtype=np.float64).ravel(), np.asarray(inputs.p_buyer, dtype=np.float64).ravel()
    doc = json_safe({
        "run_id": inputs.run_id, "logical_date": inputs.logical_date, "primary_metric": inputs.primary_metric,
        "primary_horizon": inputs.primary, "metrics": blocks, "metric_columns": METRIC_COLUMNS,
        "champion_run_id": (inputs.champion or {}).get("run_id"), "evaluation": inputs.evaluation,
        "decision": inputs.decision, "stage_info": inputs.stage_info, "drift": inputs.drift,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    pm, model = inputs.primary_metric, blocks["model"]
    best = sorted((b.get(pm), k) for k, b in blocks["baselines"].items() if b.get(pm) is not None)
    b_val, b_name = (best[-1] if pm in HIGHER_IS_BETTER else best[0]) if best else (None, "n/a")
    page = _environment().get_template("report.html.j2").render(
        run_id=inputs.run_id, logical_date=inputs.logical_date or "n/a", primary=inputs.primary,
        generated_at=doc["generated_at"], rows=model["rows"], buyer_rate=float((y > 0).mean()),
        primary_metric=pm, primary_column=METRIC_COLUMNS.get(pm, "n/a"), model_primary=model.get(pm),
        best_baseline=b_name, best_baseline_value=b_val,
        champion=None if blocks["champion"] is None else {"primary": blocks["champion"].get(pm)},
        decision=_decision(inputs.decision), metrics=_metrics_table(inputs, blocks),
        ci_head=["metric", "vs baseline", "model − baseline", "lo", "hi", "level", "excludes 0"],
        ci_rows=_ci_rows(inputs.evaluation),
        horizon_head=["horizon", "column", *TABLE], horizon_rows=_horizon_rows(inputs.evaluation),
        proba_head=list(PROBA_METRICS), proba_row=[model.get(k) for k in PROBA_METRICS],
        stage_info={k: ({kk: vv for kk, vv in v.items() if kk != "race"} if isinstance(v, Mapping) else v)
                    for k, v in inputs.stage_info.items()},
        race=_race(inputs.stage_info), race_head=RACE_HEAD, drift=_drift(inputs.drift),
        intervals=_intervals(inputs.evaluation), interval_head=["quantile", "holdout coverage", "− nominal"],
        evaluation_json=json.dumps(json_safe(inputs.evaluation), indent=2, sort_keys=True),
        gain_png=plots.gain_plot(y, curves), calibration_png=plots.calibration_plot(y, p),
        decile_png=plots.decile_plot(y, value, inputs.primary),
        importance_png=plots.importance_plot(inputs.feature_importance))
    return page, doc
