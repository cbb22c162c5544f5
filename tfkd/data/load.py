"""The data entry points: the task a run describes, one split of it, or a file of unlabelled sentences.

`resolve_task` turns a run's `DataConfig` into a `TaskSpec`: a predefined
GLUE task, or a task of your own CSV, TSV or JSON Lines files.
`load_split` picks the source: your files (`tfkd.data.files`) for a file
task, tfkd's own generator for `synthetic`, the original GLUE TSV files when
`glue_dir` is given, else tensorflow-datasets (which fails within seconds,
asking for `--glue_dir`, when it has no prepared copy and no network).
`stream_split` hands a file task's split out in chunks, for
`tokenize_chunks` on files too large to hold as text.

Example:
>>> import os
>>> from tfkd.data.tasks import get_task
>>> os.makedirs("glue/SST-2")  # the GLUE download's layout: <glue_dir>/SST-2/dev.tsv
>>> with open("glue/SST-2/dev.tsv", "w") as f:
...     _ = f.write("sentence\\tlabel\\na fine film\\t1\\ndull\\t0\\n")
>>> dev = load_split(get_task("sst2"), "dev", "glue")
>>> len(dev), dev.labels.dtype, dev.source
(2, dtype('int32'), 'glue/SST-2/dev.tsv')
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Iterator, List, Optional, Sequence, Tuple, Union

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.files import CHUNK_ROWS, MAX_CLASSES, file_format, iter_examples, read_examples, scan_labels
from tfkd.data.glue_tsv import load_glue_tsv, utf8_lines
from tfkd.data.synthetic import make_synthetic
from tfkd.data.tasks import TASKS, TaskSpec, get_task, task_key
from tfkd.data.tfds_source import load_tfds_split

if TYPE_CHECKING:  # only the type: tfkd.data does not import from the layers above it
    from tfkd.training.config import DataConfig

logger = logging.getLogger(__name__)

# Whole-number labels with more distinct values than this are taken for scores (see `resolve_task`).
MAX_INFERRED_CLASSES = 10
TASK_TYPES = ("classification", "regression")


def _names(value: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """A tuple of names from a tuple, or from a comma-separated string (as a notebook may pass)."""
    names = value.split(",") if isinstance(value, str) else value
    return tuple(name.strip() for name in names if name.strip())


def _glue_task(data: "DataConfig", metrics: Tuple[str, ...]) -> TaskSpec:
    own = {"dev_file": data.dev_file, "test_file": data.test_file, "data_format": data.data_format,
           "text_fields": data.text_fields, "label_names": data.label_names, "task_type": data.task_type,
           "positive_label": data.positive_label}
    given = [f"--{name}" for name, value in own.items() if value]
    if given:
        raise TfkdError(f"{', '.join(given)} describe your own files, but no --train_file is given. Fix: pass "
                        f"--train_file (and --dev_file), or leave out {', '.join(given)} for --task={data.task}.")
    task = get_task(data.task)
    return dataclasses.replace(task, metrics=metrics) if metrics else task


def _task_type(data: "DataConfig", label_names: Tuple[str, ...]) -> Tuple[bool, Tuple[str, ...]]:
    """(is_regression, label names) of a file task; reads the training labels when they decide."""
    if data.task_type and data.task_type not in TASK_TYPES:
        raise TfkdError(f"task type '{data.task_type}' is not one of {', '.join(TASK_TYPES)}. Fix: pass one of "
                        "those as --task_type, or leave it out to infer it from the labels.")
    if label_names and data.task_type == "regression":
        raise TfkdError(f"a regression task but has label names {list(label_names)}. Fix: leave out --label_names, "
                        "or pass --task_type=classification.")
    if label_names or data.task_type == "regression":
        return data.task_type == "regression", label_names
    scan = scan_labels(data.train_file, data.data_format, data.label_field)
    where = f"{data.train_file} (column '{data.label_field}')"
    is_regression = data.task_type != "classification" and scan.all_numeric and (
        not scan.all_whole or len(scan.labels) > MAX_INFERRED_CLASSES)
    if is_regression:
        logger.info("%s: numeric labels that are not all whole numbers, or more than %d of them: a regression "
                    "task (pass --task_type=classification if they are classes)", where, MAX_INFERRED_CLASSES)
        return True, ()
    if scan.more:
        raise TfkdError(f"{where}: more than {MAX_CLASSES} different labels. Fix: pass --task_type=regression if "
                        "they are scores, or check --label_field.")
    if len(scan.labels) < 2:
        raise TfkdError(f"{where}: every row has the label {scan.labels[0]!r}; a classifier needs two classes or "
                        "more. Fix: check --label_field, or list the classes in --label_names.")
    logger.info("%s: classes %s (sorted; pass --label_names to choose the order)", where, ", ".join(scan.labels))
    return False, scan.labels


def _default_metrics(is_regression: bool, num_classes: int, positive_label: str) -> Tuple[str, ...]:
    if is_regression:
        return ("pearson", "spearman")
    if num_classes > 2:
        return ("accuracy", "macro_f1")
    return ("accuracy", "f1") if positive_label else ("accuracy",)


def resolve_task(data: "DataConfig") -> TaskSpec:
    """The task a run's data configuration describes: a predefined task, or one of your own files.

    Without `data.train_file`: `get_task(data.task)`, its metrics replaced by
    `data.metrics` when given; the fields that describe your own files must
    then be empty. With it, a file task:

    - name: `data.task`, unless that names a predefined task (such as the
      default, sst2); then the training file's name without its extension.
    - files, format, text fields, label field and positive label: from `data`
      (`glue_dir` is not used). The files must exist; a dev file is required.
    - task type: `data.task_type` when given; classification when
      `label_names` are given; otherwise read from the training labels:
      regression exactly when every label is a finite number and either
      some label is not a whole number (2.5) or there are more than 10
      distinct values; classification otherwise (0/1, 1-5 stars, names).
    - classes: `data.label_names` in the order given, else the distinct labels
      of the whole training file (one streamed pass, whatever
      `max_train_examples` is), sorted: by value when all are numbers
      (`2` before `10`), else as strings. The spec records them.
    - metrics: `data.metrics` when given; else pearson, spearman for
      regression; accuracy, macro_f1 for more than two classes; accuracy, f1
      for two classes with a positive label, else accuracy alone. The first
      selects the best epoch. `TaskSpec` refuses metrics that do not fit.

    Args:
        data: the run's `tfkd.training.config.DataConfig`.

    Example:
    >>> from tfkd.training.config import DataConfig
    >>> resolve_task(DataConfig(task="mrpc")).metrics
    ('f1', 'accuracy')
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("train.jsonl", "dev.jsonl"):
    ...     with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
    ...         _ = f.write('{"q": "2+2?", "a": "4", "score": 0.9}\\n{"q": "sky?", "a": "green", "score": 0.1}\\n')
    >>> task = resolve_task(DataConfig(task="qa", train_file=os.path.join(folder, "train.jsonl"),
    ...                                dev_file=os.path.join(folder, "dev.jsonl"), text_fields=("q", "a"),
    ...                                label_field="score", task_type="regression"))
    >>> task.is_regression, task.metrics, task.num_labels
    (True, ('pearson', 'spearman'), 1)
    """
    metrics = _names(data.metrics)
    if not data.train_file:
        return _glue_task(data, metrics)
    text_fields, label_names = _names(data.text_fields), _names(data.label_names)
    if not data.dev_file:
        raise TfkdError("--train_file needs a --dev_file too: tfkd scores every epoch on it and keeps the best. "
                        "Fix: pass --dev_file=<file> with the same columns.")
    if not text_fields or not data.label_field or data.label_field in text_fields:
        raise TfkdError(f"text fields {list(text_fields)} and label field '{data.label_field}'. Fix: name the text "
                        "column (or two, for sentence pairs) in --text_fields and another column in --label_field.")
    for flag, path in (("train_file", data.train_file), ("dev_file", data.dev_file), ("test_file", data.test_file)):
        if path and not os.path.isfile(path):
            raise TfkdError(f"--{flag}: file not found: {path}. Fix: check the path.")
        if path:
            file_format(path, data.data_format)  # an unknown extension fails before any file is read
    is_regression, label_names = _task_type(data, label_names)
    name = data.task if data.task and task_key(data.task) not in TASKS else (
        os.path.splitext(os.path.basename(data.train_file))[0])
    return TaskSpec(
        name=name,
        text_fields=text_fields,
        label_names=None if is_regression else label_names,
        is_regression=is_regression,
        metrics=metrics or _default_metrics(is_regression, len(label_names), data.positive_label),
        dev_splits=("dev",),
        train_file=data.train_file,
        dev_file=data.dev_file,
        test_file=data.test_file,
        data_format=data.data_format,
        label_field=data.label_field,
        positive_label=data.positive_label,
    )


def load_split(task: TaskSpec, split: str, glue_dir: Optional[str], max_examples: Optional[int] = None) -> Examples:
    """The examples of one split of `task`, in source order.

    Args:
        task: the task (`get_task("mrpc")`, or `resolve_task(...)` for your own files).
        split: `train`, `dev`, or a dev split name such as `dev_mismatched` /
            `validation_mismatched` (MNLI); `test` for a file task with a
            test file (whose labels may be missing: `has_labels` says).
        glue_dir: the GLUE TSV folder (the task folder or its parent); None
            reads tensorflow-datasets. Ignored for `synthetic` and file tasks.
        max_examples: keep only the first this many examples (quick runs).

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> train = load_split(get_task("synthetic"), "train", None)
    >>> len(train)
    2000
    """
    _check_max_examples(max_examples)
    if task.is_file_task:
        return read_examples(task, split, max_examples)
    if task.name == "synthetic":
        return make_synthetic(split, max_examples=max_examples)
    task.resolve_split(split)  # an unknown split name fails the same way for every source
    if glue_dir:
        return load_glue_tsv(task, split, glue_dir).take(max_examples)
    return load_tfds_split(task, split, max_examples=max_examples)


def _check_max_examples(max_examples: Optional[int]) -> None:
    if max_examples is not None and max_examples < 1:
        raise TfkdError(f"max_examples={max_examples}. Fix: pass a positive number, or none for all examples.")


def stream_split(task: TaskSpec, split: str, glue_dir: Optional[str], max_examples: Optional[int] = None,
                 chunk_rows: int = CHUNK_ROWS) -> Iterator[Examples]:
    """`load_split` in chunks: a file task's split is read `chunk_rows` examples at a time, any other
    task's split is one chunk. `tokenize_chunks` takes them as they come.

    Args:
        task: the task.
        split: as for `load_split`.
        glue_dir: as for `load_split`.
        max_examples: keep only the first this many examples.
        chunk_rows: examples per chunk of a file task.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> [len(chunk) for chunk in stream_split(get_task("synthetic"), "dev", None)]
    [400]
    """
    _check_max_examples(max_examples)
    if task.is_file_task:
        yield from iter_examples(task, split, max_examples, chunk_rows)
    else:
        yield load_split(task, split, glue_dir, max_examples)


def load_unlabeled_text(path: str) -> List[str]:
    """Sentences for pre-training distillation: one per line, UTF-8; blank lines are skipped and counted.

    Args:
        path: a text file.

    Example:
    >>> with open("corpus.txt", "w") as f:
    ...     _ = f.write("a fine film\\n\\nthe plot was dull\\n")
    >>> load_unlabeled_text("corpus.txt")
    [tfkd] corpus.txt: 2 sentences, skipped 1 blank lines
    ['a fine film', 'the plot was dull']
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
