"""Drift before labels arrive: the scoring window against the training window, pure and vectorised.

Why: labels of the scoring window come a horizon later (7 days for d7), so a feed change, a new app
version or a broken join would otherwise be seen a week late. What can be measured at once is how
far the inputs and the predictions moved (docs/OPERATIONS.md, "Drift"):

* per feature the model's trees use: the Population Stability Index (PSI) over bins of the training
  distribution, plus a two-sample test (Kolmogorov-Smirnov for numbers, chi-square for categories);
  for categorical features also the share of scoring rows whose value the training window never had;
* the prediction distribution: this run's predictions on the scoring window against the champion's
  on the same rows (or against this run's own predictions on validation when there is no champion).

PSI = sum_b (a_b - e_b) * ln(a_b / e_b) over the shares e (training) and a (scoring) of each bin,
each share floored at ``EPS`` so that an empty bin stays finite. Missing values are a bin of their
own (a column that suddenly goes missing drifts). Numeric bins: the distinct quantiles of the
training values at 0, 1/bins, ..., (bins-1)/bins are the edges (``quantile_edges``); every edge value is a bin of its
own and so is each open interval between (and beyond) them, so point masses (zeros, constant
columns) keep their own bin and a constant that moves to another value is seen in both directions.
The p-values are reported, not used to flag: at 50k rows every tiny difference is "significant".

Thresholds (``ltv_core.config.DriftConfig``) are compared with ``>``: a value equal to its threshold
does not exceed it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatch
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ltv_core.errors import DataError

EPS = 1e-4  # floor of a bin's share in PSI: an empty bin contributes a large but finite term
QUANTILES = 101  # points of each prediction distribution kept for the report's plot

Level = Literal["ok", "warn", "alert"]


class Thresholds(BaseModel):
    """The limits a drift report is judged by (``DriftConfig`` passes its own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi_warn: float = Field(default=0.1, ge=0)
    psi_alert: float = Field(default=0.25, ge=0)
    max_drifted_share: float = Field(default=0.2, ge=0, le=1)
    max_unseen_share: float = Field(default=0.05, ge=0, le=1)
    prediction_psi: float = Field(default=0.25, ge=0)


class FeatureDrift(BaseModel):
    """One compared feature: its PSI, its test statistic and p-value, missing shares, unseen share."""

    model_config = ConfigDict(extra="forbid")

    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float
    test: Literal["ks", "chi2"]
    statistic: float | None  # KS D, or the chi-square statistic; None when a side has no values
    p_value: float | None
    train_missing: float
    score_missing: float
    unseen_share: float | None = None  # categorical: share of non-null scoring rows unseen in training
    level: Level = "ok"


class PredictionDrift(BaseModel):
    """This run's predictions on the scoring window against a reference distribution."""

    model_config = ConfigDict(extra="forbid")

    column: str
    reference: str  # "champion" or "validation"
    reference_run_id: str | None
    psi: float
    ks: float | None
    p_value: float | None
    reference_mean: float
    current_mean: float
    reference_quantiles: list[float]  # at 0%, 1%, ..., 100% (the report's plot)
    current_quantiles: list[float]


class DriftReport(BaseModel):
    """A run's drift: per-feature rows, the prediction drift, and the verdict with its reasons."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    features: list[FeatureDrift] = Field(default_factory=list)
    prediction: PredictionDrift | None = None
    flagged_features: list[str] = Field(default_factory=list)  # PSI above psi_alert, largest first
    drifted_share: float = 0.0
    max_psi: float | None = None
    max_unseen_share: float | None = None
    flagged: bool = False
    reasons: list[str] = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    train_rows: int = 0
    score_rows: int = 0
    notes: list[str] = Field(default_factory=list)

    def top(self, n: int = 5) -> list[FeatureDrift]:
        """The ``n`` features with the largest PSI, largest first."""
        return sorted(self.features, key=lambda f: -f.psi)[:n]

    def summary(self) -> dict[str, Any]:
        """What a manifest, the promote stage and the runs page keep of the report."""
        return {"flagged": self.flagged, "max_psi": self.max_psi, "drifted_share": self.drifted_share,
                "flagged_features": self.flagged_features[:10], "max_unseen_share": self.max_unseen_share,
                "prediction_psi": None if self.prediction is None else self.prediction.psi,
                "reasons": self.reasons, "features": len(self.features), "enabled": self.enabled,
                "notes": self.notes}


# --- statistics ------------------------------------------------------------------------------------
def psi_from_counts(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    """PSI of two count vectors over the same bins (shares floored at ``eps``)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs counts over the same bins, got {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise DataError(f"PSI needs rows on both sides, got {int(e.sum())} and {int(a.sum())}")
    pe, pa = np.maximum(e / e.sum(), eps), np.maximum(a / a.sum(), eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def quantile_edges(train: np.ndarray, bins: int) -> np.ndarray:
    """The distinct quantiles of the finite training values at 0, 1/bins, ..., (bins-1)/bins. When
    point masses merged some of them (90% zeros: one edge), the values off the edges get quantile
    edges of their own, so the continuous part is still cut into ``bins`` bins."""
    finite = train[np.isfinite(train)]
    if len(finite) == 0:
        return np.zeros(0)
    q = np.arange(bins) / bins
    edges = np.unique(np.quantile(finite, q))
    rest = finite[~np.isin(finite, edges)]
    if len(edges) < bins and len(rest):
        edges = np.unique(np.concatenate([edges, np.quantile(rest, q)]))
    return edges


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: 2k+1 for a value equal to edge k, 2k for the open interval below edge k
    (2*len(edges) above the last one); missing (NaN) values get the last bin, 2*len(edges)+1."""
    idx = np.searchsorted(edges, values, side="left") + np.searchsorted(edges, values, side="right")
    return np.where(np.isnan(values), 2 * len(edges) + 1, idx)


def numeric_psi(train: np.ndarray, score: np.ndarray, bins: int = 10, eps: float = EPS) -> float:
    """PSI of a numeric feature over the training quantile bins (see the module docstring)."""
    train, score = _floats(train), _floats(score)
    edges = quantile_edges(train, bins)
    n_bins = 2 * len(edges) + 2
    e = np.bincount(bin_index(train, edges), minlength=n_bins)
    a = np.bincount(bin_index(score, edges), minlength=n_bins)
    return psi_from_counts(e, a, eps)


def _floats(values: Any) -> np.ndarray:
    """A float vector; NaN is missing, +-inf sorts into the outer bins."""
    return np.asarray(values, dtype=np.float64).ravel()


def _missing(x: np.ndarray) -> float:
    return float(np.isnan(x).mean()) if len(x) else 0.0


def numeric_drift(name: str, train: Any, score: Any, bins: int = 10) -> FeatureDrift:
    """PSI and the two-sample KS test of a numeric feature (NaN: missing, its own PSI bin)."""
    from scipy import stats

    tr, sc = _require_rows(name, _floats(train), _floats(score))
    ft, fs = tr[~np.isnan(tr)], sc[~np.isnan(sc)]
    d, p = (None, None)
    if len(ft) and len(fs):
        res = stats.ks_2samp(ft, fs)
        d, p = float(res.statistic), float(res.pvalue)
    return FeatureDrift(feature=name, kind="numeric", psi=numeric_psi(tr, sc, bins), test="ks", statistic=d,
                        p_value=p, train_missing=_missing(tr), score_missing=_missing(sc))


def _require_rows(name: str, train: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(train) == 0 or len(score) == 0:
        raise DataError(f"drift of feature {name!r}: no rows (train {len(train)}, score {len(score)})")
    return train, score


def _as_series(values: Any) -> pd.Series:
    """Values of any type as a Series with a fresh index (None and NaN: missing)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    return s.reset_index(drop=True)


def unseen_share(seen: Any, score: Any) -> float:
    """Share of the non-null ``score`` values that are not among ``seen`` (0 when all are null)."""
    s = _as_series(score)
    present = s[s.notna()]
    if len(present) == 0:
        return 0.0
    return float((~present.isin(pd.unique(_as_series(seen).dropna()))).mean())


def category_counts(train: pd.Series, score: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin: each training category, one bin for scoring values unseen in training, one
    for missing values; the same bins on both sides."""
    cats = pd.Index(pd.unique(train.dropna()))

    def counts(s: pd.Series) -> np.ndarray:
        codes = cats.get_indexer(s.to_numpy())  # -1: not a training category (or missing)
        codes = np.where(codes < 0, len(cats), codes)
        codes = np.where(s.isna().to_numpy(), len(cats) + 1, codes)
        return np.bincount(codes, minlength=len(cats) + 2)
    return counts(train), counts(score)


def categorical_drift(name: str, train: Any, score: Any, seen: Any = None) -> FeatureDrift:
    """PSI and chi-square test over the categories of a categorical feature, and the share of
    scoring values unseen in training (``seen``: every value the training window had, when
    ``train`` is only a sample or is the model's codes; default: the values of ``train``)."""
    from scipy import stats

    tr, sc = _as_series(train), _as_series(score)
    _require_rows(name, tr.to_numpy(), sc.to_numpy())
    e, a = category_counts(tr, sc)
    table = np.vstack([e, a])
    table = table[:, table.sum(axis=0) > 0]
    stat, p = 0.0, 1.0
    if table.shape[1] >= 2:
        res = stats.chi2_contingency(table, correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
    return FeatureDrift(feature=name, kind="categorical", psi=psi_from_counts(e, a), test="chi2", statistic=stat,
                        p_value=p, train_missing=float(tr.isna().mean()), score_missing=float(sc.isna().mean()),
                        unseen_share=unseen_share(tr if seen is None else seen, sc))


def prediction_drift(reference: Any, current: Any, *, column: str, reference_name: str,
                     reference_run_id: str | None = None, bins: int = 10) -> PredictionDrift:
    """PSI and KS of this run's predictions against a reference distribution of predictions."""
    ref = numeric_drift(column, reference, current, bins)
    r, c = _floats(reference), _floats(current)
    q = np.linspace(0, 1, QUANTILES)
    return PredictionDrift(column=column, reference=reference_name, reference_run_id=reference_run_id,
                           psi=ref.psi, ks=ref.statistic, p_value=ref.p_value,
                           reference_mean=float(np.nanmean(r)), current_mean=float(np.nanmean(c)),
                           reference_quantiles=np.nanquantile(r, q).tolist(),
                           current_quantiles=np.nanquantile(c, q).tolist())


# --- the frames and the verdict ---------------------------------------------------------------------
def sample_positions(n: int, max_rows: int, seed: int = 0) -> np.ndarray:
    """At most ``max_rows`` of ``n`` row positions, uniform, sorted and the same for the same sizes."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def compared_features(used: Iterable[str], available: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """The used features that the frames have, minus those matching an ``exclude`` pattern
    (fnmatch), in the frames' order. Fails naming the used features the frames lack."""
    used = set(used)
    missing = sorted(used - set(available))
    if missing:
        raise DataError(f"the model splits on {len(missing)} feature(s) the feature matrix lacks, e.g. {missing[:5]}")
    return [c for c in available if c in used and not any(fnmatch(c, p) for p in exclude)]


def _column_values(frame: pd.DataFrame, name: str) -> tuple[str, np.ndarray | pd.Series]:
    """(kind, values): a ``category`` column as its codes with NaN for missing, else floats."""
    col = frame[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return "categorical", pd.Series(np.where(col.cat.codes.to_numpy() < 0, np.nan, col.cat.codes.to_numpy()))
    try:
        return "numeric", col.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"drift: feature {name!r} is neither numeric nor categorical ({col.dtype}): {exc}") from exc


def feature_drift(train: pd.DataFrame, score: pd.DataFrame, features: Sequence[str], *, bins: int = 10,
                  seen: Mapping[str, Any] | None = None, unseen: Mapping[str, float] | None = None
                  ) -> list[FeatureDrift]:
    """One row per feature of the two frames: numeric columns by PSI + KS, ``category`` columns by
    PSI + chi-square on their codes. ``unseen``: exact unseen shares per feature computed on the raw
    values (they replace the share on the codes, where a rare and a new value look alike)."""
    rows = []
    for name in features:
        kind, tr = _column_values(train, name)
        _, sc = _column_values(score, name)
        row = (categorical_drift(name, tr, sc, (seen or {}).get(name)) if kind == "categorical"
               else numeric_drift(name, tr, sc, bins))
        if unseen and name in unseen:
            row = row.model_copy(update={"unseen_share": float(unseen[name])})
        rows.append(row)
    return rows


def _level(psi: float, t: Thresholds) -> Level:
    return "alert" if psi > t.psi_alert else "warn" if psi > t.psi_warn else "ok"


def assess(features: Sequence[FeatureDrift], prediction: PredictionDrift | None, thresholds: Thresholds, *,
           train_rows: int = 0, score_rows: int = 0, notes: Sequence[str] = ()) -> DriftReport:
    """The verdict: a run is flagged when the share of features with PSI above ``psi_alert``
    exceeds ``max_drifted_share``, when a categorical feature's unseen share exceeds
    ``max_unseen_share``, or when the prediction PSI exceeds ``prediction_psi``."""
    t = thresholds
    rows = [f.model_copy(update={"level": _level(f.psi, t)}) for f in features]
    drifted = sorted((f for f in rows if f.level == "alert"), key=lambda f: -f.psi)
    share = len(drifted) / len(rows) if rows else 0.0
    unseen = [f for f in rows if f.unseen_share is not None]
    max_unseen = max((f.unseen_share for f in unseen), default=None)
    reasons = []
    if share > t.max_drifted_share:
        reasons.append(f"{len(drifted)} of {len(rows)} features have PSI > {t.psi_alert:g} "
                       f"(share {share:.3f} > {t.max_drifted_share:g}): "
                       + ", ".join(f"{f.feature} {f.psi:.3f}" for f in drifted[:5]))
    for f in sorted(unseen, key=lambda f: -(f.unseen_share or 0.0)):
        if (f.unseen_share or 0.0) > t.max_unseen_share:
            reasons.append(f"{f.feature}: {f.unseen_share:.3f} of scoring rows have a category unseen in "
                           f"training (> {t.max_unseen_share:g})")
    if prediction is not None and prediction.psi > t.prediction_psi:
        reasons.append(f"prediction {prediction.column} PSI {prediction.psi:.3f} vs {prediction.reference} "
                       f"> {t.prediction_psi:g}")
    return DriftReport(features=rows, prediction=prediction, flagged_features=[f.feature for f in drifted],
                       drifted_share=share, max_psi=max((f.psi for f in rows), default=None),
                       max_unseen_share=max_unseen, flagged=bool(reasons), reasons=reasons, thresholds=t,
                       train_rows=train_rows, score_rows=score_rows, notes=list(notes))


def log_line(report: DriftReport, run_id: str, top: int = 5) -> str:
    """The task log's one line: the verdict and the top drifted features with their PSI."""
    feats = ", ".join(f"{f.feature} PSI {f.psi:.3f}" for f in report.top(top)) or "none compared"
    pred = "" if report.prediction is None else (
        f"; prediction {report.prediction.column} PSI {report.prediction.psi:.3f} vs {report.prediction.reference}")
    if report.flagged:
        return f"DRIFT FLAGGED for run {run_id}: {'; '.join(report.reasons)}; top features: {feats}{pred}"
    mx = "n/a" if report.max_psi is None or not math.isfinite(report.max_psi) else f"{report.max_psi:.3f}"
    return (f"drift of run {run_id} within thresholds: {len(report.features)} features compared, max PSI {mx}; "
            f"top features: {feats}{pred}")
