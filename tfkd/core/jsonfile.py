"""The JSON tfkd writes and reads: strict (no `NaN`/`Infinity`, which are not JSON), atomic on disk,
and read back with one clear error line when a file is missing or damaged.

A figure that is missing or undefined (a speed with no timed epoch, a metric
of a diverged model) is written as `null`; every other reader of the file
(`jq`, JavaScript, a strict parser) can then read it.

Example:
>>> to_json({"examples_per_second": float("nan"), "steps": 3}, indent=None)
'{"examples_per_second": null, "steps": 3}'
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "speed.json")
>>> write_json(path, {"examples_per_second": float("inf")})
>>> read_json(path, fix="re-run the benchmark")
{'examples_per_second': None}
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

import numpy as np

from tfkd.core.errors import TfkdError


def jsonable(value: Any) -> Any:
    """`value` with NumPy scalars and arrays as Python values and every non-finite float as None."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(data: Any, indent: Optional[int] = 2) -> str:
    """`data` as strict JSON text (see `jsonable`)."""
    return json.dumps(jsonable(data), indent=indent, allow_nan=False)


def write_json(path: str, data: Any, indent: Optional[int] = 2) -> None:
    """Writes `data` to `path` atomically: a run killed or failing mid-write leaves the previous file, never half of one.

    The text goes to `<path>.partial`, reaches the disk (fsync), then replaces
    `path` in one rename; a failed write removes the partial file.
    """
    text = to_json(data, indent)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def read_json(path: str, fix: str, damaged: str = "is not valid JSON") -> Any:
    """The JSON value in `path`, or a `TfkdError` of one line: the file, what is wrong with it, and `fix`.

    `NaN`/`Infinity`, which tfkd never writes but older versions did, are read as floats.

    Args:
        path: the file.
        fix: how the user gets a good file, e.g. "re-run the tfkd.train command that wrote it".
        damaged: the words after the path for a file that is there but not JSON; a reader that also
            refuses a wrong structure passes the words it uses for that, e.g. "(the flags this run was
            started with) is damaged".

    Example:
    >>> read_json("/nonexistent/results.json", fix="re-run the tfkd.train command")
    Traceback (most recent call last):
    tfkd.core.errors.TfkdError: '/nonexistent/results.json' does not exist. Fix: re-run the tfkd.train command.
    >>> with open("run_flags.json", "w") as f:
    ...     _ = f.write('{"flags": ')
    >>> read_json("run_flags.json", fix="delete it", damaged="(the flags of the run) is damaged")
    Traceback (most recent call last):
    tfkd.core.errors.TfkdError: 'run_flags.json' (the flags of the run) is damaged (Expecting value: line 1 column 11 (char 10)). Fix: delete it.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        problem = "does not exist"
    except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"{damaged} ({e})"
    except OSError as e:  # a directory, no permission
        problem = f"cannot be read ({e.strerror})"
    raise TfkdError(f"'{path}' {problem}. Fix: {fix}.")
