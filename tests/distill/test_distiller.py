import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd  # noqa: F401
import tfkd.losses.kd  # noqa: F401  (registers ce and kd)
from tfkd.distill import Distiller, StagePlan, StageScheduler, build_stages, make_optimizer
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import BertModel, StudentShape, build_student

TEACHER = dict(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, num_classes=2, max_sequence_length=16, dropout=0.0)


def tiny_batch(batch=4, length=8, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, length), bool)
    mask[1, 5:] = False
    return {
        "token_ids": tf.constant(rng.integers(1, 30, (batch, length)) * mask, tf.int32),
        "segment_ids": tf.zeros((batch, length), tf.int32),
        "padding_mask": tf.constant(mask),
        "labels": tf.constant(rng.integers(0, 2, batch), tf.int32),
        "index": tf.range(batch, dtype=tf.int32),
        "weight": tf.ones(batch, tf.float32),
    }


def make_distiller(weights=(0.5, 0.5), jit=False, freeze_layers=False):
    keras.utils.set_random_seed(0)
    teacher = BertModel(**TEACHER)
    student = build_student(StudentShape(1, 8, 2, 16, dropout=0.0), like=teacher)
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_train_examples=4)
    losses = [("ce", LOSSES.get("ce")(context), weights[0]), ("kd", LOSSES.get("kd")(context, temperature=2.0), weights[1])]
    distiller = Distiller(student, teacher, losses, eval_loss=LOSSES.get("ce")(context), num_pairs=1,
                          freeze_layers=freeze_layers)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
    return distiller, teacher, student


def test_one_train_step_changes_only_student_weights():
    distiller, teacher, student = make_distiller()
    before_teacher = [w.numpy().copy() for w in teacher.weights]
    before_student = [w.numpy().copy() for w in student.trainable_weights]
    logs = distiller.train_on_batch(tiny_batch(), return_dict=True)
    assert set(logs) >= {"loss", "loss_ce", "loss_kd"}
    np.testing.assert_allclose(logs["loss"], 0.5 * logs["loss_ce"] + 0.5 * logs["loss_kd"], rtol=1e-5)
    for a, b in zip(before_teacher, teacher.weights):
        np.testing.assert_array_equal(a, b.numpy())
    changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before_student, student.trainable_weights)]
    assert sum(changed) >= len(changed) - 2  # everything with a gradient moved
    assert not teacher.trainable


def test_teacher_is_outside_the_gradient():
    distiller, teacher, student = make_distiller(weights=(0.0, 1.0))
    trained = {id(v) for v in distiller.variable_groups()[0]}
    assert not any(id(v) in trained for v in teacher.weights)


class CountingDistiller(Distiller):
    """Counts Python executions of train_step: one per trace of the compiled step."""

    traces = 0

    def train_step(self, data):
        CountingDistiller.traces += 1
        return super().train_step(data)


def test_stage_switches_never_retrace_and_zero_weights_freeze_training():
    _, teacher, student = make_distiller()
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_train_examples=4)
    losses = [("ce", LOSSES.get("ce")(context), 0.5), ("kd", LOSSES.get("kd")(context), 0.5)]
    distiller = CountingDistiller(student, teacher, losses, num_pairs=1)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    plan = StagePlan(base_weights=[0.5, 0.5], output_mask=[True, True], student_layers_of_pairs=[1], num_student_layers=1,
                     total_steps=8, steps_per_stage=1, final_steps=4, freeze_distilled=False)
    stages = build_stages("joint", plan)
    assert [s.steps for s in stages] == [4, 4]
    ds = tf.data.Dataset.from_tensors(tiny_batch()).repeat()
    CountingDistiller.traces = 0
    distiller.fit(ds, epochs=2, steps_per_epoch=4, callbacks=[StageScheduler(distiller, stages)], verbose=0)
    distiller.set_stage([0.0, 0.0], [1.0], [1.0, 1.0, 1.0])
    before = [w.numpy().copy() for w in student.trainable_weights]
    distiller.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    assert CountingDistiller.traces == 1
    for a, w in zip(before, student.trainable_weights):
        np.testing.assert_array_equal(a, w.numpy())


def test_gradient_mask_freezes_a_layer_group():
    distiller, teacher, student = make_distiller(freeze_layers=True)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False)
    # freeze embeddings (group 0) and the transformer layer (group 1); head (group 2) trains
    distiller.set_stage([0.5, 0.5], [1.0], [0.0, 0.0, 1.0])
    frozen = [v.numpy().copy() for v in student.get_layer("transformer_layer_0").trainable_weights]
    emb = student.get_layer("token_embedding").trainable_weights[0].numpy().copy()
    head = student.get_layer("logits").trainable_weights[0].numpy().copy()
    distiller.train_on_batch(tiny_batch())
    for a, v in zip(frozen, student.get_layer("transformer_layer_0").trainable_weights):
        np.testing.assert_array_equal(a, v.numpy())
    np.testing.assert_array_equal(emb, student.get_layer("token_embedding").trainable_weights[0].numpy())
    assert not np.array_equal(head, student.get_layer("logits").trainable_weights[0].numpy())


@pytest.mark.parametrize("jit", [False, True])
def test_frozen_layers_stay_bit_identical_under_adamw(jit):
    """Weight decay and the momentum of earlier steps must not move a frozen group either."""
    distiller, teacher, student = make_distiller(jit=jit, freeze_layers=True)
    distiller.compile(optimizer=make_optimizer(1e-2, total_steps=10, warmup_ratio=0.0, weight_decay=0.1), jit_compile=jit)
    batch = tiny_batch()
    distiller.train_on_batch(batch)  # builds momentum in every group
    distiller.set_stage([0.5, 0.5], [1.0], [0.0, 0.0, 1.0])
    layer = student.get_layer("transformer_layer_0")
    frozen = [v.numpy().copy() for v in layer.trainable_weights + student.get_layer("token_embedding").trainable_weights]
    head = student.get_layer("logits").trainable_weights[0].numpy().copy()
    for seed in range(3):
        distiller.train_on_batch(tiny_batch(seed=seed))
    after = [v.numpy() for v in layer.trainable_weights + student.get_layer("token_embedding").trainable_weights]
    for a, b in zip(frozen, after):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head, student.get_layer("logits").trainable_weights[0].numpy())


def test_a_freezing_stage_needs_freeze_layers():
    distiller, _, _ = make_distiller()
    with pytest.raises(ValueError, match="freeze_layers"):
        distiller.set_stage([0.5, 0.5], [1.0], [0.0, 1.0, 1.0])


def test_loss_diagnostics_are_logged_under_the_term_name():
    _, teacher, student = make_distiller()
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), ((1, 2),), num_train_examples=4)
    losses = [("ce", LOSSES.get("ce")(context), 1.0),
              ("contrast", LOSSES.get("codir")(context, negatives="in_batch", projection_dim=4), 0.1)]
    distiller = Distiller(student, teacher, losses)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    logs = distiller.train_on_batch(tiny_batch(), return_dict=True)
    assert {"contrast_positive_probability", "contrast_fresh_loss", "loss_contrast"} <= set(logs)
    np.testing.assert_allclose(logs["contrast_fresh_loss"], logs["loss_contrast"], rtol=1e-6)


def test_jit_compiled_step_matches_eager():
    eager, _, _ = make_distiller(jit=False)
    compiled, _, _ = make_distiller(jit=True)
    batch = tiny_batch()
    a = eager.train_on_batch(batch, return_dict=True)
    b = compiled.train_on_batch(batch, return_dict=True)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)


def test_predict_step_returns_logits_with_index():
    distiller, _, _ = make_distiller()
    out = distiller.predict_on_batch(tiny_batch())
    assert out["logits"].shape == (4, 2) and list(out["index"]) == [0, 1, 2, 3]


def test_two_epochs_of_buckets_bank_stages_and_schedule_trace_once():
    """No retrace after the first step, and at most two traced eval forwards, for a whole run.

    The step is traced with the length dimension unknown (XLA then keeps
    one executable per bucket width); neither the CoDIR memory bank, the
    progressive stage switches nor the learning-rate schedule may retrace it.
    """
    from tests.data.test_pipeline import split_of
    from tfkd.data.pipeline import bucket_lengths, make_dataset, steps_per_epoch
    from tfkd.data.tasks import get_task
    from tfkd.evaluate.evaluator import Evaluator

    lengths = np.random.default_rng(0).integers(3, 16, 48)
    split = split_of(lengths, max_seq_length=16)
    split.token_ids[:] = split.token_ids % 25 + 1  # ids inside the tiny vocabulary
    keras.utils.set_random_seed(0)
    teacher = BertModel(**TEACHER)
    student = build_student(StudentShape(2, 8, 2, 16, dropout=0.1), like=teacher)
    context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(2, 8, 2), ((1, 1), (2, 2)), num_train_examples=48,
                             train_labels=split.labels)
    losses = [("kd", LOSSES.get("kd")(context), 0.5), ("codir", LOSSES.get("codir")(context, num_negatives=4), 1.0)]
    distiller = CountingDistiller(student, teacher, losses, num_pairs=2)
    steps = steps_per_epoch(split, 8)
    distiller.compile(optimizer=make_optimizer(1e-3, 2 * steps), jit_compile=True)
    distiller.prepare_losses(make_dataset(split, 8, shuffle=False, seed=0), steps)
    plan = StagePlan(base_weights=[0.5, 1.0], output_mask=[True, False], student_layers_of_pairs=[1, 2],
                     num_student_layers=2, total_steps=2 * steps, steps_per_stage=steps // 2, final_steps=steps,
                     freeze_distilled=False)
    stages = build_stages("progressive", plan)
    assert len(stages) == 3
    train_ds = make_dataset(split, 8, shuffle=True, seed=1, epochs=2, pad_to_multiple_of=0)
    assert len(bucket_lengths(split, 8, 0, epochs=2)) >= 3  # several shapes really flow through

    evaluator = Evaluator(get_task("sst2"), split, 8, jit_compile=False)  # tfkd.train's default
    evaluations = []

    class Evaluate(keras.callbacks.Callback):
        first_step_traces = None

        def on_train_batch_end(self, batch, logs=None):
            if self.first_step_traces is None:
                self.first_step_traces = CountingDistiller.traces

        def on_epoch_end(self, epoch, logs=None):
            evaluations.append(evaluator.evaluate(student))

    CountingDistiller.traces = 0
    evaluate = Evaluate()
    distiller.fit(train_ds, epochs=2, steps_per_epoch=steps, shuffle=False, verbose=0,
                  callbacks=[StageScheduler(distiller, stages), evaluate])
    # tf.function traces the first call twice when that call creates variables
    # (the CoDIR student head is built on first use); after it, never again.
    assert evaluate.first_step_traces <= 2
    assert CountingDistiller.traces == evaluate.first_step_traces
    assert len(evaluations) == 2
    (forward,) = evaluator._forwards.values()
    assert forward.experimental_get_tracing_count() <= 2  # a concrete shape first, then one relaxed trace for all


def test_config_round_trip_keeps_models_losses_and_weights():
    distiller, teacher, student = make_distiller(weights=(0.25, 0.75))
    restored = Distiller.from_config(distiller.get_config())
    assert restored.loss_names == distiller.loss_names
    np.testing.assert_allclose(restored.loss_weights_var.numpy(), [0.25, 0.75])
    assert restored.student.get_config() == student.get_config() and restored.teacher.get_config() == teacher.get_config()
    assert restored.loss_layers[1].get_config() == distiller.loss_layers[1].get_config()
    assert restored.eval_loss.get_config() == distiller.eval_loss.get_config()
