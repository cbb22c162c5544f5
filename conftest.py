"""Root conftest: the doctests of the `tfkd` package run with the default suite.

pytest.ini adds `--doctest-modules` and `tfkd` to testpaths. The command modules
define absl flags when imported and two of them clash in one process (report and
evaluate both define --output), so they are not collected; their docstrings show
shell commands, not `>>>` examples.
"""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

_ROOT = pathlib.Path(__file__).resolve().parent

# The library modules of tfkd/cli (helpers the commands share) define no flags at import.
_CLI_LIBRARY = {"__init__.py", "flags.py", "method_flags.py"}


def pytest_ignore_collect(collection_path, config):
    """Collects modules only under tests/ and tfkd/ (`pytest .` must not import setup.py, this file or the
    scripts of docs/experiments as doctest modules), and leaves out every command module: the
    `tfkd/<command>.py` shims, `__main__.py` and `tfkd/cli/<command>.py`."""
    path = pathlib.Path(collection_path)
    if path.suffix != ".py":
        return None
    try:
        parts = path.relative_to(_ROOT).parts
    except ValueError:
        return None
    if parts[0] not in ("tests", "tfkd"):
        return True
    if parts[0] == "tfkd" and path.name == "__main__.py":
        return True
    if len(parts) == 2 and parts[0] == "tfkd" and parts[1] not in ("__init__.py", "conftest.py"):
        return True
    if len(parts) == 3 and parts[:2] == ("tfkd", "cli") and parts[2] not in _CLI_LIBRARY:
        return True
    return None


@pytest.fixture(autouse=True)
def _float32_policy():
    """Doctests too start (and leave) the global dtype policy at float32, as tests/conftest.py does for tests."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(autouse=True)
def _doctest_environment(request, monkeypatch):
    """A docstring example runs in a fresh empty folder, so the files it writes ("vocab.txt", "train.csv")
    read as a user's would and never land in the checkout; Keras' progress bars, whose timings differ
    from run to run, go to absl's log instead of the output the example checks."""
    if _ROOT / "tfkd" not in request.node.path.parents:
        yield
        return
    monkeypatch.chdir(request.getfixturevalue("tmp_path"))
    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    yield
    if interactive:
        keras.config.enable_interactive_logging()
