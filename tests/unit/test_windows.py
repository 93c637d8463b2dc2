from datetime import datetime, timezone

import pytest

from ltv_core.config import PipelineConfig, WindowsConfig, load_config
from ltv_core.errors import DataError, SpecError
from ltv_core.params import RunParams
from ltv_core.spec import load_spec
from ltv_core.windows import labelled_windows, list_partitions, resolve, scoring_window, select, suggest_logical_date

from support.rawdata import hours, write_dataset

SPEC = load_spec("config/datasets/smadex_d7.yaml")
UTC = timezone.utc


def test_labelled_windows_respect_maturity_and_order():
    L = datetime(2025, 11, 4, 3, 0, tzinfo=UTC)
    w = labelled_windows(L, WindowsConfig(), SPEC)  # maturity: longest horizon (28 days)
    assert w["holdout"].end == datetime(2025, 10, 7, 3, tzinfo=UTC)
    assert w["holdout"].hours == 24 and w["validation"].hours == 24 and w["train"].hours == 96
    assert w["train"].end == w["validation"].start and w["validation"].end == w["holdout"].start


def test_primary_maturity_and_gap():
    L = datetime(2025, 10, 14, 0, 30, tzinfo=UTC)  # floored to the hourly grain
    w = labelled_windows(L, WindowsConfig(maturity="primary", gap_hours=2), SPEC)
    assert w["holdout"].end == datetime(2025, 10, 7, 0, tzinfo=UTC)
    assert (w["holdout"].start - w["validation"].end).total_seconds() == 7200
    assert (w["validation"].start - w["train"].end).total_seconds() == 7200


def test_explicit_window_wins_and_is_checked():
    L = datetime(2025, 11, 4, tzinfo=UTC)
    cfg = RunParams.parse({"train_start": "2025-10-01", "train_end": "2025-10-03T12:00"}).apply(PipelineConfig())
    w = labelled_windows(L, cfg.windows, SPEC)
    assert w["train"].start == datetime(2025, 10, 1, tzinfo=UTC) and w["train"].hours == 60
    bad = RunParams.parse({"train_start": "2025-10-01", "train_end": "2025-10-06T12:00"}).apply(PipelineConfig())
    with pytest.raises(SpecError, match="overlaps"):
        labelled_windows(L, bad.windows, SPEC)
    immature = RunParams.parse({"holdout_start": "2025-10-20", "holdout_end": "2025-10-21"}).apply(PipelineConfig())
    with pytest.raises(SpecError, match="not complete"):
        labelled_windows(L, immature.windows, SPEC)


def test_override_needs_both_edges():
    with pytest.raises(SpecError, match="both"):
        RunParams.parse({"train_start": "2025-10-01"})
    with pytest.raises(SpecError, match="after its start"):
        RunParams.parse({"train_start": "2025-10-02", "train_end": "2025-10-01"})
    with pytest.raises(SpecError, match="ISO"):
        RunParams.parse({"train_start": "yesterday", "train_end": "2025-10-01"})


def test_partition_listing_and_selection(tmp_path):
    write_dataset(tmp_path, SPEC, hours(1, 6), hours(8, 3), rows=3)
    (tmp_path / "train/train/_SUCCESS").write_text("")
    (tmp_path / "train/train/datetime=2025-10-01-00-00/.part.crc").write_text("")
    parts = list_partitions(str(tmp_path / "train/train"), SPEC)
    assert [p.value for p in parts] == hours(1, 6)
    assert all(len(p.files) == 1 for p in parts)
    test_parts = list_partitions(str(tmp_path / "test/test"), SPEC)
    L = datetime(2025, 10, 8, 2, 30, tzinfo=UTC)
    sw = scoring_window(L, WindowsConfig(scoring_hours=2), SPEC, test_parts)
    assert [p.value for p in select(test_parts, sw, SPEC, "x")] == hours(8, 3)[1:]
    with pytest.raises(DataError, match="no partitions"):
        from ltv_core.windows import Window
        select(parts, Window("train", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)), SPEC, "root")


def test_malformed_partition_name_fails_loud(tmp_path):
    (tmp_path / "datetime=2025-10-01").mkdir()
    with pytest.raises(DataError, match="datetime=2025-10-01"):
        list_partitions(str(tmp_path), SPEC)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_partitions(str(tmp_path / "nope"), SPEC)


def test_resolve_end_to_end_and_suggested_date(tmp_path):
    write_dataset(tmp_path, SPEC, hours(1, 24 * 6), hours(8, 24), rows=1)
    cfg = RunParams.parse({"data_root": str(tmp_path)}).load_config()
    L = suggest_logical_date(SPEC, cfg, str(tmp_path))
    assert L == datetime(2025, 11, 4, tzinfo=UTC)
    windows, chosen = resolve(L, cfg, SPEC, str(tmp_path))
    assert [len(chosen[s]) for s in ("train", "validation", "holdout", "scoring")] == [96, 24, 24, 24]
    assert chosen["holdout"][-1].value == "2025-10-06-23-00"
    assert chosen["train"][0].value == "2025-10-01-00-00"


def test_no_test_root_means_no_scoring(tmp_path):
    write_dataset(tmp_path, SPEC, hours(1, 24 * 6), [], rows=1)
    cfg = load_config()
    windows, chosen = resolve(datetime(2025, 11, 4, tzinfo=UTC), cfg, SPEC, str(tmp_path))
    assert "scoring" not in windows and "scoring" not in chosen


def test_a_partition_spelled_two_ways_fails(tmp_path):
    """strptime reads 2025-10-1-2-00 as 2025-10-01-02-00: the same hour twice would double its rows."""
    write_dataset(tmp_path, SPEC, hours(1, 3), [], rows=3)
    root = tmp_path / "train/train"
    (root / "datetime=2025-10-1-2-00").mkdir()
    with pytest.raises(DataError, match="same time") as err:
        list_partitions(str(root), SPEC)
    assert "datetime=2025-10-01-02-00" in str(err.value) and "datetime=2025-10-1-2-00" in str(err.value)


def test_a_partition_not_spelled_as_the_format_fails_naming_the_rename(tmp_path):
    (tmp_path / "datetime=2025-10-1-5-00").mkdir()
    with pytest.raises(DataError, match=r"does not match the spec's format.*rename it datetime=2025-10-01-05-00"):
        list_partitions(str(tmp_path), SPEC)


GAMING = load_spec("config/datasets/gaming_d120.yaml")


def test_a_spec_windows_block_replaces_the_config_lengths_and_explicit_windows_still_win():
    """gaming_d120: daily partitions, 120-day labels; its own lengths, not the config's 96 hours."""
    L = datetime(2024, 3, 13, 5, 0, tzinfo=UTC)  # floored to the daily grain
    w = labelled_windows(L, load_config().windows, GAMING)
    assert w["holdout"].end == datetime(2023, 11, 14, tzinfo=UTC)  # 120 days (longest) before 2024-03-13
    assert (w["train"].hours, w["validation"].hours, w["holdout"].hours) == (1440, 336, 336)
    assert w["train"].end == w["validation"].start and w["validation"].end == w["holdout"].start
    # an explicit window (a param, a backfill) wins over the spec's lengths
    cfg = RunParams.parse({"train_start": "2023-09-01", "train_end": "2023-10-01"}).apply(load_config())
    assert labelled_windows(L, cfg.windows, GAMING)["train"].hours == 720
    # a spec without the block keeps the config's
    assert labelled_windows(L, load_config().windows, SPEC)["train"].hours == 96


def test_daily_partitions_list_and_score_by_the_spec_windows(tmp_path):
    days = [f"2024-03-{d:02d}" for d in range(1, 13)]
    for d in days:
        (tmp_path / f"install_date={d}").mkdir()
        (tmp_path / f"install_date={d}" / "part-0.parquet").write_bytes(b"")
    parts = list_partitions(str(tmp_path), GAMING)
    assert [p.value for p in parts] == days and parts[0].time == datetime(2024, 3, 1, tzinfo=UTC)
    sw = scoring_window(datetime(2024, 3, 13, tzinfo=UTC), load_config().windows, GAMING, parts)
    assert [p.value for p in select(parts, sw, GAMING, "x")] == days[-7:]  # scoring_hours 168: 7 days
    (tmp_path / "install_date=2024-3-5").mkdir()
    with pytest.raises(DataError, match="spelled install_date=2024-03-05"):
        list_partitions(str(tmp_path), GAMING)
