"""Tests for the validate stage: a good run passes and commits; every kind of defect fails loud.

Data is built here in the spec's exact Arrow schema (84 columns) and staged through a temporary
ArtifactStore with an ingest manifest in the ingest stage's format, so the stage runs end to end.
GX costs seconds per split whatever the row count, so the file runs the stage twice: one good
run, and one failing run that carries every defect (each asserted by its own test).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from ltv_core.errors import SpecError, ValidationFailed
from ltv_core.spec import ColumnSpec, DatasetSpec, FeatureKind, load_spec
from ltv_core.yamlconf import project_root
from ltv_core.store import ArtifactStore
from ltv_core.stages.validate import _split_frame, validate_run
from ltv_core.validation import (
    EVENT_TS_END,
    ValidationReport,
    build_suite,
    load_expectations_file,
    validation_frame,
)

RUN = "manual__2025-10-09T00:00:00+00:00"
T0 = 1759276800  # 2025-10-01 00:00 UTC, a Wednesday
DAY = 86400
CATEGORIES = ["game", "games", "shopping", "finance", "utilities"]
COUNTRIES = ["us", "in", "br", "mx", "id"]


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec(project_root() / "config/datasets/smadex_d7.yaml")


@pytest.fixture(scope="module")
def null_rates(spec: DatasetSpec) -> dict[str, float]:
    """Null rate per column at the middle of its hand-written band, so good data sits inside."""
    bands = yaml.safe_load((project_root() / spec.expectations).read_text())["null_share"]
    return {c: (lo + hi) / 2 for c, (lo, hi) in bands.items()}


# --- data generator -----------------------------------------------------------------------------
NESTED_KINDS = {FeatureKind.map_numeric, FeatureKind.histogram, FeatureKind.map_timestamp,
                FeatureKind.map_of_maps, FeatureKind.map_of_maps_timestamp, FeatureKind.list_string}


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _nested_value(col: ColumnSpec, rng: np.random.Generator, ts: int) -> Any:
    """One MAP/LIST value: 0-3 entries (ad-format maps keyed b/i/r), timestamps before ``ts``."""
    k = int(rng.integers(0, 4))
    keys = ["b", "i", "r"][:k] if col.name.startswith(("cpm", "ctr")) else [f"k{j}" for j in range(k)]
    past = lambda: ts - int(rng.integers(1, 60)) * DAY  # noqa: E731
    if col.kind is FeatureKind.list_string:
        return [_sha1(f"b{j}") for j in range(k)]
    if col.kind is FeatureKind.map_timestamp:
        return [(key, past()) for key in keys]
    if col.kind is FeatureKind.map_of_maps:
        return [(key, [("click", int(rng.integers(1, 5)))]) for key in keys]
    if col.kind is FeatureKind.map_of_maps_timestamp:
        return [(key, [("click", past())]) for key in keys]
    return [(key, float(rng.uniform(0, 1))) for key in keys]


def _scalar_values(col: ColumnSpec, n: int, rng: np.random.Generator, ts: int) -> list[Any]:
    """Plausible values per known column; other strings from a small pool, numbers in [0, 7]."""
    known: dict[str, Callable[[], Any]] = {
        "row_id": lambda: [str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | j, version=4)) for j in range(n)],
        "advertiser_bundle": lambda: [_sha1(f"adv{v}") for v in rng.integers(0, 9, n)],
        "advertiser_category": lambda: rng.choice(CATEGORIES, n),
        "country": lambda: rng.choice(COUNTRIES, n),
        "dev_os": lambda: rng.choice(["android", "ios"], n, p=[0.7, 0.3]),
        "dev_osv": lambda: ["16.0.0"] * n,
        "hour": lambda: [f"{(ts // 3600) % 24:02d}"] * n,
        "weekday": lambda: [3] * n,
        "release_date": lambda: ["2023_october"] * n,
        "release_msrp": lambda: rng.uniform(80, 1200, n),
        "weekend_ratio": lambda: rng.uniform(0, 1, n),
        "wifi_ratio": lambda: rng.uniform(0, 1, n),
    }
    if col.name in known:
        return list(known[col.name]())
    if col.kind is FeatureKind.timestamp:
        return list(ts - rng.uniform(1, 90, n) * DAY)
    if col.arrow_type == pa.string():
        return [f"{col.name}_{v}" for v in rng.integers(0, 5, n)]
    return list(rng.uniform(0, 7, n))


def _labels(n: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    """Labels obeying every rule: buyer == (revenue > 0), horizons cumulative, counts monotone."""
    buyer7 = (rng.uniform(size=n) < 0.1).astype(np.int32)
    buyer7[:2] = 1  # at least two buyers in every file
    later = lambda: np.where(rng.uniform(size=n) < 0.2, np.round(np.exp(rng.normal(1, 1, n)), 2), 0.0)  # noqa: E731
    rev7 = np.where(buyer7 == 1, np.round(np.exp(rng.normal(1.5, 1.0, n)) + 0.01, 2), 0.0)
    rev14 = rev7 + later()
    rev28 = rev14 + later()
    buy7 = buyer7 * (1 + rng.poisson(0.4, n))
    buy14 = buy7 + (rev14 > rev7)
    out: dict[str, Any] = {
        "buyer_d1": buyer7 * (rng.uniform(size=n) < 0.6), "buyer_d7": buyer7,
        "buyer_d14": rev14 > 0, "buyer_d28": rev28 > 0,
        "buy_d7": buy7, "buy_d14": buy14, "buy_d28": buy14 + (rev28 > rev14),
        "iap_revenue_d7": rev7, "iap_revenue_d14": rev14, "iap_revenue_d28": rev28,
    }
    for name in ("registration", "retention_d1_to_d7", "retention_d3_to_d7", "retention_d7_to_d14",
                 "retention_d1", "retention_d3", "retentiond7"):
        out[name] = (rng.uniform(size=n) < 0.3).astype(float)
    return {k: np.asarray(v).astype(float if k.startswith(("iap", "ret", "reg")) else int).tolist()
            for k, v in out.items()}


def make_rows(spec: DatasetSpec, null_rates: dict[str, float], n: int, *, seed: int = 0,
              ts: int = T0, labelled: bool = True) -> pa.Table:
    """``n`` valid staged rows: spec columns in spec order and types, then datetime and _event_ts.

    Nulls are placed at exactly round(rate * n) rows per column so shares never drift by chance.
    """
    rng = np.random.default_rng(seed)
    labels = _labels(n, rng) if labelled else {}
    arrays = []
    for field in spec.arrow_schema(labelled):
        col = spec.column(field.name)
        if col.name in labels:
            values = labels[col.name]
        elif col.kind in NESTED_KINDS:
            values = [_nested_value(col, rng, ts) for _ in range(n)]
        else:
            values = _scalar_values(col, n, rng, ts)
        nulls = set(rng.permutation(n)[: round(null_rates.get(col.name, 0.0) * n)].tolist())
        arrays.append(pa.array([None if i in nulls else v for i, v in enumerate(values)], type=field.type))
    part = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d-%H-00")
    arrays += [pa.array([part] * n, pa.string()), pa.array([ts] * n, pa.int64())]
    return pa.Table.from_arrays(arrays, names=spec.arrow_schema(labelled).names + ["datetime", "_event_ts"])


def replace_column(table: pa.Table, name: str, values: Any, type_: pa.DataType | None = None) -> pa.Table:
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values, type=type_ or table[name].type)
    return table.set_column(table.column_names.index(name), name, values)


def stage(store: ArtifactStore, splits: dict[str, list[pa.Table]]) -> None:
    """Write files and an ingest manifest exactly as the ingest stage lays them out."""
    d = store.begin_stage(RUN, "ingest")
    outputs = {}
    for split, tables in splits.items():
        files = []
        for i, t in enumerate(tables):
            part = f"2025-10-01-{i:02d}-00"
            path = store.write_parquet(f"{d}/{split}/datetime={part}/part-0.parquet", t)
            files.append({"path": path, "partition": part, "rows": t.num_rows})
        outputs[split] = {
            "files": files, "rows": sum(f["rows"] for f in files), "labelled": split != "scoring",
            "window": ["2025-10-01T00:00:00+00:00", "2025-10-02T00:00:00+00:00"],
        }
    store.commit_stage(RUN, "ingest", {"stage": "ingest", "outputs": outputs})


@pytest.fixture(scope="module")
def base(spec: DatasetSpec, null_rates: dict[str, float]) -> pa.Table:
    return make_rows(spec, null_rates, 200, seed=1)


# --- the good path ------------------------------------------------------------------------------
def test_good_run_passes_commits_and_writes_docs(tmp_path, spec, null_rates):
    store = ArtifactStore(tmp_path)
    train = [make_rows(spec, null_rates, 200, seed=1), make_rows(spec, null_rates, 200, seed=2, ts=T0 + 3600)]
    stage(store, {"train": train, "scoring": [make_rows(spec, null_rates, 200, seed=5, labelled=False)]})
    out = validate_run(store, RUN, spec)
    assert out["success"] and out["failed"] == 0 and out["evaluated"] > 2 * 100, out
    manifest = store.read_manifest(RUN, "validate")
    assert manifest["success"] is True and set(manifest["inputs"]) == {"train", "scoring"}
    assert manifest["inputs"]["train"]["rows"] == 400 and len(manifest["expectations_sha256"]) == 64
    result = json.loads(store.read_text(out["result_path"]))
    assert result["success"] and set(result["results"]) == {"train", "scoring"}
    scoring = result["results"]["scoring"]["results"]
    scoring_cols = {r["expectation_config"]["kwargs"].get("column") for r in scoring}
    assert not scoring_cols & set(spec.outcome_names)  # label rules skipped on unlabelled data
    docs = store.stage_dir(RUN, "validate") + "/data_docs"
    html = [p for p in store.fs.find(docs) if p.endswith(".html")]
    assert out["data_docs_path"].endswith("data_docs/index.html") and store.exists(out["data_docs_path"])
    for split in ("train", "scoring"):
        assert any(f"/validations/smadex_d7/{split}/" in p for p in html), (split, html)
    assert b"smadex_d7.train" in store.read_bytes(out["data_docs_path"])


# --- defects: each must fail, name the column and show examples ----------------------------------
# GX costs seconds per split whatever the row count, so every defect is planted in ONE failing run
# (distinct rows and columns, so no defect masks another) and each gets its own test on that run.
def _set(t: pa.Table, i: int, **values: Any) -> pa.Table:
    for name, v in values.items():
        col = t[name].to_pylist()
        col[i] = v
        t = replace_column(t, name, col)
    return t


def corrupt(t: pa.Table) -> tuple[pa.Table, dict[str, Any]]:
    """Plant every row-level and type defect; returns the table and the planted values."""
    never_buyer = [i for i, v in enumerate(t["buyer_d28"].to_pylist()) if v == 0]
    buyer = [i for i, v in enumerate(t["buyer_d7"].to_pylist()) if v == 1]
    ids = t["row_id"].to_pylist()
    dup = ids[3]
    ids[7], ids[0] = dup, None  # duplicate id, null id
    t = replace_column(t, "row_id", ids)
    t = _set(t, never_buyer[0], iap_revenue_d7=-5.0)  # negative revenue (buyer 0 stays consistent)
    t = _set(t, never_buyer[1], buyer_d7=1, buyer_d14=1, buyer_d28=1)  # buyer without revenue
    half = t["iap_revenue_d7"][buyer[0]].as_py() / 2
    t = _set(t, buyer[0], iap_revenue_d14=half, iap_revenue_d28=half)  # d14 < d7
    t = replace_column(t, "dev_os", ["windows"] * 5 + t["dev_os"].to_pylist()[5:])  # outside the set
    t = replace_column(t, "country", [None] * 180 + t["country"].to_pylist()[180:])  # 90% null
    t = replace_column(t, "weekday", pc.cast(t["weekday"], pa.string()))  # wrong scalar type
    cpm = [None if v is None else [(k, 1) for k, _ in v] for v in t["cpm"].to_pylist()]
    t = replace_column(t, "cpm", cpm, pa.map_(pa.string(), pa.int64()))  # wrong map value type
    return t, {"dup": dup}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory, spec, null_rates, base) -> dict[str, Any]:
    """train: every defect; validation: sampled (600 > 250 rows) with one far-apart duplicate id;
    holdout: empty. Runs the stage once and keeps what the tests inspect."""
    store = ArtifactStore(tmp_path_factory.mktemp("failed"))
    bad, planted = corrupt(base)
    v1, v2 = make_rows(spec, null_rates, 300, seed=21), make_rows(spec, null_rates, 300, seed=22, ts=T0 + 3600)
    far_dup = v1["row_id"][290].as_py()
    v2 = replace_column(v2, "row_id", [far_dup] + v2["row_id"].to_pylist()[1:])
    stage(store, {"train": [bad], "validation": [v1, v2], "holdout": [base.slice(0, 0)]})
    with pytest.raises(ValidationFailed) as err:
        validate_run(store, RUN, spec, max_rows_per_split=250)
    d = store.stage_dir(RUN, "validate")
    return {"store": store, "message": str(err.value), "dir": d, "far_dup": far_dup, **planted,
            "result": json.loads(store.read_text(f"{d}/result.json"))}


DEFECTS = {
    "duplicate id": ["[train] ExpectColumnValuesToBeUnique on row_id"],
    "null id": ["[train] ExpectColumnValuesToNotBeNull on row_id"],
    "negative revenue": ["[train] ExpectColumnValuesToBeBetween on iap_revenue_d7", "-5.0"],
    "buyer vs revenue": ["[train] ExpectColumnPairValuesToBeEqual on buyer_d7, __buyer_d7_expected", "[1, 0]"],
    "non-monotone horizons": ["[train] ExpectColumnPairValuesAToBeGreaterThanB on iap_revenue_d14, iap_revenue_d7"],
    "value outside set": ["[train] ExpectColumnValuesToBeInSet on dev_os", "'windows'"],
    "null share out of band": ["[train] ExpectColumnProportionOfNonNullValuesToBeBetween on country",
                               "null share 0.9", "outside band [0, 0.15]"],
    "wrong scalar type": ["[train] ExpectColumnValuesToBeOfType on weekday", "observed 'str'"],
    "wrong nested type": ["[train] ExpectColumnValuesToBeOfType on cpm", "'map<string, int64>'"],
    "empty split": ["[holdout] split is empty (0 rows)"],
}


@pytest.mark.parametrize("name", list(DEFECTS))
def test_each_defect_fails_naming_column_and_examples(failed_run, name):
    msg = failed_run["message"]
    for needle in DEFECTS[name]:
        assert needle in msg, f"{name}: {needle!r} not in:\n{msg}"


def test_duplicate_examples_show_the_id(failed_run):
    line = next(x for x in failed_run["message"].splitlines() if "[train] ExpectColumnValuesToBeUnique" in x)
    assert failed_run["dup"] in line


def test_sampled_split_still_catches_a_far_apart_duplicate(failed_run):
    info = failed_run["result"]["splits"]["validation"]
    assert info["sampled"] and info["rows"] == 600 and info["rows_validated"] <= 252
    assert info["keys"] == {"rows": 600, "null_ids": 0, "duplicate_ids": 1, "duplicate_rows": 2}
    line = next(x for x in failed_run["message"].splitlines() if "[validation] ExpectColumnValuesToBeUnique" in x)
    assert failed_run["far_dup"] in line


def test_empty_split_reports_once(failed_run):
    assert sum(1 for x in failed_run["message"].splitlines() if x.lstrip().startswith("[holdout]")) == 1


def test_failure_writes_result_and_docs_but_does_not_commit(failed_run):
    store, d, result = failed_run["store"], failed_run["dir"], failed_run["result"]
    assert result["success"] is False and result["failed"] == len(result["failures"]) > 0
    assert set(result["results"]) == {"train", "validation", "holdout"}
    assert store.exists(f"{d}/data_docs/index.html")
    pages = [p for p in store.fs.find(f"{d}/data_docs") if "/validations/" in p and p.endswith(".html")]
    assert len(pages) == 3, pages
    assert not store.is_committed(RUN, "validate")
    assert "full result:" in failed_run["message"] and "data docs:" in failed_run["message"]


def test_report_api_round_trips_from_result_json(failed_run):
    """failures()/summary() work on the stored JSON, so a later reader can rebuild the message."""
    result = failed_run["result"]
    report = ValidationReport(success=result["success"], results=result["results"], splits=result["splits"])
    assert report.failed == result["failed"] and report.summary() == result["summary"]
    f = next(f for f in report.failures() if (f.split, f.column) == ("train", "dev_os"))
    assert f.expectation == "ExpectColumnValuesToBeInSet" and f.examples == ["windows"] * 5
    assert f.unexpected_count == 5
    assert report.summary() in failed_run["message"]


def test_sample_keeps_every_key_offender(tmp_path, spec, null_rates):
    a, b = make_rows(spec, null_rates, 200, seed=31), make_rows(spec, null_rates, 200, seed=32)
    dup = a["row_id"][150].as_py()
    b = replace_column(b, "row_id", [None] + b["row_id"].to_pylist()[1:-1] + [dup])
    store = ArtifactStore(tmp_path)
    stage(store, {"train": [a, b]})
    out = store.read_manifest(RUN, "ingest")["outputs"]["train"]
    frame, info = _split_frame(store, spec, "train", out, 40)
    assert len(frame) <= 43 and (frame["row_id"] == dup).sum() == 2 and frame["row_id"].isna().sum() == 1
    assert info["keys"] == {"rows": 400, "null_ids": 1, "duplicate_ids": 1, "duplicate_rows": 2}
    again, _ = _split_frame(store, spec, "train", out, 40)
    assert again["row_id"].equals(frame["row_id"])  # deterministic


# --- pieces -------------------------------------------------------------------------------------
def test_validation_frame_lengths_nulls_and_helpers(spec, base):
    t = replace_column(base, "cpm", [None, [], [("b", 1.0), ("i", 2.0)]] + base["cpm"].to_pylist()[3:])
    df = validation_frame(spec, t, labelled=True)
    assert str(df["cpm"].dtype) == "Int64"
    assert df["cpm"].isna().iloc[0] and df["cpm"].iloc[1] == 0 and df["cpm"].iloc[2] == 2
    assert str(df["buyer_d7"].dtype) == "Int32" and str(df["row_id"].dtype) == "str"
    expected = (np.asarray(t["iap_revenue_d7"]) > 0).astype(int)
    assert (df["__buyer_d7_expected"].to_numpy() == expected).all()
    assert (df[EVENT_TS_END] == T0 + 3600).all()
    unlabelled = validation_frame(spec, t, labelled=False)
    assert "iap_revenue_d7" not in unlabelled and "__buyer_d7_expected" not in unlabelled
    assert list(unlabelled.columns[:3]) == spec.feature_names[:3]


def test_build_suite_covers_spec_and_file(spec):
    suite = build_suite(spec, "train", True)
    kinds = [(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations]
    assert ("expect_column_values_to_be_unique", "row_id") in kinds
    assert ("expect_table_row_count_to_be_between", None) in kinds
    exist = next(e for e in suite.expectations if e.expectation_type == "expect_table_columns_to_match_set")
    assert list(exist.column_set) == [c.name for c in spec.columns] and not exist.exact_match
    typed = {e.column for e in suite.expectations if e.expectation_type == "expect_column_values_to_be_of_type"}
    assert typed == {c.name for c in spec.columns}
    banded = {c for k, c in kinds if k == "expect_column_proportion_of_non_null_values_to_be_between"}
    assert set(spec.feature_names) <= banded
    scoring = build_suite(spec, "scoring", False)
    cols = {getattr(e, "column", None) for e in scoring.expectations}
    assert not cols & set(spec.outcome_names)


@pytest.mark.parametrize("patch, message", [
    ({"expectations": [{"type": "ExpectNothing", "kwargs": {}}]}, "not an expectation"),
    ({"expectations": [{"type": "ExpectColumnValuesToBeInSet", "kwargs": {"column": "dev_oss", "value_set": [1]}}]},
     "['dev_oss']"),
    ({"null_share": {"country": [0.5, 0.1]}}, "0 <= min <= max <= 1"),
    ({"null_share": {"row_id": [0, 0]}}, "no band for feature columns"),
])
def test_expectations_file_errors_are_loud(tmp_path, spec, patch, message):
    raw = yaml.safe_load((project_root() / spec.expectations).read_text())
    raw.update(patch)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as err:
        load_expectations_file(path, spec)
    assert message in str(err.value) and str(path) in str(err.value)
