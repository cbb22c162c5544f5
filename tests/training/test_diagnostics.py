"""The contrastive losses' diagnostics reach the progress log and TensorBoard of a real `tfkd.train` run."""

import glob

import tensorflow as tf

from tests.cli.test_train import common, run_train

DIAGNOSTICS = ("codir_positive_probability", "codir_fresh_loss", "ackd_positive_probability", "ackd_sar_weight_max")


def scalar_tags(logdir):
    tags = set()
    for path in glob.glob(f"{logdir}/**/events.out.tfevents.*", recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_diagnostics_are_logged_every_epoch_and_in_tensorboard(tiny_setup, tmp_path):  # noqa: F811
    workdir = tmp_path / "run"
    result = run_train(*common(tiny_setup, workdir, "--method=custom", "--losses=ce:0.5,kd:0.5,codir:0.1,ackd:0.1",
                               "--codir_num_negatives=8", "--tensorboard_update_freq=1"))
    assert result.returncode == 0, result.stderr[-3000:]
    epoch_lines = [line for line in result.stdout.splitlines() if " - loss: " in line]
    assert len(epoch_lines) == 2 and all(name in line for line in epoch_lines for name in DIAGNOSTICS), epoch_lines
    tags = scalar_tags(workdir / "logs")
    for name in DIAGNOSTICS:
        assert f"epoch_{name}" in tags and f"batch_{name}" in tags, (name, sorted(tags))
