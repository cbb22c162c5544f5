"""GLUE's official metrics in numpy: accuracy, F1, Matthews correlation, Pearson, Spearman.

Each task lists its metrics (`GlueTask.metrics`); the first is the primary one
tfkd selects the best epoch by. Undefined values (a correlation of a constant
prediction, F1 or MCC with an empty class) are 0.0, not NaN, so a model that
predicts one class early in training still compares lower than a real one.

Example:
>>> from tfkd.data.tasks import get_task
>>> compute_metrics(get_task("mrpc"), [1, 0, 1, 1], [1, 0, 0, 1])
{'f1': 0.8, 'accuracy': 0.75}
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from tfkd.data.tasks import GlueTask


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The fraction of predictions equal to the label."""
    return float(np.mean(labels == predictions))


def f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Binary F1 of the positive class (class id 1)."""
    tp = np.sum((predictions == 1) & (labels == 1))
    fp = np.sum((predictions == 1) & (labels != 1))
    fn = np.sum((predictions != 1) & (labels == 1))
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def mcc(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Matthews correlation of binary labels (CoLA's metric)."""
    tp = float(np.sum((predictions == 1) & (labels == 1)))
    tn = float(np.sum((predictions != 1) & (labels != 1)))
    fp = float(np.sum((predictions == 1) & (labels != 1)))
    fn = float(np.sum((predictions != 1) & (labels == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


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


METRICS: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": mcc,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(task: GlueTask, labels, predictions) -> Dict[str, float]:
    """The task's metrics, primary first.

    Args:
        task: the task (its `metrics` say which).
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
    return {name: METRICS[name](labels, predictions) for name in task.metrics}


def primary_metric(task: GlueTask) -> str:
    """The metric tfkd selects the best epoch by (the first of `task.metrics`).

    Args:
        task: the task.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> primary_metric(get_task("cola"))
    'mcc'
    """
    return task.metrics[0]
