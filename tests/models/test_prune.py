"""Pruned initialisation (`tfkd.models.prune`) against a NumPy forward pass of the teacher with units zeroed."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tfkd.core.errors import TfkdError
from tfkd.data.pipeline import TokenizedSplit, make_dataset
from tfkd.models import BertModel, LoadedModel, ModelMetadata, StudentShape, build_student
from tfkd.models.prune import Importance, choose_layers, importance, layer_importance, pruned_student, select
from tfkd.training.build import make_student, needs_batches
from tfkd.training.config import StudentConfig

TEACHER = dict(vocabulary_size=20, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32, num_classes=3,
               max_sequence_length=8, layer_norm_epsilon=1e-6)
FULL = StudentShape(num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32)


def batch(seed=0, lengths=(7, 5, 3, 2)):
    rng = np.random.default_rng(seed)
    n = max(lengths)
    mask = (np.arange(n)[None] < np.array(lengths)[:, None]).astype("int32")
    ids = rng.integers(5, TEACHER["vocabulary_size"], (len(lengths), n)).astype("int32") * mask
    ids[:, 0] = 2
    return {"token_ids": ids, "segment_ids": (np.arange(n)[None] >= 3).astype("int32") * mask, "padding_mask": mask}


def random_teacher(seed=0, num_layers=TEACHER["num_layers"]):
    """A teacher with weights large enough (std 0.3) that its outputs depend on every unit."""
    teacher = BertModel(**dict(TEACHER, num_layers=num_layers), name="teacher")
    rng = np.random.default_rng(seed)
    for v in teacher.weights:
        value = rng.normal(0.0, 0.3, v.shape)
        v.assign(1.0 + value if v.path.endswith("gamma") else value)
    return teacher


def weights_of(model):
    return {"/".join(v.path.split("/")[-2:]) if not v.path.startswith("transformer_layer") else v.path: v.numpy()
            for v in model.weights}


def numpy_forward(model, inputs, head_mask=None, ffn_mask=None, pooler_mask=None):
    """`BertModel`'s forward pass in float64 NumPy, with heads `[L, H]`, FFN units `[L, I]` and pooler units
    `[d]` multiplied by the masks; returns logits, hidden states, every LayerNorm output, per-head output norms
    `[L, B, n, H]`, FFN activations `[L, B, n, I]` and pooled vectors (all three before masking)."""
    w = {k: v.astype(np.float64) for k, v in weights_of(model).items()}
    eps, n = model.layer_norm_epsilon, inputs["token_ids"].shape[1]

    def norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[name + "/gamma"] + w[name + "/beta"]

    x = norm(w["token_embedding/embeddings"][inputs["token_ids"]] + w["position_embedding/embeddings"][:n]
             + w["segment_embedding/embeddings"][inputs["segment_ids"]], "embeddings_layer_norm")
    states, norm_outputs, head_norms, activations = [x], [x], [], []
    key_bias = np.where(inputs["padding_mask"][:, None, None, :] > 0, 0.0, -np.inf)
    for i in range(model.num_layers):
        p = f"transformer_layer_{i}/"
        q, k, v = (np.einsum("bnd,dhe->bnhe", x, w[p + f"self_attention_layer/{t}/kernel"])
                   + w[p + f"self_attention_layer/{t}/bias"] for t in ("query", "key", "value"))
        scores = np.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1]) + key_bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        per_head = np.einsum("bhqk,bkhe,hed->bqhd", probs, v, w[p + "self_attention_layer/attention_output/kernel"])
        head_norms.append(np.linalg.norm(per_head, axis=-1))
        if head_mask is not None:
            per_head = per_head * head_mask[i][:, None]
        x = norm(x + per_head.sum(2) + w[p + "self_attention_layer/attention_output/bias"],
                 p + "self_attention_layer_norm")
        norm_outputs.append(x)
        inner = x @ w[p + "feedforward_intermediate_dense/kernel"] + w[p + "feedforward_intermediate_dense/bias"]
        inner = 0.5 * inner * (1.0 + np.vectorize(math.erf)(inner / math.sqrt(2.0)))
        activations.append(np.abs(inner))
        if ffn_mask is not None:
            inner = inner * ffn_mask[i]
        x = norm(x + inner @ w[p + "feedforward_output_dense/kernel"] + w[p + "feedforward_output_dense/bias"],
                 p + "feedforward_layer_norm")
        states.append(x)
        norm_outputs.append(x)
    pooled = np.tanh(x[:, 0] @ w["pooled_dense/kernel"] + w["pooled_dense/bias"])
    masked = pooled if pooler_mask is None else pooled * pooler_mask
    return {"logits": masked @ w["logits/kernel"] + w["logits/bias"], "hidden_states": states, "pooled": pooled,
            "norm_outputs": norm_outputs, "head_norms": np.stack(head_norms), "activations": np.stack(activations)}


def keep(n, kept):
    mask = np.zeros(n)
    mask[list(kept)] = 1.0
    return mask


def scores_keeping(heads, ffn, hidden, pooler):
    """An `Importance` whose top units are exactly the given ones (1 for kept units, 0 otherwise)."""
    return Importance(heads=np.stack([keep(TEACHER["num_heads"], h) for h in heads]),
                      ffn=np.stack([keep(TEACHER["intermediate_dim"], f) for f in ffn]),
                      hidden=keep(TEACHER["hidden_dim"], hidden), pooler=keep(TEACHER["hidden_dim"], pooler),
                      layers=np.ones(TEACHER["num_layers"]), num_batches=1, num_tokens=1)


def test_the_numpy_reference_is_the_teacher():
    teacher, inputs = random_teacher(), batch()
    np.testing.assert_allclose(numpy_forward(teacher, inputs)["logits"], teacher(inputs)["logits"], atol=1e-4)


def test_keeping_every_unit_reproduces_the_teacher_exactly():
    teacher, inputs = random_teacher(), batch()
    student = pruned_student(teacher, FULL, [1, 2], importance(teacher, [inputs]))
    ours, theirs = student(inputs), teacher(inputs)
    np.testing.assert_array_equal(ours["logits"], theirs["logits"])
    for a, b in zip(ours["hidden_states"], theirs["hidden_states"]):
        np.testing.assert_array_equal(a, b)


def test_pruning_ffn_units_at_full_width_is_the_teacher_with_them_zeroed():
    teacher, inputs = random_teacher(), batch()
    ffn = [range(0, 32, 2), range(5, 21)]
    scores = scores_keeping([range(4)] * 2, ffn, range(16), range(16))
    student = pruned_student(teacher, StudentShape(2, 16, 4, 16), [], scores)
    reference = numpy_forward(teacher, inputs, ffn_mask=np.stack([keep(32, f) for f in ffn]))
    np.testing.assert_allclose(student(inputs)["logits"], reference["logits"], atol=1e-4)


def duplicated_teacher():
    """A teacher whose residual stream is `[x, x]` and which reads only the first copy: cutting it to its first 8
    channels is exact (a LayerNorm over `[x, x]` equals one over `x`), so head pruning can be checked exactly although
    tfkd's encoder ties the attention width to the hidden width (fewer heads imply fewer channels)."""
    teacher = random_teacher()
    for v in teacher.weights:
        value, key = v.numpy(), "/".join(v.path.split("/")[-2:])
        if key.split("/")[0] in ("query", "key", "value", "feedforward_intermediate_dense", "pooled_dense") \
                and key.endswith("kernel"):
            value[8:] = 0.0  # reads the first copy only
        elif key.endswith(("embeddings", "gamma", "beta")) or key.split("/")[0] in (
                "attention_output", "feedforward_output_dense"):
            value[..., 8:] = value[..., :8]  # writes both copies
        v.assign(value)
    return teacher


def test_pruning_heads_units_and_duplicated_channels_is_the_teacher_with_them_zeroed():
    teacher, inputs = duplicated_teacher(), batch()
    full = teacher(inputs)["hidden_states"][-1].numpy()
    np.testing.assert_allclose(full[..., 8:], full[..., :8], atol=1e-5)
    heads, ffn, pooler = [(1, 3), (0, 2)], [range(0, 32, 2), range(8, 24)], (0, 3, 4, 6, 9, 10, 12, 15)
    student = pruned_student(teacher, StudentShape(2, 8, 2, 16), [], scores_keeping(heads, ffn, range(8), pooler))
    reference = numpy_forward(teacher, inputs, head_mask=np.stack([keep(4, h) for h in heads]),
                              ffn_mask=np.stack([keep(32, f) for f in ffn]), pooler_mask=keep(16, pooler))
    ours = student(inputs)
    np.testing.assert_allclose(ours["logits"], reference["logits"], atol=1e-4)
    np.testing.assert_allclose(ours["hidden_states"][-1], reference["hidden_states"][-1][..., :8], atol=1e-4)


def test_importance_matches_the_numpy_reference_and_is_deterministic():
    teacher, batches = random_teacher(), [batch(0), batch(1, lengths=(4, 6, 6, 1))]
    scores = importance(teacher, batches)
    forwards = [numpy_forward(teacher, b) for b in batches]
    masks = [b["padding_mask"].astype(bool) for b in batches]
    tokens = sum(m.sum() for m in masks)
    np.testing.assert_allclose(scores.heads, sum(f["head_norms"][:, m].sum(1) for f, m in zip(forwards, masks)) / tokens,
                               rtol=1e-4)
    output_norms = np.stack([np.linalg.norm(layer._feedforward_output_dense.kernel.numpy(), axis=1)
                             for layer in teacher.transformer_layers])
    np.testing.assert_allclose(
        scores.ffn, sum(f["activations"][:, m].sum(1) for f, m in zip(forwards, masks)) / tokens * output_norms,
        rtol=1e-4)
    np.testing.assert_allclose(
        scores.hidden, sum(np.abs(x[m]).sum(0) for f, m in zip(forwards, masks) for x in f["norm_outputs"]) / tokens,
        rtol=1e-4)
    np.testing.assert_allclose(scores.pooler, np.abs(np.concatenate([f["pooled"] for f in forwards])).mean(0)
                               * np.linalg.norm(teacher.get_layer("logits").kernel.numpy(), axis=1), rtol=1e-4)
    assert scores.num_tokens == tokens and scores.num_batches == 2
    again = importance(teacher, batches)
    for name in ("heads", "ffn", "hidden", "pooler"):
        np.testing.assert_array_equal(getattr(scores, name), getattr(again, name))
    assert importance(teacher, batches, max_batches=1).num_batches == 1


def test_a_silent_unit_scores_zero_and_is_the_one_dropped():
    teacher, inputs = random_teacher(), batch()
    for layer in teacher.transformer_layers:
        output = layer._feedforward_output_dense.kernel
        output.assign(output.numpy() * keep(32, set(range(32)) - {7})[:, None])
    attention = teacher.get_layer("transformer_layer_0")._self_attention_layer._output_dense.kernel
    attention.assign(attention.numpy() * keep(4, (0, 1, 3))[:, None, None])
    scores = importance(teacher, [inputs])
    assert (scores.ffn[:, 7] == 0).all() and scores.heads[0, 2] == 0 and (scores.heads[0, [0, 1, 3]] > 0).all()
    chosen = select(teacher, StudentShape(2, 12, 3, 31), [], scores)
    assert 7 not in chosen.ffn[1] and 2 not in chosen.heads[0]
    student = pruned_student(teacher, StudentShape(2, 16, 4, 31), [], scores)
    np.testing.assert_allclose(student(inputs)["logits"], teacher(inputs)["logits"], atol=1e-5)


def test_hidden_pruning_shapes_and_config_round_trip():
    teacher, inputs = random_teacher(), batch()
    student = pruned_student(teacher, StudentShape(1, 8, 2, 12), [2], importance(teacher, [inputs]),
                             output_attentions=True)
    assert [v.shape for v in student.get_layer("transformer_layer_0").weights[:2]] == [(8, 2, 4), (2, 4)]
    assert student.get_layer("token_embedding").embeddings.shape == (20, 8)
    assert student.get_layer("logits").kernel.shape == (8, 3)
    outputs = student(inputs)
    assert outputs["attentions"][0].shape == (4, 2, 7, 7) and outputs["hidden_states"][1].shape == (4, 7, 8)
    twin = BertModel.from_config(student.get_config())
    twin.set_weights(student.get_weights())
    assert twin.get_config() == student.get_config()
    np.testing.assert_array_equal(twin(inputs)["logits"], outputs["logits"])


def generated_task(seed, size=32):
    """Label 1 iff token 7 occurs: a task a tiny teacher learns in a few dozen steps."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 16, (size, 8)).astype("int32")
    ids[:, 0] = 2
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}, \
        (ids == 7).any(1).astype("int32")


def train(model, steps, learning_rate, seed, compiled=False):
    optimizer = keras.optimizers.Adam(learning_rate)

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = cross_entropy(model, x, y)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    step = tf.function(step) if compiled else step
    for k in range(steps):
        step(*generated_task(seed * 1000 + k))


def cross_entropy(model, x, y):
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)["logits"], from_logits=True))


def test_a_pruned_narrow_student_learns_faster_than_a_random_one():
    keras.utils.set_random_seed(0)
    teacher = BertModel(**dict(TEACHER, vocabulary_size=16, num_classes=2, dropout=0.0))
    train(teacher, 60, 1e-2, seed=1, compiled=True)
    shape = StudentShape(2, 8, 2, 16, dropout=0.0)
    pruned = pruned_student(teacher, shape, [], importance(teacher, [generated_task(2)[0]]))
    random = build_student(shape, like=teacher)
    for model in (pruned, random):
        train(model, 5, 1e-3, seed=3)
    held_out = generated_task(4, size=256)
    assert cross_entropy(teacher, *held_out) < 0.1
    assert cross_entropy(pruned, *held_out) < 0.5 * cross_entropy(random, *held_out)


def test_an_impossible_shape_is_one_error_naming_the_shape_and_the_fix():
    teacher = random_teacher()
    with pytest.raises(TfkdError) as error:
        pruned_student(teacher, StudentShape(3, 12, 2, 64), [], importance(teacher, [batch()]))
    message = str(error.value)
    assert "3-layer, 12-wide, 2-head, 64-unit FFN student" in message
    assert "3 layers (the teacher has 2)" in message and "64 FFN units (the teacher has 32)" in message
    assert "hidden_dim = heads x 4" in message and "StudentConfig.num_heads=3 for StudentConfig.hidden_dim=12" in message


def test_make_student_prunes_the_teacher_on_the_given_batches():
    teacher = LoadedModel(random_teacher(), "vocab.txt", True, True, ModelMetadata())
    config = StudentConfig(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16, init="pruned")
    with pytest.raises(TfkdError, match="needs batches of the training split"):
        make_student(config, teacher, 3, False)
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 8, 12).astype("int32")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    train = TokenizedSplit(rng.integers(5, 20, offsets[-1]).astype("int32"), np.zeros(offsets[-1], "int32"), offsets,
                           lengths, np.zeros(12, "int32"), np.arange(12, dtype="int32"), 0, 8)
    student = make_student(config, teacher, 3, False, batches=make_dataset(train, 4, shuffle=True, seed=0))
    assert (student.num_layers, student.hidden_dim, student.intermediate_dim) == (1, 8, 16)
    np.testing.assert_array_equal(student.get_layer("logits").bias, teacher.model.get_layer("logits").bias)


def block_influence(states, mask):
    """ShortGPT's block influence in float64 NumPy: 1 − mean cosine of consecutive hidden states over real tokens."""
    real = mask.astype(bool)
    unit = [h[real] / np.linalg.norm(h[real], axis=-1, keepdims=True) for h in states]
    return np.array([1.0 - (x * y).sum(-1).mean() for x, y in zip(unit[:-1], unit[1:])])


def deep_teacher():
    return random_teacher(num_layers=4)


def test_layer_importance_matches_the_numpy_reference_and_the_unit_pass():
    teacher, batches = deep_teacher(), [batch(0), batch(1, lengths=(4, 6, 6, 1))]
    scores = layer_importance(teacher, batches)
    # Both batches' real tokens as one row, so the reference averages over all of them.
    forwards = [numpy_forward(teacher, b)["hidden_states"] for b in batches]
    states = [np.concatenate([f[i][b["padding_mask"].astype(bool)] for f, b in zip(forwards, batches)])[None]
              for i in range(teacher.num_layers + 1)]
    reference = block_influence(states, np.ones(states[0].shape[:2]))
    assert scores.shape == (4,) and (scores > 0).all()
    np.testing.assert_allclose(scores, reference, rtol=1e-4)
    np.testing.assert_allclose(importance(teacher, batches).layers, scores, rtol=1e-5)
    np.testing.assert_allclose(layer_importance(teacher, batches, max_batches=1),
                               block_influence(numpy_forward(teacher, batches[0])["hidden_states"],
                                               batches[0]["padding_mask"]), rtol=1e-4)


def test_a_layer_that_passes_its_input_through_scores_zero_and_is_dropped():
    teacher, inputs = deep_teacher(), batch()
    # Nothing added to the residual stream, and LayerNorms that are the identity on a LayerNorm output:
    # layer 3 returns its input.
    silent = teacher.transformer_layers[2]
    for v in silent.weights:
        if "attention_output" in v.path or "feedforward_output_dense" in v.path:
            v.assign(np.zeros(v.shape))
    previous = teacher.transformer_layers[1]
    for layer in (previous, silent):
        for v in layer.weights:
            if "feedforward_layer_norm" in v.path or (layer is silent and "self_attention_layer_norm" in v.path):
                v.assign(np.ones(v.shape) if v.path.endswith("gamma") else np.zeros(v.shape))
    scores = layer_importance(teacher, [inputs])
    assert abs(scores[2]) < 1e-5 and (np.delete(scores, 2) > 1e-3).all()
    assert 3 not in choose_layers(scores, 3)


def test_choose_layers_keeps_the_top_k_in_their_original_order():
    scores = np.array([0.30, 0.05, 0.20, 0.10, 0.08, 0.40])
    assert choose_layers(scores, 3) == (1, 3, 6)
    assert choose_layers(scores, 1) == (6,) and choose_layers(scores, 6) == (1, 2, 3, 4, 5, 6)
    assert choose_layers(np.array([0.2, 0.1, 0.2, 0.1]), 2) == (1, 3)  # ties: the lower layer
    with pytest.raises(TfkdError, match="cannot keep 7 of 6 teacher layers"):
        choose_layers(scores, 7)


def layer_weights(layer):
    return [w.numpy() for w in layer.weights]


@pytest.mark.parametrize("init", ["teacher", "pruned"])
def test_a_student_with_importance_layers_copies_the_chosen_teacher_layers(init):
    model, batches = deep_teacher(), [batch(0), batch(1)]
    teacher = LoadedModel(model, "vocab.txt", True, True, ModelMetadata())
    config = StudentConfig(num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32, init=init,
                           layers_from=("importance",))
    assert needs_batches(config)
    with pytest.raises(TfkdError, match=r"StudentConfig\.layers_from=importance needs batches|pruned needs batches"):
        make_student(config, teacher, 3, False)
    record = {}
    student = make_student(config, teacher, 3, False, batches=batches, record=record)
    scores = layer_importance(model, batches)
    chosen = choose_layers(scores, 2)
    assert record["layers_from"] == list(chosen)
    np.testing.assert_allclose(record["layer_importance"], scores, rtol=1e-5)
    for k, source in enumerate(chosen):
        # Full width: pruning keeps every unit, so the chosen layers are copied exactly, as init=teacher does.
        for ours, theirs in zip(layer_weights(student.transformer_layers[k]),
                                layer_weights(model.transformer_layers[source - 1])):
            np.testing.assert_array_equal(ours, theirs)


def test_importance_layers_with_a_random_student_are_refused():
    teacher = LoadedModel(deep_teacher(), "vocab.txt", True, True, ModelMetadata())
    config = StudentConfig(num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32, init="random",
                           layers_from=("importance",))
    with pytest.raises(TfkdError, match=r"StudentConfig\.init=random copies none"):
        make_student(config, teacher, 3, False, batches=[batch()])
    assert not needs_batches(dataclasses.replace(config, layers_from=(1, 2), init="teacher"))


def test_a_distillation_run_prunes_the_teacher_layers_chosen_by_importance(tiny_setup, tmp_path, capsys):
    config = tfkd.RunConfig(
        workdir=str(tmp_path / "run"),
        data=tfkd.DataConfig(task="sst2", glue_dir=str(tiny_setup / "glue"), max_seq_length=16, batch_size=8,
                             eval_batch_size=8),
        teacher=tfkd.TeacherConfig(source=str(tiny_setup / "teacher")),
        student=tfkd.StudentConfig(num_layers=1, hidden_dim=8, num_heads=1, intermediate_dim=16, init="pruned",
                                   layers_from=("importance",)),
        optim=tfkd.OptimConfig(epochs=1, learning_rate=1e-3),
        runtime=tfkd.RuntimeConfig(jit_compile=False),
    )
    result = tfkd.run_distill(config)
    assert result.student.layers == 1 and tfkd.RunConfig.from_dict(result.config) == config
    assert "source layers by block influence (1 - cos(input, output) on training batches): 1: " \
           in capsys.readouterr().out
