"""`python -m tfkd.predict --output=-`: the predictions, and nothing else, on standard output."""

import csv
import io
import os
import subprocess
import sys

import tfkd  # noqa: F401
from tfkd.data.tasks import get_task
from tfkd.models import BertModel, ModelMetadata, save_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ["good", "bad", "movie", "the", "was", "not", "fun"]


def test_csv_predictions_go_to_stdout_and_progress_to_stderr(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    model = BertModel(vocabulary_size=len(WORDS) + 5, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                      num_classes=2, max_sequence_length=16)
    save_model_dir(str(tmp_path / "model"), model, str(vocab), ModelMetadata(
        task="sst2", label_names=["negative", "positive"], max_seq_length=16, task_spec=get_task("sst2").to_dict()))
    (tmp_path / "in.csv").write_text('sentence,id\n"the movie, ""good""",1\nnot fun,2\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "tfkd.predict", f"--model={tmp_path / 'model'}", f"--input={tmp_path / 'in.csv'}",
         "--output=-", "--batch_size=4"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["sentence", "id", "predicted_label", "probability_negative", "probability_positive"]
    assert [row[:2] for row in rows[1:]] == [['the movie, "good"', "1"], ["not fun", "2"]]
    assert all(row[2] in ("negative", "positive") and abs(float(row[3]) + float(row[4]) - 1) < 1e-5 for row in rows[1:])
    assert "[tfkd] wrote 2 rows with predictions to standard output" in result.stderr
