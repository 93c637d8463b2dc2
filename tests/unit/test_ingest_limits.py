"""ltv_core.limits and the per-partition statistics it reads (ltv_core.ingest.revenue_stats,
stage_partition): the shares, the messages, the config's bounds. The stage-level failure (nothing
committed) is in tests/integration/test_limits.py."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from pydantic import ValidationError
from support.rawdata import make_table, write_partition

from ltv_core import limits
from ltv_core.config import LimitsConfig, PipelineConfig, load_config
from ltv_core.errors import DataError
from ltv_core.ingest import revenue_stats, stage_partition
from ltv_core.spec import load_spec
from ltv_core.windows import Partition

SPEC = load_spec("config/datasets/smadex_d7.yaml")
REV = SPEC.primary.revenue


def part(value: str, rows_in: int, rows: int, dropped: dict | None = None, revenue: dict | None = None) -> dict:
    """One partition's result as ``stage_partition`` returns it (the fields limits reads)."""
    return {"partition": value, "rows_in": rows_in, "rows": rows, "dropped": dropped or {}, "revenue": revenue}


def rev(total: float, top: float | None, top_id: str | None, buyers: int) -> dict:
    return {"sum": total, "max": top, "max_id": top_id, "buyers": buyers}


# --- per-partition statistics -------------------------------------------------------------------

def test_revenue_stats_sum_max_id_and_buyers():
    t = make_table(SPEC, 50, labelled=True, seed=3)
    values = t.column(REV).to_numpy()
    got = revenue_stats(t, SPEC)
    i = int(np.argmax(values))
    assert got["sum"] == pytest.approx(values.sum()) and got["max"] == values[i]
    assert got["max_id"] == t.column("row_id")[i].as_py() and got["buyers"] == int((values > 0).sum())


def test_revenue_stats_of_no_rows_or_no_comparable_value():
    t = make_table(SPEC, 3, labelled=True)
    assert revenue_stats(t.slice(0, 0), SPEC) == rev(0.0, None, None, 0)
    nan = t.set_column(t.schema.get_field_index(REV), REV, pa.array([float("nan")] * 3))
    assert revenue_stats(nan, SPEC)["max"] is None


def test_stage_partition_reports_rows_read_and_revenue_only_when_labelled(tmp_path):
    t = make_table(SPEC, 8, labelled=True, seed=5)
    labels = t.column(REV).to_pylist()
    labels[0] = None
    t = t.set_column(t.schema.get_field_index(REV), REV, pa.array(labels, pa.float64()))
    files = write_partition(tmp_path / "raw", SPEC, "2025-10-01-00-00", t)
    p = Partition("2025-10-01-00-00", datetime(2025, 10, 1, tzinfo=UTC), str(files[0].parent),
                  tuple(str(f) for f in files))
    res = stage_partition(p, SPEC, True, str(tmp_path / "store"), str(tmp_path / "store/train.parquet"))
    kept = np.array(labels[1:])
    assert (res["rows_in"], res["rows"], res["dropped"]) == (8, 7, {REV: 1})
    assert res["revenue"]["sum"] == pytest.approx(kept.sum()) and res["revenue"]["max"] == kept.max()
    assert stage_partition(p, SPEC, False, str(tmp_path / "store"), str(tmp_path / "store/test.parquet"))["revenue"] is None


GAMING = load_spec("config/datasets/gaming_d120.yaml")


def test_stage_partition_counts_an_immature_day_apart_from_dropped_rows(tmp_path):
    """gaming: an install day younger than 120 days at the export has no d120_rev in any row."""
    t = make_table(GAMING, 5, labelled=True, seed=2)
    names = [c for c in GAMING.outcome_names if c.endswith("_d120") or c == "d120_rev"]
    for name in names:
        t = t.set_column(t.schema.get_field_index(name), name, pa.nulls(5, t.schema.field(name).type))
    files = write_partition(tmp_path / "raw", GAMING, "2024-01-02", t)
    p = Partition("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC), str(files[0].parent), tuple(str(f) for f in files))
    res = stage_partition(p, GAMING, True, str(tmp_path / "store"), str(tmp_path / "store/train.parquet"))
    assert (res["rows_in"], res["rows"], res["immature"], res["immature_rows"]) == (5, 0, ["d120"], 5)
    assert res["dropped"] == {"d120_rev": 5}


# --- shares ---------------------------------------------------------------------------------------
# --- shares ---------------------------------------------------------------------------------------

def test_dropped_share_counts_rows_not_missing_columns():
    # the first partition's 6 dropped rows lack the id AND a label: 6 rows, not 10
    res = [part("a", 10, 4, {"row_id": 6, REV: 4}), part("b", 10, 10)]
    assert limits.dropped_share(res) == pytest.approx(6 / 20)
    assert limits.dropped_share([part("a", 0, 0)]) == 0.0


def test_immature_partitions_are_recorded_not_held_to_the_dropped_limit():
    young = {**part("c", 10, 0, {REV: 10}), "immature": ["d28"], "immature_rows": 10}
    res = [part("a", 10, 9, {REV: 1}), part("b", 10, 10), young]
    assert limits.dropped_share(res) == pytest.approx(1 / 20)  # the matured rows only
    assert limits.dropped_share([young]) == 0.0
    m = limits.measure(res)
    assert m["rows_immature"] == 10 and m["immature_partitions"] == ["c"]
    limits.check_dropped("train", res, 0.1, "f")  # 5% of the matured rows: passes
    with pytest.raises(DataError, match="dropped 1 of its 20 rows"):
        limits.check_dropped("train", res, 0.01, "f")


def test_largest_row_across_partitions():
    res = [part("a", 5, 5, revenue=rev(10.0, 6.0, "r-a", 2)), part("b", 5, 5, revenue=rev(30.0, 24.0, "r-b", 3))]
    top = limits.largest_row(res)
    assert top == {"share": pytest.approx(24 / 40), "row_id": "r-b", "revenue": 24.0, "total": 40.0,
                   "partition": "b", "buyers": 5}
    assert limits.measure(res)["max_row_revenue_share"] == 0.6 and limits.measure(res)["max_row_id"] == "r-b"


@pytest.mark.parametrize("res", [
    [part("a", 5, 5)],                                          # unlabelled
    [part("a", 5, 5, revenue=rev(0.0, 0.0, "r", 0))],           # no revenue at all
    [part("a", 0, 0, revenue=rev(0.0, None, None, 0))],         # no rows
])
def test_largest_row_is_none_without_positive_revenue(res):
    assert limits.largest_row(res) is None
    assert limits.measure(res)["max_row_revenue_share"] is None


# --- checks and messages --------------------------------------------------------------------------

def test_check_dropped_names_split_share_limit_key_file_and_worst_partitions():
    res = [part("2025-10-01-00-00", 100, 0, {REV: 100}), part("2025-10-01-01-00", 100, 10, {REV: 90}),
           part("2025-10-01-02-00", 100, 100), part("2025-10-01-03-00", 100, 95, {"row_id": 5})]
    with pytest.raises(DataError) as err:
        limits.check_dropped("train", res, 0.25, "config/pipeline.yaml")
    msg = str(err.value)
    assert "\n" not in msg
    assert (f"split 'train' dropped 195 of its 400 rows for lacking the id or a label ({REV} 190, row_id 5): "
            "share 0.4875 > limits.max_dropped_share 0.25") in msg
    assert "partitions 2025-10-01-00-00 (100/100), 2025-10-01-01-00 (90/100), 2025-10-01-03-00 (5/100);" in msg
    assert "raise limits.max_dropped_share in config/pipeline.yaml" in msg


def test_check_dropped_passes_at_the_limit_and_when_disabled():
    res = [part("a", 10, 9, {REV: 1})]
    limits.check_dropped("train", res, 0.1, "f")   # equal is not above
    limits.check_dropped("train", res, None, "f")  # null disables
    with pytest.raises(DataError):
        limits.check_dropped("train", res, 0.09, "f")


def test_check_row_revenue_names_row_revenue_limit_and_key():
    res = [part("2025-10-01-00-00", 50, 50, revenue=rev(100.0, 10.0, "r-1", 10)),
           part("2025-10-01-01-00", 50, 50, revenue=rev(1_000_100.0, 1e6, "whale", 12))]
    with pytest.raises(DataError) as err:
        limits.check_row_revenue("train", res, 0.25, 0, "my.yaml", REV, "row_id")
    msg = str(err.value)
    assert f"one row holds a share 0.9998 of split 'train''s {REV} > limits.max_row_revenue_share 0.25" in msg
    assert "row_id 'whale' in partition 2025-10-01-01-00, 1e+06 of 1.0002e+06 over 22 buyers" in msg
    assert "raise limits.max_row_revenue_share in my.yaml" in msg and "\n" not in msg


def test_check_row_revenue_gated_by_buyers_and_disabled_by_null():
    res = [part("a", 50, 50, revenue=rev(10.0, 9.0, "r", 20))]
    limits.check_row_revenue("train", res, 0.25, 21, "f", REV, "row_id")    # 20 buyers < 21: noise
    limits.check_row_revenue("train", res, None, 0, "f", REV, "row_id")
    limits.check_row_revenue("train", res, 0.9, 0, "f", REV, "row_id")      # 0.9 is not above 0.9
    with pytest.raises(DataError, match=r"share 0\.9000 .* > limits\.max_row_revenue_share 0\.89"):
        limits.check_row_revenue("train", res, 0.89, 20, "f", REV, "row_id")


def test_check_rows_minimum():
    res = [part("a", 10, 4)]
    limits.check_rows("scoring", res, None, "f")
    limits.check_rows("scoring", res, 4, "f")
    with pytest.raises(DataError, match=r"split 'scoring' has 4 rows .* limits.min_rows_per_split 5"):
        limits.check_rows("scoring", res, 5, "f")


def test_enforce_limits_revenue_in_the_training_window_only():
    res = [part("a", 50, 50, revenue=rev(10.0, 9.0, "r", 2000))]
    cfg = LimitsConfig()
    limits.enforce("holdout", res, cfg, "f", revenue_column=REV, id_column="row_id", revenue_limited=False)
    with pytest.raises(DataError, match="limits.max_row_revenue_share"):
        limits.enforce("train", res, cfg, "f", revenue_column=REV, id_column="row_id", revenue_limited=True)


# --- config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"max_dropped_share": -0.1}, {"max_dropped_share": 1.5},
                                 {"max_row_revenue_share": 2}, {"revenue_share_min_buyers": -1},
                                 {"min_rows_per_split": 0}, {"max_droped_share": 0.2}])
def test_limits_config_rejects_out_of_bounds_and_unknown_keys(bad):
    with pytest.raises(ValidationError):
        PipelineConfig.model_validate({"limits": bad})


def test_limits_config_null_disables_and_yaml_matches_the_code_defaults():
    cfg = PipelineConfig.model_validate({"limits": {"max_dropped_share": None, "max_row_revenue_share": None}})
    assert cfg.limits.max_dropped_share is None and cfg.limits.max_row_revenue_share is None
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/pipeline.yaml").read_text())["limits"]
    assert shipped == LimitsConfig().model_dump() == load_config().limits.model_dump()
