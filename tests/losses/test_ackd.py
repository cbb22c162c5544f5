"""`ackd` (CDL + SAR, tfkd's reconstruction) against a loop reference (METHODS.md §5, §7)."""

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
from tfkd.losses import LOSSES
from tfkd.losses._memory import draw_seed, sample_uniform

N = 10
INDEX = np.array([4, 9, 1, 6])
VALID = [0, 1, 2]  # the default batch's last row is a fully padded filler


def _ackd(**kwargs):
    kwargs = dict(dict(projection_dim=6, seed=3), **kwargs)
    return LOSSES.get("ackd")(make_context(num_train_examples=N), **kwargs)


def _inputs(seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    mask = padding_mask()
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, attentions=False, dtype=dtype)
    return teacher, student, mask


def ref_vectors(hidden, mask, head, pooling):
    vectors = {}
    for b in VALID:
        if pooling == "cls":
            pooled = hidden[b, 0]
        else:
            total, count = 0.0, 0
            for q in range(mask.shape[1]):
                if mask[b, q]:
                    total, count = total + hidden[b, q], count + 1
            pooled = total / count
        vectors[b] = l2n(dense_np(head, pooled))
    return vectors


def ref_ackd(
    loss, teacher, student, mask, weights, tau=0.07, tau_w=None, sar=True, pooling="mean", bank_rows=None, banks=None
):
    tau_w = loss.weight_temperature if tau_w is None else tau_w
    teacher, student = as_numpy(teacher), as_numpy(student)
    layer_map = loss.context.layer_map
    per_example = {b: [] for b in VALID}
    probability = {b: [] for b in VALID}
    for k, (s, t) in enumerate(layer_map):
        z_s = ref_vectors(student["hidden_states"][s], mask, loss.student_heads[k], pooling)
        z_t = ref_vectors(teacher["hidden_states"][t], mask, loss.teacher_heads[k], pooling)
        for b in VALID:
            logits = [z_s[b] @ z_t[j] / tau for j in VALID]
            if bank_rows is not None:  # banked unprojected states, through the current head
                logits += [z_s[b] @ l2n(dense_np(loss.teacher_heads[k], banks[k][r])) / tau for r in bank_rows[b]]
            log_norm = math.log(sum(math.exp(x) for x in logits))
            positive = z_s[b] @ z_t[b] / tau
            per_example[b].append(log_norm - positive)
            probability[b].append(math.exp(positive - log_norm))
    sample_weight = {b: 1.0 for b in VALID}
    if sar:
        p = {b: sum(w * pk for w, pk in zip(weights, probability[b])) / sum(weights) for b in VALID}
        e = {b: math.exp((1.0 - p[b]) / tau_w) for b in VALID}
        sample_weight = {b: len(VALID) * e[b] / sum(e.values()) for b in VALID}
    total = 0.0
    for k in range(len(layer_map)):
        layer_loss = sum(sample_weight[b] * per_example[b][k] for b in VALID) / len(VALID)
        total += weights[k] * layer_loss / len(layer_map)
    return total


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
@pytest.mark.parametrize("sar", [True, False])
def test_matches_reference(policy, sar):
    teacher, student, mask = _inputs(0, "float16" if policy == "mixed_float16" else "float32")
    weights = [0.5, 2.0]
    with global_policy(policy):
        loss = _ackd(sar=sar, weight_temperature=0.5)
        value = loss(teacher, student, make_batch(mask, index=INDEX, pair_weights=weights), training=True)
    assert value.dtype == tf.float32
    expected = ref_ackd(loss, teacher, student, mask, weights, tau_w=0.5, sar=sar)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5 if policy == "float32" else 1e-3)


def test_sar_off_is_plain_cdl_exactly():
    """sar=False reproduces CDL: the per-layer InfoNCE over the batch, unweighted, to float precision."""
    teacher, student, mask = _inputs(1)
    loss = _ackd(sar=False, pooling="cls")
    value = loss(teacher, student, make_batch(mask, index=INDEX))
    expected = ref_ackd(loss, teacher, student, mask, [1.0, 1.0], sar=False, pooling="cls")
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6)


def test_sar_weights_have_mean_one_favour_hard_samples_and_stop_gradients():
    loss = _ackd(weight_temperature=0.3)
    difficulty = tf.Variable([0.9, 0.1, 0.5, 0.7])
    valid = tf.constant([1.0, 1.0, 1.0, 0.0])
    with tf.GradientTape() as tape:
        weights, largest = loss.sar_weights(difficulty, valid)
    w = weights.numpy()
    assert largest.numpy() == w.max()
    np.testing.assert_allclose(w[:3].mean(), 1.0, rtol=1e-6)
    assert w[3] == 0.0 and w[0] > w[2] > w[1]
    assert tape.gradient(tf.reduce_sum(weights), difficulty) is None


def test_bank_negatives_are_projected_by_the_current_head_and_never_rewritten():
    teacher, student, mask = _inputs(2)
    loss = _ackd(bank_negatives=4, bank_dtype="float32")
    assert loss.needs_preparation and len(loss.banks) == 2
    rng = np.random.default_rng(7)
    for bank in loss.banks:
        bank.assign(tf.range(N), tf.constant(rng.normal(size=(N, bank.dim)), tf.float32))
    batch = make_batch(mask, index=INDEX)
    banks = [bank.rows.numpy().astype(np.float64) for bank in loss.banks]
    state = loss.seed_generator.state.numpy()
    value = loss(teacher, student, batch, training=True)
    # Replay the sampler (`sample_uniform` with the seed the call drew) to read the rows it used.
    loss.seed_generator.state.assign(state)
    rows = sample_uniform(draw_seed(loss.seed_generator), batch["index"], N, 4).numpy()
    assert np.all(rows != INDEX[:, None]) and rows.max() < N
    expected = ref_ackd(loss, teacher, student, mask, [1.0, 1.0], bank_rows=rows, banks=banks)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    for bank, before in zip(loss.banks, banks):
        np.testing.assert_array_equal(bank.rows.numpy(), before)


def test_prepare_fills_every_layer_bank():
    teacher, _, mask = _inputs(3)
    loss = _ackd(bank_negatives=2)
    assert all(bank.rows.dtype == "float16" for bank in loss.banks)
    loss.prepare(iter([(teacher, make_batch(mask, index=INDEX))]))
    for k, bank in enumerate(loss.banks):
        hidden = as_numpy(teacher)["hidden_states"][loss.context.layer_map[k][1]]
        for b in VALID:
            state = hidden[b][mask[b] > 0].mean(axis=0)
            np.testing.assert_allclose(bank.rows.numpy()[INDEX[b]], state, atol=2e-3, rtol=1e-3)  # float16


def test_gradients_finite_with_a_fully_padded_row_and_student_alone_learns():
    teacher, student, mask = _inputs(4)
    loss = _ackd()
    hidden = variables_of(student)["hidden_states"]
    batch = make_batch(mask, index=INDEX)
    fn = lambda: loss(teacher, {"hidden_states": hidden}, batch, training=True)  # noqa: E731
    assert finite_gradients(fn, hidden + loss.trainable_variables)
    first, last = optimise(fn, hidden)
    assert last < first


def test_compiles_under_xla():
    teacher, student, mask = _inputs(5)
    loss = _ackd(bank_negatives=3)
    batch = make_batch(mask, index=INDEX)
    compiled = tf.function(lambda t, s, b: loss(t, s, b, training=True), jit_compile=True)
    value = compiled(teacher, student, batch)
    assert np.isfinite(value.numpy())


def test_diagnostics_record_the_positive_probability_and_the_largest_sar_weight():
    teacher, student, mask = _inputs(6)
    loss = _ackd(weight_temperature=0.5)
    batch = make_batch(mask, index=INDEX)
    loss(teacher, student, batch, training=False)
    assert all(m.count.numpy() == 0 for m in loss.diagnostic_metrics)  # evaluation records nothing
    loss(teacher, student, batch, training=True)
    recorded = {m.name[len(loss.name) + 1:]: float(m.result()) for m in loss.diagnostic_metrics}
    probabilities = []
    for k, (s, t) in enumerate(loss.context.layer_map):
        z_s = ref_vectors(as_numpy(student)["hidden_states"][s], mask, loss.student_heads[k], "mean")
        z_t = ref_vectors(as_numpy(teacher)["hidden_states"][t], mask, loss.teacher_heads[k], "mean")
        logits = np.array([[z_s[b] @ z_t[j] / 0.07 for j in VALID] for b in VALID])
        probabilities.append(np.diag(np.exp(logits - logits.max(1, keepdims=True)) / np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)))
    p = np.mean(probabilities, axis=0)
    e = np.exp((1 - p) / 0.5)
    np.testing.assert_allclose(recorded["positive_probability"], p.mean(), rtol=1e-5)
    np.testing.assert_allclose(recorded["sar_weight_max"], (len(p) * e / e.sum()).max(), rtol=1e-5)


def test_defaults_and_config_round_trip():
    loss = LOSSES.get("ackd")(make_context())
    assert (loss.temperature, loss.weight_temperature, loss.sar, loss.projection_dim) == (0.07, 0.1, True, 128)
    assert loss.banks == [] and not loss.needs_preparation
    config = _ackd(sar=False, bank_negatives=2).get_config()
    assert type(loss).from_config(config).get_config() == config
