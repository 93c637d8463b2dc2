"""Immature labels: the longer horizons of a user who has not reached them yet, inferred from the
user's latest matured horizon (issue 14.4; docs/MODELS.md "Immature labels").

``MaturityMultipliers`` is fitted on the matured TRAINING rows only (every horizon known). For each
source horizon ``s`` (a young user's latest matured one) its rows fall in cohorts by revenue at
``s``: the non-payers at ``s`` (revenue 0) and ``payer_quantiles`` payer cohorts cut at quantiles of
the payers' revenue at ``s``. A payer's later horizon ``t`` is its revenue at ``s`` times the
cohort's ratio of sums ``sum(y_t) / sum(y_s)`` (>= 1 and non-decreasing in ``t``, so the inferred
horizons stay cumulative). A non-payer at ``s`` has no ratio: its later revenue is a rare late
conversion. ``zeros="keep"`` keeps it 0 (the conservative choice: no zero becomes a small positive
label, so the buyer share is not inflated); ``zeros="sample"`` copies the later horizons of a random
matured non-payer at ``s`` (a seeded hot-deck draw: the late-conversion rate and the zero mass are
kept, each row's label is a plausible trajectory rather than the cohort mean).

A row whose primary horizon is known keeps every value exactly; a row with no matured horizon
stays null (ingest drops it, counted). Vectorised numpy; parameters in ``__init__``, fitted state
in ``attr_``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ltv_core.errors import DataError

__all__ = ["MaturityMultipliers", "latest_matured"]

Zeros = Literal["keep", "sample"]


def latest_matured(Y: np.ndarray) -> np.ndarray:
    """Per row, the index of the last horizon of the longest all-finite prefix (-1: none)."""
    finite = np.isfinite(np.asarray(Y, dtype=np.float64))
    return np.cumprod(finite, axis=1).sum(axis=1).astype(np.int64) - 1


def _check_matrix(Y: Any, what: str) -> np.ndarray:
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise DataError(f"{what}: expected a (rows, horizons >= 2) revenue matrix, got shape {Y.shape}")
    if (Y[np.isfinite(Y)] < 0).any():
        raise DataError(f"{what}: revenue must be >= 0")
    return Y


class MaturityMultipliers:
    """Per-cohort multipliers ``y_t / y_s`` learned on matured rows; ``transform`` fills the
    horizons after each row's latest matured one (columns: the spec's horizons, the longest last)."""

    def __init__(self, payer_quantiles: int = 4, min_cohort_rows: int = 30, zeros: Zeros = "keep",
                 random_state: int = 0) -> None:
        self.payer_quantiles = payer_quantiles
        self.min_cohort_rows = min_cohort_rows
        self.zeros = zeros
        self.random_state = random_state

    def fit(self, Y: np.ndarray) -> MaturityMultipliers:
        """``Y``: (matured rows, horizons) cumulative revenue, every value finite."""
        if self.payer_quantiles < 1 or self.min_cohort_rows < 1:
            raise ValueError("payer_quantiles and min_cohort_rows must be >= 1")
        if self.zeros not in ("keep", "sample"):
            raise ValueError(f"zeros must be 'keep' or 'sample', got {self.zeros!r}")
        Y = _check_matrix(Y, "MaturityMultipliers.fit")
        if not np.isfinite(Y).all():
            raise DataError("MaturityMultipliers.fit: matured rows only (a null or NaN horizon was given)")
        if len(Y) < self.min_cohort_rows:
            raise DataError(f"MaturityMultipliers.fit: {len(Y)} matured rows, fewer than min_cohort_rows "
                            f"{self.min_cohort_rows}")
        H = Y.shape[1]
        q = self.payer_quantiles
        self.n_horizons_ = H
        self.edges_ = np.full((H, max(q - 1, 0)), np.nan)  # payer cohort cut points at each source
        self.ratio_ = np.ones((H, q, H))                  # [source, payer cohort, target]
        self.cohort_rows_ = np.zeros((H, q + 1), dtype=np.int64)  # column 0: non-payers
        self.late_conversion_ = np.zeros((H, H))          # share of non-payers at s paying by t
        self.zero_mean_ = np.zeros((H, H))                # mean y_t of non-payers at s
        self.donors_: list[np.ndarray] = []
        for s in range(H):
            self._fit_source(Y, s)
        self.n_fit_rows_ = len(Y)
        return self

    def _fit_source(self, Y: np.ndarray, s: int) -> None:
        ys = Y[:, s]
        zero = ys <= 0
        self.donors_.append(Y[zero])
        if zero.any():
            self.late_conversion_[s] = (Y[zero] > 0).mean(axis=0)
            self.zero_mean_[s] = Y[zero].mean(axis=0)
        payers = Y[~zero]
        if len(payers) == 0:
            return
        pooled = payers.sum(axis=0) / payers[:, s].sum()
        if self.payer_quantiles > 1:
            self.edges_[s] = np.quantile(payers[:, s], np.linspace(0, 1, self.payer_quantiles + 1)[1:-1])
        cohort = self._cohort(payers[:, s], s)
        self.cohort_rows_[s] = np.bincount(np.r_[np.zeros(int(zero.sum()), dtype=np.int64), cohort + 1],
                                           minlength=self.payer_quantiles + 1)
        sums = np.zeros((self.payer_quantiles, Y.shape[1]))
        np.add.at(sums, cohort, payers)
        enough = self.cohort_rows_[s, 1:] >= self.min_cohort_rows
        ratio = np.where(enough[:, None], sums / np.where(sums[:, [s]] > 0, sums[:, [s]], 1.0), pooled[None, :])
        # ratios of cumulative sums over the same rows: >= 1 at t >= s and non-decreasing in t
        self.ratio_[s] = np.maximum.accumulate(np.maximum(ratio, 1.0), axis=1)

    def _cohort(self, ys: np.ndarray, s: int) -> np.ndarray:
        """Payer cohort (0 .. payer_quantiles-1) of revenue values at source horizon ``s``."""
        if self.payer_quantiles == 1:
            return np.zeros(len(ys), dtype=np.int64)
        return np.searchsorted(self.edges_[s], ys, side="right").astype(np.int64)

    def transform(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(filled copy of ``Y``, per row its source horizon index): rows with a finite last
        column are returned unchanged with source = last index; rows with no matured horizon stay
        as given with source -1; every other row's horizons after its source are inferred."""
        if not hasattr(self, "ratio_"):
            raise DataError("MaturityMultipliers.transform called before fit")
        Y = _check_matrix(Y, "MaturityMultipliers.transform").copy()
        if Y.shape[1] != self.n_horizons_:
            raise DataError(f"MaturityMultipliers.transform: {Y.shape[1]} horizons, fitted on {self.n_horizons_}")
        H = self.n_horizons_
        src = latest_matured(Y)
        src[np.isfinite(Y[:, -1])] = H - 1
        rng = np.random.default_rng(self.random_state)
        for s in range(H - 1):
            rows = np.flatnonzero(src == s)
            if len(rows):
                Y[rows, s + 1:] = self._infer(Y[rows, s], s, rng)[:, s + 1:]
        return Y, src

    def _infer(self, ys: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((len(ys), self.n_horizons_))
        payer = ys > 0
        out[payer] = ys[payer, None] * self.ratio_[s][self._cohort(ys[payer], s)]
        donors = self.donors_[s]
        if self.zeros == "sample" and len(donors) and (~payer).any():
            out[~payer] = donors[rng.integers(0, len(donors), int((~payer).sum()))]
        return out

    def summary(self, names: list[str]) -> dict[str, Any]:
        """The fitted multipliers to the last (primary) horizon, per source horizon: for a manifest."""
        last = self.n_horizons_ - 1
        return {"fit_rows": int(self.n_fit_rows_), "zeros": self.zeros, "payer_quantiles": self.payer_quantiles,
                "target": names[last], "sources": {
                    names[s]: {"payer_edges": [round(float(e), 6) for e in self.edges_[s]],
                               "payer_multipliers": [round(float(r), 6) for r in self.ratio_[s, :, last]],
                               "cohort_rows": [int(c) for c in self.cohort_rows_[s]],
                               "nonpayer_late_conversion": round(float(self.late_conversion_[s, last]), 6),
                               "nonpayer_mean": round(float(self.zero_mean_[s, last]), 6)}
                    for s in range(last)}}
