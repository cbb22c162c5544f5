import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.data.tasks import METRIC_NAMES, TASKS, TaskSpec, get_task
from tfkd.evaluate.metrics import METRICS, compute_metrics, f1, macro_f1, mcc, pearson, primary_metric, rank, spearman

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


def test_every_metric_a_task_may_name_is_computed():
    assert tuple(METRICS) == METRIC_NAMES


def file_task(label_names, metrics, positive_label=""):
    return TaskSpec(name="mine", text_fields=("text",), label_names=label_names, is_regression=False,
                    metrics=metrics, train_file="train.csv", dev_file="dev.csv", label_field="label",
                    positive_label=positive_label)


def test_f1_counts_the_tasks_positive_label():
    # Positive class 0: tp 3, fp 1, fn 1 (the mirror image of LABELS / PREDICTIONS above).
    assert f1(LABELS, PREDICTIONS, positive=0) == 0.75
    task = file_task(("yes", "no"), ("f1", "accuracy"), positive_label="yes")
    labels, predictions = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    # positive 'yes' = id 0: tp 1, fp 1, fn 1 → 2/4; with id 1 it would be 4/6.
    assert compute_metrics(task, labels, predictions) == {"f1": 0.5, "accuracy": 0.6}
    assert f1(labels, predictions) == pytest.approx(4 / 6)


def test_macro_f1_by_hand():
    labels, predictions = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    # class 0: tp 1 fp 1 fn 1 → 1/2; class 1: tp 2 fp 1 fn 0 → 4/5; class 2: tp 1 fp 0 fn 1 → 2/3
    assert macro_f1(labels, predictions) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    task = file_task(("a", "b", "c", "d"), ("accuracy", "macro_f1"))
    metrics = compute_metrics(task, labels, predictions)
    assert list(metrics) == ["accuracy", "macro_f1"] and metrics["accuracy"] == pytest.approx(4 / 6)
    # Class 3 occurs in neither labels nor predictions: not averaged in (as scikit-learn).
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert macro_f1(np.array([1, 1]), np.array([1, 1])) == 1.0


def test_multiclass_mcc_by_hand_and_consistent_with_binary():
    # confusion rows=true [[1,0,0],[0,0,1],[0,1,1]]: c=2, s=4, t=p=[1,1,2] → (8 - 6) / sqrt(10 * 10)
    assert mcc(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])) == pytest.approx(0.2)
    assert mcc(np.array([0, 1, 2]), np.array([0, 1, 2])) == pytest.approx(1.0)
    assert mcc(np.array([0, 1, 2]), np.array([2, 2, 2])) == 0.0
    # The multi-class formula on two classes (ids 1 and 2) equals the binary one (MCC is symmetric in the classes).
    assert mcc(LABELS + 1, PREDICTIONS + 1) == pytest.approx(mcc(LABELS, PREDICTIONS)) == pytest.approx(0.5)


def test_glue_f1_is_unchanged_by_the_positive_label():
    for name in ("mrpc", "qqp"):
        assert get_task(name).positive_id == 1
        assert compute_metrics(get_task(name), LABELS, PREDICTIONS)["f1"] == f1(LABELS, PREDICTIONS) == 0.75
