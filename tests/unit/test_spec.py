import copy
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from ltv_core.errors import SpecError
from ltv_core.spec import FeatureKind, Role, load_spec, parse_arrow_type

SPEC = "config/datasets/smadex_d7.yaml"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(Path(SPEC).read_text())


def write(tmp_path, data) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_smadex_spec_matches_research_schema():
    spec = load_spec(SPEC)
    assert len(spec.columns) == 84
    assert len(spec.feature_names) == 66
    assert spec.columns[-1].name == "row_id" and spec.id_column == "row_id"
    assert [c.name for c in spec.columns[:17]] == spec.outcome_names  # labels first, as in the files
    assert spec.primary.revenue == "iap_revenue_d7" and spec.primary.buyer == "buyer_d7"
    assert [h.days for h in spec.labels.horizons] == [7, 14, 28]
    assert spec.arrow_schema(True).field("user_actions_bundles_action_count").type == pa.map_(
        pa.string(), pa.map_(pa.string(), pa.int64()))
    assert spec.arrow_schema(False).names == spec.feature_names + ["row_id"]
    assert spec.partition.key not in spec.arrow_schema(True).names


def test_no_outcome_column_is_a_feature():
    spec = load_spec(SPEC)
    for name in spec.feature_names:
        assert not spec.is_excluded_name(name), name
    for name in spec.outcome_names:
        assert spec.is_excluded_name(name), name


@pytest.mark.parametrize("text,expected", [
    ("string", pa.string()),
    ("map<string, float64>", pa.map_(pa.string(), pa.float64())),
    ("list<string>", pa.list_(pa.string())),
    ("map<string,map<string,int64>>", pa.map_(pa.string(), pa.map_(pa.string(), pa.int64()))),
])
def test_parse_arrow_type(text, expected):
    assert parse_arrow_type(text) == expected


@pytest.mark.parametrize("text", ["map<string>", "list<>", "decimal", "map<string, float64", "int32 int32"])
def test_parse_arrow_type_rejects(text):
    with pytest.raises(ValueError):
        parse_arrow_type(text)


def _mutate(raw, fn):
    data = copy.deepcopy(raw)
    fn(data)
    return data


def _col(data, name):
    return next(c for c in data["columns"] if c["name"] == name)


@pytest.mark.parametrize("mutation,needle", [
    (lambda d: _col(d, "iap_revenue_d7").update(role="feature", kind="numeric"), "iap_revenue_d7"),
    (lambda d: d["columns"].append({"name": "retention_leak", "type": "float64", "kind": "numeric"}), "retention_leak"),
    (lambda d: _col(d, "country").update(kind="map_numeric"), "country"),
    (lambda d: _col(d, "cpm").pop("kind"), "cpm"),
    (lambda d: d["labels"].update(primary="d3"), "primary"),
    (lambda d: d.update(id_column="user_id"), "user_id"),
    (lambda d: d["columns"].append({"name": "country", "type": "string", "kind": "categorical"}), "duplicate"),
    (lambda d: _col(d, "cpm").update(type="map<string, decimal>"), "decimal"),
    (lambda d: d["partition"].update(format="%Y-%m-%d"), "hour"),
    (lambda d: d["labels"]["horizons"][0].update(revenue="nope"), "nope"),
    (lambda d: d.update(unexpected_field=1), "unexpected_field"),
    (lambda d: d["columns"].append({"name": "datetime", "type": "string", "kind": "categorical"}), "datetime"),
])
def test_bad_spec_names_the_field(tmp_path, raw, mutation, needle):
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, _mutate(raw, mutation)))
    assert needle in str(err.value)
    assert "spec.yaml" in str(err.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_new_dataset_needs_only_a_spec(tmp_path):
    """A user-level data set (gaming-style, one row per user, 120-day label) plugs in by spec alone."""
    data = {
        "name": "gaming_d120",
        "data_root": str(tmp_path),
        "roots": {"train": "train"},
        "id_column": "user_id",
        "partition": {"key": "install_date", "format": "%Y-%m-%d-%H", "grain_hours": 24},
        "labels": {"primary": "d120", "horizons": [{"name": "d120", "days": 120, "revenue": "d120_rev"}]},
        "excluded_patterns": ["d*_rev"],
        "columns": [
            {"name": "d120_rev", "type": "float64", "role": "label"},
            {"name": "country", "type": "string", "kind": "categorical"},
            {"name": "d0_sessions", "type": "float64", "kind": "numeric"},
            {"name": "user_id", "type": "string", "role": "id"},
        ],
    }
    spec = load_spec(write(tmp_path, data))
    assert spec.feature_names == ["country", "d0_sessions"]
    assert spec.root_path("test") is None
    assert spec.column("country").kind is FeatureKind.categorical
    assert spec.column("user_id").role is Role.id


def test_data_root_override(monkeypatch):
    spec = load_spec(SPEC)
    monkeypatch.setenv("LTV_DATA_ROOT", "s3://bucket/smadex")
    assert spec.root_path("train") == "s3://bucket/smadex/train/train"
    assert spec.root_path("test", "/data/x") == "/data/x/test/test"


def _daily(tmp_path, **changes) -> Path:
    data = {
        "name": "daily", "data_root": str(tmp_path), "roots": {"train": "train"}, "id_column": "user_id",
        "partition": {"key": "install_date", "format": "%Y-%m-%d", "grain_hours": 24},
        "labels": {"primary": "d120", "horizons": [{"name": "d120", "days": 120, "revenue": "d120_rev"}]},
        "columns": [{"name": "user_id", "type": "string", "role": "id"},
                    {"name": "d120_rev", "type": "float64", "role": "label"},
                    {"name": "d0_rev", "type": "float64", "kind": "numeric"}],
    }
    for key, value in changes.items():
        data[key] = value
    return write(tmp_path, data)


def test_a_daily_grain_takes_a_date_only_partition_format(tmp_path):
    spec = load_spec(_daily(tmp_path))
    when = spec.partition.parse("2024-03-13")
    assert spec.partition.render(when) == "2024-03-13" and when.hour == 0
    # the same format on an hourly grain cannot tell the hours apart; a month format loses the day
    with pytest.raises(SpecError, match="loses the hour"):
        load_spec(_daily(tmp_path, partition={"key": "install_date", "format": "%Y-%m-%d", "grain_hours": 1}))
    with pytest.raises(SpecError, match="loses the date"):
        load_spec(_daily(tmp_path, partition={"key": "install_date", "format": "%Y-%m", "grain_hours": 24}))


def test_spec_windows_are_checked_against_the_grain(tmp_path):
    spec = load_spec(_daily(tmp_path, windows={"train_hours": 1440, "maturity": "primary"}))
    assert spec.windows.given() == {"train_hours": 1440, "maturity": "primary"}
    with pytest.raises(SpecError, match="windows.holdout_hours 30 is not a multiple of partition.grain_hours 24"):
        load_spec(_daily(tmp_path, windows={"holdout_hours": 30}))
    with pytest.raises(SpecError, match="maturity"):
        load_spec(_daily(tmp_path, windows={"maturity": -1}))
    with pytest.raises(SpecError, match="generator"):
        load_spec(_daily(tmp_path, generator="nope"))


def test_gaming_spec_predicts_d120_from_day_0_only():
    spec = load_spec("config/datasets/gaming_d120.yaml")
    assert spec.generator == "gaming" and spec.id_column == "user_id" and spec.partition.key == "install_date"
    assert [h.days for h in spec.labels.horizons] == [3, 7, 14, 30, 60, 90, 120]
    assert spec.primary.revenue == "d120_rev" and spec.max_horizon_days == 120
    # the prediction point is the end of day 0: every feature is an install attribute or a day-0 value
    for name in spec.feature_names:
        assert not spec.is_excluded_name(name), name
        assert "_d0" in name or name.startswith("d0_") or spec.column(name).kind is FeatureKind.categorical \
            or name in ("is_optin", "iap_ads_count"), name
    for name in spec.outcome_names:
        assert spec.is_excluded_name(name), name
    assert spec.windows.given() == {"maturity": "longest", "train_hours": 1440, "validation_hours": 336,
                                    "holdout_hours": 336, "scoring_hours": 168}
