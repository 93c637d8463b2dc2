"""MaturityMultipliers (ltv_core.models.maturity) and its ingest hook (ltv_core.immature)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ltv_core.config import ImmatureLabelsConfig
from ltv_core.errors import DataError, SpecError
from ltv_core.immature import Inference, min_source
from ltv_core.models.maturity import MaturityMultipliers, latest_matured
from ltv_core.spec import load_spec


def synthetic(n: int, seed: int = 0, low: float = 1.5, high: float = 3.0) -> np.ndarray:
    """Three horizons: half the rows pay at h0 and grow by 1.2 to h1, then by ``low`` (small payers) or ``high``
    (large ones, h0 > 10) to h2; 10% of non-payers convert late, paying 2 by h2."""
    rng = np.random.default_rng(seed)
    i = rng.permutation(n)
    pay, big = i % 4 < 2, i % 4 < 1  # exactly half of the payers are large: a clean median cut
    y0 = np.where(pay, np.where(big, rng.uniform(20, 40, n), rng.uniform(1, 5, n)), 0.0)
    late = ~pay & (rng.random(n) < 0.1)
    y1 = 1.2 * y0
    y2 = np.where(y0 > 10, high, low) * y1 + np.where(late, 2.0, 0.0)
    return np.column_stack([y0, y1, y2])


def test_multipliers_recover_a_known_ratio():
    est = MaturityMultipliers(payer_quantiles=2, min_cohort_rows=10).fit(synthetic(20_000))
    small, large = est.ratio_[0, :, 2]
    assert small == pytest.approx(1.2 * 1.5, rel=1e-9) and large == pytest.approx(1.2 * 3.0, rel=1e-9)
    assert est.ratio_[1, :, 2] == pytest.approx([1.5, 3.0], rel=1e-9)
    assert est.late_conversion_[0, 2] == pytest.approx(0.1, abs=0.01)
    young = np.array([[2.0, np.nan, np.nan], [30.0, 36.0, np.nan], [0.0, 0.0, np.nan]])
    filled, src = est.transform(young)
    assert src.tolist() == [0, 1, 1]
    assert filled[0].tolist() == pytest.approx([2.0, 2.4, 3.6]) and filled[1, 2] == pytest.approx(108.0)
    assert filled[2].tolist() == [0.0, 0.0, 0.0]  # zeros="keep": a non-payer stays a zero label


def test_a_matured_primary_label_is_kept_exactly_and_nulls_stay_null():
    est = MaturityMultipliers(min_cohort_rows=5).fit(synthetic(2_000))
    Y = np.array([[1.0, 1.1, 7.123456789], [np.nan, np.nan, np.nan], [np.nan, 3.0, np.nan], [1.0, np.nan, 9.0]])
    filled, src = est.transform(Y)
    assert filled[0].tolist() == Y[0].tolist() and filled[3, 2] == 9.0 and np.isnan(filled[3, 1])
    assert src.tolist() == [2, -1, -1, 2] and np.isnan(filled[1]).all() and np.isnan(filled[2, 2])
    assert latest_matured(Y).tolist() == [2, -1, -1, 0]


def test_inferred_horizons_stay_cumulative_and_sampled_zeros_keep_the_zero_mass():
    est = MaturityMultipliers(zeros="sample", random_state=3).fit(synthetic(20_000, seed=1))
    young = np.column_stack([np.r_[np.zeros(5000), np.linspace(0.1, 40, 5000)], np.full((10_000, 2), np.nan)])
    filled, _ = est.transform(young)
    assert (np.diff(filled, axis=1) >= 0).all()
    late = (filled[:5000, 2] > 0).mean()
    assert 0.07 < late < 0.13  # the non-payers' late conversion rate, not a small positive label each
    again, _ = est.transform(young)
    assert np.array_equal(filled, again)  # seeded


def test_fit_refuses_immature_rows_and_transform_before_fit():
    Y = synthetic(500)
    Y[3, 2] = np.nan
    with pytest.raises(DataError, match="matured rows only"):
        MaturityMultipliers().fit(Y)
    with pytest.raises(DataError, match="before fit"):
        MaturityMultipliers().transform(Y)
    with pytest.raises(DataError, match=">= 0"):
        MaturityMultipliers().fit(-synthetic(100))
    with pytest.raises(ValueError, match="zeros"):
        MaturityMultipliers(zeros="mean").fit(synthetic(100))  # type: ignore[arg-type]


def test_the_fit_reads_only_the_rows_it_is_given():
    """The estimator sees what ingest passes, the staged training rows: changing other rows (the
    validation or holdout windows) cannot move a multiplier."""
    train = synthetic(5_000, seed=2)
    a = MaturityMultipliers().fit(train)
    b = MaturityMultipliers().fit(train.copy())
    MaturityMultipliers().fit(synthetic(5_000, seed=9, high=10.0))  # another window, fitted apart
    assert np.array_equal(a.ratio_, b.ratio_) and np.array_equal(a.edges_, b.edges_)


def test_the_ingest_hook_fills_a_young_table_from_the_spec():
    spec = load_spec("config/datasets/gaming_d120.yaml")
    names = [h.revenue for h in spec.labels.horizons]
    H = len(names)
    rng = np.random.default_rng(0)
    base = rng.exponential(1.0, 3000) * (rng.random(3000) < 0.3)
    est = MaturityMultipliers().fit(base[:, None] * np.linspace(1.0, 2.0, H)[None, :])
    cfg = ImmatureLabelsConfig(enabled=True, min_horizon="d30")
    first = min_source(cfg, spec)
    rows = [[1.0, 1.1, 1.2, 1.3, None, None, None],   # d30 matured: inferred from d30
            [1.0, 1.1, None, None, None, None, None],  # only d7: shorter than min_horizon, stays null
            [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25]]      # matured: kept exactly
    table = pa.table({c: pa.array([r[j] for r in rows], pa.float64()) for j, c in enumerate(names)})
    installed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    out, counts = Inference(est, spec, first, installed + timedelta(days=200))(table, installed)
    assert counts == {"matured": 1, "unlabelled": 1, "inferred_from": {"d30": 1}}
    d120 = out.column("d120_rev").to_pylist()
    assert d120[0] == pytest.approx(1.3 * 2.0 / (1 + 3 / 6)) and d120[1] is None and d120[2] == 1.25
    # a backfill: 45 days after install only d3..d30 were known, whatever the later export holds
    out, counts = Inference(est, spec, first, installed + timedelta(days=45))(table, installed)
    assert counts == {"matured": 0, "unlabelled": 1, "inferred_from": {"d30": 2}}
    assert out.column("d120_rev").to_pylist()[2] == pytest.approx(0.8 * 2.0 / (1 + 3 / 6))
    with pytest.raises(SpecError, match="min_horizon 'd999'"):
        min_source(ImmatureLabelsConfig(min_horizon="d999"), spec)


def test_the_dataset_spec_chooses_immature_labels_unless_the_pipeline_config_says(tmp_path) -> None:
    """enabled: null (the default) takes the spec's choice (false for both shipped specs today); a
    config value wins over it."""
    import yaml

    from ltv_core.context import make_context

    def ctx(spec: str, enabled: object) -> object:
        raw = yaml.safe_load(open("config/pipeline.yaml"))
        raw["immature_labels"]["enabled"] = enabled
        path = tmp_path / f"p-{Path(spec).stem}-{enabled}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return make_context("r1", "2024-03-13T00:00:00+00:00", {"config": str(path), "dataset_spec": spec,
                                                                  "store_root": str(tmp_path / "s")})

    gaming, smadex = "config/datasets/gaming_d120.yaml", "config/datasets/smadex_d7.yaml"
    assert ctx(gaming, None).config.immature_labels.enabled is True
    assert ctx(gaming, True).config.immature_labels.enabled is True
    assert ctx(smadex, None).config.immature_labels.enabled is False
    assert ctx(gaming, False).config.immature_labels.enabled is False
    assert ctx(smadex, True).config.immature_labels.enabled is True
