"""tfkd writes strict JSON atomically (undefined figures become null, never NaN or Infinity) and reads it
back with one clear error line."""

import json
import os

import numpy as np
import pytest

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json, to_json, write_json


def test_non_finite_and_numpy_values_become_strict_json(tmp_path):
    data = {"speed": float("nan"), "peak": float("inf"), "low": -np.inf, "f32": np.float32(0.5), "n": np.int64(3),
            "rows": np.array([1.0, np.nan]), "nested": [{"x": (1, float("nan"))}], "text": "NaN"}
    expected = {"speed": None, "peak": None, "low": None, "f32": 0.5, "n": 3, "rows": [1.0, None],
                "nested": [{"x": [1, None]}], "text": "NaN"}
    assert json.loads(to_json(data), parse_constant=lambda c: c / 0) == expected
    write_json(str(tmp_path / "out.json"), data)
    assert json.loads((tmp_path / "out.json").read_text(), parse_constant=lambda c: c / 0) == expected
    assert os.listdir(tmp_path) == ["out.json"]
    assert read_json(str(tmp_path / "out.json"), fix="unused") == expected


def test_a_failed_write_leaves_the_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    path = str(tmp_path / "out.json")
    write_json(path, {"epoch": 1})

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"epoch": 2})
    with pytest.raises(TypeError):  # not JSON-able: refused before anything is written
        write_json(path, {"model": object()})
    assert os.listdir(tmp_path) == ["out.json"] and read_json(path, fix="unused") == {"epoch": 1}


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"),
    ('{"epoch": 1', "is not valid JSON (Expecting ',' delimiter"),
    (b"\xff\xfe{}", "is not valid JSON ('utf-8' codec can't decode"),
    ("directory", "cannot be read (Is a directory)"),
])
def test_a_missing_or_damaged_file_is_one_line_with_the_fix(tmp_path, content, problem):
    path = tmp_path / "out.json"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(TfkdError) as error:
        read_json(str(path), fix="re-run the command that wrote it")
    assert str(error.value).startswith(f"'{path}' {problem}")
    assert str(error.value).endswith(". Fix: re-run the command that wrote it.") and "\n" not in str(error.value)
