"""The report's plots: matplotlib figures as base64 PNGs, so the page stays one self-contained file.

No pyplot: a ``Figure`` per plot, no global backend or figure state (the report is built inside a
pipeline worker). Every curve and bin uses the definitions of ``ltv_core.metrics`` (ties at their
expected value, the equal-count bins of ``metrics.ece``).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ltv_core import metrics as M

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["calibration_plot", "decile_plot", "drift_psi_plot", "gain_plot", "importance_plot", "prediction_drift_plot"]


def _figure(width: float = 7.0, height: float = 4.2) -> Figure:
    from matplotlib.figure import Figure  # imported here: scoring the model needs no matplotlib

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


def gain_plot(y: np.ndarray, curves: Mapping[str, np.ndarray]) -> str:
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


def calibration_plot(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> str:
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


def decile_plot(y: np.ndarray, value: np.ndarray, primary: str) -> str:
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


def importance_plot(importance: Mapping[str, float], top: int = 25) -> str:
    """The ``top`` features by total gain, largest first (matplotlib draws text, no HTML)."""
    items = sorted(((float(v), str(k)) for k, v in importance.items() if math.isfinite(float(v))),
                   reverse=True)[:top]
    if not items:
        return _empty("Feature importance", "no feature importance given")
    fig = _figure(7.0, 1.2 + 0.22 * len(items))
    ax = fig.add_subplot()
    ax.barh([k for _, k in items][::-1], [v for v, _ in items][::-1])
    ax.set_xlabel("total gain")
    ax.set_title(f"Top {len(items)} features by gain")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def drift_psi_plot(features: list[Mapping[str, object]], psi_warn: float, psi_alert: float, top: int = 25) -> str:
    """The ``top`` compared features by PSI (scoring vs training window), with the two thresholds."""
    items = sorted(((float(f["psi"]), str(f["feature"])) for f in features  # type: ignore[arg-type]
                    if math.isfinite(float(f["psi"]))), reverse=True)[:top]  # type: ignore[arg-type]
    if not items:
        return _empty("Feature drift (PSI)", "no features compared")
    fig = _figure(7.0, 1.4 + 0.22 * len(items))
    ax = fig.add_subplot()
    colors = ["#a31515" if v > psi_alert else "#c98a00" if v > psi_warn else "#4c72b0" for v, _ in items]
    ax.barh([k for _, k in items][::-1], [v for v, _ in items][::-1], color=colors[::-1])
    ax.axvline(psi_warn, color="#c98a00", ls="--", lw=1, label=f"warn {psi_warn:g}")
    ax.axvline(psi_alert, color="#a31515", ls="--", lw=1, label=f"alert {psi_alert:g}")
    ax.set_xlabel("PSI, scoring vs training window")
    ax.set_title(f"Top {len(items)} features by PSI")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def prediction_drift_plot(reference: list[float], current: list[float], reference_label: str, column: str) -> str:
    """Empirical CDFs (from the stored quantiles) of the reference and this run's predictions."""
    if not reference or not current:
        return _empty("Prediction drift", "no predictions compared")
    q = np.linspace(0, 1, len(reference))
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(reference, q, label=reference_label, lw=1.4)
    ax.plot(current, np.linspace(0, 1, len(current)), label="this run, scoring window", lw=1.4)
    if max(max(reference), max(current)) > 0:
        ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel(column)
    ax.set_ylabel("share of rows at or below")
    ax.set_title("Prediction distribution")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def coverage_plot(levels: list[float], coverage: list[float]) -> str:
    """Empirical (randomised-PIT) coverage of each revenue quantile against its nominal level."""
    fig = _figure(5.5, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="nominal")
    ax.fill_between([0, 1], [-0.02, 0.98], [0.02, 1.02], color="0.85", label="±2 points")
    ax.plot(levels, coverage, "o-", label="holdout coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("quantile level q")
    ax.set_ylabel("share of rows at or below the q quantile")
    ax.set_title("Prediction intervals: coverage")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)
