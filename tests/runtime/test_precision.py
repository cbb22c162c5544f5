"""`--mixed_precision`: flag names, and 16-bit train steps (float16 with loss scaling)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd.losses.codir  # noqa: F401  (registers codir)
import tfkd.losses.kd  # noqa: F401  (registers ce and kd)
from tfkd.core.errors import TfkdError
from tfkd.distill import Distiller, make_optimizer
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import BertModel, StudentShape, build_student
from tfkd.runtime.precision import set_precision


@pytest.mark.parametrize(
    "name, policy",
    [("float32", "float32"), ("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16"),
     ("mixed_bfloat16", "mixed_bfloat16"), ("mixed_float16", "mixed_float16")],
)
def test_flag_names_and_keras_aliases_set_the_policy(name, policy):
    assert set_precision(name) == policy
    assert keras.mixed_precision.global_policy().name == policy


def test_unknown_precision_names_the_choices():
    with pytest.raises(TfkdError, match="unknown RuntimeConfig.mixed_precision 'fp8'. Fix: use one of float32, bfloat16, float16"):
        set_precision("fp8")


@pytest.mark.parametrize("name, compute", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_16_bit_train_steps_give_finite_losses(name, compute):
    set_precision(name)  # conftest puts float32 back afterwards
    keras.utils.set_random_seed(0)
    teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        num_classes=2, max_sequence_length=16)
    student = build_student(StudentShape(1, 8, 2, 16, dropout=0.1), like=teacher)
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_classes=2, num_train_examples=8,
                             train_labels=np.array([0, 1] * 4))
    losses = [("ce", LOSSES.get("ce")(context), 0.5), ("kd", LOSSES.get("kd")(context), 0.5),
              ("codir", LOSSES.get("codir")(context, num_negatives=3, projection_dim=4), 0.1)]
    distiller = Distiller(student, teacher, losses)
    distiller.compile(optimizer=make_optimizer(1e-3, total_steps=10))
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer) == (name == "float16")
    assert student.compute_dtype == compute and student.variable_dtype == "float32"
    rng = np.random.default_rng(0)
    batch = {
        "token_ids": tf.constant(rng.integers(1, 30, (4, 8)), tf.int32),
        "segment_ids": tf.zeros((4, 8), tf.int32),
        "padding_mask": tf.ones((4, 8), tf.bool),
        "labels": tf.constant([0, 1, 1, 0], tf.int32),
        "index": tf.constant([0, 1, 2, 3], tf.int32),
        "weight": tf.ones(4, tf.float32),
    }
    before = [w.numpy().copy() for w in student.trainable_weights]
    for _ in range(3):
        logs = distiller.train_on_batch(batch, return_dict=True)
    assert set(logs) == {"loss", "loss_ce", "loss_kd", "loss_codir", "codir_positive_probability", "codir_fresh_loss"}
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert distiller.nonfinite_report() is None
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, student.trainable_weights))
