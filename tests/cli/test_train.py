"""End-to-end runs of `python -m tfkd.train` and its error messages.

The fast tests use a tiny teacher saved as a tfkd model directory and small
TSV files written here; the `slow` test runs the real packaged MiniLM.
"""

import json
import os
import subprocess
import sys

import pytest

import tfkd  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def run_train(*args, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tfkd.train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def common(setup, workdir, *extra):
    return [
        f"--workdir={workdir}", f"--teacher={setup / 'teacher'}", f"--glue_dir={setup / 'glue'}", "--task=sst2",
        "--student_layers=1", "--student_hidden_dim=16", "--student_heads=2", "--student_intermediate_dim=32",
        "--student_init=teacher", "--max_seq_length=16", "--batch_size=8", "--eval_batch_size=8", "--epochs=2",
        "--learning_rate=1e-3", "--jit_compile=false", *extra,
    ]


def test_distill_writes_model_results_logs_and_resumes(tiny_setup, tmp_path):
    workdir = tmp_path / "run"
    result = run_train(*common(tiny_setup, workdir, "--method=kd"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "padding efficiency" in result.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["best_epoch"] in (1, 2) and 0.0 <= results["best_dev"]["accuracy"] <= 1.0
    assert len(results["dev_history"]) == 2 and results["train_examples_per_second"] > 0
    assert results["teacher"]["dev"]["accuracy"] >= 0
    assert os.path.exists(workdir / "model" / "model.keras") and os.path.exists(workdir / "model" / "vocab.txt")
    assert os.listdir(workdir / "logs")
    assert any(name.startswith("ckpt-12.") for name in os.listdir(workdir / "checkpoints"))  # 2 epochs x 6 steps
    # the same command again resumes after the last epoch instead of retraining
    again = run_train(*common(tiny_setup, workdir, "--method=kd"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout and "Epoch 1/" not in again.stdout


def assert_one_clear_error(result, status, message):
    assert result.returncode == status, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_input_gives_one_clear_error(tiny_setup, tmp_path):
    # Every bad setting is checked by the library (tests/training/test_api.py); the command turns the
    # error into one line and status 2.
    result = run_train(*common(tiny_setup, tmp_path / "bad", "--layer_map=1,2,3"), timeout=300)
    assert_one_clear_error(result, 2, "tfkd: error: --layer_map has 3 entries but the student has 1")
    assert sum(line.startswith("tfkd:") for line in result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch_size=0"], "--batch_size=0"),
        (["--student_layers_from=2,x"], "--student_layers_from takes comma-separated integers >= 1"),
        (["--warmup_ratio=1.5"], "--warmup_ratio=1.5"),
    ],
)
def test_out_of_range_flags_are_refused_before_any_work(tiny_setup, tmp_path, args, message):
    assert_one_clear_error(run_train(*common(tiny_setup, tmp_path / "bad", *args), timeout=300), 1, message)
    assert not (tmp_path / "bad").exists()


DEMO_CONFIG = """
import json, sys
from tfkd.cli import train
train.FLAGS(["tfkd.train", "--flagfile=configs/demo.flags"])
print(json.dumps(train.run_config().to_dict()))
"""


def test_the_demo_flagfile_is_the_run_it_says():
    # The README's API example runs the same pipeline (real MiniLM, CoDIR) in CI; this pins the flagfile's mapping.
    result = subprocess.run([sys.executable, "-c", DEMO_CONFIG], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads(result.stdout.strip().splitlines()[-1])
    assert config["mode"] == "distill" and config["workdir"] == "workdirs/demo"
    assert config["data"]["task"] == "synthetic" and config["data"]["pad_to_multiple_of"] == 16
    assert config["teacher"] == {"source": "minilm", "finetune_epochs": 2, "finetuned_dir": "", "learning_rate": 5e-5,
                                 "allow_task_mismatch": False}
    assert config["student"]["num_layers"] == 3 and config["student"]["layers_from"] == [2, 4, 6]
    assert config["method"]["name"] == "codir" and config["optim"]["epochs"] == 3


@pytest.mark.slow
def test_demo_pipeline_with_real_minilm(tmp_path):
    """The demo flagfile end to end on a subset: real teacher fine-tuning, CoDIR distillation, comparison table."""
    workdir = tmp_path / "demo"
    result = run_train("--flagfile=configs/demo.flags", f"--workdir={workdir}", "--max_train_examples=192",
                       "--finetune_teacher_epochs=1", "--epochs=1", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert [row["model"] for row in results["comparison"]] == ["teacher", "student (best dev)"]
    assert results["teacher"]["layers"] == 6 and results["student"]["layers"] == 3
    assert results["comparison"][1]["params"] < results["comparison"][0]["params"]
    assert os.path.exists(workdir / "teacher" / "model" / "model.keras")
