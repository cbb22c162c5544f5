"""A fine-tuned keras-hub `BertTextClassifier`, read as tfkd's `BertModel` with its head.

keras-hub's classifier is a `BertBackbone` (whose `pooled_output` is BERT's
pooler, the backbone's `pooled_dense` layer) followed by `output_dropout`
and `output_dense` (the layer named `logits`). tfkd's `BertModel` has the
same layers under the same names, so the encoder and pooler move over by
name and the head is `output_dense`'s kernel and bias. keras-hub's encoder
computes GELU with its tanh approximation, the one the classifier was
fine-tuned with, so the `BertModel` does too. keras-hub classifiers do not
name their classes: their logits mean the task's classes by position.

A classifier comes as a `.keras` file (`classifier.save("clf.keras")`), a
preset directory (`classifier.save_to_preset("clf")`) or a keras-hub preset
name (downloaded, e.g. `bert_tiny_en_uncased_sst2`).

Example:
>>> import os, tempfile
>>> backbone = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1, num_heads=2, hidden_dim=8,
...                                          intermediate_dim=16, max_sequence_length=16)
>>> path = os.path.join(tempfile.mkdtemp(), "clf.keras")
>>> keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=None).save(path)
>>> saved_class(path)
'keras_hub>BertTextClassifier'
>>> kernel, bias = read_head(load_classifier(path))
>>> kernel.shape, bias.shape
((8, 3), (3,))
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Optional, Tuple

import keras
import keras_hub
import numpy as np
from keras_hub.src.utils import preset_utils

from tfkd.core.errors import TfkdError

CLASSIFIER = "keras_hub>BertTextClassifier"
KERAS_HUB_PREFIX = "keras_hub>"
VOCAB_FILE = "vocab.txt"
# Activations after `output_dense` that leave its pre-activation outputs meaningful as logits.
LOGIT_ACTIVATIONS = ("linear", "softmax")
SAVE_FIX = ("save the fine-tuned keras_hub.models.BertTextClassifier with classifier.save('clf.keras') or "
            "classifier.save_to_preset('clf')")


def saved_class(path: str) -> str:
    """The registered class name (`keras_hub>BertTextClassifier`, `tfkd>BertModel`, ...) of what a `.keras`
    file or a keras-hub preset directory holds; "" when it names none (a Hugging Face directory, a damaged file).

    A preset directory's task (`task.json`) names it, else its backbone (`config.json`).

    Args:
        path: a `.keras` file or a directory.
    """
    try:
        if os.path.isfile(path):
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        else:
            name = "task.json" if os.path.exists(os.path.join(path, "task.json")) else "config.json"
            with open(os.path.join(path, name), encoding="utf-8") as f:
                config = json.load(f)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return ""
    name = config.get("registered_name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else ""


def is_keras_hub_model(path: str) -> bool:
    """Whether `path` is a `.keras` file or preset directory of a keras-hub model."""
    return saved_class(path).startswith(KERAS_HUB_PREFIX)


def preset_task_class(preset: str) -> str:
    """The registered class of the task a keras-hub preset (name or directory) ships; "" for a backbone alone.

    A preset name is looked up on Kaggle (its `task.json` is downloaded), so it needs the network.
    """
    if not preset_utils.check_file_exists(preset, preset_utils.TASK_CONFIG_FILE):
        return ""
    return str(preset_utils.load_json(preset, preset_utils.TASK_CONFIG_FILE).get("registered_name", ""))


def load_classifier(path: str) -> keras_hub.models.BertTextClassifier:
    """The `BertTextClassifier` saved in a `.keras` file or a keras-hub preset directory.

    Args:
        path: the file or directory.
    """
    name = saved_class(path)
    if name != CLASSIFIER:
        held = f"a keras-hub {name.removeprefix(KERAS_HUB_PREFIX)}" if name else "no keras-hub model"
        head = " without a classifier head" if name.endswith("Backbone") else ""
        raise TfkdError(f"'{path}' holds {held}{head}; tfkd reads a fine-tuned BertTextClassifier. Fix: {SAVE_FIX}.")
    try:
        if os.path.isfile(path):
            # compile=False: the optimizer and loss it was fine-tuned with play no part in teaching.
            return keras.saving.load_model(path, compile=False)
        return keras_hub.models.BertTextClassifier.from_preset(path)
    except Exception as e:  # keras raises many types for a damaged archive or preset
        raise TfkdError(f"keras could not load the classifier '{path}' ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}). Fix: {SAVE_FIX} again.") from None


def read_head(classifier: keras_hub.models.BertTextClassifier) -> Tuple[np.ndarray, np.ndarray]:
    """`output_dense`'s kernel `[hidden, num_classes]` and bias `[num_classes]`, as float32.

    A softmax after the head is fine (the logits are its input); another activation is refused.

    Args:
        classifier: the loaded classifier.
    """
    activation = keras.activations.serialize(classifier.activation)
    if activation not in LOGIT_ACTIVATIONS:
        raise TfkdError(f"the classifier's head ends in a '{activation}' activation; tfkd distils softmax classifiers "
                        "and single-score regressors, whose outputs before any activation are logits. Fix: use a "
                        "BertTextClassifier built with activation=None or 'softmax'.")
    kernel, bias = classifier.output_dense.get_weights()
    return kernel.astype(np.float32), bias.astype(np.float32)


def classifier_vocabulary(classifier: keras_hub.models.BertTextClassifier, path: str,
                          work_dir: Optional[str]) -> Tuple[str, bool]:
    """The classifier's WordPiece vocabulary file and whether it lowercases.

    The vocabulary of its tokenizer (a classifier saved with its
    preprocessor) is written to `<work_dir>/<name>.vocab.txt`; one saved
    without it needs `vocab.txt` next to the `.keras` file (or in the
    preset directory), taken as uncased.

    Args:
        classifier: the loaded classifier.
        path: the file, directory or preset name it came from.
        work_dir: where to write the vocabulary; None: only `vocab.txt` next to `path` will do.
    """
    tokenizer = getattr(classifier.preprocessor, "tokenizer", None)
    beside = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), VOCAB_FILE)
    if tokenizer is not None and work_dir is not None:
        os.makedirs(work_dir, exist_ok=True)
        stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        vocab_path = os.path.join(work_dir, f"{stem}.vocab.txt")
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in tokenizer.get_vocabulary()))
        return vocab_path, bool(getattr(tokenizer, "lowercase", True))
    if os.path.exists(beside):
        return beside, bool(getattr(tokenizer, "lowercase", True))
    if tokenizer is not None:
        raise TfkdError(f"the keras-hub classifier '{path}' needs a work directory to store its vocabulary. "
                        "Fix: pass --workdir.")
    raise TfkdError(f"the keras-hub classifier '{path}' was saved without its preprocessor, so its vocabulary is "
                    f"unknown. Fix: copy the WordPiece vocabulary it was fine-tuned with to {beside}, or save the "
                    "classifier with its preprocessor.")
