"""A Hugging Face `BertForSequenceClassification` directory written from NumPy, and its forward pass in NumPy.

Neither uses tfkd, keras-hub or torch: the directory is laid out as
transformers' `save_pretrained` writes it (tensor names, `[out, in]` Linear
weights, `config.json`), and `reference_logits` is the post-LN BERT of the
original paper (exact erf GELU, the config's LayerNorm epsilon, tanh pooler),
so tfkd's loading is checked against an independent implementation.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Optional, Sequence

import numpy as np
from safetensors.numpy import save_file

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    "good", "bad", "great", "awful", "not", "movie", "the", "was", "very", "dull", "fun", "plot", "film", "a", "and",
    "it", "is", "boring", "yes", "no", "cat", "dog", "sat", "on", "mat", "red", "blue", "big", "small", "##s", "##ly",
    ",", "!", "?",
]
CONFIG = {
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-7,
}


def classifier_weights(num_labels: int, seed: int = 0, config: Dict = CONFIG) -> Dict[str, np.ndarray]:
    """Random weights under transformers' names; std 0.3 (0.02 would make logits hardly depend on the text)."""
    rng = np.random.default_rng(seed)
    h, ff = config["hidden_size"], config["intermediate_size"]

    def normal(*shape):
        return rng.normal(0.0, 0.3, shape).astype(np.float32)

    weights = {
        "bert.embeddings.word_embeddings.weight": normal(len(VOCAB), h),
        "bert.embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
        "bert.embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], h),
        "bert.embeddings.LayerNorm.weight": 1.0 + normal(h),
        "bert.embeddings.LayerNorm.bias": normal(h),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            weights[p + name + ".weight"], weights[p + name + ".bias"] = normal(h, h), normal(h)
        weights[p + "intermediate.dense.weight"], weights[p + "intermediate.dense.bias"] = normal(ff, h), normal(ff)
        weights[p + "output.dense.weight"], weights[p + "output.dense.bias"] = normal(h, ff), normal(h)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[p + norm + ".weight"], weights[p + norm + ".bias"] = 1.0 + normal(h), normal(h)
    weights["bert.pooler.dense.weight"], weights["bert.pooler.dense.bias"] = normal(h, h), normal(h)
    weights["classifier.weight"] = rng.normal(0.0, 1.5, (num_labels, h)).astype(np.float32)
    weights["classifier.bias"] = normal(num_labels)
    return weights


def write_classifier(
    directory: str,
    label_names: Sequence[str],
    weights: Optional[Dict[str, np.ndarray]] = None,
    problem_type: Optional[str] = None,
    config: Dict = CONFIG,
) -> Dict[str, np.ndarray]:
    """Writes config.json, model.safetensors and vocab.txt of a classifier; returns its weights.

    `label_names` are `id2label` in logit order (empty: one-output regression).
    """
    num_labels = max(len(label_names), 1)
    weights = weights if weights is not None else classifier_weights(num_labels, config=config)
    names = list(label_names) or ["LABEL_0"]
    os.makedirs(directory, exist_ok=True)
    full_config = dict(
        config,
        architectures=["BertForSequenceClassification"],
        model_type="bert",
        vocab_size=len(VOCAB),
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        id2label={str(i): name for i, name in enumerate(names)},
        label2id={name: i for i, name in enumerate(names)},
        problem_type=problem_type or ("regression" if not label_names else "single_label_classification"),
    )
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(full_config, f, indent=2)
    save_file(weights, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    return weights


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def reference_logits(weights: Dict[str, np.ndarray], token_ids, segment_ids, padding_mask, config: Dict = CONFIG) -> np.ndarray:
    """BertForSequenceClassification's logits, in float64 NumPy."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    batch, n = token_ids.shape
    x = (w["bert.embeddings.word_embeddings.weight"][token_ids]
         + w["bert.embeddings.position_embeddings.weight"][np.arange(n)][None]
         + w["bert.embeddings.token_type_embeddings.weight"][segment_ids])
    x = _layer_norm(x, w["bert.embeddings.LayerNorm.weight"], w["bert.embeddings.LayerNorm.bias"], eps)
    hidden = x.shape[-1]
    size = hidden // heads
    # transformers adds the dtype's minimum to the scores of padded keys.
    key_bias = np.where(padding_mask[:, None, None, :] > 0, 0.0, np.finfo(np.float64).min)

    def linear(v, name):
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    def split(v):
        return v.reshape(batch, n, heads, size).transpose(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        q, k, v = (split(linear(x, p + f"attention.self.{t}")) for t in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + key_bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, n, hidden)
        x = _layer_norm(x + linear(context, p + "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        ff = linear(_gelu(linear(x, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(linear(x[:, 0], "bert.pooler.dense"))
    return linear(pooled, "classifier")


def id_batch(seed: int = 1, lengths: Sequence[int] = (9, 5, 3), segments: bool = True):
    """`(token_ids, segment_ids, padding_mask)` int32 `[B, max(lengths)]`: [CLS] tokens [SEP], padded with 0."""
    rng = np.random.default_rng(seed)
    n = max(lengths)
    ids = np.zeros((len(lengths), n), np.int32)
    seg = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for b, length in enumerate(lengths):
        ids[b, :length] = [2] + list(rng.integers(5, len(VOCAB), length - 2)) + [3]
        mask[b, :length] = 1
        if segments:
            seg[b, length // 2:length] = 1
    return ids, seg, mask
