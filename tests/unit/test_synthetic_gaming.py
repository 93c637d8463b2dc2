"""The gaming generator (ltv_core.synthetic.gaming): layout and schema from the spec, determinism,
the seed's statistics (seeds_report §1.2), immaturity nulls, and the oracle.

Run with ``-s`` to print the measured statistics (docs/GENERATOR.md, "Gaming generator")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from scipy import integrate, stats as st

from ltv_core.cli import main
from ltv_core.spec import load_spec
from ltv_core.synthetic import generate
from ltv_core.synthetic.gaming import (COEF, HORIZON_COLUMNS, GamingKnobs, generate_gaming_dataset,
                                       generate_gaming_partition, get_vocab, label_inputs, linear_predictors,
                                       oracle)
from ltv_core.synthetic.gaming.stats import gaming_statistics

SPEC_PATH = "config/datasets/gaming_d120.yaml"
SPEC = load_spec(SPEC_PATH)
AS_OF = datetime(2024, 3, 13, tzinfo=UTC)


def read(root: Path) -> pa.Table:
    return ds.dataset(root, format="parquet", partitioning="hive").to_table()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, dict]:
    """150 train days x ~1,500 users (34 of them matured at d120: ~51k users) + 3 test days."""
    out = tmp_path_factory.mktemp("gaming")
    summary = generate_gaming_dataset(out, seed=11, rows_per_partition=1500, train_days=150, test_days=3)
    return out, summary


def test_layout_and_schema_come_from_the_spec(data):
    out, summary = data
    assert summary["as_of"] == "2024-03-13" and summary["partitions"] == {"train": 150, "test": 3}
    train_days = sorted(p.name for p in (out / "train").iterdir())
    assert train_days[0] == "install_date=2023-10-12" and train_days[-1] == "install_date=2024-03-09"
    assert sorted(p.name for p in (out / "test").iterdir()) == [f"install_date=2024-03-{d}" for d in (10, 11, 12)]
    for split, labelled in (("train", True), ("test", False)):
        files = sorted((out / split).rglob("*.parquet"))
        assert files and all(f.name.startswith("part-") and f.name.endswith(".c000.snappy.parquet") for f in files)
        for f in files[:3] + files[-3:]:
            assert pq.read_schema(f).remove_metadata() == SPEC.arrow_schema(labelled), f
        oracle_days = sorted(p.name for p in (out / "oracle" / split).iterdir())
        assert oracle_days == sorted(p.name for p in (out / split).iterdir())
    assert not list(out.rglob(".*.tmp"))


def test_d120_is_null_exactly_for_users_younger_than_120_days(data):
    out, _ = data
    t = read(out / "train")
    installed = pc.strptime(t["install_date"].cast(pa.string()), format="%Y-%m-%d", unit="s")
    age = (AS_OF.timestamp() - installed.cast(pa.int64()).to_numpy()) / 86_400
    for h, names in HORIZON_COLUMNS.items():
        for name in names:
            null = np.asarray(t[name].is_null())
            assert (null == (age < h)).all(), (name, h)
    assert 0.3 < np.asarray(t["d120_rev"].is_null()).mean() < 0.9
    # matured horizons are cumulative: d0 <= d3 <= ... <= d120, coins never decrease
    m = t.filter(t["d120_rev"].is_valid())
    prev = m["d0_rev"].to_numpy()
    for h, (rev, coins_rev, coins_n) in HORIZON_COLUMNS.items():
        cur = m[rev].to_numpy()
        assert (cur >= prev).all(), rev
        prev = cur
    assert (m["iap_coins_count_d120"].to_numpy() >= m["iap_coins_count_d0"].to_numpy()).all()
    assert (m["iap_coins_rev_d120"].to_numpy() >= m["iap_coins_rev_d0"].to_numpy()).all()


def test_the_seed_statistics_hold(data):
    out, _ = data
    s = gaming_statistics(out, SPEC_PATH)
    print("\ngaming statistics:", json.dumps(s, indent=1))
    assert 0.40 <= s["top1_payer_revenue_share"] <= 0.60
    assert 0.70 <= s["top6_payer_revenue_share"] <= 0.88 and 0.88 <= s["top20_payer_revenue_share"] <= 0.98
    assert s["ios_share_top1_payers"] > s["ios_share"] + 0.05 and 0.57 <= s["ios_share"] <= 0.63
    assert s["payers_with_day0_revenue"] >= 0.97
    assert 0.01 <= s["day0_iap_user_share"] <= 0.025
    assert s["day0_ad_revenue_share"] > 0.5 and s["day0_earners_ads_only"] > 0.95  # day 0 is mostly ads
    shares = s["country_share"]
    assert list(shares) == ["US", "JP", "GB", "DE"] and abs(shares["US"] - 0.65) < 0.02
    assert abs(s["samsung_share"] - 0.25) < 0.02
    o = s["oracle"]
    assert o["rmsle_oracle"] < 0.85 * o["rmsle_constant"] < o["rmsle_zero"]
    assert abs(o["mean_oracle_mean"] - o["mean_d120"]) < 4 * o["se_mean_d120"]


def test_oracle_uses_observed_columns_only_and_matches_its_rows(data):
    """The oracle recomputed from the written TEST files (no labels) reproduces the oracle files."""
    out, _ = data
    t = read(out / "test")
    o = read(out / "oracle" / "test")
    eta, mu = linear_predictors(label_inputs(t, get_vocab()))
    again = oracle(label_inputs(t, get_vocab()), eta, mu)
    assert t["user_id"].to_pylist() == o["user_id"].to_pylist()
    for k, v in again.items():
        np.testing.assert_allclose(o[k].to_numpy(), v, rtol=1e-12, atol=0)
    assert (o["oracle_p_payer_d120"].to_numpy() <= 1).all() and (o["oracle_mean_d120"].to_numpy() >= 0).all()


@pytest.mark.parametrize("r0,mu", [(0.0, -3.0), (0.02, -1.0), (0.5, 1.5), (12.0, 4.0), (0.0, 8.5)])
def test_oracle_log_moment_matches_adaptive_quadrature(r0, mu):
    x = {"rev0_value": np.array([r0])}
    got = oracle(x, np.array([0.0]), np.array([mu]))["oracle_log1p_d120"][0]
    c = COEF

    def f(z):
        return np.log1p(r0 + min(np.exp(mu + c.sigma * z), c.cap)) * st.norm.pdf(z)

    zb = (np.log(c.cap) - mu) / c.sigma
    inside = integrate.quad(f, -12, zb, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
    inside += np.log1p(r0 + c.cap) * st.norm.sf(zb)
    expected = 0.5 * np.log1p(r0) + 0.5 * inside  # p = sigmoid(0) = 1/2
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_same_seed_same_bytes_and_a_partition_regenerates_alone(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        generate_gaming_dataset(out, seed=seed, rows_per_partition=60, train_days=4, test_days=1, as_of="2024-03-13")
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    first = files[0].parent  # another seed: other users on the same day
    assert read(a / first)["user_id"].to_pylist() != read(c / first)["user_id"].to_pylist()
    day = datetime(2024, 3, 9, tzinfo=UTC)
    part = next((a / "train" / "install_date=2024-03-09").glob("*.parquet"))
    before = part.read_bytes()
    part.unlink()
    generate_gaming_partition(a, "train", day, seed=3, rows_per_partition=60, files_per_partition=1, as_of=AS_OF,
                              spec=SPEC, knobs=GamingKnobs())
    assert part.read_bytes() == before


def test_rerun_drops_stale_days_and_bad_arguments_fail_before_writing(tmp_path):
    generate_gaming_dataset(tmp_path, rows_per_partition=20, train_days=5, test_days=2)
    generate_gaming_dataset(tmp_path, rows_per_partition=20, train_days=3, test_days=1)
    assert len(list((tmp_path / "train").iterdir())) == 3 and len(list((tmp_path / "test").iterdir())) == 1
    assert len(list((tmp_path / "oracle").rglob("*.parquet"))) == 4
    for kwargs, needle in (({"rows_per_partition": 0}, "rows_per_partition"), ({"nope": 1}, "unknown gaming"),
                           ({"as_of": "2024-03-13", "start": "2024-01-01"}, "not both"),
                           ({"as_of": "2024-03-13T05"}, "must be a date"), ({"weekly_amplitude": 1.5}, "weekly")):
        with pytest.raises(ValueError, match=needle):
            generate_gaming_dataset(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_generate_dispatches_on_the_spec_from_the_cli(tmp_path, capsys):
    assert main(["generate", "--spec", SPEC_PATH, "--out", str(tmp_path / "g"), "--rows-per-partition", "10",
                 "--train-days", "2", "--test-days", "1", "--start", "2024-01-01"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["generator"] == "gaming" and summary["as_of"] == "2024-01-04"
    assert (tmp_path / "g" / "test" / "install_date=2024-01-03").is_dir()
    # hours are the Smadex generator's: a one-line error naming what the gaming generator takes
    assert main(["generate", "--spec", SPEC_PATH, "--out", str(tmp_path / "h"), "--train-hours", "24"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: generate: the gaming generator") and "train_days" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="the smadex generator"):
        generate(tmp_path / "s", spec_path="config/datasets/smadex_d7.yaml", train_days=3)
    assert not (tmp_path / "h").exists() and not (tmp_path / "s").exists()
