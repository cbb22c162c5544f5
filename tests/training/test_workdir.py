"""A run's workdir: one owner at a time, the flags it started with, output paths checked before any work.

Two runs into one workdir run `python -m tfkd.train` in subprocesses (tests/tiny_train.py), since a
kill is the point; a resume with other flags and results.json rebuilt after deletion run the
command's `main` in this process (tests/train_flags.py).
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from tiny_train import ENV, ROOT, assert_one_clear_error, read_until, run, save_teacher, start, train_command

from tests.train_flags import CommandError, train_main
from tfkd.core.errors import TfkdError
from tfkd.training.workdir import FLAGS_FILE, RunFlags, WorkdirLock


def strict_json(path):
    """The file's JSON; NaN or Infinity (not JSON) fail."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=refuse)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def finished_run(teacher, tmp_path_factory):
    """The workdir of a finished 1-epoch run (checkpoints at steps 3 and 6)."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    train_here(teacher, workdir, "--checkpoint_every_steps=3")
    return workdir


def train_here(teacher, workdir, *extra):
    """The run `run(train_command(...))` makes, in this process."""
    command = train_command(teacher, workdir, *extra)
    train_main(*command[command.index("tfkd.train") + 1:])


@pytest.fixture
def copy_of_finished_run(finished_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir)
    return workdir


def test_a_second_run_into_a_running_workdir_is_refused_and_a_killed_run_leaves_it_free(teacher, tmp_path):
    workdir = tmp_path / "run"
    command = train_command(teacher, workdir, "--epochs=20", "--checkpoint_every_steps=3")
    first = start(command)
    try:
        read_until(first, "saved checkpoint")
        second = run(command, timeout=120)
        assert_one_clear_error(second, f"--workdir={workdir} is in use by process {first.pid} on host {socket.gethostname()}")
        assert "teacher cache" not in second.stdout and "Epoch" not in second.stdout  # refused before any work
    finally:
        first.kill()  # SIGKILL: the kernel drops the lock, nothing else does
        first.wait()
    with WorkdirLock(str(workdir)):  # free again
        pass


def test_the_lock_names_its_owner_and_is_free_again_after_it(tmp_path):
    with WorkdirLock(str(tmp_path)):
        with pytest.raises(TfkdError, match=rf"workdir={tmp_path} is in use by process {os.getpid()} on host "):
            WorkdirLock(str(tmp_path)).__enter__()
        other = subprocess.run(
            [sys.executable, "-c", f"from tfkd.training.workdir import WorkdirLock\nWorkdirLock({str(tmp_path)!r}).__enter__()"],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and f"in use by process {os.getpid()}" in other.stderr
    with WorkdirLock(str(tmp_path)):
        pass


def test_run_flags_refuse_a_changed_resume_record_overrides_and_start_afresh(tmp_path):
    flags = RunFlags(str(tmp_path))
    assert flags.check({"learning_rate": 1e-3, "seed": 1}, resuming=False, allow_changes=False) == []
    with pytest.raises(TfkdError, match=r"OptimConfig.learning_rate 0.001 → 0.002, MethodConfig.name None → 'kd'.*allow_changed"):
        flags.check({"learning_rate": 2e-3, "seed": 1, "method": "kd"}, resuming=True, allow_changes=False)
    changes = flags.check({"learning_rate": 2e-3, "seed": 1}, resuming=True, allow_changes=True)
    assert changes == [{"flag": "learning_rate", "old": 1e-3, "new": 2e-3}] == flags.changes()
    assert flags.check({"learning_rate": 2e-3, "seed": 1}, resuming=True, allow_changes=False) == changes
    assert flags.check({"learning_rate": 5e-3, "seed": 2}, resuming=False, allow_changes=False) == []
    (tmp_path / FLAGS_FILE).write_text("[1, 2")
    with pytest.raises(TfkdError, match="run_flags.json' .* is damaged"):
        flags.check({}, resuming=True, allow_changes=False)


def test_checkpoints_without_recorded_flags_resume_only_when_changes_are_allowed(tmp_path):
    flags = RunFlags(str(tmp_path))
    with pytest.raises(TfkdError, match=r"holds checkpoints but no run_flags.json.*Fix: .*allow_changed"):
        flags.check({"seed": 1}, resuming=True, allow_changes=False)
    assert flags.check({"seed": 1}, resuming=True, allow_changes=True) == []
    assert flags.check({"seed": 1}, resuming=True, allow_changes=False) == []  # recorded from now on


def test_resuming_with_a_changed_learning_rate_is_refused_unless_allowed_and_then_recorded(teacher, copy_of_finished_run,
                                                                                          capsys):
    workdir = copy_of_finished_run
    with pytest.raises(CommandError) as refused:
        train_here(teacher, workdir, "--checkpoint_every_steps=3", "--learning_rate=2e-3", "--seed=4")
    assert "other flags than they were trained with: --learning_rate 0.001 → 0.002, --seed 1 → 4" in str(refused.value)
    assert "Fix: " in str(refused.value) and "resumed from" not in capsys.readouterr().out
    # Flags that do not change what the run computes may differ.
    train_here(teacher, workdir, "--checkpoint_every_steps=2", "--eval_batch_size=100", "--tensorboard_update_freq=7",
               "--verbosity=1")
    capsys.readouterr()
    train_here(teacher, workdir, "--checkpoint_every_steps=3", "--learning_rate=2e-3", "--allow_changed_flags")
    allowed = capsys.readouterr().out
    assert "flags changed since this run started" in allowed and "--learning_rate 0.001 → 0.002" in allowed
    results = strict_json(workdir / "results.json")
    assert results["flag_changes"] == [{"flag": "learning_rate", "old": 1e-3, "new": 2e-3}]
    assert results["flags"]["learning_rate"] == 2e-3
    assert strict_json(workdir / FLAGS_FILE)["flags"]["learning_rate"] == 2e-3


def test_results_json_rebuilt_after_deletion_is_strict_json_with_null_for_what_was_not_measured(teacher, copy_of_finished_run):
    workdir = copy_of_finished_run
    original = strict_json(workdir / "results.json")
    assert original["train_examples_per_second"] > 0 and original["flag_changes"] == []
    os.remove(workdir / "results.json")
    train_here(teacher, workdir, "--checkpoint_every_steps=3")
    results = strict_json(workdir / "results.json")
    assert results["train_examples_per_second"] is None and results["epoch_seconds"] == []
    assert results["best_dev"] == original["best_dev"] and results["dev_history"] == original["dev_history"]
    for name in ("dev_history.json", "run_flags.json", "model/tfkd_model.json", "teacher_cache/fingerprint.json"):
        strict_json(workdir / name)
