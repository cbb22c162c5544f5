"""What tfkd knows about each task: texts, labels, metrics and where the data lives.

A task is a `TaskSpec`: the nine GLUE tasks and `synthetic` are predefined
specs (`TASKS`, `get_task`), and your own CSV, TSV or JSON Lines files are a
spec of the same type (built by `tfkd.data.load.resolve_task`). A spec is
recorded with a trained model (`to_dict` / `from_dict`), so a model can be
evaluated or used for predictions without naming its task again.

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
>>> TaskSpec.from_dict(task.to_dict()) == task
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from tfkd.core.errors import TfkdError

Column = Union[str, int]  # a header name, or a 0-based position in headerless files

# Every metric `tfkd.evaluate.metrics` computes (it checks that its table has exactly these).
CLASSIFICATION_METRICS = ("accuracy", "f1", "macro_f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")
METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS
FILE_SPLITS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One classification or regression task and the layout of its data.

    A GLUE task sets the `tsv_*` and `tfds_name` fields; a task of your own
    files sets `train_file`, `dev_file` (and maybe `test_file`),
    `data_format` and `label_field`. The spec is checked when it is made:
    metrics must suit the task type, F1 needs two classes and a positive
    label.

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
        train_file: your own training file (CSV, TSV or JSON Lines); empty
            for a predefined task.
        dev_file: your own dev file.
        test_file: your own test file (its labels may be missing); may be empty.
        data_format: `csv`, `tsv` or `jsonl`; empty: by each file's extension.
        label_field: the label column (key) of your own files.
        positive_label: the class binary F1 counts as positive; empty when
            the task has no F1.

    Example:
    >>> get_task("mnli").dev_splits
    ('validation_matched', 'validation_mismatched')
    >>> reviews = TaskSpec(name="reviews", text_fields=("review",), label_names=("bad", "good"),
    ...                    is_regression=False, metrics=("accuracy", "f1"), train_file="train.csv",
    ...                    dev_file="dev.csv", label_field="stars", positive_label="good")
    >>> reviews.positive_id, reviews.split_file("dev")
    (1, 'dev.csv')
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
    train_file: str = ""
    dev_file: str = ""
    test_file: str = ""
    data_format: str = ""
    label_field: str = ""
    positive_label: str = ""

    def __post_init__(self) -> None:
        fields = self.text_fields
        if len(fields) not in (1, 2) or not all(fields) or len(set(fields)) != len(fields):
            raise TfkdError(f"task {self.name}: text fields {list(fields)}. Fix: name one text column, or two "
                            "different ones for sentence pairs (--text_fields=a or --text_fields=a,b).")
        if self.is_regression and self.label_names is not None:
            raise TfkdError(f"task {self.name} is a regression task but has label names {list(self.label_names)}. "
                            "Fix: leave out --label_names, or use --task_type=classification.")
        if not self.is_regression and (self.label_names is None or len(set(self.label_names)) < 2
                                       or len(set(self.label_names)) != len(self.label_names)):
            raise TfkdError(f"task {self.name}: classification needs two or more different label names, got "
                            f"{list(self.label_names or ())}. Fix: list every class once in --label_names, or use "
                            "--task_type=regression for a numeric score.")
        if self.positive_label and (self.is_regression or self.positive_label not in self.label_names):
            raise TfkdError(f"task {self.name}: positive label {self.positive_label!r} is not one of its labels "
                            f"({', '.join(self.label_names or ('none: a regression task',))}). "
                            "Fix: pass one of those as --positive_label.")
        self._check_metrics()

    def _check_metrics(self) -> None:
        kind, fitting = ("regression", REGRESSION_METRICS) if self.is_regression else (
            "classification", CLASSIFICATION_METRICS)
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown or not self.metrics or len(set(self.metrics)) != len(self.metrics):
            raise TfkdError(f"task {self.name}: metrics {list(self.metrics)} (unknown: {unknown or 'none'}). Fix: "
                            f"list each at most once from {', '.join(METRIC_NAMES)}; the first selects the best epoch.")
        unfit = [m for m in self.metrics if m not in fitting]
        if unfit:
            raise TfkdError(f"task {self.name} is a {kind} task; {', '.join(unfit)} do not apply to it. "
                            f"Fix: use {', '.join(fitting)} in --metrics.")
        if "f1" in self.metrics and (self.num_labels != 2 or not self.positive_label):
            raise TfkdError(
                f"task {self.name}: f1 is binary F1 of a positive class, but the task has {self.num_labels} "
                f"classes{'' if self.positive_label else ' and no positive label'}. Fix: "
                + ("pass --positive_label=<class>." if self.num_labels == 2 else "use macro_f1 instead.")
            )

    @property
    def num_labels(self) -> int:
        """Model outputs: the number of classes, or 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def is_file_task(self) -> bool:
        """True for a task of your own files (`train_file` is set)."""
        return bool(self.train_file)

    @property
    def positive_id(self) -> Optional[int]:
        """The class id of `positive_label`, None when there is none."""
        return self.label_names.index(self.positive_label) if self.positive_label else None

    def split_names(self) -> Tuple[str, ...]:
        """Every split name `resolve_split` (GLUE) or `split_file` (own files) accepts, for error messages."""
        if self.is_file_task:
            return ("train", "dev", "test") if self.test_file else ("train", "dev")
        names = ["train", "dev"]
        for split, file in zip(self.dev_splits, self.tsv_dev_files):
            names += [split, file.rsplit(".", 1)[0]]
        return tuple(dict.fromkeys(names))

    def split_file(self, split: str) -> str:
        """The file of split `train`, `dev` (also `validation`) or `test` of a task of your own files.

        Args:
            split: the split name a user passed.

        Example:
        >>> task = TaskSpec(name="t", text_fields=("text",), label_names=None, is_regression=True,
        ...                 metrics=("pearson",), train_file="a.jsonl", dev_file="b.jsonl", label_field="y")
        >>> task.split_file("validation")
        'b.jsonl'
        """
        split = "dev" if split == "validation" else split
        path = {"train": self.train_file, "dev": self.dev_file, "test": self.test_file}.get(split, "")
        if not path:
            raise TfkdError(
                f"unknown split '{split}' for task {self.name}. Fix: use one of {', '.join(self.split_names())}"
                + ("; a test split needs --test_file." if split == "test" else ".")
            )
        return path

    def to_dict(self) -> Dict[str, Any]:
        """The spec as JSON values, leaving out fields that have their default (what tfkd_model.json and
        results.json record).

        Example:
        >>> get_task("sst2").to_dict()["label_names"]
        ['negative', 'positive']
        """
        values = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.default is dataclasses.MISSING or value != field.default:
                values[field.name] = list(value) if isinstance(value, tuple) else value
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TaskSpec":
        """The inverse of `to_dict`; an unknown field is refused by name.

        Args:
            values: what `to_dict` returned, e.g. as read back from JSON.

        Example:
        >>> TaskSpec.from_dict(get_task("stsb").to_dict()).score_range
        (0.0, 5.0)
        """
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TfkdError(f"a recorded task has fields {', '.join(unknown)} that this tfkd does not know. "
                            "Fix: use the tfkd version that trained the model, or re-train it.")
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})

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


# The old name: every caller that says GlueTask means any task spec.
GlueTask = TaskSpec


def _binary(name, fields, label_names, folder, text_columns, label_column, label_values, metrics=("accuracy",), **kw):
    return TaskSpec(
        name=name, text_fields=fields, label_names=label_names, is_regression=False, metrics=metrics,
        tsv_folder=folder, tsv_text_columns=text_columns, tsv_label_column=label_column,
        tsv_label_values=label_values, tfds_name=f"glue/{name}", **kw,
    )


TASKS: Dict[str, TaskSpec] = {
    task.name: task
    for task in (
        _binary("cola", ("sentence",), ("unacceptable", "acceptable"), "CoLA", (3,), 1, ("0", "1"),
                metrics=("mcc",), tsv_has_header=False, tsv_num_columns=4),
        _binary("sst2", ("sentence",), ("negative", "positive"), "SST-2", ("sentence",), "label", ("0", "1")),
        _binary("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "MRPC",
                ("#1 String", "#2 String"), "Quality", ("0", "1"), metrics=("f1", "accuracy"),
                positive_label="equivalent"),
        TaskSpec(
            name="stsb", text_fields=("sentence1", "sentence2"), label_names=None, is_regression=True,
            metrics=("pearson", "spearman"), tsv_folder="STS-B", tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="score", tfds_name="glue/stsb", score_range=(0.0, 5.0),
        ),
        _binary("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "QQP",
                ("question1", "question2"), "is_duplicate", ("0", "1"), metrics=("accuracy", "f1"),
                malformed_row_tolerance=0.001, positive_label="duplicate"),
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
        TaskSpec(name="synthetic", text_fields=("sentence",), label_names=("negative", "positive"),
                 is_regression=False, metrics=("accuracy",)),
    )
}


def get_task(name: str) -> TaskSpec:
    """The task called `name` (case-insensitive; `sst-2`, `sts-b` also work).

    Args:
        name: a key of `TASKS`.

    Example:
    >>> get_task("SST-2").name
    'sst2'
    """
    key = task_key(name)
    if key not in TASKS:
        raise TfkdError(f"unknown task '{name}'. Fix: use one of {', '.join(TASKS)}.")
    return TASKS[key]


def task_key(name: str) -> str:
    """`name` as a key of `TASKS` would be spelled (`SST-2` → `sst2`), whether or not it is one."""
    return name.strip().lower().replace("-", "")
