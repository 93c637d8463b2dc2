"""Gate: post-hoc corrections of the final prediction, chosen on the validation window.

The gate is searched on the very prediction it is applied to at inference, composed the same
way, and every setting (a whale multiplier included) is chosen by the reported metric, never
fixed by hand. Zeroing rows to hit a zero-rate target is not RMSLE-optimal (the minimiser
expm1(E[log1p y | x]) is never exactly 0). The gate is a small, explicit family applied in one
fixed order, searched on validation against the metric that is reported:

    pred = expm1(log_scale * log1p(point))            log-scale shrink / stretch (1 = none)
    pred = pred * whale_boost  where whale_score >= whale_threshold
    pred = min(pred, cap)
    pred = 0                   where p_buyer <= cutoff

``Gate()`` (all defaults) is the identity, and it is always evaluated first: ``optimize_gate``
returns it unless a setting lowers the validation loss by more than ``min_improvement``, so the
chosen gate never has a higher validation loss than no gate. ``target_zero_rate`` instead fixes the
cutoff at that quantile of p (for products that need a given share of zero bids).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["Gate", "optimize_gate", "gate_loss"]

GATE_METRICS = ("rmsle", "rmse", "mae")


@dataclass(frozen=True)
class Gate:
    """Gate parameters (JSON-serialisable); the defaults are the identity."""

    cutoff: float | None = None
    cap: float | None = None
    whale_threshold: float | None = None
    whale_boost: float = 1.0
    log_scale: float = 1.0
    metric: str = "rmsle"
    search: dict[str, Any] = field(default_factory=dict, compare=False)

    def is_identity(self) -> bool:
        return (self.cutoff is None and self.cap is None and (self.whale_threshold is None or self.whale_boost == 1.0)
                and self.log_scale == 1.0)

    def apply(self, point: np.ndarray, p_buyer: np.ndarray, whale_score: np.ndarray | None = None) -> np.ndarray:
        """The gated prediction (same length as ``point``); ``whale_score`` is needed only when the
        gate boosts whales."""
        pred = np.asarray(point, dtype=np.float64)
        p = np.asarray(p_buyer, dtype=np.float64)
        if pred.shape != p.shape:
            raise ValueError(f"point has {pred.size} rows but p_buyer has {p.size}")
        if self.log_scale != 1.0:
            pred = np.expm1(self.log_scale * np.log1p(pred))
        if self.whale_threshold is not None and self.whale_boost != 1.0:
            if whale_score is None:
                raise ValueError("this gate boosts whales: pass whale_score")
            pred = np.where(np.asarray(whale_score) >= self.whale_threshold, pred * self.whale_boost, pred)
        if self.cap is not None:
            pred = np.minimum(pred, self.cap)
        if self.cutoff is not None:
            pred = np.where(p <= self.cutoff, 0.0, pred)
        return pred

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Gate:
        return cls(**d)


def gate_loss(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    if metric == "rmsle":
        return float(np.sqrt(np.mean((np.log1p(pred) - np.log1p(y)) ** 2)))
    if metric == "rmse":
        return float(np.sqrt(np.mean((pred - y) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(pred - y)))
    raise ValueError(f"unknown gate metric {metric!r}; known: {GATE_METRICS}")


def _grids(p: np.ndarray, point: np.ndarray, whale_score: np.ndarray | None,
           n_grid: int) -> dict[str, list[Any]]:
    qs = np.linspace(0.5, 0.995, n_grid)
    grids: dict[str, list[Any]] = {
        "cutoff": [None] + sorted(set(np.quantile(p, qs).tolist())),
        "cap": [None] + sorted(set(np.quantile(point, [0.99, 0.995, 0.999, 0.9995]).tolist())),
        "log_scale": [1.0, 0.9, 0.95, 0.98, 1.02, 1.05, 1.1],
        "whale_boost": [1.0, 1.1, 1.25, 1.5],
        "whale_threshold": [None],
    }
    if whale_score is not None:
        grids["whale_threshold"] = [None] + sorted(set(np.quantile(whale_score, [0.95, 0.99, 0.995]).tolist()))
    return grids


def optimize_gate(y: np.ndarray, p_buyer: np.ndarray, point: np.ndarray, *, whale_score: np.ndarray | None = None,
                  metric: str = "rmsle", target_zero_rate: float | None = None, n_grid: int = 25,
                  rounds: int = 2, min_improvement: float = 1e-5) -> Gate:
    """Coordinate-wise grid search of the gate on validation rows (y, p, point[, whale_score]).

    Each round sweeps one parameter at a time with the others fixed; every sweep includes the
    identity value of that parameter, and the identity gate is the starting point, so the result's
    loss is <= the no-gate loss. ``search`` in the returned gate records both losses.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p_buyer, dtype=np.float64)
    point = np.asarray(point, dtype=np.float64)
    if not (len(y) == len(p) == len(point)) or len(y) == 0:
        raise ValueError("optimize_gate: y, p_buyer and point must be non-empty and of equal length")
    if metric not in GATE_METRICS:
        raise ValueError(f"unknown gate metric {metric!r}; known: {GATE_METRICS}")
    ws = None if whale_score is None else np.asarray(whale_score, dtype=np.float64)
    grids = _grids(p, point, ws, n_grid)
    start = Gate(metric=metric)
    if target_zero_rate is not None:
        if not 0 <= target_zero_rate < 1:
            raise ValueError(f"target_zero_rate must be in [0, 1), got {target_zero_rate}")
        start = replace(start, cutoff=float(np.quantile(p, target_zero_rate)))
        grids["cutoff"] = [start.cutoff]
    identity_loss = gate_loss(metric, y, Gate(metric=metric).apply(point, p, ws))

    def loss(g: Gate) -> float:
        return gate_loss(metric, y, g.apply(point, p, ws))

    best, best_loss = start, loss(start)
    for _ in range(rounds):
        for name in ("cutoff", "log_scale", "cap", "whale_threshold", "whale_boost"):
            for value in grids[name]:
                cand = replace(best, **{name: value})
                c_loss = loss(cand)
                if c_loss < best_loss - 1e-12:
                    best, best_loss = cand, c_loss
    if target_zero_rate is None and best_loss > identity_loss - min_improvement:
        best, best_loss = Gate(metric=metric), identity_loss
    record = {"metric": metric, "identity_loss": identity_loss, "gated_loss": best_loss,
              "target_zero_rate": target_zero_rate, "validation_rows": int(len(y)),
              "zero_rate": float((best.apply(point, p, ws) == 0).mean())}
    return replace(best, search=record)
