"""End to end: `python -m tfkd.pretrain` (CoDIR-Pre), then fine-tuning that starts from its student.

A tiny teacher saved as a tfkd model directory and a small text file, as in
tests/test_train.py; the pre-trained student must be accepted by
`python -m tfkd.train --student_init=<dir>` and copied into it 1:1.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfkd  # noqa: F401
from tests.cli.test_train import ROOT, run_train
from tests.helpers import WORDS, write_vocab
from tfkd.models import BertModel, ModelMetadata, load_model_dir, save_model_dir
from tfkd.models.bert import ENCODER_LAYER_NAMES

TINY_STUDENT = ["--student_layers=2", "--student_hidden_dim=16", "--student_heads=2", "--student_intermediate_dim=32"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    vocab = str(root / "vocab.txt")
    teacher = BertModel(vocabulary_size=write_vocab(vocab), num_layers=2, num_heads=2, hidden_dim=16,
                        intermediate_dim=32, num_classes=2, max_sequence_length=32, name="teacher")
    save_model_dir(str(root / "teacher"), teacher, vocab,
                   ModelMetadata(task="sst2", label_names=["negative", "positive"], base="", role="teacher"))
    rng = np.random.default_rng(0)
    (root / "corpus.txt").write_text("\n".join(" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(40)) + "\n")
    glue = root / "glue" / "SST-2"
    glue.mkdir(parents=True)
    for split, n in (("train", 16), ("dev", 8)):
        rows = ["sentence\tlabel"] + [" ".join(rng.choice(WORDS, size=4)) + f"\t{i % 2}" for i in range(n)]
        (glue / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def run_pretrain(*args, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tfkd.pretrain", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_pretrain_writes_a_student_that_fine_tuning_starts_from(setup, tmp_path):
    workdir = tmp_path / "pre"
    result = run_pretrain(
        f"--workdir={workdir}", f"--teacher={setup / 'teacher'}", f"--text_file={setup / 'corpus.txt'}", *TINY_STUDENT,
        "--student_init=teacher", "--max_seq_length=16", "--batch_size=8", "--epochs=1", "--codir_num_negatives=4",
        "--codir_projection_dim=8", "--learning_rate=1e-3", "--jit_compile=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "KD on MLM logits: skipped" in result.stdout
    results = json.loads((workdir / "results.json").read_text())
    assert results["train_examples"] == 40 and results["train_examples_per_second"] > 0
    final = results["pretrain"]["loss_history"][-1]
    assert np.isfinite(final["mlm"]) and final["mlm"] > 0
    assert np.isfinite(final["codir"]) and final["codir"] > 0
    pretrained, _, metadata = load_model_dir(str(workdir / "model"))
    assert metadata.role == "student" and metadata.task == "" and metadata.extra["stage"] == "codir_pretrain"
    assert pretrained.num_layers == 2 and not any("mlm" in w.path or "codir" in w.path for w in pretrained.weights)

    # Learning rate 0: the fine-tuned student still holds exactly the weights it started from.
    finetuned_dir = tmp_path / "fine"
    result = run_train(
        f"--workdir={finetuned_dir}", f"--teacher={setup / 'teacher'}", f"--glue_dir={setup / 'glue'}", "--task=sst2",
        *TINY_STUDENT, f"--student_init={workdir / 'model'}", "--max_seq_length=16", "--batch_size=8",
        "--eval_batch_size=8", "--epochs=1", "--learning_rate=0", "--jit_compile=false", "--method=kd",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    finetuned, _, _ = load_model_dir(str(finetuned_dir / "model"))
    for name in (*ENCODER_LAYER_NAMES, "transformer_layer_0", "transformer_layer_1"):
        for got, want in zip(finetuned.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_a_missing_corpus_gives_one_clear_error(setup, tmp_path):
    result = run_pretrain(f"--workdir={tmp_path / 'bad'}", f"--teacher={setup / 'teacher'}", *TINY_STUDENT, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "exactly one corpus" in result.stderr and "Traceback" not in result.stderr


def test_the_pretrained_masked_lm_feeds_the_mlm_augmenter_and_an_older_run_gets_its_head_on_a_rerun(setup, tmp_path):
    from tfkd.models.masked_lm import HEAD_FILE, HEAD_METADATA_KEY, MaskedLM

    workdir = tmp_path / "pre"
    command = (f"--workdir={workdir}", f"--teacher={setup / 'teacher'}", f"--text_file={setup / 'corpus.txt'}",
               *TINY_STUDENT, "--student_init=teacher", "--max_seq_length=16", "--batch_size=8", "--epochs=1",
               "--codir_weight=0", "--learning_rate=1e-3", "--jit_compile=false")
    result = run_pretrain(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = workdir / "model"
    with np.load(model_dir / HEAD_FILE) as arrays:
        trained = {name: arrays[name] for name in arrays.files}
    assert set(trained) == {"output_bias", "intermediate_dense/kernel", "intermediate_dense/bias",
                            "intermediate_layer_norm/gamma", "intermediate_layer_norm/beta"}
    assert np.abs(trained["output_bias"]).max() > 0  # trained: the head starts with a zero bias
    inputs = {"token_ids": np.array([[2, 5, 4, 7, 3]]), "segment_ids": np.zeros((1, 5), "int32"),
              "padding_mask": np.ones((1, 5), "int32"), "mask_positions": np.array([[2, 3]])}
    logits = np.asarray(MaskedLM.from_directory(str(workdir))(inputs))  # the run folder or its model/
    np.testing.assert_array_equal(logits, np.asarray(MaskedLM.from_directory(str(model_dir))(inputs)))

    # A run saved before the head was: the same command restores its last checkpoint and writes the head.
    os.remove(model_dir / HEAD_FILE)
    meta = json.loads((model_dir / "tfkd_model.json").read_text())
    del meta["extra"][HEAD_METADATA_KEY]
    (model_dir / "tfkd_model.json").write_text(json.dumps(meta))
    with pytest.raises(tfkd.TfkdError, match="has no masked-LM head .* run again"):
        MaskedLM.from_directory(str(model_dir))
    result = run_pretrain(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote its masked-LM head" in result.stdout
    with np.load(model_dir / HEAD_FILE) as arrays:
        for name, value in trained.items():
            np.testing.assert_array_equal(arrays[name], value, err_msg=name)

    augmented_dir = tmp_path / "augmented"
    result = run_train(
        f"--workdir={augmented_dir}", f"--teacher={setup / 'teacher'}", f"--glue_dir={setup / 'glue'}", "--task=sst2",
        *TINY_STUDENT, "--max_seq_length=16", "--batch_size=8", "--eval_batch_size=8", "--epochs=1",
        "--student_init=teacher", "--jit_compile=false", "--method=kd", "--augment=mlm", "--augment_factor=2",
        f"--augment_args=mlm.preset={model_dir},mlm.probability=0.5",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    augmentation = json.loads((augmented_dir / "results.json").read_text())["augmentation"]
    assert augmentation["augmenters"] == ["mlm"] and augmentation["made"] == 32 and augmentation["kept"] > 0
