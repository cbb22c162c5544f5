"""`TransformerEncoder`: keras-hub's encoder layer that can also return attention probabilities."""

from __future__ import annotations

from typing import Any, Dict

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="tfkd")
class TransformerEncoder(keras_hub.layers.TransformerEncoder):
    """keras-hub's `TransformerEncoder` with attention probabilities as a graph output.

    keras-hub's layer computes attention scores when called eagerly with
    `return_attention_scores=True`, but declares a single output shape, so a
    functional graph cannot carry them. This layer fixes the choice at
    construction and declares both outputs. Its weights are laid out exactly
    like keras-hub's, so they load from keras-hub checkpoints by layer name.

    Args:
        return_attention_scores: bool. If True, `call` returns
            `(outputs, attention_probs)` with `attention_probs` of shape
            `[B, num_heads, n, n]`, the softmax output before attention dropout.
        **kwargs: the arguments of `keras_hub.layers.TransformerEncoder`.

    Example:
    >>> import numpy as np
    >>> layer = TransformerEncoder(num_heads=2, intermediate_dim=16,
    ...                            return_attention_scores=True)
    >>> y, probs = layer(np.zeros((1, 4, 8), "float32"))
    >>> probs.shape
    TensorShape([1, 2, 4, 4])
    """

    def __init__(self, return_attention_scores: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.return_attention_scores = return_attention_scores

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        return super().call(
            inputs,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            training=training,
            return_attention_scores=self.return_attention_scores,
        )

    def compute_output_shape(self, inputs_shape):
        if not self.return_attention_scores:
            return inputs_shape
        batch, length = inputs_shape[0], inputs_shape[1]
        return inputs_shape, (batch, self.num_heads, length, length)

    def compute_output_spec(self, inputs, padding_mask=None, attention_mask=None, training=None):
        hidden = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not self.return_attention_scores:
            return hidden
        batch, length = inputs.shape[0], inputs.shape[1]
        probs = keras.KerasTensor((batch, self.num_heads, length, length), dtype=self.compute_dtype)
        return hidden, probs

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["return_attention_scores"] = self.return_attention_scores
        return config
