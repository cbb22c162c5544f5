"""`mlm` (the student's masked-LM loss of CoDIR's pre-training stage) against a loop reference."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    STUDENT,
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
from tfkd.core.errors import TfkdError
from tfkd.distill import Distiller
from tfkd.losses import LOSSES
from tfkd.models import BertModel

VOCAB = 11
# Masked positions per row of the default batch (lengths 7, 5, 2, 0); weight 0 marks a padding slot,
# whose position and id are arbitrary, and the fully padded last row has no prediction at all.
POSITIONS = np.array([[1, 4, 5], [3, 1, 0], [1, 0, 0], [0, 0, 0]], np.int32)
IDS = np.array([[5, 9, 2], [7, 10, 0], [3, 0, 0], [0, 0, 0]], np.int32)
WEIGHTS = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], np.float32)


def ref_mlm(hidden, positions, ids, weights, head):
    """Σ w·CE over the predictions / Σ w, with the head written out: dense, erf-GELU,
    LayerNorm, the transposed embedding and an output bias."""
    total, count = 0.0, 0.0
    for b in range(len(positions)):
        for p in range(len(positions[b])):
            if weights[b][p] == 0:
                continue
            h = hidden[b][positions[b][p]]
            x = [sum(h[i] * head["kernel"][i][j] for i in range(len(h))) + head["bias"][j] for j in range(len(h))]
            x = [0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x]
            mean = sum(x) / len(x)
            var = sum((v - mean) ** 2 for v in x) / len(x)
            x = [(v - mean) / math.sqrt(var + head["epsilon"]) * g + c for v, g, c in zip(x, head["gamma"], head["beta"])]
            logits = [sum(x[i] * row[i] for i in range(len(x))) + head["output_bias"][v] for v, row in enumerate(head["embeddings"])]
            top = max(logits)
            log_norm = top + math.log(sum(math.exp(z - top) for z in logits))
            total += weights[b][p] * (log_norm - logits[ids[b][p]])
            count += weights[b][p]
    return total / max(count, 1.0)


def _embedding(seed=0):
    embedding = keras.layers.ReversibleEmbedding(VOCAB, STUDENT.hidden_dim, name="token_embedding")
    embedding.build((None, None))
    embedding.embeddings.assign(np.random.default_rng(seed).normal(size=(VOCAB, STUDENT.hidden_dim)))
    return embedding


def _mlm(embedding, seed=0):
    loss = LOSSES.get("mlm")(make_context(), token_embedding=embedding)
    rng = np.random.default_rng(seed)
    # Non-trivial LayerNorm and output bias, so the reference checks them too.
    head = loss.head
    head._intermediate_layer_norm.gamma.assign(rng.uniform(0.5, 1.5, STUDENT.hidden_dim))
    head._intermediate_layer_norm.beta.assign(rng.normal(size=STUDENT.hidden_dim) * 0.1)
    head._bias.assign(rng.normal(size=VOCAB) * 0.5)
    return loss


def _head_params(loss):
    head = loss.head
    as64 = lambda v: np.asarray(v.numpy(), np.float64)  # noqa: E731
    return {
        "kernel": as64(head._intermediate_dense.kernel),
        "bias": as64(head._intermediate_dense.bias),
        "gamma": as64(head._intermediate_layer_norm.gamma),
        "beta": as64(head._intermediate_layer_norm.beta),
        "epsilon": loss.layer_norm_epsilon,
        "embeddings": as64(loss.token_embedding.embeddings),
        "output_bias": as64(head._bias),
    }


def _batch(weights=WEIGHTS):
    batch = make_batch(padding_mask())
    batch.update(mask_positions=tf.constant(POSITIONS), mask_ids=tf.constant(IDS), mask_weights=tf.constant(weights))
    return batch


@pytest.mark.parametrize("policy, rtol", [("float32", 1e-5), ("mixed_float16", 1e-3), ("mixed_bfloat16", 1e-2)])
def test_matches_reference(policy, rtol):
    dtype = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
    student = fake_outputs(np.random.default_rng(1), STUDENT, padding_mask(), attentions=False, dtype=dtype)
    with global_policy(policy):
        loss = _mlm(_embedding())
        value = loss({}, student, _batch(), training=True)
    assert value.dtype == tf.float32
    # The head computes like the student (mixed), its cross-entropy in float32.
    assert loss.head.dtype_policy.name == policy and loss.dtype_policy.name == "float32"
    expected = ref_mlm(as_numpy(student)["hidden_states"][-1], POSITIONS, IDS, WEIGHTS, _head_params(loss))
    np.testing.assert_allclose(value.numpy(), expected, rtol=rtol)


def test_head_is_tied_to_the_student_embedding_and_not_trained_twice():
    student = BertModel(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        max_sequence_length=16)
    embedding = student.get_layer("token_embedding")
    loss = LOSSES.get("mlm")(make_context(), token_embedding=embedding)
    assert loss.head.token_embedding is embedding
    own = {id(v) for v in loss.trainable_variables}
    assert id(embedding.embeddings) not in own and len(own) == 5  # dense kernel/bias, LN gamma/beta, output bias
    # The head's output matrix is the embedding itself: its gradient reaches the student's variable.
    hidden = tf.Variable(np.random.default_rng(0).normal(size=(4, 7, 8)).astype(np.float32))
    with tf.GradientTape() as tape:
        value = loss({}, {"hidden_states": [hidden]}, _batch(), training=True)
    gradient = tape.gradient(value, embedding.embeddings)
    assert gradient is not None and np.abs(tf.convert_to_tensor(gradient).numpy()).sum() > 0
    # In a distiller every variable is trained once: the embedding with the student, the head with the loss.
    distiller = Distiller(student, None, [("mlm", loss, 1.0)])
    distiller.build()
    ids = [id(v) for v in distiller._train_vars]
    assert len(ids) == len(set(ids)) and id(embedding.embeddings) in ids and own <= set(ids)


def test_gradients_finite_with_padding_and_without_predictions():
    student = variables_of(fake_outputs(np.random.default_rng(2), STUDENT, padding_mask(), attentions=False))
    loss = _mlm(_embedding())
    variables = [student["hidden_states"][-1], *loss.trainable_variables]
    assert finite_gradients(lambda: loss({}, student, _batch(), training=True), variables)
    nothing = _batch(np.zeros_like(WEIGHTS))
    assert loss({}, student, nothing, training=True).numpy() == 0.0
    assert finite_gradients(lambda: loss({}, student, nothing, training=True), variables)


def test_loss_decreases_when_the_student_is_optimised_alone():
    student = variables_of(fake_outputs(np.random.default_rng(3), STUDENT, padding_mask(), attentions=False))
    loss = _mlm(_embedding())
    first, last = optimise(lambda: loss({}, student, _batch(), training=True), [student["hidden_states"][-1]])
    assert last < first


def test_clear_errors_and_config_round_trip():
    with pytest.raises(TfkdError, match="token_embedding=student.get_layer"):
        LOSSES.get("mlm")(make_context())
    loss = _mlm(_embedding())
    with pytest.raises(TfkdError, match="mask_batches"):
        loss({}, fake_outputs(np.random.default_rng(0), STUDENT, padding_mask(), attentions=False),
             make_batch(padding_mask()))
    config = loss.get_config()
    clone = type(loss).from_config({**config, "token_embedding": loss.token_embedding})
    assert clone.get_config() == config and clone.token_embedding is loss.token_embedding
