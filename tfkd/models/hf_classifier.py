"""The classification head of a Hugging Face `BertForSequenceClassification` directory.

transformers keeps the head next to the encoder in `model.safetensors`
(`classifier.weight` `[num_labels, hidden]`, as every `torch.nn.Linear`
stores `[out, in]`, and `classifier.bias`) and says what its logits mean in
`config.json` (`id2label`, `problem_type`). keras-hub converts only the
encoder, so tfkd reads the head itself.

Example:
>>> from safetensors.numpy import save_file
>>> os.makedirs("sst2_bert")  # what transformers' save_pretrained writes, less the encoder
>>> with open("sst2_bert/config.json", "w") as f:
...     json.dump({"architectures": ["BertForSequenceClassification"],
...                "id2label": {"0": "negative", "1": "positive"}}, f)
>>> save_file({HEAD_WEIGHT: np.zeros((2, 768), np.float32), HEAD_BIAS: np.zeros(2, np.float32)},
...           "sst2_bert/model.safetensors")
>>> config = json.load(open("sst2_bert/config.json"))
>>> is_classifier(config)
True
>>> head = read_head("sst2_bert", config, hidden_dim=768)
>>> head.label_names, head.kernel.shape
(['negative', 'positive'], (768, 2))
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List

import numpy as np
from safetensors import safe_open

from tfkd.core.errors import TfkdError

HEAD_WEIGHT = "classifier.weight"
HEAD_BIAS = "classifier.bias"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
# transformers' problem types; tfkd trains softmax classifiers and single-score regressors.
CLASSIFICATION = "single_label_classification"
REGRESSION = "regression"


@dataclasses.dataclass
class HfHead:
    """A classification head read from a Hugging Face checkpoint.

    Args:
        label_names: the class names in logit order (`id2label`); empty for regression.
        is_regression: one score (`problem_type` "regression", or one label).
        kernel: `[hidden, num_labels]`, Keras' `Dense` layout.
        bias: `[num_labels]`.
    """

    label_names: List[str]
    is_regression: bool
    kernel: np.ndarray
    bias: np.ndarray

    @property
    def num_labels(self) -> int:
        return int(self.bias.shape[0])


def is_classifier(config: Dict[str, Any]) -> bool:
    """Whether `config.json` describes a sequence classifier (its head is then in the checkpoint)."""
    return any(str(name).endswith("ForSequenceClassification") for name in config.get("architectures") or ())


def label_names(config: Dict[str, Any]) -> List[str]:
    """`id2label` in logit order (transformers writes it for every classifier, `LABEL_i` when unnamed)."""
    id2label = config.get("id2label") or {}
    try:
        names = {int(i): str(name) for i, name in id2label.items()}
    except (AttributeError, ValueError):
        names = {}
    if sorted(names) != list(range(len(names))):
        raise TfkdError(
            f"config.json's id2label {id2label!r} does not number the classes 0..n-1. "
            'Fix: write it as {"0": "<first class>", "1": "<second class>", ...}.'
        )
    return [names[i] for i in range(len(names))]


def read_head(path: str, config: Dict[str, Any], hidden_dim: int) -> HfHead:
    """Reads the head of the classifier in directory `path` (whose parsed `config.json` is `config`).

    Args:
        path: the Hugging Face directory.
        config: its `config.json`.
        hidden_dim: the encoder width, which the head's input must have.
    """
    names = label_names(config)
    num_labels = int(config.get("num_labels") or len(names) or 2)
    problem_type = config.get("problem_type") or (REGRESSION if num_labels == 1 else CLASSIFICATION)
    if problem_type not in (CLASSIFICATION, REGRESSION):
        raise TfkdError(
            f"'{path}' is a {problem_type} model; tfkd distils single-label classifiers and regressors. "
            f"Fix: use a checkpoint whose config.json has problem_type {CLASSIFICATION!r} or {REGRESSION!r}."
        )
    tensors = _read_tensors(path, (HEAD_WEIGHT, HEAD_BIAS))
    weight, bias = tensors[HEAD_WEIGHT], tensors[HEAD_BIAS]
    if weight.shape != (num_labels, hidden_dim) or bias.shape != (num_labels,):
        raise TfkdError(
            f"'{path}' has {HEAD_WEIGHT} {list(weight.shape)} and {HEAD_BIAS} {list(bias.shape)}, but config.json "
            f"says {num_labels} labels on a {hidden_dim}-wide encoder. Fix: re-save the model with save_pretrained."
        )
    is_regression = problem_type == REGRESSION
    if is_regression and num_labels != 1:
        raise TfkdError(f"'{path}' is a regression model with {num_labels} outputs; tfkd regresses one score. Fix: use a one-output regressor.")
    return HfHead(
        label_names=[] if is_regression else names,
        is_regression=is_regression,
        kernel=np.ascontiguousarray(weight.T, dtype=np.float32),
        bias=bias.astype(np.float32),
    )


def _read_tensors(path: str, keys) -> Dict[str, np.ndarray]:
    """`keys` from `model.safetensors`, or from the shards a sharded checkpoint's index names."""
    index_path = os.path.join(path, WEIGHTS_INDEX_FILE)
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f).get("weight_map", {})
        files = {key: weight_map.get(key) for key in keys}
    else:
        files = {key: WEIGHTS_FILE for key in keys}
    missing = [key for key, file in files.items() if file is None]
    tensors = {}
    for key, file in files.items():
        if file is None:
            continue
        with safe_open(os.path.join(path, file), framework="np") as f:
            if key in f.keys():
                tensors[key] = f.get_tensor(key)
            else:
                missing.append(key)
    if missing:
        raise TfkdError(
            f"'{path}' says it is a sequence classifier (config.json architectures) but its checkpoint lacks "
            f"{', '.join(missing)}. Fix: save the fine-tuned model with save_pretrained, or remove 'architectures' "
            "from config.json to use it as a pretrained encoder."
        )
    return tensors
