"""ltv_core.jsonutil: the one JSON sanitiser."""

import json
import math

import numpy as np

from ltv_core.jsonutil import default, to_jsonable


class WithDict:
    def to_dict(self):
        return {"x": np.int64(3)}


def test_numpy_containers_and_objects_become_plain_json():
    got = to_jsonable({"a": np.float32(1.5), "b": (np.int64(2), [np.bool_(True)]), 3: np.arange(2),
                       "s": {"b", "a"}, "o": WithDict(), "t": object})
    assert got == {"a": 1.5, "b": [2, [True]], "3": [0, 1], "s": ["a", "b"], "o": {"x": 3}, "t": str(object)}
    assert json.loads(json.dumps(got)) == got


def test_strict_turns_non_finite_floats_into_null():
    assert to_jsonable([math.nan, np.float64(-math.inf), 1.0], strict=True) == [None, None, 1.0]
    kept = to_jsonable([math.nan])
    assert math.isnan(kept[0])


def test_default_serves_json_dumps():
    assert json.loads(json.dumps({"v": np.float32(0.25), "s": frozenset({2, 1})}, default=default)) == {
        "v": 0.25, "s": [1, 2]}
