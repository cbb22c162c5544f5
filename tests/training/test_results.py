"""`RunResult`: one versioned results.json that round-trips, reads every older file, and refuses a damaged one in one line."""

import json
import os

import pytest

from tfkd.core.errors import TfkdError
from tfkd.training.config import MethodConfig, RunConfig
from tfkd.training.results import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    ComparisonRow,
    EvalResult,
    LossTerm,
    PretrainSummary,
    RunResult,
    StudentSummary,
    TeacherCacheSummary,
    TeacherSummary,
    read_result,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNS = os.path.join(ROOT, "docs", "runs")


def distill_result(**changes) -> RunResult:
    """A distillation result with every section filled."""
    dev = {"f1": 0.82, "accuracy": 0.70}
    values = dict(
        kind="distill", method="kd", task="mrpc", primary_metric="f1", best_epoch=1, best_dev=dev,
        last_dev={"f1": 0.81, "accuracy": 0.72}, dev_history=[{"epoch": 1, **dev}],
        train_examples_per_second=37.0, epoch_seconds=[1.5], wall_seconds=2.0, train_examples=3668,
        padding_efficiency=0.86,
        teacher_cache=TeacherCacheSummary(directory="run/teacher_cache", features=["logits"], dtype="float32",
                                          megabytes=0.03, built=True, seconds=60.0),
        peak_rss_mb=3465.7, student=StudentSummary(layers=3, hidden_dim=384, params=17_390_594),
        losses=[LossTerm(name="ce", key="ce", weight=0.5), LossTerm(name="kd", key="kd", weight=0.5,
                                                                     args={"temperature": 2.0})],
        algorithm="joint", layer_map=[(1, 2), (2, 4), (3, 6)],
        teacher=TeacherSummary(source="minilm", layers=6, params=22_713_986, dev={"f1": 0.85, "accuracy": 0.77}),
        comparison=[ComparisonRow(model="teacher", layers=6, params=22_713_986, dev={"f1": 0.85},
                                  forward_examples_per_second=65.3)],
        config=RunConfig(workdir="run", method=MethodConfig(name="kd")), flags={"method": "kd", "seed": 1},
        flag_changes=[{"flag": "batch_size", "old": 32, "new": 16}],
    )
    values.update(changes)
    return RunResult(**values)


def test_a_result_round_trips_through_strict_json(tmp_path):
    result = distill_result(train_examples_per_second=float("nan"))
    path = str(tmp_path / RESULTS_FILE)
    result.write(path)
    text = (tmp_path / RESULTS_FILE).read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert list(data)[:3] == ["schema_version", "kind", "role"] and data["schema_version"] == SCHEMA_VERSION
    assert data["train_examples_per_second"] is None and data["layer_map"] == [[1, 2], [2, 4], [3, 6]]
    assert data["config"] == RunConfig(workdir="run", method=MethodConfig(name="kd")).to_dict()
    assert read_result(str(tmp_path)) == read_result(path) == result == RunResult.from_dict(result.to_dict())
    assert result.primary == 0.82 and result.teacher_primary == 0.85 and result.role == "student"
    assert os.listdir(tmp_path) == [RESULTS_FILE]


def test_sections_given_as_plain_values_are_stored_as_the_dataclasses():
    plain = distill_result().to_dict()
    del plain["schema_version"]
    assert RunResult(**plain) == distill_result()
    assert isinstance(RunResult(**plain).teacher_cache, TeacherCacheSummary)


def test_role_and_method_follow_the_settings_unless_given():
    finetune = dict(kind="finetune", method=None, teacher=None, comparison=None)
    student_baseline = RunConfig(workdir="run", mode="finetune", finetune_model="student")
    assert distill_result(**finetune, config=student_baseline).role == "student"
    # The teacher a distillation run fine-tunes first records the distillation's settings.
    assert distill_result(**finetune, config=RunConfig(workdir="run")).role == "teacher"
    assert distill_result(**finetune, config=None, flags={"mode": "finetune", "finetune_model": "student"}).role == "student"
    assert distill_result(method=None, config=RunConfig(workdir="run", method=MethodConfig(name="ckd"))).method == "ckd"
    assert distill_result(method=None, config=None, flags={"method": "pkd"}).method == "pkd"
    assert distill_result(role="teacher", **finetune).role == "teacher"


@pytest.mark.parametrize("changes, message", [
    (dict(kind="bench"), "has kind 'bench'. Fix: use one of finetune, distill, pretrain."),
    (dict(role="oracle"), "has role 'oracle'"),
    (dict(best_dev=None), "of kind 'distill' lacks best_dev. Fix: a 'distill' result needs"),
    (dict(method=None, config=None, flags=None), "of kind 'distill' lacks method"),
    (dict(student={"layers": 3, "hidden_dim": "wide", "params": 1}), "has student.hidden_dim = a string, not an integer"),
    (dict(student={"layers": 3}), "lacks student.hidden_dim, student.params"),
    (dict(losses=[{"name": "kd", "key": "kd", "weight": 1.0, "colour": "red"}]), "unknown key(s) losses[0].colour"),
])
def test_a_result_that_does_not_fit_is_refused_when_built(changes, message):
    with pytest.raises(TfkdError, match="^the run result ") as error:
        distill_result(**changes)
    assert message in str(error.value) and "Fix: " in str(error.value)


@pytest.mark.parametrize("text, problem", [
    (None, "does not exist. Fix: re-run the command that wrote it"),
    ('{"schema_version": 1, "kind": "distill", ', "is not valid JSON (Expecting property name"),
    ("[1, 2]", "is a list, not a JSON object. Fix: re-run"),
    (lambda d: {k: v for k, v in d.items() if k != "student"}, "lacks student. Fix: re-run"),
    (lambda d: {**d, "best_dev": {"f1": "high"}}, "has best_dev.f1 = a string, not a number. Fix: re-run"),
    (lambda d: {**d, "extra": 1}, "has unknown key(s) extra. Fix: re-run"),
    (lambda d: {**d, "schema_version": "one"}, "has schema_version 'one', not a version number"),
    (lambda d: {**d, "schema_version": SCHEMA_VERSION + 1},
     f"has schema version {SCHEMA_VERSION + 1}; this tfkd reads versions up to {SCHEMA_VERSION}. Fix: read it with "
     f"a tfkd that knows schema version {SCHEMA_VERSION + 1} (upgrade tfkd)."),
])
def test_a_damaged_file_is_one_line_naming_the_file_the_problem_and_the_fix(tmp_path, text, problem):
    file = tmp_path / RESULTS_FILE
    if callable(text):
        text = json.dumps(text(distill_result().to_dict()))
    if text is not None:
        file.write_text(text)
    with pytest.raises(TfkdError) as error:
        read_result(str(tmp_path) if text is None else str(file))
    message = str(error.value)
    assert message.startswith(f"'{file}' {problem}") and "\n" not in message and "Fix: " in message


def test_an_unversioned_docs_runs_file_reads_as_version_0():
    result = read_result(os.path.join(RUNS, "kd_mrpc_s1"))
    assert (result.kind, result.role, result.method, result.algorithm) == ("distill", "student", "kd", "joint")
    # docs/results.md: 82.02 / 70.34, 81.92 / 71.32, 81.99 / 72.55 per epoch.
    assert [(round(100 * e["f1"], 2), round(100 * e["accuracy"], 2)) for e in result.dev_history] == [
        (82.02, 70.34), (81.92, 71.32), (81.99, 72.55)]
    assert result.primary == result.best_dev["f1"] and result.teacher_primary == pytest.approx(0.8535, abs=1e-4)
    assert result.config is None and result.flags["method"] == "kd" and result.losses[1].args == {"temperature": 2.0}
    assert result.setting("data", "glue_dir", flag="glue_dir") == result.flags["glue_dir"]
    assert RunResult.from_dict(result.to_dict()) == result


@pytest.mark.parametrize("run, role", [("teacher_mrpc", "teacher"), ("student_mrpc_s2", "student")])
def test_unversioned_fine_tuning_runs_say_which_model_they_trained(run, role):
    result = read_result(os.path.join(RUNS, run))
    assert (result.kind, result.role, result.method, result.teacher) == ("finetune", role, None, None)


def test_every_unversioned_docs_runs_file_reads_as_the_kind_its_flags_ran():
    """kd_sst2_sub is a distillation run whose results.json was written before its teacher comparison."""
    for run in sorted(os.listdir(RUNS)):
        if json.loads(open(os.path.join(RUNS, run, RESULTS_FILE)).read()).get("schema_version", 0):
            continue
        result = read_result(os.path.join(RUNS, run))
        assert result.kind == ("finetune" if result.flags["mode"] == "finetune" else "distill"), run


def test_an_unversioned_teacher_fine_tuned_inside_a_distillation_run_reads_as_the_teacher(tmp_path):
    legacy = json.loads(open(os.path.join(RUNS, "teacher_mrpc", RESULTS_FILE)).read())
    legacy["flags"].update(mode="distill", finetune_model="student")  # the flags of the distillation run
    (tmp_path / RESULTS_FILE).write_text(json.dumps(legacy))
    result = read_result(str(tmp_path))
    assert (result.kind, result.role, result.method) == ("finetune", "teacher", None)


def test_an_unversioned_pretraining_file_reads_as_a_pretrain_result(tmp_path):
    history = [{"epoch": 1, "mlm": 3.1, "codir": 2.0, "total": 3.3}, {"epoch": 2, "mlm": 2.7, "codir": 1.9, "total": 2.9}]
    legacy = {
        "stage": "codir_pretrain", "corpus": "glue/sst2 train texts", "train_examples": 64,
        "losses": {"mlm": 2.7, "codir": 1.9, "total": 2.9}, "mlm_loss": 2.7, "codir_loss": 1.9,
        "loss_history": history, "mlm_logit_kd": "KD on MLM logits: skipped.", "train_examples_per_second": None,
        "epoch_seconds": [3.0, 2.0], "wall_seconds": 5.5, "padding_efficiency": 0.8, "max_predictions_per_example": 20,
        "teacher": {"source": "minilm", "layers": 6, "params": 22_713_986},
        "student": {"layers": 3, "hidden_dim": 384, "params": 17_390_594}, "layer_map": [[1, 2], [2, 4], [3, 6]],
        "model_dir": "workdirs/codir_pretrain/model", "flags": {"codir_weight": 0.1, "teacher": "minilm"},
    }
    (tmp_path / RESULTS_FILE).write_text(json.dumps(legacy))
    result = read_result(str(tmp_path))
    assert (result.kind, result.role, result.method, result.task, result.primary) == ("pretrain", "student", None, None, None)
    assert result.pretrain == PretrainSummary(corpus="glue/sst2 train texts", loss_history=history,
                                              max_predictions_per_example=20, model_dir="workdirs/codir_pretrain/model",
                                              mlm_logit_kd="KD on MLM logits: skipped.")
    assert result.pretrain.final_losses == {"mlm": 2.7, "codir": 1.9, "total": 2.9}
    assert result.teacher.dev is None and result.teacher_primary is None and result.losses == []
    rewritten = result.to_dict()
    assert "task" not in rewritten and "dev" not in rewritten["teacher"] and RunResult.from_dict(rewritten) == result


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    path = str(tmp_path / RESULTS_FILE)
    distill_result().write(path)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        distill_result(best_epoch=3).write(path)
    assert os.listdir(tmp_path) == [RESULTS_FILE] and read_result(path).best_epoch == 1


def test_an_evaluation_result_is_versioned_strict_json(tmp_path):
    path = str(tmp_path / "metrics.json")
    EvalResult(model="run/model", task="mrpc", split="dev", examples=408, metrics={"f1": float("nan")},
               forward_examples_per_second=150.0).write(path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "schema_version": SCHEMA_VERSION, "model": "run/model", "task": "mrpc", "split": "dev", "examples": 408,
        "metrics": {"f1": None}, "forward_examples_per_second": 150.0}
