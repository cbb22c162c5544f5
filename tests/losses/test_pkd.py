"""`pkd` against a loop reference (METHODS.md §2, §7)."""

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
from tfkd.losses import LOSSES


def ref_pkd(teacher, student, mask, layer_map, projections, variant, weights):
    total = 0.0
    for k, (s, t) in enumerate(layer_map):
        values = []
        for b in range(mask.shape[0]):
            if variant == "cls":
                positions = [0] if mask[b].sum() > 0 else []
            else:
                positions = [q for q in range(mask.shape[1]) if mask[b, q]]
            for q in positions:
                v_s = student["hidden_states"][s][b, q]
                if projections:
                    v_s = dense_np(projections[k], v_s)
                diff = l2n(v_s) - l2n(teacher["hidden_states"][t][b, q])
                values.append(np.mean(diff**2))
        total += weights[k] * np.mean(values)
    return total


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("variant", ["cls", "all_tokens"])
def test_matches_reference(policy, variant):
    rng = np.random.default_rng(0)
    mask = padding_mask()
    dtype = "float16" if policy == "mixed_float16" else "float32"
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, attentions=False, dtype=dtype)
    context = make_context()
    weights = [0.5, 2.0]
    with global_policy(policy):
        loss = LOSSES.get("pkd")(context, variant=variant)
        value = loss(teacher, student, make_batch(mask, pair_weights=weights), training=True)
    assert len(loss.projections) == 2 and loss.projections[0].kernel.dtype == "float32"
    expected = ref_pkd(
        as_numpy(teacher), as_numpy(student), mask, context.layer_map, loss.projections, variant, weights
    )
    assert value.dtype == tf.float32
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5 if policy == "float32" else 1e-4)


@pytest.mark.parametrize("variant", ["cls", "all_tokens"])
def test_equal_widths_need_no_projection_and_identical_inputs_give_zero(variant):
    rng = np.random.default_rng(1)
    mask = padding_mask()
    outputs = fake_outputs(rng, TEACHER, mask, attentions=False)
    loss = LOSSES.get("pkd")(make_context(student=TEACHER, layer_map=((1, 1), (2, 2))), variant=variant)
    assert loss.projections == [] and not loss.trainable_variables
    assert abs(float(loss(outputs, outputs, make_batch(mask)))) < 1e-7


@pytest.mark.parametrize("variant", ["cls", "all_tokens"])
def test_gradients_finite_and_student_alone_learns(variant):
    rng = np.random.default_rng(2)
    mask = padding_mask()
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    hidden = variables_of(fake_outputs(rng, STUDENT, mask, attentions=False))["hidden_states"]
    loss = LOSSES.get("pkd")(make_context(), variant=variant)
    batch = make_batch(mask)
    fn = lambda: loss(teacher, {"hidden_states": hidden}, batch, training=True)  # noqa: E731
    assert finite_gradients(fn, hidden + loss.trainable_variables)
    first, last = optimise(fn, hidden)
    assert last < first


def test_config_round_trip():
    loss = LOSSES.get("pkd")(make_context(), variant="all_tokens")
    assert type(loss).from_config(loss.get_config()).variant == "all_tokens"
