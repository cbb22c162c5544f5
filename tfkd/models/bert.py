"""`BertModel`: a BERT encoder + classification head as one multi-output graph.

Distillation needs more than the logits: every layer's hidden state (the
embedding output included) and, for attention transfer, every layer's
attention probabilities. keras-hub's `BertBackbone` returns only the last
layer, so tfkd builds the same network from the same keras-hub layers, under
the same layer names (`token_embedding`, `transformer_layer_{i}`,
`pooled_dense`, ...), so weights move between the two by name.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Dict, Optional

import keras
import keras_hub
from keras_hub.src.models.bert.bert_backbone import bert_kernel_initializer
from keras_hub.src.utils.keras_utils import gelu_approximate

from tfkd.core.errors import TfkdError
from tfkd.models.encoder import TransformerEncoder

INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")


@keras.saving.register_keras_serializable(package="tfkd")
class BertModel(keras.Model):
    """BERT encoder and classifier head returning logits, hidden states and attentions.

    The model is a functional graph whose outputs are a dict:
    `"logits"` `[B, num_classes]` (float32 under any dtype policy),
    `"hidden_states"`: a list of `num_layers + 1` tensors `[B, n, hidden_dim]`
    (index 0 is the embedding output) and, when `output_attentions=True`,
    `"attentions"`: a list of `num_layers` tensors `[B, num_heads, n, n]`, the
    softmax output before attention dropout. Asking for attentions disables
    Keras' fused attention path, so it is off unless a loss needs it.

    Args:
        vocabulary_size: int. Size of the WordPiece vocabulary.
        num_layers: int. Number of transformer layers.
        num_heads: int. Attention heads per layer.
        hidden_dim: int. Width of the hidden states.
        intermediate_dim: int. Width of the feed-forward layer.
        num_classes: int. Output logits (1 for regression).
        dropout: float. Dropout of embeddings, attention, feed-forward and head.
        max_sequence_length: int. Number of position embeddings.
        num_segments: int. Number of segment (token type) embeddings.
        exact_gelu: bool. Use the erf GELU of the original BERT (True, matches
            Hugging Face checkpoints) or keras-hub's tanh approximation.
        layer_norm_epsilon: float. Epsilon of every LayerNorm (BERT's 1e-12;
            a Hugging Face checkpoint's `layer_norm_eps`).
        output_attentions: bool. Also return every layer's attention probabilities.
        dtype: dtype policy of the layers.

    Example:
    >>> import numpy as np
    >>> model = BertModel(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                   hidden_dim=8, intermediate_dim=16, num_classes=2)
    >>> out = model({"token_ids": np.ones((1, 5), "int32"),
    ...              "segment_ids": np.zeros((1, 5), "int32"),
    ...              "padding_mask": np.ones((1, 5), "int32")})
    >>> out["logits"].shape, len(out["hidden_states"])
    (TensorShape([1, 2]), 3)
    """

    def __init__(
        self,
        vocabulary_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_classes: int = 2,
        dropout: float = 0.1,
        max_sequence_length: int = 512,
        num_segments: int = 2,
        exact_gelu: bool = True,
        layer_norm_epsilon: float = 1e-12,
        output_attentions: bool = False,
        dtype: Optional[Any] = None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = keras.layers.ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=hidden_dim,
            embeddings_initializer=bert_kernel_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            initializer=bert_kernel_initializer(),
            sequence_length=max_sequence_length,
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments,
            output_dim=hidden_dim,
            embeddings_initializer=bert_kernel_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            axis=-1, epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            TransformerEncoder(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation="gelu" if exact_gelu else gelu_approximate,
                dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=bert_kernel_initializer(),
                return_attention_scores=output_attentions,
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=bert_kernel_initializer(),
            activation="tanh",
            dtype=dtype,
            name="pooled_dense",
        )
        self.head_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="head_dropout")
        # float32 logits keep softmax/KD stable under mixed precision.
        self.logits_dense = keras.layers.Dense(
            num_classes, kernel_initializer=bert_kernel_initializer(), dtype="float32", name="logits"
        )

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = self.token_embedding(token_ids)
        x = self.embeddings_add((tokens, self.position_embedding(tokens), self.segment_embedding(segment_ids)))
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        hidden_states = [x]
        attentions = []
        for layer in self.transformer_layers:
            if output_attentions:
                x, scores = layer(x, padding_mask=padding_mask)
                attentions.append(scores)
            else:
                x = layer(x, padding_mask=padding_mask)
            hidden_states.append(x)
        pooled = self.pooled_dense(x[:, 0, :])
        logits = self.logits_dense(self.head_dropout(pooled))
        outputs: Dict[str, Any] = {"logits": logits, "hidden_states": hidden_states}
        if output_attentions:
            outputs["attentions"] = attentions
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs=outputs,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_classes = num_classes
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.exact_gelu = exact_gelu
        self.layer_norm_epsilon = layer_norm_epsilon
        self.output_attentions = output_attentions

    def get_config(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "max_sequence_length": self.max_sequence_length,
            "num_segments": self.num_segments,
            "exact_gelu": self.exact_gelu,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "output_attentions": self.output_attentions,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "BertModel":
        return cls(**config)

    def with_outputs(self, output_attentions: bool) -> "BertModel":
        """The same network sharing this model's weights, with or without attention outputs."""
        if output_attentions == self.output_attentions:
            return self
        config = self.get_config()
        config.update(output_attentions=output_attentions, name=f"{self.name}_attn" if output_attentions else self.name)
        twin = BertModel.from_config(config)
        copy_weights_by_layer_name(self, twin)
        return twin


ENCODER_LAYER_NAMES = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_layer_norm",
    "pooled_dense",
)


def count_params(model: keras.Model) -> int:
    """All weights of `model`, trainable or frozen, without the dropout layers' seed states.

    Example:
    >>> count_params(BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16))
    5658
    """
    return int(sum(math.prod(v.shape) for v in model.weights if "seed_generator" not in v.path))


def check_sequence_length(model: BertModel, length: int, flag: str = "--max_seq_length") -> None:
    """Refuses a sequence length beyond the model's position embeddings, which
    would otherwise fail inside the compiled step with a slicing error.

    Example:
    >>> teacher = BertModel(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                     name="teacher")
    >>> check_sequence_length(teacher, 1024)
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: DataConfig.max_seq_length=1024 exceeds the 512 positions of teacher. Fix: pass DataConfig.max_seq_length=512 or less.
    """
    if length > model.max_sequence_length:
        raise TfkdError(
            f"{flag}={length} exceeds the {model.max_sequence_length} positions of {model.name}. "
            f"Fix: pass {flag}={model.max_sequence_length} or less."
        )


def copy_weights_by_layer_name(source: keras.Model, target: keras.Model, names: Optional[Collection[str]] = None) -> None:
    """Copies weights of the layers both models have under the same name."""
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if names is not None and layer.name not in names:
            continue
        if layer.name in source_layers and layer.weights:
            layer.set_weights(source_layers[layer.name].get_weights())
