"""Fitted feature state: everything learned from the training split, as one JSON document.

Fitted once on ``train`` and reused unchanged for validation, holdout and scoring, so that a raw
row always maps to the same feature vector (nothing is refit on a validation, holdout or scoring
batch, so no row's vector depends on the batch it is scored in).
The state embeds the features config it was fitted with: transforming later with the state never
re-reads ``config/features.yaml``, so an edited YAML cannot skew a run that already has a state.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_core.errors import DataError
from ltv_core.features.transforms import OTHER_CATEGORY

STATE_VERSION = 1


@dataclass
class GeoTable:
    """Empirical CDF (compressed to at most ``max_points`` knots) and median of a value per group."""

    value: str
    group: str
    stats: list[str]
    groups: list[str]  # group values with enough training rows
    x: list[list[float]]  # per group: increasing knot values
    cdf: list[list[float]]  # per group: mid-rank CDF at the knots
    median: list[float]
    n: list[int]
    global_x: list[float]
    global_cdf: list[float]
    global_median: float | None
    global_n: int


@dataclass
class TargetEncodingTable:
    """Per-category, per-fold training counts and target sums (encodings are derived on use)."""

    column: str
    categories: list[str]
    counts: list[list[float]]  # [category][fold]
    sums: dict[str, list[list[float]]]  # target name -> [category][fold]


@dataclass
class FeatureState:
    """What transform needs besides the raw row: JSON-serialisable, saved beside the features."""

    dataset: str
    config: dict[str, Any]  # the FeaturesConfig fingerprint used at fit time
    config_hash: str
    train_rows: int = 0
    train_partitions: list[str] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    missing_share: dict[str, float] = field(default_factory=dict)
    missing_indicators: list[str] = field(default_factory=list)
    inner_keys: dict[str, list[str]] = field(default_factory=dict)
    geo: dict[str, GeoTable] = field(default_factory=dict)
    target_encoding: dict[str, TargetEncodingTable] = field(default_factory=dict)
    te_targets: list[str] = field(default_factory=list)
    te_folds: int = 0
    te_partition_folds: dict[str, int] = field(default_factory=dict)
    te_fold_counts: list[float] = field(default_factory=list)
    te_fold_sums: dict[str, list[float]] = field(default_factory=dict)
    te_note: str = ""
    feature_names: list[str] = field(default_factory=list)
    categorical_features: list[str] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    version: int = STATE_VERSION

    # --- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureState:
        if d.get("version") != STATE_VERSION:
            raise DataError(f"feature state version {d.get('version')!r} is not supported (expected {STATE_VERSION})")
        d = dict(d)
        d["geo"] = {k: GeoTable(**v) for k, v in d.get("geo", {}).items()}
        d["target_encoding"] = {k: TargetEncodingTable(**v) for k, v in d.get("target_encoding", {}).items()}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> FeatureState:
        return cls.from_dict(json.loads(text))

    # --- views -----------------------------------------------------------------------------------
    def fold_of(self, partition: str) -> int | None:
        """Target-encoding fold of a training partition (None: not a training partition)."""
        return self.te_partition_folds.get(partition)

    def te_encodings(self, column: str, target: str, fold: int | None, smoothing: float) -> tuple[np.ndarray, float]:
        """Smoothed encodings per category and the prior, excluding ``fold`` (out-of-fold) if given.

        enc = (sum + m * prior) / (count + m); with nothing left outside the fold the prior is NaN.
        """
        t = self.target_encoding[column]
        counts = np.asarray(t.counts, dtype=np.float64).reshape(len(t.categories), self.te_folds)
        sums = np.asarray(t.sums[target], dtype=np.float64).reshape(len(t.categories), self.te_folds)
        fold_n = np.asarray(self.te_fold_counts, dtype=np.float64)
        fold_s = np.asarray(self.te_fold_sums[target], dtype=np.float64)
        keep = np.ones(self.te_folds, dtype=bool)
        if fold is not None:
            keep[fold] = False
        n_tot, s_tot = fold_n[keep].sum(), fold_s[keep].sum()
        prior = s_tot / n_tot if n_tot > 0 else math.nan
        c, s = counts[:, keep].sum(axis=1), sums[:, keep].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            enc = (s + smoothing * prior) / (c + smoothing)
        enc = np.where(c + smoothing > 0, enc, prior)
        return enc, prior


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: the state never stores them (a fit that produced one is a bug)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise DataError(f"feature state holds a non-finite number {obj!r}; refusing to persist it")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def category_labels(vocab: list[str]) -> list[str]:
    """Categories of a code column: the vocabulary then one label for rare/unseen values."""
    other = OTHER_CATEGORY
    while other in vocab:
        other = "_" + other
    return [*vocab, other]


def feature_frame(table: pa.Table, state: FeatureState) -> pd.DataFrame:
    """The model matrix of a feature table: the state's feature order, categoricals as ``category``
    with the FULL fitted category list (same value -> same code in every split), -1 codes -> NaN."""
    x = table.select(state.feature_names).to_pandas()
    for name in state.categorical_features:
        cats = category_labels(state.vocabularies.get(name, []))
        x[name] = pd.Categorical.from_codes(x[name].to_numpy(), categories=cats)
    return x
