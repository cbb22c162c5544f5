"""The README's Python examples run as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_block(after: str) -> str:
    """The first ```python block of the README after the line containing `after`."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(after)
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.slow
@pytest.mark.ci
def test_the_api_example_runs_offline(tmp_path):
    code = python_block("<!-- tfkd-readme-example -->")
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    teacher, student, ratio = re.fullmatch(r"teacher ([\d.]+), student ([\d.]+), ([\d.]+)x fewer parameters",
                                           line).groups()
    assert 0.5 < float(teacher) <= 1 and 0.5 < float(student) <= 1 and float(ratio) > 1
    assert (tmp_path / "workdirs" / "api_codir" / "results.json").exists()


CHECK_OWN_LOSS = """
from tests.helpers import make_context
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES, loss_arguments

assert loss_arguments("last_hidden_mse", {"margin": "0.01"}) == {"margin": 0.01}
try:
    loss_arguments("last_hidden_mse", {"margin": -1.0})
except TfkdError as e:
    assert "margin" in str(e)
else:
    raise AssertionError("a negative margin was accepted")
assert LOSSES.get("last_hidden_mse")(make_context(), margin=0.01).margin == 0.01
"""


def test_the_own_loss_example_registers_a_loss_with_a_checked_hyperparameter():
    # In a fresh interpreter: the example registers a loss, which would stay in this process's registry.
    code = python_block("### Adding your own loss") + CHECK_OWN_LOSS
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
