"""tfkd writes strict JSON: undefined figures become null, never NaN or Infinity."""

import json
import os

import numpy as np

from tfkd.core.jsonfile import to_json, write_json


def test_non_finite_and_numpy_values_become_strict_json(tmp_path):
    data = {"speed": float("nan"), "peak": float("inf"), "low": -np.inf, "f32": np.float32(0.5), "n": np.int64(3),
            "rows": np.array([1.0, np.nan]), "nested": [{"x": (1, float("nan"))}], "text": "NaN"}
    expected = {"speed": None, "peak": None, "low": None, "f32": 0.5, "n": 3, "rows": [1.0, None],
                "nested": [{"x": [1, None]}], "text": "NaN"}
    assert json.loads(to_json(data), parse_constant=lambda c: c / 0) == expected
    write_json(str(tmp_path / "out.json"), data)
    assert json.loads((tmp_path / "out.json").read_text(), parse_constant=lambda c: c / 0) == expected
    assert os.listdir(tmp_path) == ["out.json"]
