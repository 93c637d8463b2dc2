"""Metrics of LTV predictions: error, ranking (normalized Gini, top-k capture), whales, calibration.

Every function takes plain 1-d arrays (true revenue, predicted revenue or buyer probability) and
fails loudly on mismatched lengths, NaN, or negative revenue predictions, because a silently wrong
metric is worse than none: it decides model promotion.

Ranking metrics score **ties by their expected value under a random order** (the gain curve is
interpolated linearly inside a group of equal predictions). The ZILN reference code sorts with an
unstable sort, so a constant predictor (predict-zero, predict-mean) gets a Gini that depends on the
row order of the file; here it gets exactly the random-ranking value (≈ 0).

``paired_bootstrap_ci`` resamples rows (the same rows for both predictors, so the interval is for
the *difference*) with vectorised multinomial counts; for the built-in metrics no replicate is
re-sorted, so 1,000 replicates of a 200k-row holdout take seconds.

Where scikit-learn computes the very same number (bit for bit, on the holdouts and validation sets
this pipeline scores: ``tests/unit/test_metrics.py::test_sklearn_metrics_are_bit_identical``), the
metric is ``sklearn.metrics``' after this module's input checks: RMSE, MAE, RMSLE, R² (non-constant
target), Tweedie deviance, ROC AUC and average precision. The others stay here, each docstring says
why: the tie-aware ranking metrics, calibration ratio and ECE have no scikit-learn counterpart;
Brier, log loss and R² on a constant target differ from it (last bits, clipping, edge cases). The
promotion gate and the stacker's choice read these numbers, so a metric only moves to the library
if the library's value is identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    mean_absolute_error,
    mean_tweedie_deviance,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
    root_mean_squared_log_error,
)

__all__ = [
    "BootstrapCI",
    "brier",
    "calibration_ratio",
    "classifier_metrics",
    "ece",
    "evaluate",
    "log_loss",
    "tweedie_deviance",
    "gain_curve",
    "mae",
    "normalized_gini",
    "paired_bootstrap_ci",
    "pr_auc",
    "r2",
    "rmse",
    "rmsle",
    "roc_auc",
    "top_share",
    "whales_missed",
]

BOOTSTRAP_METRICS = ("rmsle", "rmse", "mae", "gini")


# --- input checks -----------------------------------------------------------------------------------
def _pair(y_true: np.ndarray, y_pred: np.ndarray, *, nonneg_pred: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies; raises ValueError naming the problem."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} rows but y_pred has {p.size}")
    if y.size == 0:
        raise ValueError("cannot compute a metric on 0 rows")
    if not np.isfinite(y).all():
        raise ValueError(f"y_true has {int((~np.isfinite(y)).sum())} non-finite values")
    if not np.isfinite(p).all():
        raise ValueError(f"y_pred has {int((~np.isfinite(p)).sum())} non-finite values")
    if nonneg_pred and (p < 0).any():
        raise ValueError(f"y_pred has {int((p < 0).sum())} negative revenue predictions (min {p.min():.6g})")
    return y, p


def _revenue(y_true: np.ndarray) -> None:
    if (y_true < 0).any():
        raise ValueError(f"y_true has {int((y_true < 0).sum())} negative revenues")


# --- pointwise errors -------------------------------------------------------------------------------
def rmsle(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sqrt(mean((log1p(pred) - log1p(y))^2)): the Smadex datathon metric (primary).
    sklearn's ``root_mean_squared_log_error``."""
    y, p = _pair(y_true, y_pred)
    _revenue(y)
    return float(root_mean_squared_log_error(y, p))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error on the revenue scale (dominated by whales); sklearn's
    ``root_mean_squared_error``."""
    y, p = _pair(y_true, y_pred, nonneg_pred=False)
    return float(root_mean_squared_error(y, p))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error on the revenue scale (its optimum is the conditional median, ~0 here);
    sklearn's ``mean_absolute_error``."""
    y, p = _pair(y_true, y_pred, nonneg_pred=False)
    return float(mean_absolute_error(y, p))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """1 - SSE/SST on the revenue scale (sklearn's ``r2_score``); on a constant target (SST = 0)
    0.0 when the prediction is exact, else -inf (the report shows it as n/a).

    The constant target stays here because sklearn's ``r2_score`` returns 1.0 / 0.0 there
    (``force_finite=True``) or NaN / -inf (``force_finite=False``), and NaN for a single row.
    """
    y, p = _pair(y_true, y_pred, nonneg_pred=False)
    if float(np.sum((y - y.mean()) ** 2)) == 0.0:
        return 0.0 if float(np.sum((y - p) ** 2)) == 0.0 else float("-inf")
    return float(r2_score(y, p))


def calibration_ratio(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sum(pred) / sum(true): 1.0 means the predicted total revenue matches the realised one.
    Own: scikit-learn has no such metric."""
    y, p = _pair(y_true, y_pred)
    total = y.sum()
    if total <= 0:
        raise ValueError("calibration ratio needs a positive true total")
    return float(p.sum() / total)


# --- ranking ----------------------------------------------------------------------------------------
def _tie_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order sorting score descending, start index of each group of equal scores in that order)."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    return order, starts


def _group_gain_sum(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sum over the positions of each tie group of the expected cumulative value (random order).

    ``values``/``sizes``: per-group total value and row count (any leading batch axes). Inside a
    group of L rows with total T that starts after cumulative C, the expected cumulative value at
    its k-th position is C + k*T/L, so the group contributes L*C + T*(L+1)/2.
    """
    before = np.cumsum(values, axis=-1) - values
    return sizes * before + values * (sizes + 1) / 2.0


def gain_curve(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Expected cumulative share of true value in the top k rows by score, for k = 1..n."""
    y, s = _pair(y_true, y_score, nonneg_pred=False)
    total = y.sum()
    if total <= 0:
        raise ValueError("gain curve needs a positive true total")
    order, starts = _tie_groups(s)
    ys = y[order]
    sizes = np.diff(np.append(starts, len(ys)))
    gtot = np.add.reduceat(ys, starts)
    cum_before = np.repeat(np.cumsum(gtot) - gtot, sizes)
    pos_in_group = np.arange(len(ys)) - np.repeat(starts, sizes) + 1
    return (cum_before + pos_in_group * np.repeat(gtot / sizes, sizes)) / total


def _raw_gini_sorted(ys_groups: np.ndarray, sizes: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    total = ys_groups.sum(axis=-1)
    mean_gain = _group_gain_sum(ys_groups, sizes).sum(axis=-1) / (n * total)
    return 2.0 * mean_gain - 1.0


def normalized_gini(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ZILN normalized Gini: (2*mean(gain) - 1) of the score / the same for a perfect ranking.

    The gain curve is the cumulative share of true revenue when rows are sorted by the score
    (Wang et al. 2019, ``lifetime_value/metrics.py``). 1 = perfect ranking, ~0 = random.
    Own: scikit-learn has no Gini of a continuous target, and ties here score their expected value
    under a random order (see the module docstring).
    """
    y, s = _pair(y_true, y_score, nonneg_pred=False)
    _revenue(y)
    if y.sum() <= 0:
        raise ValueError("normalized Gini needs a positive true total")
    raw = {}
    for name, score in (("model", s), ("perfect", y)):
        order, starts = _tie_groups(score)
        ys = y[order]
        sizes = np.diff(np.append(starts, len(ys))).astype(np.float64)
        raw[name] = float(_raw_gini_sorted(np.add.reduceat(ys, starts), sizes, len(ys)))
    if raw["perfect"] <= 0:
        raise ValueError("normalized Gini is undefined when every row has the same true value")
    return raw["model"] / raw["perfect"]


def top_share(y_true: np.ndarray, y_score: np.ndarray, frac: float) -> float:
    """Share of true revenue captured by the top ``frac`` of rows by score (ties: expected value).
    Own: no scikit-learn counterpart (and tie groups must straddle the cut at their expected value)."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    g = gain_curve(y_true, y_score)
    k = max(1, int(round(frac * len(g))))
    return float(g[k - 1])


def whales_missed(y_true: np.ndarray, y_score: np.ndarray, whale_frac: float = 0.01, top_frac: float = 0.10) -> float:
    """Share of whales (top ``whale_frac`` rows by true revenue, zeros never count) that are NOT in
    the top ``top_frac`` of rows by score. Tie groups straddling the cut count fractionally.
    Own: no scikit-learn counterpart."""
    y, s = _pair(y_true, y_score, nonneg_pred=False)
    _revenue(y)
    n = len(y)
    k_whale = min(max(1, int(round(whale_frac * n))), int((y > 0).sum()))
    if k_whale == 0:
        raise ValueError("no positive revenue: whales are undefined")
    whale = np.zeros(n, dtype=np.float64)
    whale[np.argsort(-y, kind="stable")[:k_whale]] = 1.0
    k_top = max(1, int(round(top_frac * n)))
    order, starts = _tie_groups(s)
    w = whale[order]
    sizes = np.diff(np.append(starts, n))
    gw = np.add.reduceat(w, starts)
    ends = starts + sizes
    full = ends <= k_top
    partial = (starts < k_top) & ~full
    caught = gw[full].sum() + (gw[partial] * (k_top - starts[partial]) / sizes[partial]).sum()
    return float(1.0 - caught / k_whale)


# --- classifier -------------------------------------------------------------------------------------
def _binary(y_true: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, q = _pair(y_true, p, nonneg_pred=False)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("classifier metrics need a 0/1 label")
    if (q < 0).any() or (q > 1).any():
        raise ValueError(f"probabilities must lie in [0, 1], got range [{q.min():.4g}, {q.max():.4g}]")
    return y, q


def roc_auc(y_true: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: sklearn's ``roc_auc_score`` (raises ValueError on one class)."""
    y, q = _binary(y_true, p)
    return float(roc_auc_score(y, q))


def pr_auc(y_true: np.ndarray, p: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve): sklearn's
    ``average_precision_score``."""
    y, q = _binary(y_true, p)
    return float(average_precision_score(y, q))


def brier(y_true: np.ndarray, p: np.ndarray) -> float:
    """mean((p - y)^2).

    Own: sklearn's ``brier_score_loss`` differs in the last bit on about one holdout in five: it
    sums the squared errors of both one-hot columns, ((1 - y) - (1 - p))^2 + (y - p)^2, and halves
    the sum, and 1 - p is rounded. evaluation.json and the classifier's manifest print it.
    """
    y, q = _binary(y_true, p)
    return float(np.mean((q - y) ** 2))


def log_loss(y_true: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    """Mean binary log loss (probabilities clipped to [eps, 1 - eps]).

    Own: sklearn's ``log_loss`` clips at the float64 machine epsilon (2.2e-16, not settable) instead
    of ``eps``, scores the two-column form [1 - p, p] with xlogy (different last bits on most
    inputs), and raises on a validation set with one class unless given ``labels``. The classifier's
    parameter search picks the candidate with the lowest value.
    """
    y, q = _binary(y_true, p)
    q = np.clip(q, eps, 1 - eps)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def tweedie_deviance(y_true: np.ndarray, mu: np.ndarray, power: float) -> float:
    """Mean Tweedie deviance for 1 < power < 2 (the loss LightGBM's tweedie objective minimises):
    sklearn's ``mean_tweedie_deviance`` of ``mu`` floored at 1e-12 (sklearn refuses mu <= 0)."""
    if not 1 < power < 2:
        raise ValueError(f"tweedie power must be in (1, 2), got {power}")
    y = np.asarray(y_true, dtype=np.float64)
    m = np.maximum(np.asarray(mu, dtype=np.float64), 1e-12)
    return float(mean_tweedie_deviance(y, m, power=power))


def ece(y_true: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error over equal-mass bins of p.

    Equal-mass rather than equal-width bins: at a 3-5% base rate equal-width bins put almost every
    row in the first bin and the metric would say nothing about the tail where buyers are.
    Own: scikit-learn has no ECE (``calibration_curve`` gives the bins, not the error).
    """
    y, q = _binary(y_true, p)
    order = np.argsort(q, kind="stable")
    bins = np.array_split(order, min(n_bins, len(q)))
    err = sum(len(b) * abs(y[b].mean() - q[b].mean()) for b in bins if len(b))
    return float(err / len(q))


def classifier_metrics(y_true: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, PR-AUC, Brier, ECE, base rate and mean probability of a buyer classifier."""
    y, q = _binary(y_true, p)
    return {"auc": roc_auc(y, q), "pr_auc": pr_auc(y, q), "brier": brier(y, q), "ece": ece(y, q),
            "base_rate": float(y.mean()), "mean_p": float(q.mean())}


# --- everything at once -----------------------------------------------------------------------------
def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Every regression and ranking metric of one prediction vector (JSON-able floats)."""
    y, p = _pair(y_true, y_pred)
    _revenue(y)
    out = {
        "rmsle": rmsle(y, p), "rmse": rmse(y, p), "mae": mae(y, p), "r2": r2(y, p),
        "gini": normalized_gini(y, p),
        "top1_share": top_share(y, p, 0.01), "top10_share": top_share(y, p, 0.10),
        "whales_missed_top10": whales_missed(y, p),
        "calibration_ratio": calibration_ratio(y, p),
        "mean_pred": float(p.mean()), "mean_true": float(y.mean()), "zero_rate_pred": float((p == 0).mean()),
        "rows": int(len(y)),
    }
    return out


# --- paired bootstrap -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootstrapCI:
    """metric(a) - metric(b) on the full sample, and its percentile interval over replicates."""

    metric: str
    diff: float
    lo: float
    hi: float
    level: float
    n_boot: int
    seed: int

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return {"metric": self.metric, "diff": self.diff, "lo": self.lo, "hi": self.hi, "level": self.level,
                "n_boot": self.n_boot, "seed": self.seed, "excludes_zero": self.excludes_zero()}


def _counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """(b, n) multinomial resampling counts: row i is drawn counts[r, i] times in replicate r."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _pointwise_loss(metric: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    if metric == "rmsle":
        return (np.log1p(p) - np.log1p(y)) ** 2
    if metric == "rmse":
        return (p - y) ** 2
    return np.abs(p - y)


def _weighted_raw_gini(y: np.ndarray, score: np.ndarray, counts: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Raw Gini of each replicate (rows of ``counts``) without re-sorting: a row drawn c times is a
    tie group of size c, so the expected-gain formula of ties applies unchanged. Rows with y == 0
    add nothing to the gain but take positions; a group of them only needs its size."""
    order, starts = _tie_groups(score)
    c = counts[:, order]
    vals = c * y[order]
    if len(starts) < len(order):  # real ties in the score: aggregate them first
        vals = np.add.reduceat(vals, starts, axis=1)
        c = np.add.reduceat(c, starts, axis=1)
    return 2.0 * _group_gain_sum(vals, c).sum(axis=1) / (counts.sum(axis=1) * total) - 1.0


def _perfect_raw_gini(y: np.ndarray, counts: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Raw Gini of the perfect ranking per replicate: positive rows by y, then one group of zeros
    whose positions all come after the whole total (contribution: size * total)."""
    pos = np.flatnonzero(y > 0)
    order = pos[np.argsort(-y[pos], kind="stable")]
    ys = y[order]
    starts = np.flatnonzero(np.concatenate([[True], ys[1:] != ys[:-1]]))
    c = counts[:, order]
    vals = c * ys
    if len(starts) < len(order):
        vals = np.add.reduceat(vals, starts, axis=1)
        c = np.add.reduceat(c, starts, axis=1)
    n = counts.sum(axis=1)
    zeros = n - c.sum(axis=1)
    gain = _group_gain_sum(vals, c).sum(axis=1) + zeros * total
    return 2.0 * gain / (n * total) - 1.0


def _gini_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    total = counts @ y
    perfect = _perfect_raw_gini(y, counts, total)
    return (_weighted_raw_gini(y, a, counts, total) - _weighted_raw_gini(y, b, counts, total)) / perfect


def _replicates(metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if metric == "gini":
        return _gini_diff(y, a, b, counts)
    la, lb = _pointwise_loss(metric, y, a), _pointwise_loss(metric, y, b)
    n = counts.sum(axis=1)
    ma, mb = counts @ la / n, counts @ lb / n
    if metric in ("rmsle", "rmse"):
        return np.sqrt(ma) - np.sqrt(mb)
    return ma - mb


_FULL = {"rmsle": rmsle, "rmse": rmse, "mae": mae, "gini": normalized_gini}


def paired_bootstrap_ci(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                        metric: str | Callable[[np.ndarray, np.ndarray], float] = "rmsle", *,
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                        chunk: int | None = None) -> BootstrapCI:
    """Percentile CI of metric(y, a) - metric(y, b) from ``n_boot`` paired row resamples.

    Built-in metrics (rmsle, rmse, mae, gini) use resampling *counts* and closed forms (no per
    replicate sort); any other callable ``metric(y, pred)`` falls back to index resampling.
    Own: scikit-learn has no paired bootstrap, and the closed forms need the metrics' own algebra.
    """
    y, a = _pair(y_true, pred_a, nonneg_pred=False)
    _, b = _pair(y_true, pred_b, nonneg_pred=False)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 10:
        raise ValueError(f"n_boot must be >= 10, got {n_boot}")
    rng = np.random.default_rng(seed)
    n = len(y)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    if isinstance(metric, str):
        if metric not in BOOTSTRAP_METRICS:
            raise ValueError(f"unknown bootstrap metric {metric!r}; built-in: {BOOTSTRAP_METRICS} or a callable")
        full = _FULL[metric](y, a) - _FULL[metric](y, b)
        step = chunk or max(1, min(n_boot, 20_000_000 // max(n, 1) // (4 if metric == "gini" else 1)))
        reps = np.concatenate([_replicates(metric, y, a, b, _counts(rng, n, min(step, n_boot - s)))
                               for s in range(0, n_boot, step)])
    else:
        full = metric(y, a) - metric(y, b)
        reps = np.empty(n_boot)
        for r in range(n_boot):
            idx = rng.integers(0, n, n)
            reps[r] = metric(y[idx], a[idx]) - metric(y[idx], b[idx])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return BootstrapCI(metric=name, diff=float(full), lo=float(lo), hi=float(hi), level=level,
                       n_boot=n_boot, seed=seed)
