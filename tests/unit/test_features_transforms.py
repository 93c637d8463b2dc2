"""Per-kind transforms on hand-made Arrow arrays: values, null vs empty, invalid timestamps, extremes.

Each transform is also checked against a slow per-row Python reference on random maps
(hypothesis) that reads nested columns as Python sees them: a map is a list of (key, value) pairs.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ltv_core.features import transforms as tf
from ltv_core.features.ragged import Ragged

MAP_F = pa.map_(pa.string(), pa.float64())
MAP_I = pa.map_(pa.string(), pa.int64())
MAP_MAP = pa.map_(pa.string(), pa.map_(pa.string(), pa.int64()))
LIST_S = pa.list_(pa.string())
STATS = ["count", "sum", "mean", "max", "entropy", "top1_share", "top2_share"]
DAY = 86_400
T0 = int(datetime(2025, 10, 1, 13, tzinfo=timezone.utc).timestamp())  # a Wednesday, 13:00 UTC


def nan_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality at the output's own precision (per-row stats come out as final float32)."""
    a = np.asarray(a)
    dtype = a.dtype if a.dtype.kind == "f" else np.float64
    return bool(np.array_equal(a.astype(dtype), np.asarray(b, dtype=np.float64).astype(dtype), equal_nan=True))


# --- map_numeric / histogram ------------------------------------------------------------------------
def test_map_numeric_values_null_and_empty():
    arr = pa.array([[("a", 1.0), ("b", 3.0)], None, [], [("x", 5.0)]], type=MAP_F)
    out = tf.map_numeric(arr, STATS)
    assert nan_equal(out["count"], [2, np.nan, 0, 1])
    assert nan_equal(out["sum"], [4, np.nan, 0, 5])
    assert nan_equal(out["mean"], [2, np.nan, np.nan, 5])
    assert nan_equal(out["max"], [3, np.nan, np.nan, 5])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert np.allclose(out["entropy"], [h, np.nan, np.nan, 0.0], equal_nan=True)
    assert np.allclose(out["top1_share"], [0.75, np.nan, np.nan, 1.0], equal_nan=True)
    assert np.allclose(out["top2_share"], [1.0, np.nan, np.nan, 1.0], equal_nan=True)


def test_map_numeric_extremes_null_values_and_negatives():
    arr = pa.array([[("a", 1e12), ("b", 1.0)], [("a", float("inf")), ("b", 2.0), ("c", None)],
                    [("a", -4.0), ("b", 2.0)], [("a", -1.0)]], type=MAP_F)
    out = tf.map_numeric(arr, STATS)
    assert nan_equal(out["count"], [2, 3, 2, 1])  # every entry counts, whatever its value
    assert nan_equal(out["sum"], [1e12 + 1, 2, -2, -1])  # inf and null ignored
    assert nan_equal(out["mean"], [(1e12 + 1) / 2, 2, -1, -1])
    assert nan_equal(out["max"], [1e12, 2, 2, -1])
    # shares and entropy use positive mass only; a row without positive mass has none
    assert np.allclose(out["top1_share"], [1e12 / (1e12 + 1), 1.0, 1.0, np.nan], equal_nan=True)
    assert np.isnan(out["entropy"][3]) and out["entropy"][0] >= 0


def test_map_numeric_sliced_array_and_null_row_backed_by_entries():
    # a null row pointing at real child entries (legal in Arrow) must not leak them into stats
    offsets = pa.array([0, 1, 3, 4], type=pa.int32())
    arr = pa.MapArray.from_arrays(offsets, pa.array(["a", "b", "c", "d"]), pa.array([1.0, 10.0, 20.0, 2.0]),
                                  mask=pa.array([False, True, False]))
    out = tf.map_numeric(arr, ["count", "sum"])
    assert nan_equal(out["count"], [1, np.nan, 1]) and nan_equal(out["sum"], [1, np.nan, 2])
    full = pa.array([[("a", 1.0)], [("b", 2.0), ("c", 3.0)], None, [("d", 4.0)]], type=MAP_F)
    sliced = tf.map_numeric(full.slice(1, 3), ["count", "sum", "max"])
    assert nan_equal(sliced["sum"], [5, np.nan, 4]) and nan_equal(sliced["max"], [3, np.nan, 4])


@pytest.mark.parametrize("typ", [MAP_F, MAP_I, MAP_MAP, LIST_S])
def test_all_null_and_zero_rows(typ):
    ev = np.full(3, float(T0))
    for arr, e in ((pa.nulls(3, typ), ev), (pa.array([], type=typ), ev[:0])):
        if typ == LIST_S:
            outs = tf.list_string(arr)
        elif typ == MAP_MAP:
            outs = {**tf.map_of_maps(arr, ["click"]), **tf.map_of_maps_timestamp(arr, e, DAY, ["click"])}
            outs.update(tf.lookup_map_of_maps(arr, pa.array(["k"] * len(arr)), ["click"], "zero"))
        else:
            outs = {**tf.map_numeric(arr.cast(MAP_F), STATS), **tf.map_timestamp(arr, e, DAY)}
            outs.update(tf.lookup_map(arr, pa.array(["k"] * len(arr)), "zero"))
        for name, v in outs.items():
            assert v.shape == (len(arr),), name
            assert np.isnan(v).all(), f"{name}: a null map must give NaN, got {v}"


# --- timestamps -------------------------------------------------------------------------------------
def test_map_timestamp_ages_against_each_rows_event_time():
    ev = np.array([T0, T0 + 10 * DAY, T0, T0], dtype=float)
    arr = pa.array([[("a", T0 - DAY), ("b", T0 - 3 * DAY)],
                    [("a", T0 - DAY)],
                    [("bad0", 0), ("neg", -5), ("future", T0 + 400 * DAY), ("ok", T0 - 2 * DAY)],
                    [("only_bad", 0)]], type=MAP_I)
    out = tf.map_timestamp(arr, ev, tolerance_s=DAY)
    assert nan_equal(out["count"], [2, 1, 4, 1])
    assert nan_equal(out["newest_age_days"], [1, 11, 2, np.nan])
    assert nan_equal(out["oldest_age_days"], [3, 11, 2, np.nan])


def test_scalar_timestamp_age_and_invalid_values():
    ev = np.full(6, float(T0))
    arr = pa.array([T0 - 2 * DAY, None, 0.0, -1.0, T0 + 5 * DAY, float("inf")])
    assert nan_equal(tf.timestamp_age_days(arr, ev, DAY), [2, np.nan, np.nan, np.nan, np.nan, np.nan])
    # within the tolerance a slightly-later timestamp is kept (negative age)
    assert tf.timestamp_age_days(pa.array([T0 + 3600.0]), ev[:1], DAY)[0] == pytest.approx(-1 / 24)


def test_event_time_from_unix_seconds_not_the_hour_string():
    out = tf.event_time(np.array([T0, T0 + 11 * 3600 + 4 * DAY], dtype=float))  # Wed 13:00, Mon 00:00
    assert out["hour_sin"][0] == pytest.approx(math.sin(2 * math.pi * 13 / 24))
    assert out["hour_cos"][1] == pytest.approx(1.0)
    assert out["weekday_sin"][0] == pytest.approx(math.sin(2 * math.pi * 2 / 7))  # Mon=0 -> Wed=2
    assert out["weekday_cos"][1] == pytest.approx(1.0) and out["weekday_sin"][1] == pytest.approx(0.0)


# --- scalars ------------------------------------------------------------------------------------------
def test_numeric_passthrough_extremes():
    out = tf.numeric(pa.array([1e12, -3.5, None, float("inf"), float("-inf"), float("nan")]))
    assert nan_equal(out, [1e12, -3.5, np.nan, np.nan, np.nan, np.nan])
    assert nan_equal(tf.numeric(pa.array([1, None, 3], type=pa.int64())), [1, np.nan, 3])
    assert nan_equal(tf.numeric(pa.nulls(2, pa.float64())), [np.nan, np.nan])


def test_categorical_codes_vocab_other_and_null():
    vocab = ["us", "br"]
    codes = tf.categorical_codes(pa.array(["br", "us", None, "zz-unseen", "us"]), vocab)
    assert codes.dtype == np.int32 and codes.tolist() == [1, 0, -1, 2, 0]
    ints = tf.categorical_codes(pa.array([3, 7, None], type=pa.int64()), ["7", "3"])
    assert ints.tolist() == [1, 0, -1]
    assert tf.categorical_codes(pa.nulls(2, pa.string()), vocab).tolist() == [-1, -1]
    assert tf.categorical_codes(pa.array(["x"]), []).tolist() == [0]  # empty vocab: everything is "other"


# --- maps of maps and lists -----------------------------------------------------------------------------
def test_map_of_maps_counts_and_inner_key_totals():
    arr = pa.array([[("b1", [("click", 2), ("install", 1)]), ("b2", [("click", 3), ("weird", 9)])],
                    None, [], [("b3", [])], [("b4", None)]], type=MAP_MAP)
    out = tf.map_of_maps(arr, ["click", "install", "purchase"])
    assert nan_equal(out["count"], [2, np.nan, 0, 1, 1])
    assert nan_equal(out["inner_total"], [15, np.nan, 0, 0, 0])
    assert nan_equal(out["total__click"], [5, np.nan, 0, 0, 0])
    assert nan_equal(out["total__install"], [1, np.nan, 0, 0, 0])
    assert nan_equal(out["total__purchase"], [0, np.nan, 0, 0, 0])


def test_map_of_maps_timestamp_newest_age():
    ev = np.array([T0, T0, T0], dtype=float)
    arr = pa.array([[("b1", [("click", T0 - 2 * DAY), ("install", T0 - 5 * DAY)]),
                     ("b2", [("click", T0 - DAY), ("open", T0 + 90 * DAY)])],
                    None, [("b3", [("click", 0)])]], type=MAP_MAP)
    out = tf.map_of_maps_timestamp(arr, ev, DAY, ["click", "install"])
    assert nan_equal(out["count"], [2, np.nan, 1])
    assert nan_equal(out["newest_age_days"], [1, np.nan, np.nan])  # the future one and the 0 are invalid
    assert nan_equal(out["newest_age_days__click"], [1, np.nan, np.nan])
    assert nan_equal(out["newest_age_days__install"], [5, np.nan, np.nan])


def test_list_string_length_and_unique():
    arr = pa.array([["a", "b", "a"], None, [], ["c", None, "c", "d"], ["a"]], type=LIST_S)
    out = tf.list_string(arr)
    assert nan_equal(out["length"], [3, np.nan, 0, 4, 1])
    assert nan_equal(out["unique"], [2, np.nan, 0, 2, 1])


# --- key lookups ------------------------------------------------------------------------------------------
def test_lookup_under_the_rows_own_key():
    keys = pa.array(["b1", "b2", "b3", None, "b5"])
    arr = pa.array([[("b0", 1.0), ("b1", 7.0)], [("b1", 3.0)], None, [("b1", 1.0)], []], type=MAP_F)
    nan_out = tf.lookup_map(arr, keys, "nan")
    zero_out = tf.lookup_map(arr, keys, "zero")
    assert nan_equal(nan_out["at"], [7, np.nan, np.nan, np.nan, np.nan])
    assert nan_equal(zero_out["at"], [7, 0, np.nan, 0, 0])  # null map stays NaN even with absent=zero
    assert nan_equal(nan_out["has"], [1, 0, np.nan, 0, 0])


def test_lookup_timestamp_and_map_of_maps():
    ev = np.array([T0, T0], dtype=float)
    keys = pa.array(["b1", "b2"])
    ts = pa.array([[("b1", T0 - 4 * DAY), ("b9", T0 - DAY)], [("b2", 0)]], type=MAP_I)
    out = tf.lookup_map_timestamp(ts, keys, ev, DAY)
    assert nan_equal(out["age_days_at"], [4, np.nan]) and nan_equal(out["has"], [1, 1])
    mm = pa.array([[("b1", [("click", 2), ("install", 1)]), ("b9", [("click", 50)])], [("b7", [("click", 1)])]],
                  type=MAP_MAP)
    out = tf.lookup_map_of_maps(mm, keys, ["click", "install"], "zero")
    assert nan_equal(out["total_at"], [3, 0]) and nan_equal(out["total_at__click"], [2, 0])
    assert nan_equal(out["total_at__install"], [1, 0]) and nan_equal(out["has"], [1, 0])
    mts = pa.array([[("b1", [("click", T0 - 2 * DAY), ("open", T0 - 6 * DAY)])], None], type=MAP_MAP)
    out = tf.lookup_map_of_maps_timestamp(mts, keys, ev, DAY)
    assert nan_equal(out["newest_age_days_at"], [2, np.nan]) and nan_equal(out["has"], [1, np.nan])


def test_ragged_top_k_only_sorts_long_rows():
    arr = pa.array([[("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 4.0)], [("a", 2.0)]], type=MAP_F)
    rg = Ragged.of(arr)
    v = np.asarray(rg.child(arr.items).to_numpy(zero_copy_only=False))
    assert rg.seg_top_k_sum(v, 2).tolist() == [9.0, 2.0]
    assert rg.seg_top_k_sum(v, 3).tolist() == [12.0, 2.0]


# --- against a per-row Python reference -------------------------------------------------------------------
def _ref_map(row):  # a map as Python sees it: a list of (key, value) tuples, or None
    if row is None:
        return dict(count=math.nan, sum=math.nan, max=math.nan, top1_share=math.nan)
    vals = [v for _, v in row if v is not None and math.isfinite(v)]
    pos = [v for v in vals if v > 0]
    return dict(count=len(row), sum=sum(vals), max=max(vals) if vals else math.nan,
                top1_share=max(pos) / sum(pos) if pos else math.nan)


maps = st.lists(st.one_of(st.none(), st.lists(st.tuples(st.text("abc", min_size=1, max_size=2),
                                                         st.one_of(st.none(), st.floats(-1e6, 1e6))), max_size=5)),
                max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=maps, start=st.integers(0, 3))
def test_map_numeric_matches_per_row_reference(rows, start):
    arr = pa.array(rows, type=MAP_F).slice(min(start, len(rows)))
    out = tf.map_numeric(arr, ["count", "sum", "max", "top1_share"])
    for i, row in enumerate(rows[min(start, len(rows)):]):
        ref = _ref_map(row)
        for k, v in ref.items():
            assert (math.isnan(v) and math.isnan(out[k][i])) or out[k][i] == pytest.approx(v, rel=1e-6, abs=1e-3), (k, row)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text("xyz", max_size=2)), max_size=6)),
                     max_size=30))
def test_list_string_matches_per_row_reference(rows):
    out = tf.list_string(pa.array(rows, type=LIST_S))
    for i, row in enumerate(rows):
        if row is None:
            assert math.isnan(out["length"][i]) and math.isnan(out["unique"][i])
        else:
            assert out["length"][i] == len(row)
            assert out["unique"][i] == len({s for s in row if s is not None})


# --- fast paths give the same bits as their general fallbacks ---------------------------------------------
def test_top_k_padded_sort_equals_k_passes_bit_for_bit():
    """Ties, NaN entries, rows shorter than k after NaNs: the padded-matrix path adds the same values
    in the same order as the k-pass fallback used for very long rows."""
    from ltv_core.features.ragged import _top_k_passes

    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 12, 400)
    values = rng.choice([0.1, 0.7, 1.3, 2.0, 1e-3, 7e5, np.nan], size=int(lengths.sum()))
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    arr = pa.MapArray.from_arrays(pa.array(offsets), pa.array(["k"] * len(values)), pa.array(values))
    rg = Ragged.of(arr)
    for k in (2, 3, 5):
        fast = rg.seg_top_k_sum(values, k)
        long_rows = rg.nz_lengths > k
        sel = long_rows[rg.row]
        slow = _top_k_passes(rg.row[sel], values[sel], k)
        assert np.array_equal(fast[long_rows], slow)


def test_list_unique_matrix_path_equals_pair_sort_fallback():
    rows = [["a", "b", "a", None], ["c"], None, [], ["x"] * 5 + ["y"], [None, None]] * 30
    out = tf.list_string(pa.array(rows, type=LIST_S))
    long_rows = rows + [[f"s{i % 37}" for i in range(3000)]]  # one very long list: pair-sort fallback
    out_long = tf.list_string(pa.array(long_rows, type=LIST_S))
    expected = [np.nan if r is None else len({s for s in r if s is not None}) for r in long_rows]
    assert nan_equal(out_long["unique"], expected)
    assert nan_equal(out["unique"], expected[:-1])


def test_shared_flattening_gives_the_same_lookups():
    arr = pa.array([[("k", 1.0), ("z", 2.0)], None, [], [("k", 3.0)]], type=MAP_F)
    keys = pa.array(["k", "k", "k", "q"])
    flat = tf.Flat(arr)
    stats = tf.map_numeric(flat, STATS)  # statistics first, then the lookup on the same flattening
    for name, values in tf.map_numeric(arr, STATS).items():
        assert nan_equal(stats[name], values)
    shared, alone = tf.lookup_map(flat, keys, "zero"), tf.lookup_map(arr, keys, "zero")
    assert all(nan_equal(shared[s], alone[s]) for s in alone)
