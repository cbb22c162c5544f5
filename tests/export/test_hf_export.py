"""`tfkd.export --format=hf`: the student as a Hugging Face BertForSequenceClassification directory."""

import json
import os

import numpy as np
import pytest
from hf_reference import CONFIG, id_batch, write_classifier
from safetensors import safe_open

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.export.hf import export_hf, write_hf_directory
from tfkd.models import ModelMetadata, load_model_dir
from tfkd.models.sources import load_teacher


def shapes(path):
    with safe_open(path, framework="np") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


def logits(model, ids, seg, mask):
    return np.asarray(model({"token_ids": ids, "segment_ids": seg, "padding_mask": mask})["logits"])


def test_exported_student_loads_back_as_teacher_with_the_same_logits(tiny_runs, tmp_path):
    out = export_hf(tiny_runs.sst2, str(tmp_path / "hf"), log=lambda message: None)
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                       "tokenizer_config.json", "vocab.txt"]
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["architectures"] == ["BertForSequenceClassification"] and config["hidden_act"] == "gelu"
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["problem_type"] == "single_label_classification"
    assert json.load(open(os.path.join(out, "tokenizer_config.json")))["do_lower_case"] is True
    student, _, _ = load_model_dir(os.path.join(tiny_runs.sst2, "model"))
    loaded = load_teacher(out, num_classes=2)
    assert loaded.fine_tuned and loaded.metadata.label_names == ["negative", "positive"]
    ids, seg, mask = id_batch(lengths=(9, 5, 3))
    ids = np.minimum(ids, student.vocabulary_size - 1)
    np.testing.assert_allclose(logits(loaded.model, ids, seg, mask), logits(student, ids, seg, mask), atol=1e-5)


def test_key_names_and_shapes_equal_an_independently_written_directory(tmp_path):
    reference = str(tmp_path / "reference")
    weights = write_classifier(reference, ["negative", "positive"])
    teacher = load_teacher(reference, num_classes=2)
    write_hf_directory(str(tmp_path / "exported"), teacher.model, teacher.vocab_path,
                       ModelMetadata(label_names=["negative", "positive"]))
    assert shapes(str(tmp_path / "exported" / "model.safetensors")) == shapes(os.path.join(reference, "model.safetensors"))
    with safe_open(str(tmp_path / "exported" / "model.safetensors"), framework="np") as f:
        for key, value in weights.items():  # Hugging Face → tfkd → Hugging Face gives the same tensors
            np.testing.assert_allclose(f.get_tensor(key), value, atol=1e-7, err_msg=key)
    exported = json.load(open(tmp_path / "exported" / "config.json"))
    assert {k: exported[k] for k in CONFIG} == CONFIG


def test_a_non_empty_export_dir_is_refused(tiny_runs, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(TfkdError, match="is not empty. Fix"):
        export_hf(tiny_runs.sst2, str(tmp_path / "taken"), log=lambda message: None)


def test_a_regression_student_exports_as_one_score(tiny_runs, tmp_path):
    out = export_hf(tiny_runs.stsb, str(tmp_path / "hf"), force=True, log=lambda message: None)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "LABEL_0"}
    loaded = load_teacher(out, num_classes=1)
    assert loaded.fine_tuned and loaded.model.num_classes == 1 and loaded.metadata.label_names == []
