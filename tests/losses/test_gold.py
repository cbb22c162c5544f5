"""Augmented rows (gold mask 0) never reach cross-entropy, every distillation term uses them, and the KD term's
value on original and augmented rows is logged apart."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd  # noqa: F401
from tests.helpers import STUDENT, TEACHER, fake_outputs, make_batch, make_context, padding_mask
from tfkd.distill import Distiller
from tfkd.losses import GOLD, LOSSES, DistillContext, ModelSpec
from tfkd.models import BertModel, StudentShape, build_student

GOLD_ROWS = np.array([1.0, 0.0, 1.0, 0.0], np.float32)


def with_gold(batch, gold=GOLD_ROWS):
    return dict(batch, **{GOLD: tf.constant(gold)})


@pytest.mark.parametrize("num_classes", [3, 1])
def test_ce_averages_over_gold_rows_whatever_the_augmented_labels(num_classes):
    rng = np.random.default_rng(0)
    mask = padding_mask()
    student = fake_outputs(rng, STUDENT, mask, num_classes, attentions=False)
    labels = rng.normal(size=4).astype(np.float32) if num_classes == 1 else np.array([2, 0, 1, 0])
    wrong = labels.copy()
    wrong[GOLD_ROWS == 0] = 7.5 if num_classes == 1 else 2  # deliberately wrong placeholders
    ce = LOSSES.get("ce")(make_context(num_classes=num_classes, is_regression=num_classes == 1))
    value = ce({}, student, with_gold(make_batch(mask, labels=labels)))
    assert float(value) == pytest.approx(float(ce({}, student, with_gold(make_batch(mask, labels=wrong)))), abs=0)
    gold_only = ce({}, {"logits": tf.boolean_mask(student["logits"], GOLD_ROWS > 0)},
                   make_batch(mask[GOLD_ROWS > 0], labels=labels[GOLD_ROWS > 0]))
    assert float(value) == pytest.approx(float(gold_only), rel=1e-6)
    # Without the mask the placeholders count: the test above can fail.
    assert float(ce({}, student, make_batch(mask, labels=labels))) != pytest.approx(
        float(ce({}, student, make_batch(mask, labels=wrong))))


def test_a_batch_without_gold_rows_has_zero_ce():
    rng = np.random.default_rng(1)
    mask = padding_mask()
    ce = LOSSES.get("ce")(make_context())
    student = fake_outputs(rng, STUDENT, mask, attentions=False)
    assert float(ce({}, student, with_gold(make_batch(mask), np.zeros(4, np.float32)))) == 0.0


def tiny_distiller(augmented_examples):
    keras.utils.set_random_seed(0)
    teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        num_classes=2, max_sequence_length=16, dropout=0.0)
    student = build_student(StudentShape(1, 8, 2, 16, dropout=0.0), like=teacher)
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_train_examples=4,
                             augmented_examples=augmented_examples)
    losses = [("ce", LOSSES.get("ce")(context), 0.5), ("kd", LOSSES.get("kd")(context), 0.5)]
    distiller = Distiller(student, teacher, losses, num_pairs=1)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    return distiller


def batch(labels):
    rng = np.random.default_rng(0)
    return {
        "token_ids": tf.constant(rng.integers(5, 30, (4, 8)), tf.int32),
        "segment_ids": tf.zeros((4, 8), tf.int32),
        "padding_mask": tf.ones((4, 8), tf.int32),
        "labels": tf.constant(labels, tf.int32),
        "index": tf.range(4, dtype=tf.int32),
        "weight": tf.ones(4, tf.float32),
        GOLD: tf.constant(GOLD_ROWS),
    }


def gradients(distiller, data, term):
    student = distiller.student
    with tf.GradientTape() as tape:
        outputs = student({k: data[k] for k in ("token_ids", "segment_ids", "padding_mask")}, training=False)
        value = distiller.loss_layers[term](distiller.teacher_outputs(data), outputs, data, training=False)
    return float(value), [tf.convert_to_tensor(g).numpy() for g in tape.gradient(value, student.trainable_variables)
                          if g is not None]


def test_augmented_rows_give_no_ce_gradient_and_a_kd_gradient():
    distiller = tiny_distiller(augmented_examples=2)
    labels, wrong = np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])  # rows 1 and 3 are augmented
    ce, ce_grads = gradients(distiller, batch(labels), 0)
    ce_wrong, ce_wrong_grads = gradients(distiller, batch(wrong), 0)
    assert ce == ce_wrong and all(np.array_equal(a, b) for a, b in zip(ce_grads, ce_wrong_grads))
    # KD reads no labels and uses the augmented rows: dropping them changes it.
    kd, _ = gradients(distiller, batch(labels), 1)
    gold_rows = {k: tf.boolean_mask(v, GOLD_ROWS > 0) for k, v in batch(labels).items()}
    kd_gold, _ = gradients(distiller, gold_rows, 1)
    assert kd != pytest.approx(kd_gold)


def test_the_kd_term_is_logged_on_original_and_augmented_rows_apart():
    distiller = tiny_distiller(augmented_examples=2)
    assert distiller.train_log_names() == ["loss", "loss_ce", "loss_kd", "kd_original", "kd_augmented"]
    data = batch(np.array([1, 0, 0, 1]))
    teacher_out = distiller.teacher_outputs(data)
    student_out = distiller.student({k: data[k] for k in ("token_ids", "segment_ids", "padding_mask")})
    kd = distiller.loss_layers[1]
    per_row = [float(kd({"logits": teacher_out["logits"][i:i + 1]}, {"logits": student_out["logits"][i:i + 1]},
                        {}, training=False)) for i in range(4)]
    logs = distiller.train_on_batch(data, return_dict=True)
    # Tiny untrained logits make KD values of ~1e-5, summed in another order: float32 agreement to 1e-3.
    assert logs["kd_original"] == pytest.approx(np.mean([per_row[0], per_row[2]]), rel=1e-3)
    assert logs["kd_augmented"] == pytest.approx(np.mean([per_row[1], per_row[3]]), rel=1e-3)
    assert logs["kd_original"] != pytest.approx(logs["kd_augmented"], rel=1e-2)
    assert logs["loss_kd"] == pytest.approx(np.mean(per_row), rel=1e-3)


def test_without_augmentation_kd_logs_no_split_and_ce_is_the_plain_mean():
    distiller = tiny_distiller(augmented_examples=0)
    assert distiller.train_log_names() == ["loss", "loss_ce", "loss_kd"]
    rng = np.random.default_rng(2)
    mask = padding_mask()
    student = fake_outputs(rng, STUDENT, mask, attentions=False)
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    ce = LOSSES.get("ce")(make_context())
    logits = student["logits"]
    plain = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 1, 0, 1], logits=logits))
    assert float(ce(teacher, student, make_batch(mask))) == float(plain)
