"""The candidates race: a contender ships an output only when validation shows it significantly
better than the stack; each output is decided on its own metric; the winner is what predict uses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_core import metrics
from ltv_core.models import persist
from ltv_core.models.baselines import Baseline
from ltv_core.models.config import load_models_config
from ltv_core.models.matrix import DenseMatrix
from ltv_core.models.race import run_race
from ltv_core.models.training import train_stack
from support.modeldata import FAST, SPEC, make_data, split


def _truth(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(1.5 * signal - 2.5))), np.exp(rng.normal(1 + signal, 0.8)), 0.0)
    return y, signal


def test_only_a_significantly_better_contender_replaces_the_stack() -> None:
    y, signal = _truth()
    rng = np.random.default_rng(1)
    good = np.expm1(0.9 * np.log1p(y) + 0.05)  # close to the truth
    stack = {"point": np.expm1(np.maximum(0.3 * signal + 0.3, 0)), "value": np.exp(signal)}
    tie = {"point": stack["point"] * (1 + 1e-4 * rng.standard_normal(len(y))), "value": stack["value"][::-1].copy()}
    res = run_race(y, stack, {"tie": tie, "good": {"point": good, "value": good}, "worse": {
        "point": np.zeros(len(y)), "value": rng.random(len(y))}}, n_boot=100)
    assert res.winners == {"point": "good", "value": "good"}
    ev = res.evidence["point"]["candidates"]
    assert ev["good"]["significantly_better"] and not ev["tie"]["significantly_better"]
    assert ev["good"]["rmsle"] == metrics.rmsle(y, good)
    # a tie never ships, and a margin larger than the gain keeps the stack
    assert run_race(y, stack, {"tie": tie}, n_boot=100).winners == {"point": "stack", "value": "stack"}
    gain = metrics.rmsle(y, stack["point"]) - metrics.rmsle(y, good)
    assert run_race(y, stack, {"good": {"point": good, "value": stack["value"]}}, margin_rmsle=2 * gain,
                    n_boot=100).winners["point"] == "stack"


def test_outputs_are_decided_separately_and_the_best_of_the_winners_ships() -> None:
    y, signal = _truth(seed=2)
    stack = {"point": np.expm1(np.maximum(0.2 * signal, 0)), "value": np.exp(0.2 * signal)}
    better = np.expm1(0.8 * np.log1p(y))
    best = np.expm1(0.95 * np.log1p(y))
    res = run_race(y, stack, {"a": {"point": better, "value": stack["value"]},
                              "b": {"point": best, "value": stack["value"] * 2}}, n_boot=100)
    assert res.winners["point"] == "b"
    assert res.winners["value"] == "stack"  # same ranking as the stack's (x2 changes no order): no evidence


class _Perfect:
    """A contender that knows the validation labels (keyed by a feature value): validation shows it
    better than anything, so the race must ship it, and the stack must then predict with it."""

    def __init__(self, X: pd.DataFrame, y: np.ndarray) -> None:
        self.map = dict(zip(X["x0"].to_numpy().astype(np.float32).tolist(), y.tolist(), strict=True))

    def predict(self, X: pd.DataFrame | DenseMatrix) -> np.ndarray:
        x0 = X.values[:, X.names.index("x0")] if isinstance(X, DenseMatrix) else X["x0"].to_numpy()
        return np.array([self.map.get(float(np.float32(v)), 0.0) for v in x0.tolist()])

    def boosters(self) -> list:
        return []


def test_the_stack_ships_the_race_winner_and_persists_the_choice() -> None:
    X, L = make_data(9000, seed=5)
    s = split(X, L)
    (Xt, Lt), (Xv, Lv), (Xh, _) = s["train"], s["val"], s["hold"]
    config = load_models_config(overrides=FAST)
    y_val = Lv.iloc[:, 0].to_numpy()
    stack = train_stack(Xt, Lt, Xv, Lv, SPEC, config, contenders={"lgbm_log1p": _Perfect(Xv, y_val)})
    assert stack.race == {"point": "lgbm_log1p", "value": "lgbm_log1p"}
    assert stack.decisions["race"]["winners"] == stack.race
    np.testing.assert_allclose(stack.predict(Xv)["value_d7"].to_numpy(), y_val)

    # a real fitted baseline as winner survives persistence; a contender not listed never races
    base = Baseline("lgbm_log1p", FAST["lgbm"], 80, 10).fit(Xt, Lt.iloc[:, 0].to_numpy(), Xv, y_val)
    stack.base_models["lgbm_log1p"] = base
    again = persist.stack_from_blobs(persist.stack_to_blobs(stack))
    assert again.race == stack.race
    np.testing.assert_array_equal(again.predict(Xh).to_numpy(), stack.predict(Xh).to_numpy())
    unlisted = load_models_config(overrides={**FAST, "race": {"contenders": ["cohorts"]}})
    plain = train_stack(Xt, Lt, Xv, Lv, SPEC, unlisted, contenders={"lgbm_log1p": _Perfect(Xv, y_val)})
    assert plain.race == {} and plain.decisions["race"]["reason"] == "no contender fitted"
