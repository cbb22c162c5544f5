"""What tfkd knows about each task: texts, labels, metrics and where the data lives.

Label ids follow tensorflow-datasets' `glue/<task>` class order, so a model
trained from the GLUE TSV files and one trained from tfds agree on what
class 0 means.

The first metric of each task is the one tfkd selects checkpoints by. For
MRPC that is F1 (as GLUE reports it first); for QQP it is accuracy, which the
distillation papers tfkd compares with (DistilBERT, MiniLM, PKD) report and
which, unlike F1, does not depend on which class is called positive.

Example:
>>> task = get_task("mrpc")
>>> task.num_labels, task.metrics, task.tsv_folder
(2, ('f1', 'accuracy'), 'MRPC')
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple, Union

from tfkd.core.errors import TfkdError

Column = Union[str, int]  # a header name, or a 0-based position in headerless files


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """One classification or regression task and the layout of its data.

    Args:
        name: tfkd's task name (`sst2`, `mnli`, ...).
        text_fields: names of the one or two texts (tfds feature names).
        label_names: class names in class-id order; None for regression.
        is_regression: True for STS-B (a float score, one output).
        metrics: metric names for `tfkd.evaluate.metrics`; the first is the
            primary one, used to select the best epoch.
        tsv_folder: the folder name in the original GLUE download (`SST-2`).
        tsv_has_header: False only for CoLA's train/dev files.
        tsv_text_columns: the text columns, by header name (or position when
            headerless).
        tsv_label_column: the label column, by header name or position.
        tsv_num_columns: columns per row of a headerless file (headered files
            take the count from the header).
        tsv_label_values: the label strings in the TSV, in class-id order;
            None for regression.
        tsv_train_file: the training file name.
        tsv_dev_files: the dev file names, parallel to `dev_splits`.
        tfds_name: the tensorflow-datasets name, None if tfds lacks the task.
        dev_splits: the dev split names (tfds names); the first is `dev`.
        malformed_row_tolerance: the fraction of rows with a wrong column
            count that may be skipped (counted and logged) instead of failing;
            non-zero only for QQP, whose train file has a few broken lines.
        score_range: the lowest and highest score of a regression task
            (STS-B: 0 to 5); a score outside it is refused.

    Example:
    >>> get_task("mnli").dev_splits
    ('validation_matched', 'validation_mismatched')
    """

    name: str
    text_fields: Tuple[str, ...]
    label_names: Optional[Tuple[str, ...]]
    is_regression: bool
    metrics: Tuple[str, ...]
    tsv_folder: Optional[str] = None
    tsv_has_header: bool = True
    tsv_text_columns: Tuple[Column, ...] = ()
    tsv_label_column: Column = "label"
    tsv_num_columns: Optional[int] = None
    tsv_label_values: Optional[Tuple[str, ...]] = None
    tsv_train_file: str = "train.tsv"
    tsv_dev_files: Tuple[str, ...] = ("dev.tsv",)
    tfds_name: Optional[str] = None
    dev_splits: Tuple[str, ...] = ("validation",)
    malformed_row_tolerance: float = 0.0
    score_range: Optional[Tuple[float, float]] = None

    @property
    def num_labels(self) -> int:
        """Model outputs: the number of classes, or 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    def split_names(self) -> Tuple[str, ...]:
        """Every split name `resolve_split` accepts, for error messages."""
        names = ["train", "dev"]
        for split, file in zip(self.dev_splits, self.tsv_dev_files):
            names += [split, file.rsplit(".", 1)[0]]
        return tuple(dict.fromkeys(names))

    def resolve_split(self, split: str) -> Optional[int]:
        """None for the train split, else the position of the dev split in `dev_splits`.

        Accepts `train`, `dev` (the first dev split), tfds names
        (`validation_mismatched`) and TSV stems (`dev_mismatched`).

        Args:
            split: the split name a user passed.

        Example:
        >>> get_task("mnli").resolve_split("dev_mismatched")
        1
        """
        if split == "train":
            return None
        if split in ("dev", "validation"):
            return 0
        for i, (name, file) in enumerate(zip(self.dev_splits, self.tsv_dev_files)):
            if split in (name, file.rsplit(".", 1)[0]):
                return i
        raise TfkdError(
            f"unknown split '{split}' for task {self.name}. Fix: use one of {', '.join(self.split_names())}."
        )


def _binary(name, fields, label_names, folder, text_columns, label_column, label_values, metrics=("accuracy",), **kw):
    return GlueTask(
        name=name, text_fields=fields, label_names=label_names, is_regression=False, metrics=metrics,
        tsv_folder=folder, tsv_text_columns=text_columns, tsv_label_column=label_column,
        tsv_label_values=label_values, tfds_name=f"glue/{name}", **kw,
    )


TASKS: Dict[str, GlueTask] = {
    task.name: task
    for task in (
        _binary("cola", ("sentence",), ("unacceptable", "acceptable"), "CoLA", (3,), 1, ("0", "1"),
                metrics=("mcc",), tsv_has_header=False, tsv_num_columns=4),
        _binary("sst2", ("sentence",), ("negative", "positive"), "SST-2", ("sentence",), "label", ("0", "1")),
        _binary("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "MRPC",
                ("#1 String", "#2 String"), "Quality", ("0", "1"), metrics=("f1", "accuracy")),
        GlueTask(
            name="stsb", text_fields=("sentence1", "sentence2"), label_names=None, is_regression=True,
            metrics=("pearson", "spearman"), tsv_folder="STS-B", tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="score", tfds_name="glue/stsb", score_range=(0.0, 5.0),
        ),
        _binary("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "QQP",
                ("question1", "question2"), "is_duplicate", ("0", "1"), metrics=("accuracy", "f1"),
                malformed_row_tolerance=0.001),
        _binary("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "MNLI",
                ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"),
                tsv_dev_files=("dev_matched.tsv", "dev_mismatched.tsv"),
                dev_splits=("validation_matched", "validation_mismatched")),
        _binary("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "QNLI",
                ("question", "sentence"), "label", ("entailment", "not_entailment")),
        _binary("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "RTE",
                ("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
        _binary("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "WNLI",
                ("sentence1", "sentence2"), "label", ("0", "1")),
        # Generated by tfkd itself (tfkd/data/synthetic.py) for the offline demo; not GLUE data.
        GlueTask(name="synthetic", text_fields=("sentence",), label_names=("negative", "positive"),
                 is_regression=False, metrics=("accuracy",)),
    )
}


def get_task(name: str) -> GlueTask:
    """The task called `name` (case-insensitive; `sst-2`, `sts-b` also work).

    Args:
        name: a key of `TASKS`.

    Example:
    >>> get_task("SST-2").name
    'sst2'
    """
    key = name.strip().lower().replace("-", "")
    if key not in TASKS:
        raise TfkdError(f"unknown task '{name}'. Fix: use one of {', '.join(TASKS)}.")
    return TASKS[key]
