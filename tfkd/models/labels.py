"""Matching a fine-tuned head's classes to a task's, by name.

A head trained outside tfkd (a Hugging Face classifier) says what its logits
mean only by their names (`id2label`); its class order need not be the
task's (`tfkd/data/tasks.py` follows tensorflow-datasets). Its rows are put
in the task's order, so class id k means the same thing to teacher, student,
data and metrics.

Example:
>>> from tfkd.data.tasks import get_task
>>> model = BertModel(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> metadata = ModelMetadata(label_names=["POSITIVE", "NEGATIVE"])  # a Hugging Face head's id2label
>>> match_label_order(model, metadata, get_task("sst2"), "the teacher")
"the teacher: classes POSITIVE, NEGATIVE matched to sst2's negative, positive by name (head rows reordered)"
>>> metadata.label_names
['negative', 'positive']
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.data.tasks import GlueTask
from tfkd.models.bert import BertModel
from tfkd.models.model_dir import ModelMetadata


def is_generic(names: List[str]) -> bool:
    """transformers' placeholder names `LABEL_0, LABEL_1, ...`: the head's classes are unnamed."""
    return names == [f"LABEL_{i}" for i in range(len(names))]


def match_label_order(model: BertModel, metadata: ModelMetadata, task: GlueTask, what: str) -> Optional[str]:
    """Reorders `model`'s head into `task`'s class order by name (case ignored), or refuses.

    Only heads without a recorded task are matched: one tfkd trained is already
    in its task's order. Generic names (`LABEL_i`) are taken in logit order.

    Args:
        model: the fine-tuned model; its `logits` layer is changed in place.
        metadata: its metadata; `label_names` becomes the task's.
        task: the task it will teach.
        what: the model in words, e.g. "the teacher 'hf/sst2'".

    Returns:
        A log line saying what was matched, or None when nothing needed saying.
    """
    names = list(metadata.label_names)
    wanted = list(task.label_names or ())
    if metadata.task or task.is_regression or not names or names == wanted:
        return None
    if is_generic(names) and len(names) == len(wanted):
        metadata.label_names = wanted
        return (f"{what} names its classes {', '.join(names)} (transformers' defaults): taking its logits "
                f"in {task.name}'s order {', '.join(wanted)}")
    folded = [name.casefold() for name in names]
    if len(set(folded)) != len(names) or sorted(folded) != sorted(name.casefold() for name in wanted):
        raise TfkdError(
            f"{what} has the classes [{', '.join(names)}] (config.json id2label, in logit order) but {task.name} has "
            f"[{', '.join(wanted)}]: they do not name the same classes. Fix: use a teacher fine-tuned on {task.name}, "
            "or edit its config.json id2label/label2id to the task's names if they mean the same classes."
        )
    order = [folded.index(name.casefold()) for name in wanted]
    reordered = order != list(range(len(order)))
    if reordered:
        kernel, bias = model.logits_dense.get_weights()
        model.logits_dense.set_weights([kernel[:, order], bias[np.asarray(order)]])
    metadata.label_names = wanted
    return (f"{what}: classes {', '.join(names)} matched to {task.name}'s {', '.join(wanted)} by name"
            + (" (head rows reordered)" if reordered else ""))
