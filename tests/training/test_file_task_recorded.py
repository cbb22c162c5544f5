"""A run on your own CSV records its task, so `tfkd.evaluate` and the serving export need not be told it again.

The label names are given in an order that is not the sorted one: a command
that re-derived the task from the files (sorted labels) instead of reading the
recorded one would swap the classes, and these tests would see it.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfkd
from tests.export.tiny_runs import id_batch, keras_logits
from tests.helpers import tiny_run_config
from tfkd.data import load_split, make_tokenizer, tokenize
from tfkd.export import ExportOptions, export
from tfkd.models import load_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Logit order; sorted, they would be the other way round.
LABELS = ("thumbs_up", "thumbs_down")


def write_reviews_csv(tsv, path) -> None:
    """An SST-2-shaped TSV as the CSV a user would bring: other column names, string labels, an id column."""
    lines = tsv.read_text().splitlines()[1:]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "verdict"])
        for i, line in enumerate(lines):
            text, label = line.split("\t")
            writer.writerow([i, text, LABELS[1 - int(label)]])


@pytest.fixture(scope="module")
def csv_run(tiny_setup, tmp_path_factory):
    root = tmp_path_factory.mktemp("file_task")
    for split in ("train", "dev"):
        write_reviews_csv(tiny_setup / "glue" / "SST-2" / f"{split}.tsv", root / f"{split}.csv")
    config = tiny_run_config(tiny_setup, root / "run", method={"name": "kd"})
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, glue_dir=None, train_file=str(root / "train.csv"),
                                 dev_file=str(root / "dev.csv"), text_fields=("review",), label_field="verdict",
                                 label_names=LABELS, positive_label="thumbs_up", task="reviews"),
        # tiny_setup's teacher records sst2; its two outputs are taken as these two classes by position.
        teacher=dataclasses.replace(config.teacher, allow_task_mismatch=True))
    return root, tfkd.run_distill(config)


def test_evaluate_without_a_task_scores_the_recorded_task(csv_run):
    root, result = csv_run
    assert result.task_spec["label_names"] == list(LABELS)
    output = root / "metrics.json"
    done = subprocess.run([sys.executable, "-m", "tfkd.evaluate", f"--model={root / 'run' / 'model'}",
                           f"--output={output}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = json.loads(output.read_text())
    assert scored["task"] == "reviews" and scored["examples"] == 20
    assert set(scored["metrics"]) == {"accuracy", "f1"}
    # The dev evaluation of the run used the recorded task; swapped classes would change accuracy and F1.
    assert scored["metrics"] == pytest.approx(result.best_dev, abs=1e-6)


def test_the_serving_signature_carries_the_recorded_label_names(csv_run, tmp_path):
    root, _ = csv_run
    exported = export(ExportOptions(workdir=str(root / "run"), export_dir=str(tmp_path), quantize=(),
                                    text_tflite=False, force=True), log=lambda message: None)
    assert exported.export_metadata["label_names"] == list(LABELS)
    signature = tf.saved_model.load(exported.saved_model_dir).signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["review"]
    model, vocab, metadata = load_model_dir(str(root / "run" / "model"))
    dev = load_split(metadata.recorded_task(), "dev", None)
    served = signature(review=tf.constant(dev.text_a))
    expected = keras_logits(model, id_batch(tokenize(dev, make_tokenizer(vocab), metadata.max_seq_length)))
    np.testing.assert_allclose(served["logits"], expected, atol=1e-5)
    assert [label.decode() for label in served["label"].numpy()] == [LABELS[i] for i in expected.argmax(-1)]
    with open(os.path.join(exported.saved_model_dir, "assets.extra", "labels.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == list(LABELS)
