import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.data.tasks import TASKS, get_task
from tfkd.evaluate.metrics import compute_metrics, f1, mcc, pearson, primary_metric, rank, spearman

# tp 3, tn 3, fp 1, fn 1
LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
PREDICTIONS = np.array([1, 1, 0, 0, 0, 1, 1, 0])


def test_classification_metrics_by_hand():
    assert compute_metrics(get_task("sst2"), LABELS, PREDICTIONS) == {"accuracy": 0.75}
    assert compute_metrics(get_task("mrpc"), LABELS, PREDICTIONS) == {"f1": 0.75, "accuracy": 0.75}
    # (3 * 3 - 1 * 1) / sqrt(4 * 4 * 4 * 4)
    assert compute_metrics(get_task("cola"), LABELS, PREDICTIONS) == {"mcc": 0.5}
    assert f1(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1])) == pytest.approx(0.8)


def test_multiclass_accuracy():
    assert compute_metrics(get_task("mnli"), [0, 1, 2, 2], [0, 2, 2, 1]) == {"accuracy": 0.5}


def test_pearson_by_hand():
    # x - mean = [-1, 0, 1], y - mean = [-7, -1, 8] / 3: r = 5 / sqrt(2 * 114 / 9)
    assert pearson(np.array([1, 2, 3]), np.array([2, 4, 7])) == pytest.approx(5 / np.sqrt(228 / 9))


def test_ranks_average_ties():
    assert rank(np.array([10.0, 20.0, 10.0, 30.0])).tolist() == [1.5, 3.0, 1.5, 4.0]
    assert rank(np.array([2.0, 2.0, 2.0])).tolist() == [2.0, 2.0, 2.0]
    assert rank(np.array([3, 1, 2])).tolist() == [3.0, 1.0, 2.0]


def test_spearman_with_ties_matches_the_known_value():
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138 = 4.5 / sqrt(4.5 * 5)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 3, 2, 4])) == pytest.approx(0.9486832980505138)
    metrics = compute_metrics(get_task("stsb"), np.array([0.5, 1.0, 4.2, 3.1], np.float32), [1, 2, 9, 3])
    assert list(metrics) == ["pearson", "spearman"] and metrics["spearman"] == pytest.approx(1.0)


def test_undefined_values_are_zero():
    constant = np.zeros(4)
    assert pearson(np.array([1, 2, 3, 4]), constant) == 0.0
    assert spearman(np.array([1, 2, 3, 4]), constant) == 0.0
    assert mcc(np.array([1, 0, 1, 0]), constant) == 0.0
    assert f1(np.zeros(4), constant) == 0.0


def test_primary_metric_is_the_first():
    assert {name: primary_metric(task) for name, task in TASKS.items()} == {
        "cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "pearson", "qqp": "accuracy", "mnli": "accuracy",
        "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy", "synthetic": "accuracy",
    }


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="as many predictions as labels"):
        compute_metrics(get_task("sst2"), [1, 0], [1])
