"""Tensor helpers shared by the loss modules (float32 in, float32 out)."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._distribute import replica_share
from tfkd.losses.base import DistillContext, require_outputs, to_float32

# A model-output dict or a batch dict, as losses receive them.
Outputs = Mapping[str, Any]

# Stands in for -inf in masked logits: exp() of it underflows to exactly 0 in
# float32, while -inf would turn masked rows into NaN (and -inf * 0 into NaN).
NEG_LARGE = -1e9


def check_choice(loss_name: str, arg: str, value: object, choices: Sequence[object]) -> None:
    """Raises a `TfkdError` when a string option is not one of `choices`."""
    if value not in choices:
        raise TfkdError(
            f"loss '{loss_name}': {arg}={value!r} is not supported. "
            f"Fix: use one of {', '.join(repr(c) for c in choices)}."
        )


def l2_normalize(x: tf.Tensor) -> tf.Tensor:
    """Unit vectors along the last axis; a zero vector stays zero."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


def token_mask(padding_mask: tf.Tensor) -> tf.Tensor:
    """The padding mask as float32 (1 = real token)."""
    return tf.cast(tf.cast(padding_mask, tf.bool), tf.float32)


def example_mask(padding_mask: tf.Tensor) -> tf.Tensor:
    """`[B]` float32: 1 for an example with at least one real token.

    A fully padded row (a filler example) has no [CLS] and no tokens to pool,
    so losses that average over examples leave it out.
    """
    return tf.cast(tf.reduce_any(tf.cast(padding_mask, tf.bool), axis=1), tf.float32)


def masked_example_mean(values: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Mean of per-example `values` over the valid examples (0 when none is)."""
    values = tf.where(valid > 0, to_float32(values), 0.0)
    return tf.reduce_sum(values) / tf.maximum(replica_share(tf.reduce_sum(valid)), 1.0)


def pool(hidden: tf.Tensor, padding_mask: tf.Tensor, pooling: str) -> tf.Tensor:
    """`[B, n, d]` → `[B, d]`: the first ([CLS]) vector, or the mean over real tokens."""
    hidden = to_float32(hidden)
    if pooling == "cls":
        return hidden[:, 0, :]
    mask = token_mask(padding_mask)[:, :, None]
    return tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def feature_key(pooling: str, layer: int) -> str:
    """The name of one per-example teacher feature: `"mean_4"`, `"cls_2"` (see `teacher_vector`)."""
    return f"{pooling}_{layer}"


def teacher_vector(teacher: Outputs, layer: int, pooling: str, padding_mask: tf.Tensor, loss_name: str) -> tf.Tensor:
    """`[B, d]` float32: the teacher's pooled `layer` state.

    Read from `teacher["features"]` when the batch came with cached teacher
    outputs (`tfkd.distill.teacher_cache`), else pooled from the live
    teacher's hidden states; both are the same numbers.
    """
    features = teacher.get("features", {})
    key = feature_key(pooling, layer)
    if key in features:
        return to_float32(features[key])
    require_outputs(teacher, ["hidden_states"], "teacher", loss_name)
    return pool(teacher["hidden_states"][layer], padding_mask, pooling)


def dense(in_dim: int, out_dim: int, name: str) -> keras.layers.Dense:
    """A built float32 `Dense` layer, so its variables exist before the first step
    (the distiller collects the trainable variables of its losses when it builds)."""
    layer = keras.layers.Dense(out_dim, dtype="float32", name=name)
    layer.build((None, in_dim))
    return layer


def pair_projections(context: DistillContext) -> List[keras.layers.Dense]:
    """One learned student→teacher width map per layer pair, or none when the
    widths are equal (the relation is then compared as is)."""
    d_s, d_t = context.student.hidden_dim, context.teacher.hidden_dim
    if d_s == d_t:
        return []
    return [dense(d_s, d_t, f"projection_{k}") for k in range(len(context.layer_map))]


def apply_optional(layer: Optional[keras.layers.Layer], x: tf.Tensor) -> tf.Tensor:
    return x if layer is None else layer(x)
