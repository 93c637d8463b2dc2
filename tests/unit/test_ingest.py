from datetime import datetime, timezone

import pyarrow as pa
import pytest

from ltv_core import catalog
from ltv_core.context import RunContext
from ltv_core.params import RunParams
from ltv_core.errors import DataError
from ltv_core.ingest import EVENT_TS, align_table, drop_incomplete, immature_horizons
from ltv_core.stages import ingest
from ltv_core.spec import load_spec
from ltv_core.store import ArtifactStore

from support.rawdata import make_table, write_dataset, write_partition
from support.rawdata import hours

SPEC = load_spec("config/datasets/smadex_d7.yaml")
UTC = timezone.utc


def test_align_adds_optional_drops_unexpected_and_casts():
    t = make_table(SPEC, 5, labelled=True)
    t = t.drop_columns(["cpm", "carrier"]).append_column("surprise", pa.array(range(5)))
    t = t.set_column(t.schema.get_field_index("weekday"), "weekday", t.column("weekday").cast(pa.int32()))
    out, rep = align_table(t, SPEC, True, "file.parquet")
    assert out.schema == SPEC.arrow_schema(True)
    assert rep.added_null == ["carrier", "cpm"] or sorted(rep.added_null) == ["carrier", "cpm"]
    assert out.column("cpm").null_count == 5
    assert rep.dropped_unexpected == ["surprise"] and rep.cast == ["weekday"]


def test_align_test_split_drops_labels():
    t = make_table(SPEC, 3, labelled=True)
    out, rep = align_table(t, SPEC, False, "f")
    assert out.schema == SPEC.arrow_schema(False)
    assert set(rep.dropped_unexpected) == set(SPEC.outcome_names)


def test_align_fails_on_missing_required_column_naming_file():
    t = make_table(SPEC, 3, labelled=False).drop_columns(["country"])
    with pytest.raises(DataError, match=r"part-7.parquet.*'country'"):
        align_table(t, SPEC, False, "part-7.parquet")


def test_align_fails_on_uncastable_type():
    t = make_table(SPEC, 3, labelled=False)
    t = t.set_column(t.schema.get_field_index("release_msrp"), "release_msrp", pa.array(["cheap", "x", "y"]))
    with pytest.raises(DataError, match="release_msrp"):
        align_table(t, SPEC, False, "f.parquet")


def test_drop_incomplete_counts_rows():
    t = make_table(SPEC, 6, labelled=True)
    ids = t.column("row_id").to_pylist()
    ids[0] = None
    rev = t.column("iap_revenue_d14").to_pylist()
    rev[1] = None
    t = t.set_column(t.schema.get_field_index("row_id"), "row_id", pa.array(ids))
    t = t.set_column(t.schema.get_field_index("iap_revenue_d14"), "iap_revenue_d14", pa.array(rev))
    out, counts = drop_incomplete(t, SPEC, True)
    assert out.num_rows == 4 and counts == {"row_id": 1, "iap_revenue_d14": 1}
    out, counts = drop_incomplete(t.drop_columns(SPEC.outcome_names), SPEC, False)
    assert out.num_rows == 5 and counts == {"row_id": 1}


GAMING = load_spec("config/datasets/gaming_d120.yaml")


def _null(t: pa.Table, column: str, rows=None) -> pa.Table:
    values = t.column(column).to_pylist()
    for i in range(len(values)) if rows is None else rows:
        values[i] = None
    return t.set_column(t.schema.get_field_index(column), column, pa.array(values, t.schema.field(column).type))


def test_nan_labels_are_missing_labels():
    t = make_table(SPEC, 4, labelled=True)
    rev = t.column("iap_revenue_d7").to_pylist()
    rev[2] = float("nan")
    t = t.set_column(t.schema.get_field_index("iap_revenue_d7"), "iap_revenue_d7", pa.array(rev))
    out, counts = drop_incomplete(t, SPEC, True)
    assert out.num_rows == 3 and counts == {"iap_revenue_d7": 1}


def test_immature_horizons_are_the_longest_ones_no_row_has():
    t = make_table(GAMING, 6, labelled=True)
    assert immature_horizons(t, GAMING) == []
    young = _null(_null(t, "d120_rev"), "d90_rev")  # installed 60-89 days before the export
    assert immature_horizons(young, GAMING) == ["d90", "d120"]
    assert immature_horizons(_null(t, "d120_rev", rows=[0, 1]), GAMING) == []  # some users have it: not young
    # a shorter horizon missing while a longer one is there is broken data, not young data
    assert immature_horizons(_null(t, "d7_rev"), GAMING) == []
    assert immature_horizons(t.slice(0, 0), GAMING) == []


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    write_dataset(root, SPEC, hours(1, 24 * 6), hours(8, 24), rows=4)
    # a multi-file partition with a dropped optional column in one file
    value = "2025-10-06-12-00"
    d = root / "train/train" / f"datetime={value}"
    for f in d.iterdir():
        f.unlink()
    t = make_table(SPEC, 10, labelled=True, seed=99)
    write_partition(root / "train/train", SPEC, value, t, n_files=2)
    return root


def test_run_ingest_stages_every_split(tmp_path, dataset):
    store = ArtifactStore(str(tmp_path / "store"))
    cfg = RunParams.parse({"data_root": str(dataset)}).load_config()
    cfg.dask.n_workers = 2
    cfg.windows.train_hours, cfg.windows.scoring_hours = 12, 6
    L = datetime(2025, 11, 4, tzinfo=UTC)
    out = ingest.run(RunContext("run-1", L, cfg, SPEC, store))
    assert out["rows"] == {"train": 12 * 4, "validation": 24 * 4, "holdout": 23 * 4 + 10, "scoring": 6 * 4}
    m = store.read_manifest("run-1", "ingest")
    assert m["inputs"]["windows"]["train"]["partitions"] == 12
    assert m["outputs"]["holdout"]["labelled"] and not m["outputs"]["scoring"]["labelled"]
    files = [f["path"] for f in catalog.staged_partitions(store, "run-1", "holdout")]
    assert len(files) == 24 and files[0].endswith("datetime=2025-10-06-00-00/part-0.parquet")
    t = catalog.read_staged(store, "run-1", "holdout")
    assert t.schema.names == SPEC.arrow_schema(True).names + ["datetime", EVENT_TS]
    first = t.slice(0, 1)
    assert first.column("datetime")[0].as_py() == "2025-10-06-00-00"
    assert first.column(EVENT_TS)[0].as_py() == int(datetime(2025, 10, 6, tzinfo=UTC).timestamp())
    s = catalog.read_staged(store, "run-1", "scoring")
    assert s.schema.names == SPEC.arrow_schema(False).names + ["datetime", EVENT_TS]
    # maps keep their Arrow type through staging
    assert s.schema.field("user_actions_bundles_action_count").type == SPEC.column(
        "user_actions_bundles_action_count").arrow_type
    # idempotent: re-running the same run id gives the same staged content
    ingest.run(RunContext("run-1", L, cfg, SPEC, store))
    assert catalog.read_staged(store, "run-1", "holdout").equals(t)


def test_run_ingest_fails_on_unreadable_file(tmp_path, dataset):
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(dataset, root)
    bad = next((root / "train/train/datetime=2025-10-03-05-00").iterdir())
    bad.write_bytes(b"not parquet at all")
    store = ArtifactStore(str(tmp_path / "store"))
    cfg = RunParams.parse({"data_root": str(root)}).load_config()
    cfg.dask.processes = False
    with pytest.raises(DataError, match=str(bad.name)):
        ingest.run(RunContext("run-2", datetime(2025, 11, 4, tzinfo=UTC), cfg, SPEC, store))
    assert not store.is_committed("run-2", "ingest")
