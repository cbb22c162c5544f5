"""The on-disk format of a tfkd model: `model.keras` + `vocab.txt` + `tfkd_model.json`.

A fine-tuned teacher and a distilled student are both saved this way, so
either can be a `--teacher`, a `--student_init` or the input of `tfkd.export`.
`tfkd_model.json` records the task spec the head was trained on, so a model
can be evaluated or used for predictions without naming its task again.

Example:
>>> from tfkd.data.tasks import get_task
>>> meta = ModelMetadata(task="mrpc", task_spec=get_task("mrpc").to_dict())
>>> meta.recorded_task() == get_task("mrpc")
True
>>> ModelMetadata(task="sst2").recorded_task().name  # written before task specs were recorded
'sst2'
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json, write_json
from tfkd.data.tasks import TASKS, TaskSpec, get_task, task_key
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
        task_spec: the task as `TaskSpec.to_dict` (empty in files written
            before tfkd recorded it, or for a model without a trained head).
    """

    task: str = ""
    label_names: List[str] = dataclasses.field(default_factory=list)
    lowercase: bool = True
    base: str = ""
    role: str = "teacher"
    max_seq_length: int = 128
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    task_spec: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def recorded_task(self) -> Optional[TaskSpec]:
        """The task the head was trained on: the recorded spec, else the predefined task `task` names;
        None when neither says."""
        if self.task_spec:
            return TaskSpec.from_dict(self.task_spec)
        return get_task(self.task) if task_key(self.task) in TASKS else None


def is_model_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, MODEL_FILE))


def save_model_dir(directory: str, model: BertModel, vocab_path: str, metadata: ModelMetadata) -> None:
    """Saves `model` (attention outputs off, so serving stays on the fused path)."""
    os.makedirs(directory, exist_ok=True)
    model.with_outputs(output_attentions=False).save(os.path.join(directory, MODEL_FILE))
    if os.path.abspath(vocab_path) != os.path.abspath(os.path.join(directory, VOCAB_FILE)):
        shutil.copyfile(vocab_path, os.path.join(directory, VOCAB_FILE))
    write_json(os.path.join(directory, META_FILE), dataclasses.asdict(metadata))


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
    damaged = "is not a tfkd model description"
    fix = "restore it from the run that wrote the model, or re-create the model with tfkd.train"
    stored = read_json(path, fix=fix, damaged=damaged)
    try:
        return ModelMetadata(**stored)
    except TypeError as e:  # not an object, or keys this tfkd does not know
        raise TfkdError(f"'{path}' {damaged} ({type(e).__name__}: {e}). Fix: {fix}.") from None


def _classes(label_names: Sequence[str]) -> str:
    return f"classes {', '.join(label_names)}" if label_names else "a score"


def check_task(model: BertModel, metadata: ModelMetadata, task: TaskSpec, what: str, allow_other_task: bool) -> None:
    """Refuses `model` for `task` when its outputs cannot be the task's, or, unless
    `allow_other_task`, when its metadata says its head was trained on another task
    (another name, or the same name with other class names).

    Args:
        model: the loaded model.
        metadata: its `ModelMetadata` (an empty `task` is not checked).
        task: the task it is about to be used for.
        what: the model in words, e.g. "the teacher 'runs/t/model'".
        allow_other_task: accept a recorded task other than `task` (`--allow_task_mismatch`).
    """
    data = f"--train_file={task.train_file} ..." if task.is_file_task else f"--task={task.name} ..."
    fix = f"use a model fine-tuned on {task.name} (python -m tfkd.train --mode=finetune {data})"
    if model.num_classes != task.num_labels:
        raise TfkdError(
            f"{what} has {model.num_classes} outputs but {task.name} needs {task.num_labels} "
            f"({_classes(task.label_names or ())}). Fix: {fix}."
        )
    same_classes = not metadata.label_names or tuple(metadata.label_names) == (task.label_names or ())
    if not metadata.task or (metadata.task == task.name and same_classes) or allow_other_task:
        return
    try:
        trained = _classes(metadata.label_names or get_task(metadata.task).label_names or ())
    except TfkdError:  # a task this tfkd does not know
        trained = _classes(metadata.label_names)
    raise TfkdError(
        f"{what} was fine-tuned on {metadata.task} ({trained}), not on {task.name} "
        f"({_classes(task.label_names or ())}): its outputs mean other things. Fix: {fix}, or pass "
        "--allow_task_mismatch if its outputs really are this task's."
    )
