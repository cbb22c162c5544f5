"""`python -m tfkd.bench` end to end on a tiny teacher: every row is timed and the ratios are consistent."""

import json
import subprocess
import sys

import pytest

import tfkd  # noqa: F401
from tests.cli.test_train import ROOT
from tests.helpers import write_vocab
from tfkd.models import BertModel, ModelMetadata, save_model_dir


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    vocab = str(root / "vocab.txt")
    vocab_size = write_vocab(vocab)
    teacher = BertModel(vocabulary_size=vocab_size, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        num_classes=2, max_sequence_length=32, name="teacher")
    save_model_dir(str(root / "teacher"), teacher, vocab, ModelMetadata(task="sst2", label_names=["a", "b"], role="teacher"))
    return root


def test_bench_times_every_row_against_floor_and_student(tiny_teacher):
    out = tiny_teacher / "bench.json"
    args = [
        f"--teacher={tiny_teacher / 'teacher'}", "--student_layers=1", "--student_hidden_dim=16", "--student_heads=2",
        "--student_intermediate_dim=32", "--batch_size=4", "--bench_lengths=8", "--bench_methods=internal",
        "--bench_steps=2", "--codir_num_negatives=8", "--bench_bank_rows=64", f"--bench_json={out}",
    ]
    result = subprocess.run([sys.executable, "-m", "tfkd.bench", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["step"]: row for row in report["rows"]}
    assert list(rows) == ["student", "floor", "peer", "internal", "feature_mse", "kd (cached)", "codir (cached)"]
    for row in rows.values():
        assert row["length"] == 8 and row["ms"] > 0 and row["first_step_s"] > 0
        assert row["x_floor"] == pytest.approx(row["ms"] / rows["floor"]["ms"])
        assert row["x_student"] == pytest.approx(row["ms"] / rows["student"]["ms"])
    assert "| 8 | codir (cached) |" in result.stdout
    assert report["command"].startswith("python -m tfkd.bench")
