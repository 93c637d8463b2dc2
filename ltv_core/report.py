"""Holdout evaluation report of one training run: one self-contained HTML file plus metrics.json.

Why one file: the report is served from the artefact store by the "LTV runs" page inside a sandbox
(no session, no external requests), and reviewers download and mail it; so every plot is a base64
PNG inside the HTML, there is no JavaScript and the page forbids scripts via its own CSP.

Why metrics.json: the UI (``ltv_core.registry_view._metrics``) reads the primary metric of the
model, the baselines and the champion from ``metrics["model"|"baselines"|"champion"]``; the model
block is scored the way docs/MODELS.md scores the stack: error metrics on the RMSLE point column
(``pred_<h>``), ranking and totals on the expected-value column (``value_<h>``), classifier
metrics on ``p_buyer``. Baselines and oracles have one column and are scored on it for all.

Undefined metrics (all-zero holdout: no Gini, no whales, no AUC) are ``null``, never NaN: the file
is strict JSON. Every metric comes from ``ltv_core.metrics``; nothing is recomputed here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

from ltv_core import metrics as M
from ltv_core.jsonutil import to_jsonable
from ltv_core.promotion import HIGHER_IS_BETTER

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
# promotion.HIGHER_IS_BETTER names the shares "top*_capture"; metrics.py calls them "top*_share".
HIGHER = HIGHER_IS_BETTER | {"top1_share", "top10_share"}
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
                              "baselines": {k: score(y, v) for k, v in base.items()}}
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


# --- plots -----------------------------------------------------------------------------------------
def _figure(width: float = 7.0, height: float = 4.2) -> Figure:
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _empty(title: str, why: str) -> str:
    fig = _figure(7.0, 1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center")
    return _png(fig)


def _gain_plot(y: np.ndarray, curves: dict[str, np.ndarray]) -> str:
    """Cumulative share of revenue captured by the top x% by each score, all rows and the top 10%."""
    if y.sum() <= 0:
        return _empty("Cumulative gain", "undefined: the holdout has no revenue")
    n = len(y)
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, 600), np.geomspace(1, n, 400) - 1]).astype(int))
    frac = np.concatenate([[0.0], (idx + 1) / n])
    fig = _figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    top10 = 0.1
    for label, s in curves.items():
        g = np.concatenate([[0.0], M.gain_curve(y, s)[idx]])
        top10 = max(top10, float(np.interp(0.1, frac, g)))
        for ax in axes:
            ax.plot(frac, g, label=label, lw=1.4)
    for ax, hi, ytop, title in ((axes[0], 1.0, 1.0, "Cumulative gain"),
                                (axes[1], 0.1, min(1.0, top10 * 1.1), "Top 10% of rows")):
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="random")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, ytop)
        ax.set_title(title)
        ax.set_xlabel("share of rows, by descending score")
        ax.set_ylabel("share of revenue captured")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    return _png(fig)


def _calibration_plot(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> str:
    """Reliability diagram over equal-count bins (the same binning as metrics.ece)."""
    bins = [b for b in np.array_split(np.argsort(p, kind="stable"), min(n_bins, len(p))) if len(b)]
    buyer = (y > 0).astype(np.float64)
    mean_p = np.array([p[b].mean() for b in bins])
    rate = np.array([buyer[b].mean() for b in bins])
    fig = _figure(5.5, 4.6)
    ax = fig.add_subplot()
    top = max(float(mean_p.max()), float(rate.max()), 1e-3) * 1.05
    ax.plot([0, top], [0, top], "k:", lw=1, label="perfect calibration")
    ax.plot(mean_p, rate, "o-", label=f"p_buyer ({len(bins)} equal-count bins)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted P(buyer)")
    ax.set_ylabel("observed buyer rate")
    ax.set_title("Calibration of p_buyer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _decile_plot(y: np.ndarray, value: np.ndarray, primary: str) -> str:
    """Mean predicted (value) vs actual revenue per decile of the model's value, highest first."""
    groups = np.array_split(np.argsort(-value, kind="stable"), min(10, len(value)))
    pred = [float(value[g].mean()) for g in groups]
    actual = [float(y[g].mean()) for g in groups]
    x = np.arange(1, len(groups) + 1)
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, pred, 0.4, label=f"mean predicted (value_{primary})")
    ax.bar(x + 0.2, actual, 0.4, label="mean actual revenue")
    if max(pred) > 0 and max(actual) > 0:  # revenue spans orders of magnitude across deciles
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xlabel("decile of predicted value (1 = highest)")
    ax.set_ylabel("revenue per row")
    ax.set_title("Predicted vs actual by decile")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def _importance_plot(importance: Mapping[str, float], top: int = 25) -> str:
    items = sorted(((float(v), str(k)) for k, v in importance.items() if math.isfinite(float(v))), reverse=True)[:top]
    if not items:
        return _empty("Feature importance", "no feature importance given")
    fig = _figure(7.0, 1.2 + 0.22 * len(items))
    ax = fig.add_subplot()
    ax.barh([k for _, k in items][::-1], [v for v, _ in items][::-1])
    ax.set_xlabel("total gain")
    ax.set_title(f"Top {len(items)} features by gain")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


# --- HTML ------------------------------------------------------------------------------------------
def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return "n/a" if v is None else _e(v)
    if isinstance(v, int):
        return f"{v:,}"
    return "n/a" if not math.isfinite(v) else f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4f}"


def _table(head: list[str], rows: list[list[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _img(b64: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{b64}" alt="{_e(alt)}">'


def _metrics_section(inp: ReportInputs, blocks: dict[str, Any]) -> str:
    cols = [m for m in TABLE if m in blocks["model"]]
    rows: list[list[Any]] = [[_Raw("<b>model</b>"), "model", *(blocks["model"][m] for m in cols)]]
    champ = blocks["champion"]
    if champ is not None:
        cid = (inp.champion or {}).get("run_id", "")
        rows.append([_Raw(f"champion <small>{_e(cid)}</small>"), "champion", *(champ.get(m) for m in cols)])
        rows.append(["model − champion", "difference", *(
            None if champ.get(m) is None or blocks["model"][m] is None else blocks["model"][m] - champ[m]
            for m in cols)])
    rows += [[k, "baseline", *(b[m] for m in cols)] for k, b in blocks["baselines"].items()]
    if blocks["oracle"] is not None:
        rows.append(["oracle", "oracle", *(blocks["oracle"][m] for m in cols)])
    rows.insert(0, [_Raw("<i>model column</i>"), "", *(_Raw(f"<i>{_e(METRIC_COLUMNS[m])}</i>") for m in cols)])
    head = ["predictor", "kind", *(f"{m} {_DIRECTION.get(m, '↑' if m in HIGHER else '↓')}" for m in cols)]
    uses = ", ".join(f"{m}: {c}" for m, c in METRIC_COLUMNS.items())
    note = (f"<p class='note'>Model columns: <code>point</code> = pred_{_e(inp.primary)} (RMSLE point), "
            f"<code>value</code> = value_{_e(inp.primary)} (expected revenue, used to rank and sum), "
            f"<code>p_buyer</code> = calibrated P(buyer). {_e(uses)}. Baselines, oracle and champion "
            "ranking metrics: each predictor's own column (the oracle: its point column for errors, its "
            "mean for ranking). Champion error metrics are those passed in (its score on this holdout). "
            "↑ higher is better, ↓ lower is better; n/a = undefined on this holdout (e.g. no revenue).</p>")
    return _table(head, rows, "metrics") + note


def _ci_section(ev: Mapping[str, Any]) -> str:
    rows = []
    for key, vs in (("rmsle_diff_ci", "best_baseline_rmsle"), ("gini_diff_ci", "best_baseline_gini")):
        ci = ev.get(key)
        if isinstance(ci, Mapping):
            rows.append([ci.get("metric"), ev.get(vs), ci.get("diff"), ci.get("lo"), ci.get("hi"), ci.get("level"),
                         "yes" if ci.get("excludes_zero") else "no"])
    if not rows:
        return "<p>No bootstrap intervals in the evaluation.</p>"
    return _table(["metric", "vs baseline", "model − baseline", "lo", "hi", "level", "excludes 0"], rows)


def _horizons_section(ev: Mapping[str, Any]) -> str:
    hz = ev.get("horizons")
    if not isinstance(hz, Mapping) or not hz:
        return "<p>No per-horizon metrics in the evaluation.</p>"
    rows = [[h, col, *(m.get(k) for k in TABLE)] for h, cols in hz.items() if isinstance(cols, Mapping)
            for col, m in cols.items() if isinstance(m, Mapping)]
    return _table(["horizon", "column", *TABLE], rows)


def _kv_section(d: Mapping[str, Any]) -> str:
    if not d:
        return "<p>None recorded.</p>"
    rows = [[k, _Raw(f"<code>{_e(json.dumps(json_safe(v), sort_keys=True))}</code>")] for k, v in d.items()]
    return _table(["key", "value"], rows, "kv")


def _decision_section(decision: Mapping[str, Any] | None) -> str:
    if decision is None:
        return "<p>No promotion decision was given to this report.</p>"
    promoted = decision.get("promoted")
    verdict = "promoted" if promoted is True else "not promoted" if promoted is False else "unknown"
    return (f'<p class="{"ok" if promoted else "bad"}"><b>{_e(verdict)}</b>: {_e(decision.get("reason", ""))}</p>'
            f"<p>champion at decision time: {_e(decision.get('champion_run_id') or 'none')}; "
            f"tolerance {_fmt(decision.get('tolerance'))}; decided at {_e(decision.get('decided_at', 'n/a'))}</p>")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
td{text-align:right}td:first-child,.kv td{text-align:left}th{background:#f2f2f2}code{font-size:12px}
.ok{color:#176b2c}.bad{color:#a31515}.note{font-size:12px;color:#555}img{max-width:100%;display:block}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def build_report(inputs: ReportInputs) -> tuple[str, dict[str, Any]]:
    """(self-contained HTML, strict-JSON-able metrics dict) of one run's holdout evaluation."""
    blocks, curves = _blocks(inputs)
    y = np.asarray(inputs.y_true, dtype=np.float64).ravel()
    value, p = np.asarray(inputs.value, dtype=np.float64).ravel(), np.asarray(inputs.p_buyer, dtype=np.float64).ravel()
    doc = json_safe({
        "run_id": inputs.run_id, "logical_date": inputs.logical_date, "primary_metric": inputs.primary_metric,
        "primary_horizon": inputs.primary, "metrics": blocks, "metric_columns": METRIC_COLUMNS,
        "champion_run_id": (inputs.champion or {}).get("run_id"), "evaluation": inputs.evaluation,
        "decision": inputs.decision, "stage_info": inputs.stage_info,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    pm, model = inputs.primary_metric, blocks["model"]
    best = sorted((b.get(pm), k) for k, b in blocks["baselines"].items() if b.get(pm) is not None)
    b_val, b_name = (best[-1] if pm in HIGHER else best[0]) if best else (None, "n/a")
    champ = _fmt((blocks["champion"] or {}).get(pm)) if blocks["champion"] is not None else "no champion"
    head = (f"<p>Logical date <b>{_e(inputs.logical_date or 'n/a')}</b> · primary horizon <b>{_e(inputs.primary)}</b>"
            f" · {_fmt(model['rows'])} holdout rows · buyer rate {_fmt((y > 0).mean())} · "
            f"generated {_e(doc['generated_at'])}</p>"
            f"<p>Primary metric <b>{_e(pm)}</b> ({_e(METRIC_COLUMNS.get(pm, 'n/a'))} column): model "
            f"<b>{_fmt(model.get(pm))}</b> · best baseline {_e(b_name)} {_fmt(b_val)} · champion {champ}</p>")
    sections = [
        ("Promotion decision", _decision_section(inputs.decision)),
        ("Metrics: model vs champion, baselines and oracle", _metrics_section(inputs, blocks)),
        ("Paired bootstrap intervals (from the evaluation)", _ci_section(inputs.evaluation)),
        ("Cumulative gain", _img(_gain_plot(y, curves), "cumulative gain curves")
         + "<p class='note'>Rows sorted by each score (ties at their expected value); model ranked by "
           f"value_{_e(inputs.primary)}. Curves: model, oracle, champion and the two baselines with the "
           "highest Gini.</p>"),
        ("Calibration of p_buyer", _img(_calibration_plot(y, p), "reliability diagram of p_buyer")
         + _table(["auc", "pr_auc", "brier", "ece"], [[model.get(k) for k in PROBA_METRICS]])),
        ("Predicted vs actual by decile", _img(_decile_plot(y, value, inputs.primary), "decile plot")),
        ("Feature importance", _img(_importance_plot(inputs.feature_importance), "feature importance")),
        ("Per-horizon metrics (from the evaluation)", _horizons_section(inputs.evaluation)),
        ("Training stages", _kv_section(inputs.stage_info)),
        ("Raw evaluation", "<details><summary>evaluation JSON</summary><pre>"
         + _e(json.dumps(json_safe(inputs.evaluation), indent=2, sort_keys=True)) + "</pre></details>"),
    ]
    body = "".join(f"<h2>{_e(t)}</h2>\n{s}\n" for t, s in sections)
    page = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>LTV report {_e(inputs.run_id)}</title><style>{_CSS}</style></head><body>"
            f"<h1>LTV evaluation report: {_e(inputs.run_id)}</h1>{head}{body}</body></html>\n")
    return page, doc
