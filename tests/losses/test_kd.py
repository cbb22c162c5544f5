"""`ce` and `kd` against loop references (METHODS.md §1, §7)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    STUDENT,
    TEACHER,
    as_numpy,
    fake_outputs,
    finite_gradients,
    global_policy,
    make_batch,
    make_context,
    optimise,
    padding_mask,
    variables_of,
)
from tfkd.losses import LOSSES


def ref_ce(logits, labels, regression):
    total = 0.0
    for b in range(len(labels)):
        if regression:
            total += (logits[b][0] - labels[b]) ** 2
        else:
            top = max(logits[b])
            log_norm = top + math.log(sum(math.exp(z - top) for z in logits[b]))
            total += log_norm - logits[b][int(labels[b])]
    return total / len(labels)


def ref_kd(teacher_logits, student_logits, temperature, regression):
    total = 0.0
    for b in range(len(teacher_logits)):
        if regression:
            total += (student_logits[b][0] - teacher_logits[b][0]) ** 2
            continue
        e_t = [math.exp(z / temperature) for z in teacher_logits[b]]
        e_s = [math.exp(z / temperature) for z in student_logits[b]]
        for c in range(len(e_t)):
            p_t, p_s = e_t[c] / sum(e_t), e_s[c] / sum(e_s)
            total += p_t * math.log(p_t / p_s)
    scale = 1.0 if regression else temperature**2
    return scale * total / len(teacher_logits)


def _inputs(seed, num_classes, dtype="float32"):
    rng = np.random.default_rng(seed)
    mask = padding_mask()
    teacher = fake_outputs(rng, TEACHER, mask, num_classes, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, num_classes, attentions=False, dtype=dtype)
    labels = rng.normal(size=4).astype(np.float32) if num_classes == 1 else rng.integers(0, num_classes, 4)
    return teacher, student, make_batch(mask, labels=labels)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("regression", [False, True])
def test_matches_reference(policy, regression):
    num_classes = 1 if regression else 3
    dtype = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    teacher, student, batch = _inputs(0, num_classes, dtype)
    context = make_context(num_classes=num_classes, is_regression=regression)
    with global_policy(policy):
        ce = LOSSES.get("ce")(context)
        kd = LOSSES.get("kd")(context, temperature=3.0)
        ce_value = ce({}, student, batch, training=True)
        kd_value = kd(teacher, student, batch, training=True)
    t, s = as_numpy(teacher)["logits"], as_numpy(student)["logits"]
    labels = batch["labels"].numpy()
    tol = 1e-5 if policy == "float32" else 1e-4
    assert ce_value.dtype == tf.float32 and kd_value.dtype == tf.float32
    # A float32 layer policy keeps Keras from casting teacher logits and labels to the compute dtype.
    assert ce.dtype_policy.name == kd.dtype_policy.name == "float32"
    np.testing.assert_allclose(ce_value.numpy(), ref_ce(s, labels, regression), rtol=tol)
    np.testing.assert_allclose(kd_value.numpy(), ref_kd(t, s, 3.0, regression), rtol=tol)


def test_default_temperature_and_config_round_trip():
    kd = LOSSES.get("kd")(make_context())
    assert kd.temperature == 2.0
    clone = type(kd).from_config(kd.get_config())
    assert clone.temperature == 2.0 and clone.context == kd.context


def test_identical_logits_give_zero_kd():
    teacher, _, batch = _inputs(1, 3)
    kd = LOSSES.get("kd")(make_context(num_classes=3))
    assert abs(float(kd(teacher, teacher, batch))) < 1e-6


@pytest.mark.parametrize("name", ["ce", "kd"])
def test_gradients_finite_and_student_alone_learns(name):
    teacher, student, batch = _inputs(2, 3)
    loss = LOSSES.get(name)(make_context(num_classes=3))
    logits = variables_of(student)["logits"]
    fn = lambda: loss(teacher, {"logits": logits}, batch, training=True)  # noqa: E731
    assert finite_gradients(fn, [logits])
    first, last = optimise(fn, [logits])
    assert last < first
