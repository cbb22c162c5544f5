"""Outside a command a library error names the configuration field a user set, inside one the flag."""

import subprocess
import sys

import pytest

import tfkd
from tfkd.core.errors import TfkdError, command_context, in_config_terms


def test_outside_a_command_registered_options_read_as_configuration_fields():
    message = "--teacher=x needs --student_init=teacher; --workdir=/r is busy; --validate and --teacher_cachex stay"
    assert in_config_terms(message) == ("TeacherConfig.source=x needs StudentConfig.init=teacher; workdir=/r is busy; "
                                        "--validate and --teacher_cachex stay")
    assert str(TfkdError("unknown --strategy 'y'")) == "unknown RuntimeConfig.strategy 'y'"
    # A setting's dotted path is not a flag followed by text; a sentence's full stop is.
    assert in_config_terms("augment.factor and --augment.factor 2 → 3; pass --augment.") == (
        "augment.factor and --augment.factor 2 → 3; pass AugmentConfig.augmenters.")


def test_inside_a_command_the_message_is_unchanged():
    error = TfkdError("unknown --strategy 'y'. Fix: pass --teacher_cache=off")
    with command_context():
        assert str(error) == "unknown --strategy 'y'. Fix: pass --teacher_cache=off"


def test_run_distill_with_a_file_as_teacher_cache_names_the_runtime_field(tmp_path):
    (tmp_path / "file").write_text("x")
    config = tfkd.RunConfig(workdir=str(tmp_path / "run"), data=tfkd.DataConfig(task="synthetic"),
                            runtime=tfkd.RuntimeConfig(teacher_cache=str(tmp_path / "file")))
    with pytest.raises(TfkdError, match=r"RuntimeConfig\.teacher_cache=.*file") as caught:
        tfkd.run_distill(config)
    assert "--teacher_cache" not in str(caught.value)


def test_the_command_still_prints_the_flag(tmp_path):
    (tmp_path / "file").write_text("x")
    done = subprocess.run([sys.executable, "-m", "tfkd.train", f"--workdir={tmp_path / 'run'}", "--task=synthetic",
                           f"--teacher_cache={tmp_path / 'file'}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "tfkd: error: " in done.stderr and f"--teacher_cache={tmp_path / 'file'}" in done.stderr
