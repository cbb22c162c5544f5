"""A Hugging Face `BertForSequenceClassification` directory is a fine-tuned teacher as it is."""

import os

import numpy as np
import pytest
from hf_reference import id_batch, reference_logits, write_classifier

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.data.tasks import get_task
from tfkd.models.labels import match_label_order
from tfkd.models.sources import load_teacher


def logits(model, batch):
    ids, seg, mask = batch
    return np.asarray(model({"token_ids": ids, "segment_ids": seg, "padding_mask": mask})["logits"])


def test_head_and_encoder_match_an_independent_numpy_bert(tmp_path):
    weights = write_classifier(str(tmp_path / "clf"), ["negative", "positive"])
    loaded = load_teacher(str(tmp_path / "clf"), num_classes=2)
    assert loaded.fine_tuned and loaded.metadata.label_names == ["negative", "positive"]
    assert loaded.model.layer_norm_epsilon == 1e-7
    batch = id_batch()
    np.testing.assert_allclose(logits(loaded.model, batch), reference_logits(weights, *batch), atol=1e-5)
    assert match_label_order(loaded.model, loaded.metadata, get_task("sst2"), "the teacher") is None


def test_label_order_is_matched_by_name_and_head_rows_reordered(tmp_path):
    weights = write_classifier(str(tmp_path / "clf"), ["POSITIVE", "NEGATIVE"])
    loaded = load_teacher(str(tmp_path / "clf"), num_classes=2)
    line = match_label_order(loaded.model, loaded.metadata, get_task("sst2"), "the teacher")
    assert line == "the teacher: classes POSITIVE, NEGATIVE matched to sst2's negative, positive by name (head rows reordered)"
    batch = id_batch()
    np.testing.assert_allclose(logits(loaded.model, batch), reference_logits(weights, *batch)[:, ::-1], atol=1e-5)
    assert loaded.metadata.label_names == ["negative", "positive"]


def test_generic_label_names_are_taken_in_logit_order_with_a_log_line(tmp_path):
    weights = write_classifier(str(tmp_path / "clf"), ["LABEL_0", "LABEL_1"])
    loaded = load_teacher(str(tmp_path / "clf"), num_classes=2)
    line = match_label_order(loaded.model, loaded.metadata, get_task("mrpc"), "the teacher")
    assert "LABEL_0, LABEL_1 (transformers' defaults): taking its logits in mrpc's order not_equivalent, equivalent" in line
    batch = id_batch()
    np.testing.assert_allclose(logits(loaded.model, batch), reference_logits(weights, *batch), atol=1e-5)


def test_other_label_names_are_refused_with_both_lists(tmp_path):
    write_classifier(str(tmp_path / "clf"), ["yes", "no"])
    loaded = load_teacher(str(tmp_path / "clf"), num_classes=2)
    with pytest.raises(TfkdError, match=r"has the classes \[yes, no\] .* but sst2 has \[negative, positive\].*Fix"):
        match_label_order(loaded.model, loaded.metadata, get_task("sst2"), "the teacher")


def test_regression_head_is_one_score(tmp_path):
    weights = write_classifier(str(tmp_path / "reg"), [])
    loaded = load_teacher(str(tmp_path / "reg"), num_classes=1)
    assert loaded.fine_tuned and loaded.model.num_classes == 1 and loaded.metadata.label_names == []
    batch = id_batch()
    np.testing.assert_allclose(logits(loaded.model, batch), reference_logits(weights, *batch), atol=1e-5)


def test_classifier_without_head_tensors_is_refused(tmp_path):
    weights = write_classifier(str(tmp_path / "clf"), ["negative", "positive"])
    del weights["classifier.weight"]
    write_classifier(str(tmp_path / "clf"), ["negative", "positive"], weights=weights)
    with pytest.raises(TfkdError, match="lacks classifier.weight. Fix"):
        load_teacher(str(tmp_path / "clf"), num_classes=2)


def test_pytorch_bin_only_says_how_to_convert(tmp_path):
    directory = tmp_path / "torch_only"
    write_classifier(str(directory), ["negative", "positive"])
    os.rename(directory / "model.safetensors", directory / "pytorch_model.bin")
    with pytest.raises(TfkdError) as error:
        load_teacher(str(directory), num_classes=2)
    message = str(error.value)
    assert "\n" not in message and "holds only pytorch_model.bin" in message
    assert "t.AutoModelForSequenceClassification.from_pretrained(" in message and "safe_serialization=True" in message
