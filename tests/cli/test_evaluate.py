"""`python -m tfkd.evaluate` scores a model only on a task its outputs and its metadata fit."""

import json
import os
import subprocess
import sys

import pytest

from tfkd.core.errors import TfkdError
from tfkd.data.tasks import get_task
from tfkd.models import BertModel, ModelMetadata, check_task, save_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ["good", "bad", "movie", "the", "was", "not", "fun"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 2-class model fine-tuned (per its metadata) on SST-2, and tiny SST-2, MRPC and STS-B dev files."""
    root = tmp_path_factory.mktemp("evaluate")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    model = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                      num_classes=2, max_sequence_length=16)
    save_model_dir(str(root / "sst2_model"), model, str(vocab),
                   ModelMetadata(task="sst2", label_names=["negative", "positive"], role="student", max_seq_length=16))
    files = {
        "SST-2": ["sentence\tlabel", "the movie was good\t1", "not fun\t0"],
        "MRPC": ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tthe movie\tthe movie was good",
                 "0\t3\t4\tnot fun\tbad"],
        "STS-B": ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                  "0\tg\tf\ty\to\ts\ts\tthe movie\tthe movie was good\t3.5", "1\tg\tf\ty\to\ts\ts\tnot fun\tbad\t1.0"],
    }
    for folder, lines in files.items():
        (root / "glue" / folder).mkdir(parents=True)
        (root / "glue" / folder / "dev.tsv").write_text("\n".join(lines) + "\n")
    return root


def evaluate(setup, *args):
    return subprocess.run(
        [sys.executable, "-m", "tfkd.evaluate", f"--model={setup / 'sst2_model'}", f"--glue_dir={setup / 'glue'}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def assert_one_clear_error(result, message):
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"tfkd: error: {message}" in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]


def test_a_two_class_model_is_not_scored_on_a_regression_task(setup):
    result = evaluate(setup, "--task=stsb", "--allow_task_mismatch")  # no flag makes 2 logits a score
    assert_one_clear_error(result, f"the model '{setup / 'sst2_model'}' has 2 outputs but stsb needs 1 (a score). Fix: ")


def test_a_model_is_not_scored_on_another_task_than_its_own_unless_allowed(setup, tmp_path):
    result = evaluate(setup, "--task=mrpc")
    assert_one_clear_error(
        result, f"the model '{setup / 'sst2_model'}' was fine-tuned on sst2 (classes negative, positive), not on mrpc "
        "(classes not_equivalent, equivalent)")
    assert "--allow_task_mismatch" in result.stderr
    allowed = evaluate(setup, "--task=mrpc", "--allow_task_mismatch", f"--output={tmp_path / 'metrics.json'}")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["task"] == "mrpc"
    own = evaluate(setup)
    assert own.returncode == 0, own.stderr[-3000:]
    assert '"task": "sst2"' in own.stdout


def test_check_task_skips_models_that_record_no_task():
    model = BertModel(vocabulary_size=12, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, num_classes=2,
                      max_sequence_length=16)
    check_task(model, ModelMetadata(task=""), get_task("mrpc"), "the model", allow_other_task=False)
    with pytest.raises(TfkdError, match="has 2 outputs but mnli needs 3 .classes entailment, neutral, contradiction"):
        check_task(model, ModelMetadata(task=""), get_task("mnli"), "the model", allow_other_task=True)
