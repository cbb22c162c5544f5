"""Clear errors for workdirs that hold no trained student, and the command line around them."""

import os
import subprocess
import sys

import pytest

from tfkd.core.errors import TfkdError
from tfkd.export import ExportOptions, export, load_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_missing_workdir(tmp_path):
    with pytest.raises(TfkdError, match="does not exist"):
        load_run(str(tmp_path / "nope"))


def test_workdir_without_trained_student(tmp_path):
    (tmp_path / "logs").mkdir()
    with pytest.raises(TfkdError, match=r"holds no trained student .*Fix: train one first"):
        load_run(str(tmp_path))


def test_student_without_results_json(tmp_path, tiny_runs):
    import shutil

    shutil.copytree(os.path.join(tiny_runs.sst2, "model"), tmp_path / "model")
    with pytest.raises(TfkdError, match="no results.json: the run has not finished"):
        load_run(str(tmp_path))
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(TfkdError, match="not valid JSON"):
        load_run(str(tmp_path))
    (tmp_path / "results.json").write_text('{"schema_version": 99, "kind": "distill"}')
    with pytest.raises(TfkdError, match="results.json' has schema version 99; .*Fix: read it with a tfkd that knows"):
        load_run(str(tmp_path))


def test_a_pretraining_workdir_is_refused_with_the_way_to_a_task_model(tmp_path, tiny_runs):
    import shutil

    from tfkd.training.results import PretrainSummary, RunResult, StudentSummary

    shutil.copytree(os.path.join(tiny_runs.sst2, "model"), tmp_path / "model")
    RunResult(kind="pretrain", train_examples=64, train_examples_per_second=10.0, epoch_seconds=[1.0],
              wall_seconds=1.0, padding_efficiency=0.8, student=StudentSummary(layers=2, hidden_dim=8, params=1),
              losses=[], pretrain=PretrainSummary(corpus="sst2", loss_history=[], max_predictions_per_example=3,
                                                  model_dir=str(tmp_path / "model"))).write(str(tmp_path / "results.json"))
    with pytest.raises(TfkdError, match=r"is a tfkd.pretrain run: .*Fix: distil it on a task first \(python -m tfkd.train StudentConfig\.init="):
        load_run(str(tmp_path))


def test_bad_options(tiny_runs, tmp_path):
    with pytest.raises(TfkdError, match="unknown variant\\(s\\) int4"):
        export(ExportOptions(tiny_runs.sst2, str(tmp_path), quantize=["int4"]))
    with pytest.raises(TfkdError, match=r"ExportOptions\.tflite_seq_length=99"):
        export(ExportOptions(tiny_runs.sst2, str(tmp_path), quantize=["float32"], text_tflite=False,
                             tflite_seq_length=99), log=lambda m: None)


def test_command_line_prints_one_error_line_and_exits_2(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "tfkd.export", f"--workdir={tmp_path}", f"--export_dir={tmp_path / 'out'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 2
    assert "tfkd: error: " in process.stderr and "holds no trained student" in process.stderr
    assert "Traceback" not in process.stderr


def test_export_dir_that_is_a_file_is_refused_before_any_work(tiny_runs, tmp_path):
    (tmp_path / "serving").write_text("not a directory")
    with pytest.raises(TfkdError, match=r"ExportOptions\.export_dir=.*serving is a file, not a directory. Fix: "):
        export(ExportOptions(tiny_runs.sst2, str(tmp_path / "serving")), log=lambda m: pytest.fail(f"work started: {m}"))
    process = subprocess.run(
        [sys.executable, "-m", "tfkd.export", f"--workdir={tiny_runs.sst2}", f"--export_dir={tmp_path / 'serving'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert f"tfkd: error: --export_dir={tmp_path / 'serving'} is a file, not a directory" in process.stderr
