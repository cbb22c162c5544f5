import dataclasses

import pytest

from tfkd.core.errors import TfkdError
from tfkd.data.tasks import TASKS, get_task

GLUE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


def test_all_glue_tasks_and_synthetic_are_defined():
    assert set(TASKS) == set(GLUE) | {"synthetic"}
    for name in GLUE:
        task = TASKS[name]
        assert task.tfds_name == f"glue/{name}" and task.tsv_folder
        assert len(task.text_fields) == len(task.tsv_text_columns) in (1, 2)
        assert len(task.dev_splits) == len(task.tsv_dev_files)
        if not task.is_regression:
            assert len(task.tsv_label_values) == len(task.label_names) == task.num_labels


@pytest.mark.parametrize("name, metrics", [
    ("cola", ("mcc",)), ("sst2", ("accuracy",)), ("mrpc", ("f1", "accuracy")), ("stsb", ("pearson", "spearman")),
    ("qqp", ("accuracy", "f1")), ("mnli", ("accuracy",)), ("qnli", ("accuracy",)), ("rte", ("accuracy",)),
    ("wnli", ("accuracy",)), ("synthetic", ("accuracy",)),
])
def test_official_metrics_primary_first(name, metrics):
    assert get_task(name).metrics == metrics


def test_label_order_follows_tfds():
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")
    assert get_task("wnli").label_names == ("not_entailment", "entailment")
    assert get_task("stsb").is_regression and get_task("stsb").num_labels == 1 and get_task("stsb").label_names is None
    assert get_task("mnli").num_labels == 3


def test_get_task_accepts_glue_spellings_and_lists_names_on_error():
    assert get_task("SST-2").name == "sst2" and get_task("STS-B").name == "stsb"
    with pytest.raises(TfkdError, match="unknown task 'sst'.*cola, sst2, mrpc"):
        get_task("sst")


def test_tasks_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_task("sst2").name = "x"


def test_resolve_split_accepts_tsv_and_tfds_names():
    mnli = get_task("mnli")
    assert mnli.resolve_split("train") is None
    assert mnli.resolve_split("dev") == mnli.resolve_split("validation_matched") == mnli.resolve_split("dev_matched") == 0
    assert mnli.resolve_split("dev_mismatched") == mnli.resolve_split("validation_mismatched") == 1
    with pytest.raises(TfkdError, match="unknown split 'test'.*dev_mismatched"):
        mnli.resolve_split("test")
