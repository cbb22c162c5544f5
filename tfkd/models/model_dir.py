"""The on-disk format of a tfkd model: `model.keras` + `vocab.txt` + `tfkd_model.json`.

A fine-tuned teacher and a distilled student are both saved this way, so
either can be a `--teacher`, a `--student_init` or the input of `tfkd.export`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Tuple

import keras

from tfkd.errors import TfkdError
from tfkd.models.bert import BertModel

MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.txt"
META_FILE = "tfkd_model.json"


@dataclasses.dataclass
class ModelMetadata:
    """What a saved tfkd model carries besides its weights.

    Args:
        task: task name the head was trained on ("" for none).
        label_names: class names in logit order (empty for regression).
        lowercase: whether the vocabulary is uncased.
        base: the teacher source the encoder came from (for `--student_init=pretrained`).
        role: "teacher" or "student".
        max_seq_length: the sequence length used in training.
        extra: anything else (method, flags, dev metrics, ...).
    """

    task: str = ""
    label_names: List[str] = dataclasses.field(default_factory=list)
    lowercase: bool = True
    base: str = ""
    role: str = "teacher"
    max_seq_length: int = 128
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)


def is_model_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, MODEL_FILE))


def save_model_dir(directory: str, model: BertModel, vocab_path: str, metadata: ModelMetadata) -> None:
    """Saves `model` (attention outputs off, so serving stays on the fused path)."""
    os.makedirs(directory, exist_ok=True)
    model.with_outputs(output_attentions=False).save(os.path.join(directory, MODEL_FILE))
    if os.path.abspath(vocab_path) != os.path.abspath(os.path.join(directory, VOCAB_FILE)):
        shutil.copyfile(vocab_path, os.path.join(directory, VOCAB_FILE))
    with open(os.path.join(directory, META_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(metadata), f, indent=2)


def load_model_dir(directory: str) -> Tuple[BertModel, str, ModelMetadata]:
    """Loads `(model, vocab_path, metadata)` from a tfkd model directory or `.keras` file.

    A bare `.keras` file needs `vocab.txt` (and optionally `tfkd_model.json`) next to it.
    """
    if directory.endswith(".keras"):
        model_path, directory = directory, os.path.dirname(directory) or "."
    else:
        model_path = os.path.join(directory, MODEL_FILE)
    if not os.path.exists(model_path):
        raise TfkdError(
            f"no tfkd model at '{model_path}'. Fix: point at a directory written by "
            "`python -m tfkd.train` (it holds model.keras, vocab.txt and tfkd_model.json)."
        )
    vocab_path = os.path.join(directory, VOCAB_FILE)
    if not os.path.exists(vocab_path):
        raise TfkdError(f"'{model_path}' has no {VOCAB_FILE} next to it. Fix: copy the vocabulary the model was trained with there.")
    try:
        model = keras.saving.load_model(model_path, custom_objects={"BertModel": BertModel})
    except Exception as e:  # keras raises many types for a damaged zip/config
        raise TfkdError(
            f"'{model_path}' could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Fix: the file is corrupt or from an incompatible tfkd version; re-create it with tfkd.train."
        ) from None
    if not isinstance(model, BertModel):
        raise TfkdError(f"'{model_path}' holds a {type(model).__name__}, not a tfkd BertModel. Fix: save it with tfkd.")
    return model, vocab_path, read_metadata(directory) or ModelMetadata()


def read_metadata(directory: str) -> Optional[ModelMetadata]:
    """The `ModelMetadata` saved in `directory`; None when it has none."""
    path = os.path.join(directory, META_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return ModelMetadata(**json.load(f))
    except (ValueError, TypeError) as e:  # bad JSON, or keys this tfkd does not know
        raise TfkdError(
            f"'{path}' is not a tfkd model description ({type(e).__name__}: {e}). "
            "Fix: restore it from the run that wrote the model, or re-create the model with tfkd.train."
        ) from None
