"""Gate: never worse than no gate on the data it was searched on; identity by default; JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ltv_core.models.gate import Gate, gate_loss, optimize_gate


def _val(n: int, seed: int, miscal: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 10, n)
    y = np.where(rng.random(n) < p, np.round(rng.lognormal(1.5, 1.2, n), 2), 0.0)
    point = np.expm1(miscal * p * rng.lognormal(1.0, 0.5, n))
    whale = rng.lognormal(2, 1, n)
    return y, p, point, whale


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), miscal=st.floats(0.2, 5.0), metric=st.sampled_from(["rmsle", "rmse", "mae"]))
def test_gate_never_increases_validation_loss(seed: int, miscal: float, metric: str) -> None:
    y, p, point, whale = _val(400, seed, miscal)
    gate = optimize_gate(y, p, point, whale_score=whale, metric=metric, n_grid=8, rounds=1)
    no_gate = gate_loss(metric, y, point)
    assert gate_loss(metric, y, gate.apply(point, p, whale)) <= no_gate + 1e-12
    assert gate.search["identity_loss"] == pytest.approx(no_gate)


def test_gate_helps_a_miscalibrated_prediction_and_round_trips() -> None:
    y, p, point, whale = _val(5000, 1, 3.0)  # 3x too large on the log scale
    gate = optimize_gate(y, p, point, whale_score=whale)
    assert not gate.is_identity()
    assert gate.search["gated_loss"] < gate.search["identity_loss"] - 1e-3
    back = Gate.from_dict(json.loads(json.dumps(gate.to_dict())))
    np.testing.assert_array_equal(back.apply(point, p, whale), gate.apply(point, p, whale))


def test_default_gate_is_identity_and_target_zero_rate() -> None:
    y, p, point, whale = _val(2000, 2, 1.0)
    np.testing.assert_array_equal(Gate().apply(point, p), point)
    g = optimize_gate(y, p, point, target_zero_rate=0.9)
    gated = g.apply(point, p, whale)
    assert (gated == 0).mean() == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError):
        optimize_gate(y, p, point, metric="mape")
    with pytest.raises(ValueError):
        Gate(whale_threshold=1.0, whale_boost=2.0).apply(point, p)
