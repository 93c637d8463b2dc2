"""Histogram resampling of the training window: HistOS (oversampling) and HHISTUS (undersampling).

Both come from imbalanced *regression* (Aminian, Ribeiro, Gama 2025): a histogram of the target
says how common each row's value is; rare values are replayed, common ones thinned. Two
invariants:

* the histogram is over **log1p revenue**, never over the binary buyer label (a histogram of a 0/1
  label has two bins, and HistOS on it is an exact no-op): the zeros form one bin, the buyers are
  spread over equal-width bins, and buyers in rare (high-revenue) bins get copies.
* every row gets a bin (``np.digitize`` would leave y == the top edge outside every bin and so
  drop the maximum row), rows equal to the maximum are always kept, every draw is seeded, and the
  result is a vector of **row indices**, so every horizon's labels are taken from the very rows
  that were kept (never from a second, independent draw per horizon).

Both return ``ResampleResult(indices, weights)``. ``weights`` are Horvitz-Thompson correction
weights: 1/copies for an oversampled row, 1/keep-probability for an undersampled one. Fitting with
them targets the original distribution again (the weighted mean of any function of the rows is
preserved: exactly for HistOS, in expectation for HHISTUS, exactly when a thinned bin is one price
point). ``design_weights`` give the same emphasis without duplicating rows (``mode: weights``).
Resampling is applied to the training window only; validation and holdout are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ResampleResult", "hhistus", "histos", "odds_factor"]


@dataclass(frozen=True)
class ResampleResult:
    """Rows to train on (indices into the input, possibly repeated) and their correction weights."""

    indices: np.ndarray
    weights: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.indices.shape != self.weights.shape:
            raise ValueError("indices and weights must have the same length")


def _check_target(y: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-d revenue array, got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name}: revenue must be finite and >= 0")
    return arr


def histos_copies(y: np.ndarray, *, n_bins: int = 20, target_quantile: float = 0.75,
                  max_copies: int = 10) -> np.ndarray:
    """Copies per row (>= 1): zeros are one bin; positive log1p revenue in ``n_bins`` equal-width
    bins; a row in a bin with count c gets clip(floor(target / c), 1, max_copies), where target is
    the ``target_quantile`` of the non-empty bins' counts."""
    y = _check_target(y, "histos")
    if n_bins < 1 or max_copies < 1 or not 0 <= target_quantile <= 1:
        raise ValueError("histos: need n_bins >= 1, max_copies >= 1 and target_quantile in [0, 1]")
    ly = np.log1p(y)
    pos = y > 0
    bins = np.zeros(len(y), dtype=np.int64)  # bin 0 = zeros
    if pos.any():
        lo, hi = ly[pos].min(), ly[pos].max()
        edges = np.linspace(lo, hi, n_bins + 1)[1:-1]
        bins[pos] = 1 + np.searchsorted(edges, ly[pos], side="right")
    counts = np.bincount(bins, minlength=n_bins + 1)
    target = np.quantile(counts[counts > 0], target_quantile)
    per_bin = np.clip(np.floor(target / np.maximum(counts, 1)), 1, max_copies).astype(np.int64)
    return per_bin[bins]


def histos(y: np.ndarray, *, n_bins: int = 20, target_quantile: float = 0.75, max_copies: int = 10,
           seed: int = 0) -> ResampleResult:
    """HistOS: replay rows of rare log1p-revenue bins; weights 1/copies (exact mean preservation).

    The output is shuffled with ``seed`` so copies of a row are not adjacent (LightGBM bagging
    draws contiguous-looking samples otherwise); the multiset of rows depends only on ``y``.
    """
    copies = histos_copies(y, n_bins=n_bins, target_quantile=target_quantile, max_copies=max_copies)
    idx = np.repeat(np.arange(len(copies)), copies)
    rng = np.random.default_rng(seed)
    idx = idx[rng.permutation(len(idx))]
    w = 1.0 / copies[idx]
    pos = np.asarray(y) > 0
    info = {"method": "histos", "rows_in": int(len(copies)), "rows_out": int(len(idx)),
            "buyers_in": int(pos.sum()), "buyer_copies": int(copies[pos].sum()),
            "max_copies_used": int(copies.max())}
    return ResampleResult(indices=idx, weights=w, info=info)


def _quantile_bins(ly: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index in [0, k) of each value, from unique quantile edges; the maximum is in the last bin."""
    edges = np.unique(np.quantile(ly, np.linspace(0, 1, n_bins + 1)))
    if len(edges) <= 2:
        return np.zeros(len(ly), dtype=np.int64)
    return np.searchsorted(edges[1:-1], ly, side="right").astype(np.int64)


def hhistus_keep_probability(y: np.ndarray, *, n_bins: int = 30, target_percentile: float = 50.0
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin per row, rows kept per bin, rows per bin) of HHISTUS on log1p(y).

    Bins are quantile bins, so they are equal-frequency except where **ties** collapse edges (price
    points such as 0.99 or 4.99): those bins swell and are the ones thinned, down to the
    ``target_percentile`` of the bin counts. A bin holding the maximum keeps its maximum rows.
    """
    y = _check_target(y, "hhistus")
    if n_bins < 1 or not 0 <= target_percentile <= 100:
        raise ValueError("hhistus: need n_bins >= 1 and target_percentile in [0, 100]")
    bins = _quantile_bins(np.log1p(y), n_bins)
    counts = np.bincount(bins)
    target = max(1, int(np.ceil(np.percentile(counts[counts > 0], target_percentile))))
    keep = np.minimum(counts, target)
    n_max = np.bincount(bins[y == y.max()], minlength=len(counts))
    keep = np.maximum(keep, n_max)  # the maximum rows are always kept
    return bins, keep, counts


def hhistus(y: np.ndarray, *, n_bins: int = 30, target_percentile: float = 50.0, seed: int = 0) -> ResampleResult:
    """HHISTUS: thin over-full log1p-revenue bins without replacement; weights 1/keep-probability.

    Vectorised: each row draws a uniform key (maximum rows get -1, so they sort first); rows are
    ranked inside their bin by key and the first ``keep[bin]`` are kept. Inside a bin with c rows,
    f forced maximum rows and k kept, a forced row has weight 1 and any other (c - f)/(k - f), so
    each bin's weighted count equals its original count exactly.
    """
    y = np.asarray(y, dtype=np.float64)
    bins, keep, counts = hhistus_keep_probability(y, n_bins=n_bins, target_percentile=target_percentile)
    rng = np.random.default_rng(seed)
    forced = y == y.max()
    key = np.where(forced, -1.0, rng.random(len(y)))
    order = np.lexsort((key, bins))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(y), dtype=np.int64)
    rank[order] = np.arange(len(y)) - starts[bins[order]]
    kept = rank < keep[bins]
    idx = np.flatnonzero(kept)
    n_forced = np.bincount(bins[forced], minlength=len(counts))
    free_w = np.where(keep > n_forced, (counts - n_forced) / np.maximum(keep - n_forced, 1), 1.0)
    w = np.where(forced[idx], 1.0, free_w[bins[idx]])
    info = {"method": "hhistus", "rows_in": int(len(y)), "rows_out": int(len(idx)), "bins": int(len(counts)),
            "thinned_bins": int((keep < counts).sum()), "max_kept": bool(kept[forced].all())}
    return ResampleResult(indices=idx, weights=w, info=info)


def design_weights(method: str, y: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """Per-row emphasis of ``mode: weights``: the expected number of times a row would appear
    (HistOS copies, HHISTUS keep-probability), used as sample weights instead of resampling."""
    if method == "histos":
        return histos_copies(y, **settings).astype(np.float64)
    if method == "hhistus":
        bins, keep, counts = hhistus_keep_probability(y, **settings)
        return (keep / counts)[bins]
    raise ValueError(f"unknown resampling method {method!r}; known: histos, hhistus")


def odds_factor(labels: np.ndarray, weights: np.ndarray) -> float:
    """How much a weighting/resampling multiplied the buyer odds: (w-odds) / (true odds).

    ``weights`` has one entry per original row: its emphasis weight, or for a resampled set the
    number of times the row appears (``np.bincount(indices, minlength=n)``).

    A classifier fitted under that emphasis over-predicts buyers; the prior correction divides its
    odds by this factor: p' = p / (p + (1 - p) * factor) (Elkan 2001, Saerens et al. 2002).
    """
    b = np.asarray(labels) > 0
    if b.all() or not b.any():
        raise ValueError("odds factor needs both buyers and non-buyers")
    w = np.asarray(weights, dtype=np.float64)
    return float((w[b].sum() / w[~b].sum()) / (b.sum() / (~b).sum()))
