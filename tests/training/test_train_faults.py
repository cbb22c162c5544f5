"""Faults during `python -m tfkd.train`, in real subprocesses: a full disk while checkpointing, Ctrl-C (once, twice),
SIGTERM before training starts.

The full disk is a size-capped tmpfs mounted over `<workdir>/checkpoints` in a
private mount namespace (`unshare -m`, root only; it vanishes with the
process), big enough for one checkpoint but not for two.
"""

import glob
import os
import shutil
import signal
import subprocess

import pytest
import tensorflow as tf
from tiny_train import ENV, ROOT, assert_one_clear_error, read_until, run, save_teacher, start, train_command

from tfkd.core.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED

PAGE = 4096


def can_mount_tmpfs(tmp_path) -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tmp_path)],
                           capture_output=True)
    return probe.returncode == 0


def tmpfs_bytes(files) -> int:
    """What `files` take on a tmpfs: whole pages."""
    return sum(-(-os.path.getsize(f) // PAGE) * PAGE for f in files)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_teacher(tmp_path_factory.mktemp("teacher"))


def test_disk_full_while_checkpointing_says_how_much_a_checkpoint_needs_and_keeps_the_last_good_one(teacher, tmp_path):
    if not can_mount_tmpfs(tmp_path):
        pytest.skip("needs root and unshare to mount a size-capped tmpfs")
    flags = ("--checkpoint_every_steps=3", "--deterministic")
    sized = tmp_path / "sized"
    assert run(train_command(teacher, sized, *flags)).returncode == 0
    checkpoint = tmpfs_bytes(glob.glob(str(sized / "checkpoints" / "ckpt-3.*")))
    # ckpt-3 and the state file fit; ckpt-6 finds half of its room.
    size = checkpoint + 2 * PAGE + checkpoint // 2
    workdir, after = tmp_path / "full", tmp_path / "after"
    (workdir / "checkpoints").mkdir(parents=True)
    script = (f'mount -t tmpfs -o size={size} tmpfs "$1/checkpoints" || exit 99; shift; "$@"; status=$?; '
              f'cp -a "{workdir}/checkpoints" "{after}"; exit $status')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(workdir), *train_command(teacher, workdir, *flags)],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert "saved checkpoint" in result.stdout and "ckpt-3 at step 3" in result.stdout, result.stdout[-3000:]
    assert_one_clear_error(result, f"could not write checkpoint ckpt-6 in {workdir / 'checkpoints'} (No space left on device)")
    needed = sum(os.path.getsize(f) for f in glob.glob(str(sized / "checkpoints" / "ckpt-3.*")))
    assert f"a checkpoint of this run needs about {needed / 1000:.3g} KB and the filesystem has " in result.stderr
    assert f"The last good checkpoint is kept: {workdir / 'checkpoints' / 'ckpt-3'}." in result.stderr
    assert sorted(os.listdir(after)) == ["checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert tf.train.latest_checkpoint(str(after)) == str(after / "ckpt-3")
    for name in ("ckpt-3.data-00000-of-00001", "ckpt-3.index"):  # untouched: what the same run wrote on a large disk
        assert (after / name).read_bytes() == (sized / "checkpoints" / name).read_bytes()


def test_ctrl_c_saves_at_the_next_step_and_exits_130_then_the_run_resumes(teacher, tmp_path):
    workdir = tmp_path / "run"
    command = train_command(teacher, workdir, "--epochs=3", "--checkpoint_every_steps=3")
    process = start(command)
    read_until(process, "at step 3 ")
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == EXIT_INTERRUPTED == 130, output[-3000:]
    assert "[tfkd] interrupted: SIGINT: saved checkpoint" in output and "exiting with status 130" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    saved = int(tf.train.latest_checkpoint(str(workdir / "checkpoints")).rsplit("-", 1)[1])
    assert 3 < saved < 18
    again = run(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {workdir / 'checkpoints' / f'ckpt-{saved}'}" in again.stdout


def test_a_second_ctrl_c_stops_at_once_with_one_line_exit_130_and_no_checkpoint(teacher, tmp_path):
    workdir = tmp_path / "run"
    process = start(train_command(teacher, workdir, "--epochs=3", "--checkpoint_every_steps=5"))
    read_until(process, "at step 5 ")
    # The next step ends the epoch, so the first Ctrl-C waits for its dev evaluation (the first: slow, it
    # compiles) and checkpoint; the second comes during that wait.
    process.send_signal(signal.SIGINT)
    read_until(process, "SIGINT received: stopping after this epoch's dev evaluation and checkpoint")
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == EXIT_INTERRUPTED, output[-3000:]
    assert output.count("tfkd: interrupted (Ctrl-C)") == 1 and "saved checkpoint" not in output, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")) == str(workdir / "checkpoints" / "ckpt-5")
    assert not glob.glob(str(workdir / "checkpoints" / "ckpt-6*"))


def test_sigterm_before_training_prints_one_line_exits_75_and_leaves_no_staging_files(teacher, tmp_path):
    workdir = tmp_path / "run"
    command = train_command(teacher, workdir)
    process = start(command)
    # The data report comes before the teacher is loaded and its cache pass runs: seconds outside the training loop.
    read_until(process, " train / ")
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == EXIT_PREEMPTED == 75, output[-3000:]
    assert output.count("tfkd: terminated (SIGTERM) outside the training loop") == 1, output[-3000:]
    assert "Traceback" not in output and "[tfkd] training " not in output, output[-3000:]
    assert not glob.glob(str(tmp_path / "**" / "*.partial*"), recursive=True)
    assert not (workdir / "results.json").exists()
    again = run(command)
    assert again.returncode == 0, again.stderr[-3000:]
