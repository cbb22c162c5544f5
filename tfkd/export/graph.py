"""The inference graph TFLite is converted from: a `BertModel`'s logits with a finite attention mask.

Keras' attention masks padded keys with huge negative numbers (-1e9 on the
unfused path, -0.7 × the float32 maximum on the fused one). That is harmless
in float, but full-integer quantization calibrates one int8 range per tensor,
and a tensor holding -1e9 next to scores of ±10 leaves every real score in
the same int8 step. This graph runs the same layers with the same weights
and masks without large values: each row of attention scores is shifted so
its largest *real* score is 0, and padded keys are set to `-MASK_MARGIN`. A
padded key then weighs at most `exp(-MASK_MARGIN)` (2e-9) of the row's
softmax, so the logits equal the Keras model's to float rounding, and the
int8 range of the scores stays that of the real scores.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfkd.models.bert import BertModel

MASK_MARGIN = 20.0

LogitsFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def _masked_scores(scores: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
    """Scores `[B, N, T, S]` shifted to max 0 over real keys; padded keys at -MASK_MARGIN."""
    # The row minimum stands in for padded keys when taking the maximum, so
    # the maximum is over real keys and no tensor leaves the scores' range.
    floor = tf.reduce_min(scores, axis=-1, keepdims=True)
    top = tf.reduce_max(tf.where(keys, scores, floor), axis=-1, keepdims=True)
    return tf.where(keys, scores - top, -MASK_MARGIN)


def logits_function(model: BertModel) -> LogitsFn:
    """`f(token_ids, segment_ids, padding_mask) -> logits` with `model`'s layers and a finite mask.

    Inference only (no dropout). The padding mask must mark at least one real
    token per row ([CLS] always is one).

    Args:
        model: the `BertModel` (post-LayerNorm encoder layers, as tfkd builds them).

    Example:
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> ids, segments, mask = tf.constant([[2, 5, 6, 3, 0]]), tf.zeros((1, 5), tf.int32), tf.constant([[1, 1, 1, 1, 0]])
    >>> logits = logits_function(model)(ids, segments, mask)
    >>> logits.shape
    TensorShape([1, 2])
    >>> keras_logits = model({"token_ids": ids, "segment_ids": segments, "padding_mask": mask})["logits"]
    >>> bool(tf.reduce_all(tf.abs(logits - keras_logits) < 1e-5))
    True
    """
    def forward(token_ids: tf.Tensor, segment_ids: tf.Tensor, padding_mask: tf.Tensor) -> tf.Tensor:
        tokens = model.token_embedding(token_ids)
        x = model.embeddings_add((tokens, model.position_embedding(tokens), model.segment_embedding(segment_ids)))
        x = model.embeddings_layer_norm(x)
        keys = tf.cast(padding_mask, tf.bool)[:, None, None, :]
        for layer in model.transformer_layers:
            attention = layer._self_attention_layer
            query = attention._query_dense(x) * attention._inverse_sqrt_key_dim
            key = attention._key_dense(x)
            value = attention._value_dense(x)
            scores = _masked_scores(tf.einsum("btnh,bsnh->bnts", query, key), keys)
            context = tf.einsum("bnts,bsnh->btnh", tf.nn.softmax(scores, axis=-1), value)
            x = layer._self_attention_layer_norm(attention._output_dense(context) + x)
            hidden = layer._feedforward_output_dense(layer._feedforward_intermediate_dense(x))
            x = layer._feedforward_layer_norm(hidden + x)
        return model.logits_dense(model.pooled_dense(x[:, 0, :]))

    return forward
