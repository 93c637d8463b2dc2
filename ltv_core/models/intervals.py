"""Prediction intervals of primary-horizon revenue: per-row quantiles and P(revenue > a whale line).

The hurdle already gives the two parts of the revenue distribution of a row: the calibrated
probability p(x) of any revenue and the buyers' E[log1p y | buyer, x] = m(x). What it lacks is the
spread of log1p revenue around m among buyers. ``RevenueQuantiles`` learns it **on the validation
window** (out of sample for the regressor: a split-conformal residual distribution), in ``bins``
groups of rows by m (heteroscedastic: big spenders scatter differently from small ones):

* F(y | x) = (1 - p) + p * R_b(log1p y - m)   for y >= 0, with R_b the residual CDF of bin b
* quantile q:  0 where q <= 1 - p (the zero atom covers it), else expm1(m + R_b^-1((q - (1-p)) / p))
* P(y > T | x) = p * (1 - R_b(log1p T - m))

Coverage with an atom at zero: a quantile that is 0 covers every zero, so the plain share
``y <= Q_q`` overstates coverage whenever q < P(y = 0). ``coverage`` uses the randomised PIT of the
model's own F instead (a zero row under a zero quantile counts q / (1 - p)), whose expectation is
exactly q when the model is calibrated (tests/unit/test_models_intervals.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ltv_core.errors import DataError

__all__ = ["RevenueQuantiles", "coverage", "interval_report"]

LEVELS = np.linspace(0.0, 1.0, 401)  # residual quantiles kept per bin


class RevenueQuantiles:
    """Residual distribution of buyers' log1p revenue around m, by bin of m (see module doc)."""

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), whale_threshold: float | None = None,
                 bins: int = 5, whale_quantile: float = 0.95) -> None:
        self.quantiles = tuple(float(q) for q in quantiles)
        self.whale_threshold = whale_threshold
        self.bins = bins
        self.whale_quantile = whale_quantile

    def fit(self, p: np.ndarray, m: np.ndarray, y: np.ndarray) -> RevenueQuantiles:
        """On validation rows: p calibrated, m the regressor's buyers' E[log1p y], y revenue."""
        if not all(0 < q < 1 for q in self.quantiles):
            raise ValueError(f"quantiles must lie in (0, 1), got {list(self.quantiles)}")
        y, m = np.asarray(y, np.float64), np.asarray(m, np.float64)
        buyers = y > 0
        if buyers.sum() < 2 * self.bins:
            raise DataError(f"intervals: {int(buyers.sum())} buyers in the validation window, need >= {2 * self.bins}")
        mb, r = m[buyers], np.log1p(y[buyers]) - m[buyers]
        self.edges_ = np.unique(np.quantile(mb, np.linspace(0, 1, self.bins + 1)[1:-1]))
        b = np.searchsorted(self.edges_, mb, side="right")
        self.residuals_ = np.vstack([np.quantile(r[b == k] if (b == k).any() else r, LEVELS)
                                     for k in range(len(self.edges_) + 1)])
        self.whale_threshold_ = float(self.whale_threshold if self.whale_threshold is not None
                                      else np.quantile(y[buyers], self.whale_quantile))
        return self

    def _bin(self, m: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges_, m, side="right")

    def quantile(self, q: float, p: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Revenue quantile q per row (0 where the zero atom covers q)."""
        p, m = np.clip(np.asarray(p, np.float64), 0.0, 1.0), np.asarray(m, np.float64)
        qb = np.where(p > 0, (q - (1.0 - p)) / np.maximum(p, 1e-12), 0.0)
        b = self._bin(m)
        r = np.empty(len(m))
        for k in np.unique(b):
            rows = b == k
            r[rows] = np.interp(np.clip(qb[rows], 0.0, 1.0), LEVELS, self.residuals_[k])
        return np.where(qb > 0, np.maximum(np.expm1(m + r), 0.0), 0.0)

    def cdf(self, y: np.ndarray, p: np.ndarray, m: np.ndarray) -> np.ndarray:
        """F(y | x) for y > 0 rows' values (the zero atom included)."""
        p, m, y = np.asarray(p, np.float64), np.asarray(m, np.float64), np.asarray(y, np.float64)
        b = self._bin(m)
        out = np.empty(len(m))
        for k in np.unique(b):
            rows = b == k
            out[rows] = np.interp(np.log1p(y[rows]) - m[rows], self.residuals_[k], LEVELS, left=0.0, right=1.0)
        return (1.0 - p) + p * out

    def exceed_proba(self, p: np.ndarray, m: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """P(revenue > threshold | x); default threshold: the fitted whale line."""
        t = self.whale_threshold_ if threshold is None else float(threshold)
        return np.clip(1.0 - self.cdf(np.full(len(m), t), p, m), 0.0, 1.0)

    def columns(self, p: np.ndarray, m: np.ndarray, horizon: str) -> dict[str, np.ndarray]:
        """The per-row output columns: ``q10_<h>``, ``q50_<h>``, ``q90_<h>``, ``p_whale_<h>``."""
        out = {f"q{round(q * 100):02d}_{horizon}": self.quantile(q, p, m) for q in self.quantiles}
        out[f"p_whale_{horizon}"] = self.exceed_proba(p, m)
        return out

    def to_state(self) -> dict[str, Any]:
        return {"quantiles": list(self.quantiles), "whale_threshold": self.whale_threshold, "bins": self.bins,
                "whale_quantile": self.whale_quantile, "edges": self.edges_.tolist(),
                "residuals": self.residuals_.tolist(), "whale_threshold_fitted": self.whale_threshold_}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> RevenueQuantiles:
        obj = cls(s["quantiles"], s["whale_threshold"], s["bins"], s["whale_quantile"])
        obj.edges_ = np.asarray(s["edges"], np.float64)
        obj.residuals_ = np.asarray(s["residuals"], np.float64)
        obj.whale_threshold_ = float(s["whale_threshold_fitted"])
        return obj


def coverage(y: np.ndarray, quantile: np.ndarray, q: float, p: np.ndarray) -> float:
    """Randomised-PIT coverage of quantile ``q`` (see module doc): a row whose quantile is 0 and
    whose revenue is 0 counts q / (1 - p) (the share of the zero atom below q), every other row
    1[y <= quantile]."""
    y, Q, p = np.asarray(y, np.float64), np.asarray(quantile, np.float64), np.asarray(p, np.float64)
    at_zero = (Q <= 0) & (y <= 0)
    share = np.where(at_zero, np.clip(q / np.maximum(1.0 - p, 1e-12), 0.0, 1.0), (y <= Q).astype(np.float64))
    return float(share.mean())


def interval_report(model: RevenueQuantiles, y: np.ndarray, p: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """Holdout check of the intervals: randomised-PIT coverage of every configured quantile and of a
    grid of levels (the report's plot), and the whale probability's mean against the observed share."""
    y = np.asarray(y, np.float64)
    cov = {f"{q:g}": coverage(y, model.quantile(q, p, m), q, p) for q in model.quantiles}
    grid = [round(float(q), 2) for q in np.linspace(0.05, 0.95, 19)]
    curve = [coverage(y, model.quantile(q, p, m), q, p) for q in grid]
    pw = model.exceed_proba(p, m)
    return {"coverage": cov, "max_abs_error": max(abs(c - float(q)) for q, c in cov.items()),
            "curve": {"levels": grid, "coverage": curve},
            "whale": {"threshold": model.whale_threshold_, "mean_probability": float(pw.mean()),
                      "observed_share": float((y > model.whale_threshold_).mean())}}
