"""The data entry points: one split of a task, or a file of unlabelled sentences.

`load_split` picks the source: tfkd's own generator for `synthetic`, the
original GLUE TSV files when `glue_dir` is given, else tensorflow-datasets
(which fails within seconds, asking for `--glue_dir`, when it has no prepared
copy and no network).

Example:
>>> from tfkd.data.tasks import get_task
>>> dev = load_split(get_task("sst2"), "dev", "/data/glue")  # doctest: +SKIP
>>> len(dev), dev.labels.dtype  # doctest: +SKIP
(872, dtype('int32'))
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional

from tfkd.data.examples import Examples
from tfkd.data.glue_tsv import load_glue_tsv, utf8_lines
from tfkd.data.synthetic import make_synthetic
from tfkd.data.tasks import GlueTask
from tfkd.data.tfds_source import load_tfds_split
from tfkd.core.errors import TfkdError

logger = logging.getLogger(__name__)


def load_split(task: GlueTask, split: str, glue_dir: Optional[str], max_examples: Optional[int] = None) -> Examples:
    """The labelled examples of one split of `task`, in source order.

    Args:
        task: the task (`get_task("mrpc")`).
        split: `train`, `dev`, or a dev split name such as `dev_mismatched` /
            `validation_mismatched` (MNLI).
        glue_dir: the GLUE TSV folder (the task folder or its parent); None
            reads tensorflow-datasets. Ignored for `synthetic`.
        max_examples: keep only the first this many examples (quick runs).

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> train = load_split(get_task("synthetic"), "train", None)
    >>> len(train)
    2000
    """
    if max_examples is not None and max_examples < 1:
        raise TfkdError(f"max_examples={max_examples}. Fix: pass a positive number, or none for all examples.")
    if task.name == "synthetic":
        return make_synthetic(split, max_examples=max_examples)
    task.resolve_split(split)  # an unknown split name fails the same way for every source
    if glue_dir:
        return load_glue_tsv(task, split, glue_dir).take(max_examples)
    return load_tfds_split(task, split, max_examples=max_examples)


def load_unlabeled_text(path: str) -> List[str]:
    """Sentences for pre-training distillation: one per line, UTF-8; blank lines are skipped and counted.

    Args:
        path: a text file.

    Example:
    >>> sentences = load_unlabeled_text("corpus.txt")  # doctest: +SKIP
    """
    if not os.path.isfile(path):
        raise TfkdError(f"text file not found: {path}. Fix: pass a UTF-8 file with one sentence per line.")
    sentences: List[str] = []
    blank = 0
    for _, line in utf8_lines(path, fix="re-save the file as UTF-8"):
        if line.strip():
            sentences.append(line.strip())
        else:
            blank += 1
    if not sentences:
        raise TfkdError(f"{path}: no sentences (the file is empty or blank). Fix: one sentence per line.")
    if blank:
        logger.info("%s: %d sentences, skipped %d blank lines", path, len(sentences), blank)
    return sentences
