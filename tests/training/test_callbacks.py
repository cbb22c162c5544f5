"""`TrainingCheckpoint`: the whole training state round-trips, damaged or
mismatched checkpoints are refused, non-finite losses are caught at their
step, preemption saves at the right boundary."""

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd
import tfkd.losses.codir  # noqa: F401  (registers codir)
import tfkd.losses.kd  # noqa: F401  (registers ce and kd)
from tfkd.core.errors import TfkdError, TrainingPreempted
from tfkd.distill import Distiller
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import BertModel, StudentShape, build_student
from tfkd.training.callbacks import PreemptionSignal, TrainingCheckpoint

NUM_EXAMPLES = 8


@tfkd.register_loss("test_nan_at")
class NanAt(tfkd.DistillationLoss):
    """0 on every training call but the `step`-th, which returns NaN."""

    def __init__(self, context, step: int = 1, **kwargs):
        super().__init__(context, **kwargs)
        self.step = step
        self.calls = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="calls")

    def call(self, teacher, student, batch, training=False):
        calls = self.calls.assign_add(1) if training else self.calls
        return tf.where(calls == self.step, float("nan"), 0.0) + 0.0 * tf.reduce_mean(student["logits"])


def batch(seed):
    rng = np.random.default_rng(seed)
    mask = np.ones((4, 8), bool)
    mask[1, 5:] = False
    return {
        "token_ids": tf.constant(rng.integers(1, 30, (4, 8)) * mask, tf.int32),
        "segment_ids": tf.zeros((4, 8), tf.int32),
        "padding_mask": tf.constant(mask),
        "labels": tf.constant([0, 1, 0, 1], tf.int32),
        "index": tf.constant(rng.permutation(NUM_EXAMPLES)[:4], tf.int32),
        "weight": tf.ones(4, tf.float32),
    }


def make_distiller(seed, extra_loss=None, intermediate_dim=16):
    """A tiny distiller with dropout on and CoDIR (bank of teacher summaries, negative sampler)."""
    keras.utils.set_random_seed(seed)
    teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        num_classes=2, max_sequence_length=16, dropout=0.1)
    student = build_student(StudentShape(1, 8, 2, intermediate_dim, dropout=0.1), like=teacher)
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_classes=2,
                             num_train_examples=NUM_EXAMPLES, train_labels=np.array([0, 1] * (NUM_EXAMPLES // 2)))
    losses = [("ce", LOSSES.get("ce")(context), 1.0),
              ("codir", LOSSES.get("codir")(context, num_negatives=3, projection_dim=4, seed=seed), 0.5)]
    if extra_loss:
        losses.append((extra_loss[0], extra_loss[1](context), 1.0))
    distiller = Distiller(student, teacher, losses, eval_loss=LOSSES.get("ce")(context))
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-2))
    distiller.build_for_restore()
    return distiller


def state(distiller):
    variables = distiller.variables + distiller.optimizer.variables
    variables += [v for metric in distiller.metrics for v in metric.variables]
    return [np.array(v.numpy()) for v in variables]


def test_checkpoint_restores_every_piece_of_state_into_a_fresh_distiller(tmp_path):
    trained = make_distiller(seed=1)
    for step in range(3):
        trained.train_on_batch(batch(step))
    checkpoint = TrainingCheckpoint(str(tmp_path), trained, steps_per_epoch=4, every_steps=2)
    checkpoint.step = 3
    checkpoint.save()

    fresh = make_distiller(seed=2)  # what a re-run builds: other initial weights, banks and seeds
    assert checkpoint_steps(tmp_path) == [3]
    restored = TrainingCheckpoint(str(tmp_path), fresh, steps_per_epoch=4, every_steps=2)
    assert restored.restore() == 3
    restored.on_epoch_begin(0)  # a mid-epoch resume puts the epoch's running loss means back
    names = [v.path for v in fresh.variables]
    assert any("seed_generator" in n for n in names) and any("teacher_summaries" in n for n in names)
    for a, b in zip(state(trained), state(fresh)):
        np.testing.assert_array_equal(a, b)
    # Same dropout masks, negatives and bank updates from here on.
    logs_a = trained.train_on_batch(batch(7), return_dict=True)
    logs_b = fresh.train_on_batch(batch(7), return_dict=True)
    assert logs_a == logs_b
    for a, b in zip(state(trained), state(fresh)):
        np.testing.assert_array_equal(a, b)


def checkpoint_steps(directory):
    return sorted(int(f[5:].split(".")[0]) for f in os.listdir(directory) if f.startswith("ckpt-") and f.endswith(".index"))


def _truncate_data(directory):
    data = [f for f in os.listdir(directory) if ".data-" in f][0]
    path = os.path.join(directory, data)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage_index(directory):
    with open(os.path.join(directory, "ckpt-4.index"), "wb") as f:
        f.write(os.urandom(64))


def _garbage_state_file(directory):
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: \x00 {{ not a proto\n")


def _missing_state_file(directory):
    os.remove(os.path.join(directory, "checkpoint"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate_data, "ckpt-4' is unreadable: truncated or damaged"),
        (_garbage_index, "ckpt-4' is unreadable: truncated or damaged"),
        (_garbage_state_file, "holds checkpoints (ckpt-4) but its state file 'checkpoint' is missing or damaged"),
        (_missing_state_file, "holds checkpoints (ckpt-4) but its state file 'checkpoint' is missing or damaged"),
    ],
)
def test_damaged_checkpoint_is_refused_with_a_clear_message(tmp_path, damage, message):
    distiller = make_distiller(seed=1)
    checkpoint = TrainingCheckpoint(str(tmp_path), distiller, steps_per_epoch=4)
    checkpoint.step = 4
    checkpoint.save()
    damage(str(tmp_path))
    with pytest.raises(TfkdError) as error:
        TrainingCheckpoint(str(tmp_path), make_distiller(seed=1), steps_per_epoch=4).restore()
    assert message in str(error.value) and "Fix: " in str(error.value)


def test_checkpoint_of_another_model_or_batch_count_is_refused(tmp_path):
    checkpoint = TrainingCheckpoint(str(tmp_path), make_distiller(seed=1), steps_per_epoch=4)
    checkpoint.step = 4
    checkpoint.save()
    with pytest.raises(TfkdError, match="does not fit this run"):
        TrainingCheckpoint(str(tmp_path), make_distiller(seed=1, intermediate_dim=24), steps_per_epoch=4).restore()
    with pytest.raises(TfkdError, match="written with 4 batches per epoch, this run has 5"):
        TrainingCheckpoint(str(tmp_path), make_distiller(seed=1), steps_per_epoch=5).restore()


def test_nonfinite_loss_is_reported_with_its_term_and_step_and_never_saved(tmp_path):
    distiller = make_distiller(seed=1, extra_loss=("spike", lambda context: NanAt(context, step=3)))
    checkpoint = TrainingCheckpoint(str(tmp_path), distiller, steps_per_epoch=100, every_steps=2, check_every_steps=100)
    checkpoint.set_model(distiller)
    with pytest.raises(TfkdError) as error:
        for step in range(6):
            distiller.train_on_batch(batch(step))
            checkpoint.on_train_batch_end(step)
    message = str(error.value)
    assert "'loss_spike' is nan" in message and "'loss' is nan" in message and "'loss_ce'" not in message
    assert "at step 3 (epoch 1, batch 3 of 100)" in message
    assert f"The last good checkpoint is kept: {tmp_path}{os.sep}ckpt-2" in message
    assert checkpoint.step == 4  # found at the next save, without reading the losses after every step
    assert checkpoint_steps(tmp_path) == [2]


def test_preemption_saves_at_the_next_step_or_lets_the_epoch_end_first(tmp_path):
    distiller = make_distiller(seed=1)
    checkpoint = TrainingCheckpoint(str(tmp_path), distiller, steps_per_epoch=4)
    checkpoint.set_model(distiller)
    checkpoint.preemption = PreemptionSignal()
    checkpoint.on_train_batch_end(0)
    checkpoint.preemption.requested = True
    with pytest.raises(TrainingPreempted, match=r"saved checkpoint .*ckpt-2 at step 2 \(epoch 1, batch 2 of 4\)"):
        checkpoint.on_train_batch_end(1)
    checkpoint.preemption.requested = False  # a second signal, at the epoch's last step
    checkpoint.on_train_batch_end(2)
    checkpoint.preemption.requested = True
    checkpoint.on_train_batch_end(3)  # the dev evaluation and the epoch-end save come first
    assert checkpoint_steps(tmp_path) == [2] and not distiller.stop_training
    checkpoint.on_epoch_end(0)
    assert checkpoint_steps(tmp_path) == [2, 4] and distiller.stop_training


def test_sigterm_only_sets_a_flag_while_the_signal_is_caught():
    previous = signal.getsignal(signal.SIGTERM)
    with PreemptionSignal() as preemption:
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested
    assert signal.getsignal(signal.SIGTERM) is previous


def test_json_is_written_whole_and_a_damaged_dev_history_is_refused_on_resume(tmp_path):
    from types import SimpleNamespace

    from tfkd.data import get_task
    from tfkd.training.callbacks import DevEvaluation, write_json

    path = tmp_path / "dev_history.json"
    write_json(str(path), [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "accuracy": 0.75}])
    assert os.listdir(tmp_path) == ["dev_history.json"]  # no partial file left behind
    evaluation = DevEvaluation(SimpleNamespace(task=get_task("sst2")), lambda: None, lambda *_: None, str(path))
    evaluation.restore(epochs_done=1)
    assert evaluation.history == [{"epoch": 1, "accuracy": 0.5}] and evaluation.best_epoch == 1
    path.write_text('[{"epoch": 1, "accura')  # a run killed while an older tfkd wrote in place
    with pytest.raises(TfkdError, match="dev_history.json' .* is damaged .* Fix: delete it"):
        DevEvaluation(SimpleNamespace(task=get_task("sst2")), lambda: None, lambda *_: None, str(path)).restore(1)
