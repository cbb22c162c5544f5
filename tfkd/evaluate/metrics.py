"""GLUE's official metrics in numpy, and macro-F1: accuracy, F1, macro-F1, Matthews correlation, Pearson, Spearman.

Each task lists its metrics (`TaskSpec.metrics`); the first is the primary one
tfkd selects the best epoch by. Undefined values (a correlation of a constant
prediction, F1 or MCC with an empty class) are 0.0, not NaN, so a model that
predicts one class early in training still compares lower than a real one.
Binary F1 counts the task's positive class (`TaskSpec.positive_id`; class 1
for MRPC and QQP).

Example:
>>> from tfkd.data.tasks import get_task
>>> compute_metrics(get_task("mrpc"), [1, 0, 1, 1], [1, 0, 0, 1])
{'f1': 0.8, 'accuracy': 0.75}
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from tfkd.data.tasks import METRIC_NAMES, TaskSpec


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The fraction of predictions equal to the label."""
    return float(np.mean(labels == predictions))


def f1(labels: np.ndarray, predictions: np.ndarray, positive: int = 1) -> float:
    """Binary F1 of the class `positive` (class id 1 unless told).

    Example:
    >>> f1(np.array([0, 0, 1]), np.array([0, 1, 1]), positive=0)
    0.6666666666666666
    """
    tp = np.sum((predictions == positive) & (labels == positive))
    fp = np.sum((predictions == positive) & (labels != positive))
    fn = np.sum((predictions != positive) & (labels == positive))
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The unweighted mean of each class's F1, over the classes that occur in `labels` or `predictions`
    (as scikit-learn's `f1_score(average="macro")`).

    Example:
    >>> macro_f1(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]))  # F1 1, 0, 0.5
    0.5
    """
    classes = np.union1d(labels, predictions)
    return float(np.mean([f1(labels, predictions, positive=c) for c in classes]))


def mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation (CoLA's metric); with more than two classes, its multi-class form
    (Gorodkin's R_K, as scikit-learn's `matthews_corrcoef`).

    Example:
    >>> round(mcc(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])), 4)
    0.2
    """
    if max(np.max(labels), np.max(predictions)) > 1:
        return _multiclass_mcc(labels, predictions)
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    tn = float(np.sum((predictions != 1) & (labels != 1)))
    fp = float(np.sum((predictions == 1) & (labels != 1)))
    fn = float(np.sum((predictions != 1) & (labels == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def _multiclass_mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    classes, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    confusion = np.zeros((len(classes), len(classes)), np.float64)
    np.add.at(confusion, (codes[:len(labels)], codes[len(labels):]), 1.0)
    true, predicted, total = confusion.sum(1), confusion.sum(0), confusion.sum()
    covariance = np.trace(confusion) * total - predicted @ true
    denominator = np.sqrt((total**2 - predicted @ predicted) * (total**2 - true @ true))
    return float(covariance / denominator) if denominator else 0.0


def pearson(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Pearson correlation (0.0 when either side is constant)."""
    x = np.asarray(labels, np.float64)
    y = np.asarray(predictions, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denominator) if denominator else 0.0


def rank(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values share the mean of their ranks (as Spearman's rho needs).

    Example:
    >>> rank(np.array([10.0, 20.0, 10.0, 30.0])).tolist()
    [1.5, 3.0, 1.5, 4.0]
    """
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start of each run of equal values, and the mean rank over the run.
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    ends = np.concatenate([starts[1:], [len(values)]])
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson of the tie-averaged ranks."""
    return pearson(rank(labels), rank(predictions))


METRICS: Dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}
assert tuple(METRICS) == METRIC_NAMES, "tfkd.data.tasks.METRIC_NAMES must list exactly these metrics"
# Metrics that take the task's positive class id as `positive`.
NEEDS_POSITIVE = ("f1",)


def compute_metrics(task: TaskSpec, labels, predictions) -> Dict[str, float]:
    """The task's metrics, primary first.

    Args:
        task: the task (its `metrics` say which, its `positive_id` which class F1 counts).
        labels: true class ids, or scores for regression, `[N]`.
        predictions: predicted class ids (argmax), or scores for regression, `[N]`.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> compute_metrics(get_task("stsb"), [1.0, 2.0, 3.0], [1.1, 1.9, 3.5])["spearman"]
    1.0
    """
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    if labels.shape != predictions.shape or labels.size == 0:
        raise ValueError(f"need as many predictions as labels, at least one: {predictions.shape} vs {labels.shape}")
    return {
        name: METRICS[name](labels, predictions, **({"positive": task.positive_id} if name in NEEDS_POSITIVE else {}))
        for name in task.metrics
    }


def primary_metric(task: TaskSpec) -> str:
    """The metric tfkd selects the best epoch by (the first of `task.metrics`).

    Args:
        task: the task.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> primary_metric(get_task("cola"))
    'mcc'
    """
    return task.metrics[0]
