"""`attention_kl` and `cls_cosine` against loop references (METHODS.md §3, §7)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    STUDENT,
    TEACHER,
    as_numpy,
    dense_np,
    fake_outputs,
    finite_gradients,
    global_policy,
    l2n,
    make_batch,
    make_context,
    optimise,
    padding_mask,
    variables_of,
)
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES
from tfkd.losses.base import ModelSpec


def ref_attention_kl(teacher, student, mask, layer_map, weights):
    total = 0.0
    batch, seq_len = mask.shape
    for k, (s, t) in enumerate(layer_map):
        a_s = student["attentions"][s - 1]
        a_t = teacher["attentions"][t - 1]
        same_heads = a_s.shape[1] == a_t.shape[1]
        rows = []
        for b in range(batch):
            for q in range(seq_len):
                if not mask[b, q]:
                    continue
                head_kls = []
                for h in range(a_s.shape[1] if same_heads else 1):
                    p_t = a_t[b, h, q] if same_heads else a_t[b, :, q].mean(0)
                    p_s = a_s[b, h, q] if same_heads else a_s[b, :, q].mean(0)
                    kl = 0.0
                    for key in range(seq_len):
                        if mask[b, key]:
                            kl += p_t[key] * (math.log(max(p_t[key], 1e-12)) - math.log(max(p_s[key], 1e-12)))
                    head_kls.append(kl)
                rows.append(np.mean(head_kls))
        total += weights[k] * np.mean(rows)
    return total


def ref_cls_cosine(teacher, student, mask, layer_map, projections, weights):
    total = 0.0
    for k, (s, t) in enumerate(layer_map):
        values = []
        for b in range(mask.shape[0]):
            if mask[b].sum() == 0:
                continue
            v_s = student["hidden_states"][s][b, 0]
            if projections:
                v_s = dense_np(projections[k], v_s)
            values.append(1.0 - np.dot(l2n(v_s), l2n(teacher["hidden_states"][t][b, 0])))
        total += weights[k] * np.mean(values)
    return total


def _inputs(seed, student_spec=STUDENT, dtype="float32"):
    rng = np.random.default_rng(seed)
    mask = padding_mask()
    teacher = fake_outputs(rng, TEACHER, mask)
    student = fake_outputs(rng, student_spec, mask, dtype=dtype)
    return teacher, student, mask


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("student_spec", [STUDENT, ModelSpec(2, 8, 3)], ids=["heads_differ", "heads_equal"])
def test_attention_kl_matches_reference(policy, student_spec):
    teacher, student, mask = _inputs(0, student_spec, "float16" if policy == "mixed_float16" else "float32")
    context = make_context(student=student_spec)
    weights = [1.5, 0.5]
    with global_policy(policy):
        value = LOSSES.get("attention_kl")(context)(teacher, student, make_batch(mask, pair_weights=weights))
    expected = ref_attention_kl(as_numpy(teacher), as_numpy(student), mask, context.layer_map, weights)
    assert value.dtype == tf.float32
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5 if policy == "float32" else 1e-4)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_cls_cosine_matches_reference(policy):
    teacher, student, mask = _inputs(1, dtype="bfloat16" if policy == "mixed_bfloat16" else "float32")
    context = make_context()
    weights = [1.0, 3.0]
    with global_policy(policy):
        loss = LOSSES.get("cls_cosine")(context)
        value = loss(teacher, student, make_batch(mask, pair_weights=weights))
    expected = ref_cls_cosine(as_numpy(teacher), as_numpy(student), mask, context.layer_map, loss.projections, weights)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5 if policy == "float32" else 1e-4)


@pytest.mark.parametrize("name", ["attention_kl", "cls_cosine"])
def test_identical_inputs_give_zero(name):
    teacher, _, mask = _inputs(2)
    loss = LOSSES.get(name)(make_context(student=TEACHER, layer_map=((1, 1), (3, 3))))
    assert abs(float(loss(teacher, teacher, make_batch(mask)))) < 1e-6


def test_attention_kl_rejects_embedding_layers():
    with pytest.raises(TfkdError, match="no attention"):
        LOSSES.get("attention_kl")(make_context(layer_map=((1, 0), (2, 4))))


@pytest.mark.parametrize("name", ["attention_kl", "cls_cosine"])
def test_gradients_finite_and_student_alone_learns(name):
    teacher, student, mask = _inputs(3)
    loss = LOSSES.get(name)(make_context())
    batch = make_batch(mask)
    if name == "cls_cosine":
        hidden = variables_of(student)["hidden_states"]
        variables = hidden
        fn = lambda: loss(teacher, {"hidden_states": hidden}, batch)  # noqa: E731
    else:
        # Student attentions as a masked softmax of free scores, so they stay distributions.
        scores = [tf.Variable(tf.random.normal(a.shape, seed=k)) for k, a in enumerate(student["attentions"])]
        keys = tf.cast(mask, tf.bool)[:, None, None, :]
        variables = scores

        def fn():
            attentions = [tf.nn.softmax(tf.where(keys, x, -1e9)) for x in scores]
            return loss(teacher, {"attentions": attentions}, batch)

    assert finite_gradients(fn, variables + loss.trainable_variables)
    first, last = optimise(fn, variables)
    assert last < first
