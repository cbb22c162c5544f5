"""Distilling from a Hugging Face classifier directory: its own head teaches, matched to the task by name,
and nothing fine-tunes it first.

The directory is written from NumPy with `id2label` in the opposite order to
sst2's classes, so a head used as stored (or a teacher re-fine-tuned before
teaching) gives other logits than the NumPy forward pass with its columns
swapped.
"""

import dataclasses
import os

import numpy as np
import pytest
from hf_reference import reference_logits, write_classifier

import tfkd
from tests.export.tiny_runs import id_batch
from tests.helpers import tiny_run_config
from tfkd.data import get_task, load_split, make_tokenizer, tokenize


def reference(weights, split):
    """The NumPy BERT's logits of `split`'s examples, in sst2's class order (the directory stores them reversed)."""
    batch = id_batch(split)
    return reference_logits(weights, batch["input_ids"], batch["segment_ids"], batch["padding_mask"])[:, ::-1]


@pytest.fixture(scope="module")
def hf_run(tiny_setup, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_teacher")
    weights = write_classifier(str(root / "bert_sst2"), ["POSITIVE", "NEGATIVE"])
    config = tiny_run_config(tiny_setup, root / "kd", method={"name": "kd"})
    config = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, source=str(root / "bert_sst2")))
    return root, weights, tfkd.run_distill(config)


def test_the_directorys_head_teaches_without_fine_tuning(hf_run, tiny_setup):
    root, weights, result = hf_run
    assert not os.path.exists(root / "kd" / "teacher")  # where a fine-tuned teacher would have been written
    assert result.teacher.source == str(root / "bert_sst2") and result.teacher.layers == 2
    assert result.teacher_cache.built and result.teacher_cache.features == ["logits"]
    train = tokenize(load_split(get_task("sst2"), "train", str(tiny_setup / "glue")),
                     make_tokenizer(str(root / "bert_sst2" / "vocab.txt")), 16)
    cache = result.teacher_cache.directory
    np.testing.assert_array_equal(np.load(os.path.join(cache, "index.npy")), train.index)
    expected = reference(weights, train)
    assert (expected.argmax(-1) == 0).any() and (expected.argmax(-1) == 1).any()  # a swap would show
    np.testing.assert_allclose(np.load(os.path.join(cache, "logits.npy")), expected, atol=1e-5)


def test_the_teachers_dev_score_is_the_reordered_heads(hf_run, tiny_setup):
    root, weights, result = hf_run
    dev = load_split(get_task("sst2"), "dev", str(tiny_setup / "glue"))
    predicted = reference(weights, tokenize(dev, make_tokenizer(str(root / "bert_sst2" / "vocab.txt")), 16)).argmax(-1)
    assert result.teacher.dev["accuracy"] == pytest.approx(float(np.mean(predicted == dev.labels)))
    assert len(result.dev_history) == 1 and 0 <= result.best_dev["accuracy"] <= 1
