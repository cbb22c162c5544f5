"""Pruned initialisation: a student of any shape, not wider than its teacher, cut out of the teacher.

`importance` measures, on the (fine-tuned) teacher over a few task batches,
how much each attention head, feed-forward unit, hidden channel and pooler
unit contributes; `pruned_student` keeps the most important ones of the
teacher layers the student copies and slices every tensor to match, so the
student starts as a pruned copy of the teacher rather than at random.

Which teacher layers a student copies (`--student_layers_from=importance`,
for the pruned and the layer-copying inits alike): `layer_importance` scores
each layer by ShortGPT's block influence (Men et al., 2024), 1 − the mean
cosine similarity between the layer's input and output hidden states over real
tokens, and `choose_layers` keeps the top-k in their original order. A layer
whose output points where its input did changes the representation least, so
dropping it costs least. Like the unit scores it needs one forward pass and
no labels; scoring a layer by the loss increase when it is removed (Minitron's
depth score) would need one pass per layer, and on a fine-tuned teacher the
training loss it reads is near zero. Each layer is scored with every other
layer in place, so the score ignores how removed layers interact.

The score is activation magnitude (as in Minitron), not a first-order Taylor
score: it needs only forward passes, no labels and no gradients, and it does
not vanish on a fine-tuned teacher, whose training loss (and so every
gradient a Taylor score multiplies with) is near zero on the very batches it
is measured on. A head's and a feed-forward unit's score is the mean norm of
what it adds to the residual stream (its output times its output weights):
removing the unit removes exactly that term, so the score is the size of the
change the pruning makes. A hidden channel's score is its mean magnitude over
every LayerNorm output (the residual stream, the embedding output included);
a pooler unit's is its mean magnitude times the norm of its classifier weights.

What is exact: dropping heads or feed-forward units at full hidden width
gives the outputs of the teacher with those units zeroed. Dropping hidden
channels is not exact: every LayerNorm then takes its mean and variance over
the kept channels only, and every dot product loses the removed channels'
terms; the student starts near, not at, the teacher.

Constraint: pruning keeps whole heads, so the student's heads are the
teacher's `head_dim` wide, and tfkd's encoder (keras-hub's) makes the
attention as wide as the hidden state; hence the student's
`hidden_dim == num_heads * teacher head_dim` (teacher 384 wide with 12 heads
of 32: 256 wide needs 8 heads, 128 wide 4).

Example:
>>> import numpy as np
>>> teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32)
>>> batch = {"token_ids": np.ones((2, 5), "int32"), "segment_ids": np.zeros((2, 5), "int32"),
...          "padding_mask": np.ones((2, 5), "int32")}
>>> scores = importance(teacher, [batch])
>>> scores.heads.shape, scores.ffn.shape, scores.hidden.shape, scores.layers.shape
((2, 4), (2, 32), (16,), (2,))
>>> student = pruned_student(teacher, StudentShape(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=8),
...                          layers_from=[2], importance=scores)
>>> student.hidden_dim, student.num_heads, student.get_layer("logits").kernel.shape
(8, 2, TensorShape([8, 2]))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.models.bert import INPUT_NAMES, BertModel
from tfkd.models.layer_map import uniform_layer_map
from tfkd.models.student import StudentShape, build_student

# Batches `make_student` measures importance on: a few hundred, as pruning papers use, and
# a minute or less of teacher forward passes.
IMPORTANCE_BATCHES = 200
# `StudentConfig.layers_from` that chooses the teacher layers by `layer_importance`.
IMPORTANCE = "importance"


@dataclasses.dataclass(frozen=True)
class Importance:
    """How much each unit of a teacher contributes, averaged over real tokens (pooler: over examples).

    Args:
        heads: `[L, H]` mean norm of each head's output after the output projection.
        ffn: `[L, I]` mean |activation| of each feed-forward unit times the norm of its output weights.
        hidden: `[d]` mean |value| of each hidden channel, summed over every LayerNorm output.
        pooler: `[d]` mean |pooled value| of each pooler unit times the norm of its classifier weights.
        layers: `[L]` block influence of each layer (see `layer_importance`), from the same forward passes.
        num_batches: batches measured.
        num_tokens: real tokens measured.
    """

    heads: np.ndarray
    ffn: np.ndarray
    hidden: np.ndarray
    pooler: np.ndarray
    layers: np.ndarray
    num_batches: int
    num_tokens: int


@dataclasses.dataclass(frozen=True)
class Selection:
    """The teacher's units a pruned student keeps, as 0-based indices (each sorted, except `layers`).

    Args:
        layers: the teacher layer of each student layer, in student order.
        heads: `[L_S, H_S]` kept heads of each student layer's source layer.
        ffn: `[L_S, I_S]` kept feed-forward units of each student layer's source layer.
        hidden: `[d_S]` kept hidden channels, one set for the whole residual stream.
        pooler: `[d_S]` kept pooler units.
    """

    layers: Tuple[int, ...]
    heads: np.ndarray
    ffn: np.ndarray
    hidden: np.ndarray
    pooler: np.ndarray


def importance(teacher: BertModel, batches: Iterable[Mapping[str, Any]], max_batches: Optional[int] = None) -> Importance:
    """Activation-magnitude importance of `teacher`'s heads, feed-forward units, hidden channels and pooler units.

    Forward passes only, no labels or gradients (why not a Taylor score: see the module docstring).
    Deterministic for the same batches in the same order; inference mode (no dropout).

    Args:
        teacher: the model to measure (the fine-tuned teacher).
        batches: dicts with `token_ids`, `segment_ids`, `padding_mask` `[B, n]` (other keys are ignored),
            e.g. `tfkd.data.make_dataset(train, ...)`.
        max_batches: measure at most this many of `batches`; None: all of them.
    """
    measure = tf.function(lambda inputs: _batch_sums(teacher, inputs), reduce_retracing=True)
    totals: Optional[List[np.ndarray]] = None
    num_batches = 0
    for batch in itertools.islice(batches, max_batches):
        sums = [s.numpy().astype(np.float64) for s in measure({k: tf.cast(batch[k], tf.int32) for k in INPUT_NAMES})]
        totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
        num_batches += 1
    if totals is None or totals[-2] == 0:
        raise TfkdError("importance was measured on no real tokens (no batches, or only padding). "
                        "Fix: pass batches of the task's training split.")
    heads, ffn, hidden, pooler, layers, tokens, examples = totals
    w_ffn_out = [_weights(layer)["feedforward_output_dense/kernel"] for layer in teacher.transformer_layers]
    w_logits = _weights(teacher.logits_dense)["logits/kernel"]
    return Importance(
        heads=heads / tokens,
        ffn=ffn / tokens * np.stack([np.linalg.norm(w.numpy(), axis=1) for w in w_ffn_out]),
        hidden=hidden / tokens,
        pooler=pooler / examples * np.linalg.norm(w_logits.numpy(), axis=1),
        layers=layers / tokens,
        num_batches=num_batches,
        num_tokens=int(tokens),
    )


def _weights(layer: keras.layers.Layer) -> Dict[str, keras.Variable]:
    """A layer's variables by the last two parts of their path (`query/kernel`, `logits/bias`, ...)."""
    return {"/".join(v.path.split("/")[-2:]): v for v in layer.weights}


def _batch_sums(teacher: BertModel, inputs: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, ...]:
    """Per-batch sums behind `Importance` (heads, ffn, hidden, pooler, layers), then real tokens and examples."""
    outputs = teacher(inputs, training=False)
    states = [tf.cast(h, tf.float32) for h in outputs["hidden_states"]]
    mask = tf.cast(inputs["padding_mask"], tf.float32)

    def token_sum(t: tf.Tensor) -> tf.Tensor:
        return tf.einsum("bn,bn...->...", mask, t)

    hidden = tf.add_n([token_sum(tf.abs(h)) for h in states])
    heads, ffn = [], []
    key_bias = (1.0 - mask[:, None, None, :]) * -1e9
    for layer, x in zip(teacher.transformer_layers, states):
        w = {k: tf.cast(v.value, tf.float32) for k, v in _weights(layer).items()}
        q, k, v = (tf.einsum("bnd,dhe->bnhe", x, w[f"{t}/kernel"]) + w[f"{t}/bias"] for t in ("query", "key", "value"))
        scores = tf.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(q.shape[-1]) + key_bias
        context = tf.einsum("bhqk,bkhe->bqhe", tf.nn.softmax(scores, axis=-1), v)
        per_head = tf.einsum("bqhe,hed->bqhd", context, w["attention_output/kernel"])
        heads.append(token_sum(tf.norm(per_head, axis=-1)))
        attended = _layer_norm(x + tf.reduce_sum(per_head, axis=2) + w["attention_output/bias"],
                               w["self_attention_layer_norm/gamma"], w["self_attention_layer_norm/beta"],
                               teacher.layer_norm_epsilon)
        hidden += token_sum(tf.abs(attended))
        activation = keras.activations.gelu(
            attended @ w["feedforward_intermediate_dense/kernel"] + w["feedforward_intermediate_dense/bias"],
            approximate=not teacher.exact_gelu)
        ffn.append(token_sum(tf.abs(activation)))
    pooled = tf.cast(teacher.pooled_dense(outputs["hidden_states"][-1][:, 0, :]), tf.float32)
    return (tf.stack(heads), tf.stack(ffn), hidden, tf.reduce_sum(tf.abs(pooled), axis=0),
            _block_influence_sums(states, mask), tf.reduce_sum(mask), tf.cast(tf.shape(mask)[0], tf.float32))


def _block_influence_sums(states: Sequence[tf.Tensor], mask: tf.Tensor) -> tf.Tensor:
    """`[L]`: 1 − cos(input, output) of each layer, summed over the real tokens of `mask`."""
    unit = [tf.math.l2_normalize(h, axis=-1) for h in states]
    return tf.stack([tf.einsum("bn,bn->", mask, 1.0 - tf.reduce_sum(x * y, axis=-1))
                     for x, y in zip(unit[:-1], unit[1:])])


def layer_importance(model: BertModel, batches: Iterable[Mapping[str, Any]],
                     max_batches: Optional[int] = None) -> np.ndarray:
    """`[L]` block influence of each layer of `model`: 1 − the mean cosine between its input and output hidden
    states over real tokens (ShortGPT); low: the layer changes its input little (why this score: the module
    docstring). `importance` computes the same scores (`Importance.layers`) in its own pass.

    Args:
        model: the model whose layers a student copies.
        batches: dicts with `token_ids`, `segment_ids`, `padding_mask` `[B, n]` (other keys are ignored).
        max_batches: measure at most this many of `batches`; None: all of them.

    Example:
    >>> model = BertModel(vocabulary_size=30, num_layers=3, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> batch = {"token_ids": np.arange(10).reshape(2, 5) % 30, "segment_ids": np.zeros((2, 5), "int32"),
    ...          "padding_mask": np.ones((2, 5), "int32")}
    >>> layer_importance(model, [batch]).shape
    (3,)
    """
    measure = tf.function(lambda inputs: _layer_sums(model, inputs), reduce_retracing=True)
    total, tokens = np.zeros(model.num_layers), 0.0
    for batch in itertools.islice(batches, max_batches):
        sums, count = measure({k: tf.cast(batch[k], tf.int32) for k in INPUT_NAMES})
        total, tokens = total + sums.numpy().astype(np.float64), tokens + float(count)
    if tokens == 0:
        raise TfkdError("layer importance was measured on no real tokens (no batches, or only padding). "
                        "Fix: pass batches of the task's training split.")
    return total / tokens


def _layer_sums(model: BertModel, inputs: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    states = [tf.cast(h, tf.float32) for h in model(inputs, training=False)["hidden_states"]]
    mask = tf.cast(inputs["padding_mask"], tf.float32)
    return _block_influence_sums(states, mask), tf.reduce_sum(mask)


def choose_layers(scores: np.ndarray, k: int) -> Tuple[int, ...]:
    """The `k` highest-scoring layers (ties: the lower), 1-based and in their original order, as
    `--student_layers_from` takes them.

    Example:
    >>> choose_layers(np.array([0.30, 0.05, 0.20, 0.10, 0.08, 0.40]), 3)
    (1, 3, 6)
    """
    if not 1 <= k <= len(scores):
        raise TfkdError(f"cannot keep {k} of {len(scores)} teacher layers by importance. "
                        f"Fix: give the student 1 to {len(scores)} layers.")
    return tuple(int(i) + 1 for i in _top(np.asarray(scores), k))


def _layer_norm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta


def check_prunable(teacher: BertModel, shape: StudentShape) -> None:
    """Refuses, in one error, a student shape that cannot be cut out of `teacher` (see the module's constraint).

    Example:
    >>> teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=4, hidden_dim=16, intermediate_dim=32)
    >>> check_prunable(teacher, StudentShape(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32))
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: StudentConfig.init=pruned cannot cut a 1-layer, 16-wide, 2-head, 32-unit FFN student out \
of the 2-layer, 16-wide, 4-head (4 wide each), 32-unit FFN teacher: 16 hidden channels with 2 heads of the teacher's \
width 4 (pruning keeps whole heads, and the attention is as wide as the hidden state, so hidden_dim = heads x 4). \
Fix: StudentConfig.num_heads=4 for StudentConfig.hidden_dim=16, or StudentConfig.hidden_dim=8 for 2 heads.
    """
    head_dim = teacher.hidden_dim // teacher.num_heads
    problems = [
        f"{shape_value} {what} (the teacher has {teacher_value})"
        for what, shape_value, teacher_value in (
            ("layers", shape.num_layers, teacher.num_layers),
            ("hidden channels", shape.hidden_dim, teacher.hidden_dim),
            ("heads", shape.num_heads, teacher.num_heads),
            ("FFN units", shape.intermediate_dim, teacher.intermediate_dim),
        )
        if not 1 <= shape_value <= teacher_value
    ]
    fixes = [] if not problems else [f"1 to {teacher.num_layers} layers, {teacher.hidden_dim} hidden channels, "
                                     f"{teacher.num_heads} heads and {teacher.intermediate_dim} FFN units"]
    if shape.hidden_dim != shape.num_heads * head_dim:
        problems.append(f"{shape.hidden_dim} hidden channels with {shape.num_heads} heads of the teacher's width "
                        f"{head_dim} (pruning keeps whole heads, and the attention is as wide as the hidden state, "
                        f"so hidden_dim = heads x {head_dim})")
        options = []
        if shape.hidden_dim % head_dim == 0 and shape.hidden_dim <= teacher.hidden_dim:
            options.append(f"--student_heads={shape.hidden_dim // head_dim} for --student_hidden_dim={shape.hidden_dim}")
        if 1 <= shape.num_heads <= teacher.num_heads:
            options.append(f"--student_hidden_dim={shape.num_heads * head_dim} for {shape.num_heads} heads")
        fixes.append(", or ".join(options) or f"a --student_hidden_dim that is a multiple of {head_dim}, with "
                                              f"--student_heads = hidden_dim / {head_dim}")
    if problems:
        raise TfkdError(
            f"--student_init=pruned cannot cut a {_describe(shape.num_layers, shape.hidden_dim, shape.num_heads)}, "
            f"{shape.intermediate_dim}-unit FFN student out of the "
            f"{_describe(teacher.num_layers, teacher.hidden_dim, teacher.num_heads)} ({head_dim} wide each), "
            f"{teacher.intermediate_dim}-unit FFN teacher: " + "; ".join(problems) + ". Fix: " + "; ".join(fixes) + "."
        )


def _describe(layers: int, hidden: int, heads: int) -> str:
    return f"{layers}-layer, {hidden}-wide, {heads}-head"


def source_layers(num_teacher_layers: int, num_student_layers: int, layers_from: Sequence[int] = ()) -> Tuple[int, ...]:
    """The 0-based teacher layer of each student layer: `layers_from` (1-based) or, empty, uniform as
    `tfkd.models.student.initialize_from` chooses (6 → 3: layers 2, 4, 6).

    Example:
    >>> source_layers(6, 3), source_layers(6, 2, [1, 2])
    ((1, 3, 5), (0, 1))
    """
    if not layers_from:
        return tuple(t - 1 for _, t in uniform_layer_map(num_teacher_layers, num_student_layers))
    if len(layers_from) != num_student_layers:
        raise TfkdError(
            f"--student_layers_from lists {len(layers_from)} layers but the student has {num_student_layers}. "
            "Fix: give one teacher layer per student layer."
        )
    bad = [k for k in layers_from if not 1 <= k <= num_teacher_layers]
    if bad:
        raise TfkdError(f"--student_layers_from names layer(s) {bad}; the teacher has layers 1..{num_teacher_layers}. "
                        "Fix: use numbers in that range.")
    return tuple(k - 1 for k in layers_from)


def select(teacher: BertModel, shape: StudentShape, layers_from: Sequence[int], scores: Importance) -> Selection:
    """The units of `teacher` a `shape` student keeps: the highest-scoring of each kind (ties: the lower index).

    Args:
        teacher: the model `scores` were measured on.
        shape: the student's shape (checked by `check_prunable`).
        layers_from: 1-based teacher layer of each student layer; empty: uniform.
        scores: `importance(teacher, ...)`.
    """
    check_prunable(teacher, shape)
    expected = {"heads": (teacher.num_layers, teacher.num_heads), "ffn": (teacher.num_layers, teacher.intermediate_dim),
                "hidden": (teacher.hidden_dim,), "pooler": (teacher.hidden_dim,), "layers": (teacher.num_layers,)}
    wrong = [f"{k} {getattr(scores, k).shape} vs {v}" for k, v in expected.items() if getattr(scores, k).shape != v]
    if wrong:
        raise TfkdError("the importance scores do not fit this teacher (" + "; ".join(wrong) + "). "
                        "Fix: measure them with importance() on this teacher.")
    layers = source_layers(teacher.num_layers, shape.num_layers, layers_from)
    return Selection(
        layers=layers,
        heads=np.stack([_top(scores.heads[i], shape.num_heads) for i in layers]),
        ffn=np.stack([_top(scores.ffn[i], shape.intermediate_dim) for i in layers]),
        hidden=_top(scores.hidden, shape.hidden_dim),
        pooler=_top(scores.pooler, shape.hidden_dim),
    )


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.sort(np.argsort(-values, kind="stable")[:k])


def pruned_student(
    teacher: BertModel,
    shape: StudentShape,
    layers_from: Sequence[int],
    importance: Importance,
    output_attentions: bool = False,
) -> BertModel:
    """A `shape` student whose every weight is a slice of `teacher`'s, keeping the units `select` chooses.

    Token, position and segment embeddings, every LayerNorm, the attention's output bias, the
    feed-forward output and the pooler's input keep the hidden channels; Q/K/V and the attention
    output keep whole heads; the feed-forward layers keep units; the pooler's output and the
    classifier's input keep pooler units; the classifier keeps every class. Exact for dropped heads and
    FFN units, not for dropped hidden channels (LayerNorm statistics over fewer channels).

    Args:
        teacher: the model to cut (the fine-tuned teacher, whose head the student also gets).
        shape: the student's shape.
        layers_from: 1-based teacher layer of each student layer; empty: uniform (6 → 3: 2, 4, 6).
        importance: `importance(teacher, ...)`.
        output_attentions: also output attention probabilities.
    """
    chosen = select(teacher, shape, layers_from, importance)
    student = build_student(shape, like=teacher, output_attentions=output_attentions)
    c, p = chosen.hidden, chosen.pooler
    for name in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm"):
        _copy(teacher.get_layer(name), student.get_layer(name), c=c)
    for k, source in enumerate(chosen.layers):
        _copy(teacher.transformer_layers[source], student.transformer_layers[k], c=c, h=chosen.heads[k],
              f=chosen.ffn[k])
    _copy(teacher.pooled_dense, student.pooled_dense, c=c, p=p)
    _copy(teacher.logits_dense, student.logits_dense, p=p)
    return student


# How each weight is sliced, by the last two parts of its path: one index array per axis
# (c: hidden channels, h: heads, f: FFN units, p: pooler units, None: whole axis).
_SLICES = {
    "token_embedding/embeddings": (None, "c"),
    "position_embedding/embeddings": (None, "c"),
    "segment_embedding/embeddings": (None, "c"),
    **{f"{norm}/{w}": ("c",) for norm in ("embeddings_layer_norm", "self_attention_layer_norm", "feedforward_layer_norm")
       for w in ("gamma", "beta")},
    **{f"{t}/kernel": ("c", "h", None) for t in ("query", "key", "value")},
    **{f"{t}/bias": ("h", None) for t in ("query", "key", "value")},
    "attention_output/kernel": ("h", None, "c"),
    "attention_output/bias": ("c",),
    "feedforward_intermediate_dense/kernel": ("c", "f"),
    "feedforward_intermediate_dense/bias": ("f",),
    "feedforward_output_dense/kernel": ("f", "c"),
    "feedforward_output_dense/bias": ("c",),
    "pooled_dense/kernel": ("c", "p"),
    "pooled_dense/bias": ("p",),
    "logits/kernel": ("p", None),
    "logits/bias": (None,),
}


def _copy(source: keras.layers.Layer, target: keras.layers.Layer, **indices: np.ndarray) -> None:
    """Sets `target`'s weights to `source`'s, sliced as `_SLICES` says."""
    values = []
    for variable in source.weights:
        key = "/".join(variable.path.split("/")[-2:])
        if key not in _SLICES:
            raise TfkdError(f"pruning does not know how to slice {variable.path}. Fix: prune a tfkd BertModel.")
        value = variable.numpy()
        for axis, kind in enumerate(_SLICES[key]):
            if kind is not None:
                value = np.take(value, indices[kind], axis=axis)
        values.append(value)
    target.set_weights(values)
