"""The JSON tfkd writes: strict (no `NaN`/`Infinity`, which are not JSON), atomic on disk.

A figure that is missing or undefined (a speed with no timed epoch, a metric
of a diverged model) is written as `null`; every other reader of the file
(`jq`, JavaScript, a strict parser) can then read it.

Example:
>>> to_json({"examples_per_second": float("nan"), "steps": 3}, indent=None)
'{"examples_per_second": null, "steps": 3}'
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

import numpy as np


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
    """Writes `data` to `path` atomically: a run killed mid-write leaves the previous file, never half of one."""
    text = to_json(data, indent)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)
