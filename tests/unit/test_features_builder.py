"""FeatureFitter and FeatureBuilder: fitting from partials, persisted state, leakage guard, train/serve
consistency, pruned transforms."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from ltv_core.errors import DataError, SpecError
from ltv_core.features.columns import FeatureColumns
from ltv_core.store import ArtifactStore
from ltv_core.features import (FeatureBuilder, FeatureFitter, FeatureState, assert_no_leakage, assign_folds,
                               load_features_config)
from ltv_core.features.columns import carry_columns
from ltv_core.features.config import parse_features_config
from ltv_core.features.fitting import merge_all
from ltv_core.ingest import EVENT_TS, align_table
from ltv_core.spec import DatasetSpec, load_spec
from ltv_core.synthetic import generate_dataset

SPEC = load_spec("config/datasets/smadex_d7.yaml")
CONFIG = load_features_config("config/features.yaml")
TRAIN_HOURS, TEST_HOURS = 6, 2


def stage_table(raw: pa.Table, value: str, labelled: bool) -> pa.Table:
    """What ingest writes for one partition: spec columns in order, then datetime and _event_ts."""
    table, _ = align_table(raw, SPEC, labelled, value)
    ts = int(SPEC.partition.parse(value).timestamp())
    table = table.append_column(SPEC.partition.key, pa.repeat(pa.scalar(value), table.num_rows))
    return table.append_column(EVENT_TS, pa.repeat(pa.scalar(ts, pa.int64()), table.num_rows))


def read_split(root: Path, sub: str, labelled: bool) -> list[tuple[str, pa.Table]]:
    out = []
    for d in sorted((root / sub).iterdir()):
        value = d.name.split("=", 1)[1]
        raw = pa.concat_tables([pq.read_table(f) for f in sorted(d.glob("*.parquet"))])
        out.append((value, stage_table(raw, value, labelled)))
    return out


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, list[tuple[str, pa.Table]]]:
    root = tmp_path_factory.mktemp("features-synth")
    generate_dataset(root, seed=5, rows_per_partition=400, train_hours=TRAIN_HOURS, test_hours=TEST_HOURS)
    return {"train": read_split(root, SPEC.roots.train, True), "test": read_split(root, SPEC.roots.test, False)}


@pytest.fixture(scope="session")
def fitted(synthetic) -> tuple[FeatureBuilder, FeatureState]:
    fitter = FeatureFitter(SPEC, CONFIG)
    return fitter.builder, fitter.fit(synthetic["train"])


def small_config(**changes) -> "object":
    raw = copy.deepcopy(CONFIG.fingerprint())
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return parse_features_config(raw)


def row_vector(table: pa.Table, i: int) -> list:
    return [table.column(c)[i].as_py() for c in table.column_names]


def same(a: pa.Table, b: pa.Table) -> bool:
    """Bitwise equality with NaN == NaN (features are NaN, never null)."""
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return False
    for name in a.column_names:
        x, y = a.column(name).to_numpy(), b.column(name).to_numpy()
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    return True


# --- state ---------------------------------------------------------------------------------------
def test_fit_produces_a_complete_json_state(fitted, synthetic):
    builder, state = fitted
    assert state.train_rows == sum(t.num_rows for _, t in synthetic["train"])
    assert state.train_partitions == [p for p, _ in synthetic["train"]]
    assert len(state.feature_names) == len(set(state.feature_names)) > 200
    assert set(state.categorical_features) <= set(state.feature_names)
    assert "hour" not in state.feature_names and "weekday" not in state.feature_names  # excluded in config
    assert {"event_time__hour_sin", "event_time__weekday_cos"} <= set(state.feature_names)
    assert state.inner_keys["user_actions_bundles_action_count"][:2]  # learned, e.g. click / open
    assert "release_msrp__pct_in_country" in state.feature_names
    assert {"dev_model__te_buyer", "country__te_log1p_revenue"} <= set(state.feature_names)
    assert state.te_folds == 4 and sorted(set(state.te_partition_folds.values())) == [0, 1, 2, 3]
    text = state.to_json()
    json.loads(text)  # strict JSON: no NaN
    again = FeatureState.from_json(text)
    assert again.to_dict() == state.to_dict()


def test_reloaded_state_transforms_bit_identically(fitted, synthetic):
    builder, state = fitted
    reloaded = FeatureState.from_json(state.to_json())
    rebuilt = FeatureBuilder.from_state(SPEC, reloaded)
    value, table = synthetic["test"][0]
    a, b = builder.transform(table, state), rebuilt.transform(table, reloaded)
    assert a.column_names == state.feature_names and same(a, b)
    value, table = synthetic["train"][1]
    fold = reloaded.fold_of(value)
    assert same(builder.transform(table, state, fold), rebuilt.transform(table, reloaded, fold))


def test_partials_merge_in_any_order_to_the_same_state(synthetic):
    fitter = FeatureFitter(SPEC, CONFIG)
    folds = assign_folds([p for p, _ in synthetic["train"]], CONFIG.target_encoding.folds)
    partials = [fitter.partial_stats(t, p, folds[p]) for p, t in synthetic["train"]]
    a = fitter.fit_state(merge_all(partials), folds)
    b = fitter.fit_state(merge_all(partials[::-1]), folds)
    assert a.to_json() == b.to_json() == fitter.fit(synthetic["train"][::-1]).to_json()


def test_output_types_and_finite_or_nan(fitted, synthetic):
    builder, state = fitted
    out = builder.transform(synthetic["test"][1][1], state)
    for f in out.schema:
        if f.name in state.categorical_features:
            assert f.type == pa.int32()
            assert pc.min(out.column(f.name)).as_py() >= -1
        else:
            assert f.type == pa.float32(), f.name
            assert not np.isinf(out.column(f.name).to_numpy()).any(), f.name


# --- leakage guard ---------------------------------------------------------------------------------
LABELS = ["iap_revenue_d7", "buyer_d7", "retention_d1", "buy_d7", "registration"]


def test_label_columns_in_the_input_never_reach_the_matrix(fitted, synthetic):
    builder, state = fitted
    value, table = synthetic["train"][0]
    assert set(LABELS) <= set(table.column_names)
    with_labels = builder.transform(table, state)
    without = builder.transform(table.drop_columns([c for c in SPEC.outcome_names if c in table.column_names]),
                                state)
    assert same(with_labels, without)  # labels are not even read
    extra = table.append_column("iap_revenue_d7_copy", table.column("iap_revenue_d7"))
    names = builder.transform(extra, state).column_names
    for lab in LABELS + ["iap_revenue_d7_copy"]:
        assert not any(n == lab or n.startswith(lab) for n in names), lab


def test_label_renamed_into_an_allow_listed_slot_keeps_feature_names_clean(fitted, synthetic):
    builder, state = fitted
    value, table = synthetic["train"][0]
    i = table.schema.get_field_index("release_msrp")
    forged = table.set_column(i, "release_msrp", table.column("iap_revenue_d7"))
    names = builder.transform(forged, state).column_names
    assert names == state.feature_names
    assert not any(n.startswith(lab) for n in names for lab in SPEC.outcome_names)


def test_spec_refuses_a_label_declared_as_feature():
    raw = yaml.safe_load(Path(SPEC.source_path).read_text())
    for lab in ("iap_revenue_d7", "buyer_d7", "retention_d1", "iap_revenue_d7_copy", "registration"):
        bad = copy.deepcopy(raw)
        bad["columns"] = [c for c in bad["columns"] if c["name"] != lab]
        bad["columns"].insert(20, {"name": lab, "type": "float64", "kind": "numeric"})
        with pytest.raises(ValueError, match="can never be a feature|must have role 'label'"):
            DatasetSpec.model_validate(bad)


@pytest.mark.parametrize("change", [
    {"key_lookups.lookups": [{"map": "iap_revenue_d7", "key_column": "advertiser_bundle"}]},
    {"interactions.features": [{"name": "x", "op": "product", "a": "buyer_d7", "b": "release_msrp"}]},
    {"geo_aggregates.aggregates": [{"value": "iap_revenue_d7", "group": "country"}]},
    {"target_encoding.columns": ["retention_d1"]},
])
def test_features_config_naming_a_label_fails_loudly(change):
    with pytest.raises(SpecError, match="label / post-outcome"):
        FeatureBuilder(SPEC, small_config(**change))


def test_leakage_guard_refuses_forged_sources_and_names(fitted):
    _, state = fitted
    sources = dict(state.sources)
    sources["release_msrp"] = ["iap_revenue_d7"]
    with pytest.raises(DataError, match="iap_revenue_d7"):
        assert_no_leakage(SPEC, state.feature_names, sources)
    with pytest.raises(DataError, match="buyer_d7__x"):
        assert_no_leakage(SPEC, ["buyer_d7__x"], {"buyer_d7__x": ["release_msrp"]})


# --- train / serve consistency -------------------------------------------------------------------------
def _with_unseen(table: pa.Table, row: int) -> pa.Table:
    for col, value in (("dev_model", "never-seen-model"), ("country", "zz"), ("advertiser_bundle", "f" * 40)):
        arr = table.column(col).combine_chunks()
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[row] = True
        table = table.set_column(table.schema.get_field_index(col), col,
                                 pc.if_else(pa.array(mask), pa.scalar(value), arr))
    return table


def test_same_row_same_vector_alone_in_training_or_scoring(fitted, synthetic):
    builder, state = fitted
    value, train = synthetic["train"][2]
    train = _with_unseen(train, 5)
    fold = state.fold_of(value)
    full_none, full_fold = builder.transform(train, state), builder.transform(train, state, fold)
    scoring_like = train.drop_columns(SPEC.outcome_names)  # same rows as a scoring partition sees them
    other = synthetic["test"][0][1]
    mixed = pa.concat_tables([other.select(scoring_like.column_names), scoring_like.slice(3, 4)])
    mixed_out = builder.transform(mixed, state)
    for i in (0, 5, train.num_rows - 1):
        alone = train.slice(i, 1)
        assert row_vector(builder.transform(alone, state), 0) == pytest.approx(row_vector(full_none, i), nan_ok=True)
        assert same(builder.transform(alone, state), full_none.slice(i, 1))
        assert same(builder.transform(alone, state, fold), full_fold.slice(i, 1))
        assert same(builder.transform(scoring_like.slice(i, 1), state), full_none.slice(i, 1))
    for j in range(4):
        assert same(mixed_out.slice(other.num_rows + j, 1), full_none.slice(3 + j, 1))
    # the unseen values got the "other" code and the prior encodings
    r = full_none.slice(5, 1)
    assert r.column("dev_model")[0].as_py() == len(state.vocabularies["dev_model"])
    enc, prior = state.te_encodings("dev_model", "buyer", None, CONFIG.target_encoding.smoothing)
    assert r.column("dev_model__te_buyer")[0].as_py() == pytest.approx(prior, rel=1e-6)


def test_training_rows_get_out_of_fold_encodings(fitted, synthetic):
    builder, state = fitted
    value, table = synthetic["train"][0]
    fold = state.fold_of(value)
    m = CONFIG.target_encoding.smoothing
    oof = builder.transform(table, state, fold).column("country__te_buyer").to_numpy()
    full = builder.transform(table, state).column("country__te_buyer").to_numpy()
    # hand computation from the other folds' rows only
    rows = [(p, t) for p, t in synthetic["train"] if state.fold_of(p) != fold]
    country = pa.concat_arrays([t.column("country").combine_chunks() for _, t in rows]).to_numpy(zero_copy_only=False)
    buyer = np.concatenate([t.column("buyer_d7").to_numpy() for _, t in rows]).astype(float)
    prior = buyer.mean()
    c0 = table.column("country")[0].as_py()
    sel = country == c0
    expected = (buyer[sel].sum() + m * prior) / (sel.sum() + m)
    assert oof[0] == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(oof, full)


# --- fitted decisions persist ------------------------------------------------------------------------------
def _set(table: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, arr)


def test_missing_indicator_decided_at_fit_and_kept(synthetic):
    parts = [(p, _set(t, "release_msrp", pa.array(np.where(np.arange(t.num_rows) % 10 == 0, np.nan, 100.0))))
             for p, t in synthetic["train"]]
    parts = [(p, _set(t, "avg_days_ins", pa.array(np.full(t.num_rows, 3.0)))) for p, t in parts]
    cfg = small_config(**{"missing_indicators.threshold": 0.05})
    fitter = FeatureFitter(SPEC, cfg)
    builder, state = fitter.builder, fitter.fit(parts)
    assert "release_msrp" in state.missing_indicators and "avg_days_ins" not in state.missing_indicators
    assert state.missing_share["release_msrp"] == pytest.approx(0.1, abs=0.01)
    scoring = synthetic["test"][0][1]
    full = _set(scoring, "release_msrp", pa.array(np.full(scoring.num_rows, 50.0)))
    full = _set(full, "avg_days_ins", pa.nulls(scoring.num_rows, pa.float64()))
    out = builder.transform(full, state)
    assert out.column("release_msrp__missing").to_numpy().max() == 0.0  # still there, all zero
    assert "avg_days_ins__missing" not in out.column_names  # never added at serve time
    assert np.isnan(out.column("avg_days_ins").to_numpy()).all()


def test_categorical_vocabulary_top_n_min_count_and_stable_codes(synthetic):
    cfg = small_config(**{"categorical.top_n": 3, "categorical.min_count": 1, "categorical.overrides": {}})
    fitter = FeatureFitter(SPEC, cfg)
    builder, state = fitter.builder, fitter.fit(synthetic["train"])
    vocab = state.vocabularies["country"]
    assert len(vocab) == 3
    counts = pc.value_counts(pa.concat_arrays([t.column("country").combine_chunks() for _, t in synthetic["train"]]))
    top = sorted(((c["counts"], c["values"]) for c in counts.to_pylist() if c["values"] is not None),
                 key=lambda x: (-x[0], x[1]))[:3]
    assert vocab == [v for _, v in top]
    for _, table in synthetic["train"][:1] + synthetic["test"][:1]:
        codes = builder.transform(table, state).column("country").to_numpy()
        raw = table.column("country").to_numpy(zero_copy_only=False)
        for code, value in zip(codes, raw):
            assert code == (-1 if value is None else vocab.index(value) if value in vocab else 3)


def test_geo_aggregates_use_feature_values_never_labels(synthetic):
    fitter = FeatureFitter(SPEC, CONFIG)
    builder = fitter.builder
    shuffled = []
    rng = np.random.default_rng(0)
    for p, t in synthetic["train"]:
        for h in SPEC.labels.horizons:
            t = _set(t, h.revenue, pa.array(rng.permutation(t.column(h.revenue).to_numpy())))
        shuffled.append((p, t))
    a, b = fitter.fit(synthetic["train"]), fitter.fit(shuffled)
    assert a.geo == b.geo and a.vocabularies == b.vocabularies
    assert a.target_encoding != b.target_encoding  # only target encoding reads labels
    g = a.geo["release_msrp__by_country"]
    allv = np.concatenate([t.column("release_msrp").to_numpy(zero_copy_only=False) for _, t in synthetic["train"]])
    assert g.global_median == pytest.approx(np.nanmedian(allv.astype(float)), rel=0.02)
    out = builder.transform(synthetic["test"][0][1], a)
    pct = out.column("release_msrp__pct_in_country").to_numpy()
    assert np.nanmin(pct) >= 0 and np.nanmax(pct) <= 1
    unseen = _with_unseen(synthetic["test"][0][1], 0)
    row = builder.transform(unseen.slice(0, 1), a)
    msrp = unseen.column("release_msrp")[0].as_py()
    if msrp is not None:  # an unseen country uses the global distribution
        assert row.column("release_msrp__dev_median_country")[0].as_py() == pytest.approx(msrp - g.global_median)


@pytest.mark.parametrize("group,prefix", [
    ("event_time", "event_time__"), ("key_lookups", "__at_advertiser_bundle"),
    ("interactions", "hist_spend"), ("geo_aggregates", "__pct_in_"), ("target_encoding", "__te_"),
    ("missing_indicators", "__missing"), ("categorical", "dev_model"),
])
def test_each_group_can_be_switched_off(synthetic, group, prefix):
    cfg = small_config(**{f"{group}.enabled": False})
    if group in ("key_lookups", "geo_aggregates"):  # interactions / geo reference their outputs
        cfg = small_config(**{f"{group}.enabled": False, "interactions.enabled": False})
    names = FeatureFitter(SPEC, cfg).fit(synthetic["train"][:2]).feature_names
    if group == "categorical":
        assert "dev_model" not in names
    else:
        assert not any(prefix in n for n in names), group


def test_interaction_naming_an_unknown_feature_fails_naming_it(synthetic):
    cfg = small_config(**{"interactions.features": [{"name": "x", "op": "ratio", "a": "nope__sum", "b": "release_msrp"}]})
    with pytest.raises(SpecError, match="nope__sum"):
        FeatureFitter(SPEC, cfg).fit(synthetic["train"][:2])


# --- edge cases and loud failures ----------------------------------------------------------------------
def test_zero_rows_and_all_null_columns(fitted, synthetic):
    builder, state = fitted
    table = synthetic["test"][0][1]
    empty = builder.transform(table.slice(0, 0), state)
    assert empty.num_rows == 0 and empty.column_names == state.feature_names
    nulls = table
    for c in SPEC.feature_columns:
        if not c.required:
            nulls = _set(nulls, c.name, pa.nulls(table.num_rows, c.arrow_type))
    out = builder.transform(nulls, state)
    assert np.isnan(out.column("iap_revenue_usd_bundle__count").to_numpy()).all()
    assert np.isnan(out.column("user_actions_bundles_action_count__total__click").to_numpy()).all()
    assert (out.column("carrier").to_numpy() == -1).all()


def test_single_training_partition_skips_target_encoding_with_a_note(synthetic):
    state = FeatureFitter(SPEC, CONFIG).fit(synthetic["train"][:1])
    assert not any("__te_" in n for n in state.feature_names) and "skipped" in state.te_note


def test_bad_inputs_fail_naming_the_column(fitted, synthetic):
    builder, state = fitted
    table = synthetic["test"][0][1]
    with pytest.raises(DataError, match="_event_ts"):
        builder.transform(table.drop_columns([EVENT_TS]), state)
    with pytest.raises(DataError, match="'country'"):
        builder.transform(table.drop_columns(["country"]), state)
    bad = _set(table, "cpm", pa.array(["oops"] * table.num_rows))
    with pytest.raises(DataError, match="'cpm'.*map_numeric"):
        builder.transform(bad, state)
    with pytest.raises(DataError, match="fold 9"):
        builder.transform(table, state, fold=9)
    with pytest.raises(DataError, match="carry-along column 'iap_revenue_d7'"):
        builder.transform_partition(table, state, labelled=True)


def test_optional_column_absent_is_null_and_state_mismatch_is_refused(fitted, synthetic):
    builder, state = fitted
    table = synthetic["test"][0][1]
    out = builder.transform(table.drop_columns(["cpm"]), state)
    assert np.isnan(out.column("cpm__count").to_numpy()).all()
    other = FeatureBuilder(SPEC, small_config(**{"event_time.enabled": False}))
    with pytest.raises(DataError, match="refit the state"):
        other.transform(table, state)


def test_carry_columns_are_not_features(fitted, synthetic):
    builder, state = fitted
    value, table = synthetic["train"][0]
    out = builder.transform_partition(table, state, labelled=True, fold=state.fold_of(value))
    carry = carry_columns(SPEC, labelled=True)
    assert out.column_names == state.feature_names + carry
    assert not set(carry) & set(state.feature_names)
    assert out.column(EVENT_TS)[0].as_py() == int(datetime(2025, 10, 1, tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize("needed", [
    ["country__te_buyer"],                                               # a target encoding alone
    ["release_msrp__pct_in_country", "hist_spend_x_sessions"],           # a geo aggregate + an interaction
    ["whale_users_bundle_revenue_prank__at_advertiser_bundle", "dev_os", "event_time__hour_sin"],
    ["avg_daily_sessions__sum"],                                         # a lookup's map, not the lookup
])
def test_pruned_transform_keeps_needed_features_bit_identical(fitted, synthetic, needed, tmp_path):
    """A plan computes what the needed outputs come from; they equal the full transform's, every
    other column is null (NaN / code -1), names and order unchanged."""
    builder, state = fitted
    needed = [n for n in needed if n in state.feature_names]
    assert needed, "the test names must exist in the fitted state"
    _, table = synthetic["test"][0]
    plan = builder.plan_for(needed, state, table)
    full, pruned = builder.transform(table, state), builder.transform(table, state, plan=plan)
    assert pruned.column_names == full.column_names == state.feature_names
    assert pruned.schema == full.schema
    # what scoring reads from a file (the plan's input columns) is enough for the same result
    projected = table.select([c for c in builder.input_columns(plan) if c in table.column_names])
    again = builder.transform(projected, state, plan=plan)
    assert again.schema == pruned.schema
    for n in again.column_names:  # NaN == NaN
        np.testing.assert_array_equal(again.column(n).to_numpy(), pruned.column(n).to_numpy(), err_msg=n)
    # ... and so is a Parquet read that takes the keyless maps by their value leaf alone
    store = ArtifactStore(str(tmp_path))
    path = store.write_parquet(store.path("staged.parquet"), table)
    keyless = store.read_parquet(path, builder.input_columns(plan), skip_missing=True, map_values_only=plan.values_only)
    assert all(not pa.types.is_map(keyless.schema.field(c).type) for c in plan.values_only)
    if needed == ["avg_daily_sessions__sum"]:  # a lookup's map whose lookup is not needed: keys unread
        assert plan.values_only == {"avg_daily_sessions"} and not plan.lookups
    from_leaves = builder.transform(keyless, state, plan=plan)
    for n in again.column_names:
        np.testing.assert_array_equal(from_leaves.column(n).to_numpy(), pruned.column(n).to_numpy(), err_msg=n)
    for n in needed:  # NaN == NaN here
        np.testing.assert_array_equal(pruned.column(n).to_numpy(), full.column(n).to_numpy(), err_msg=n)
    assert len(plan.columns) < len(builder.columns)
    untouched = [n for n in state.feature_names if n not in needed and not set(n.split("__")[:1]) & set(plan.columns)
                 and not n.startswith("event_time")]
    assert untouched
    for n in untouched[:50]:
        col = pruned.column(n).to_numpy(zero_copy_only=False)
        assert (col == -1).all() if n in state.categorical_features else np.isnan(col).all(), n


def test_plan_refuses_unknown_features(fitted, synthetic):
    builder, state = fitted
    with pytest.raises(DataError, match="not in the fitted state"):
        builder.plan_for(["no_such_feature"], state, synthetic["test"][0][1])


@pytest.mark.parametrize("pruned", [False, True])
def test_matrix_equals_transform_then_dense_matrix(fitted, synthetic, pruned):
    """The scoring matrix (built without Arrow table or frame) holds the same float32 values as the
    transform's category frame converted by ``DenseMatrix.from_frame``; column-major; codes -1 -> NaN."""
    from ltv_core.features.state import category_labels, feature_frame
    from ltv_core.models.matrix import DenseMatrix

    builder, state = fitted
    _, table = synthetic["test"][0]
    plan = builder.plan_for(state.feature_names[::3], state, table) if pruned else None
    cats = {c: category_labels(state.vocabularies.get(c, [])) for c in state.categorical_features}
    M = builder.matrix(table, state, plan=plan)
    ref_frame = DenseMatrix.from_frame(feature_frame(builder.transform(table, state, plan=plan), state))
    want = ref_frame.values
    assert M.dtype == np.float32 and M.flags.f_contiguous and M.shape == want.shape
    np.testing.assert_array_equal(M, want)  # NaN == NaN
    X = DenseMatrix.from_values(M, state.feature_names, cats)
    for c in state.categorical_features:  # the fallback frame decodes the same categories
        got = X.frame[c]
        ref = ref_frame.frame[c]
        pd.testing.assert_series_equal(got, ref, check_names=False)
    empty = builder.matrix(table.slice(0, 0), state, plan=plan)
    assert empty.shape == (0, len(state.feature_names))


def test_dense_matrix_from_values_rejects_bad_codes(fitted):
    from ltv_core.models.matrix import DenseMatrix

    _, state = fitted
    c = state.categorical_features[0]
    names = state.feature_names
    M = np.zeros((3, len(names)), np.float32)
    M[0, names.index(c)] = 10**6
    with pytest.raises(DataError, match=c):
        DenseMatrix.from_values(M, names, {c: ["a", "b"]})
    with pytest.raises(DataError, match="shape"):
        DenseMatrix.from_values(M[:, :-1], names, {})


def test_plan_computes_only_the_needed_statistics_of_a_column(fitted, synthetic):
    """A histogram or list column some needed output reads computes that statistic only; its other
    statistics are null, the needed one is bit-identical."""
    builder, state = fitted
    _, table = synthetic["test"][0]
    hist = next(c.name for c in builder.columns if c.kind.value == "histogram")
    lst = next(c.name for c in builder.columns if c.kind.value == "list_string")
    needed = [f"{hist}__entropy", f"{lst}__length"]
    assert set(needed) <= set(state.feature_names)
    plan = builder.plan_for(needed, state, table)
    assert plan.stats[hist] == {"entropy"} and plan.stats[lst] == {"length"}
    full, pruned = builder.transform(table, state), builder.transform(table, state, plan=plan)
    for n in needed:
        np.testing.assert_array_equal(pruned.column(n).to_numpy(), full.column(n).to_numpy(), err_msg=n)
    for n in (f"{hist}__sum", f"{hist}__max", f"{lst}__unique"):
        assert np.isnan(pruned.column(n).to_numpy()).all(), n
        assert not np.isnan(full.column(n).to_numpy()).all(), n


def test_a_spec_without_features_config_gets_the_generic_default(synthetic):
    """A new data set needs only its spec: no features config anywhere -> every group on, no lists
    naming columns; the spec's own config and an explicit path (flag, param) win in that order."""
    from ltv_core.features.config import features_config_for

    bare = SPEC.model_copy(update={"features_config": None})
    default = features_config_for(bare)
    assert default.source_path == "<default for dataset 'smadex_d7'>"
    assert (default.exclude_columns, default.key_lookups.lookups, default.geo_aggregates.aggregates,
            default.target_encoding.columns, default.interactions.features) == ([], [], [], [], [])
    assert features_config_for(SPEC).source_path.endswith("config/features.yaml")  # the spec names it
    explicit = features_config_for(SPEC, "tests/support/../../config/features.yaml")
    assert explicit.key_lookups.lookups == CONFIG.key_lookups.lookups
    state = FeatureFitter(bare, default).fit(synthetic["train"][:3])
    assert len(state.feature_names) > 50 and not [f for f in state.feature_names if "__te_" in f]


def test_a_disabled_group_is_not_validated():
    """`enabled: false` switches a group off without deleting its lists: they are not checked
    against the spec (it used to fail with "'...' is not a feature column")."""
    raw = copy.deepcopy(CONFIG.fingerprint())
    raw["key_lookups"]["lookups"] = [{"map": "no_such_map", "key_column": "no_such_key"}]
    with pytest.raises(SpecError, match="key_lookups.map: 'no_such_map' is not a feature column"):
        FeatureColumns(SPEC, parse_features_config(raw))
    for group, key in (("key_lookups", "lookups"), ("geo_aggregates", "aggregates"),
                       ("target_encoding", "columns"), ("interactions", "features")):
        raw[group]["enabled"] = False
    raw["target_encoding"]["columns"] = ["no_such_column"]
    cfg = parse_features_config(raw)
    FeatureColumns(SPEC, cfg)
    assert cfg.key_lookups.lookups == [] and cfg.target_encoding.columns == []
