"""What `export` writes where: TF Serving layout, versions, models.config, metadata."""

import json
import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

import tfkd
from tfkd.core.errors import TfkdError
from tfkd.data import vocab_checksum
from tfkd.export import ExportOptions, export
from tfkd.export.saved_model import next_version


def quiet(message):
    pass


def test_serving_layout_holds_only_the_servable(sst2_export):
    export_dir = os.path.dirname(os.path.dirname(sst2_export.saved_model_dir))
    assert sst2_export.saved_model_dir == os.path.join(export_dir, "kd_sst2", "1")
    assert sorted(os.listdir(os.path.join(export_dir, "kd_sst2"))) == ["1"]  # no staging folder left
    # The export is shared by the session; `validate` (tests/export/test_validate.py) adds report.json to it.
    assert sorted(set(os.listdir(sst2_export.saved_model_dir)) - {"report.json"}) == [
        "assets", "assets.extra", "fingerprint.pb", "saved_model.pb", "tfkd_export.json", "variables"]
    assert sorted(os.listdir(os.path.join(sst2_export.saved_model_dir, "assets.extra"))) == [
        "labels.txt", "tf_serving_warmup_requests", "vocab.txt"]
    tflite_dir = os.path.join(export_dir, "tflite", "kd_sst2", "1")
    assert sorted(os.listdir(tflite_dir)) == sorted(
        [f"kd_sst2_{v}.tflite" for v in ("float32", "float16", "dynamic_int8", "full_int8", "text_float32")]
        + ["labels.txt", "tfkd_export.json", "vocab.txt"])


def test_models_config_is_a_valid_model_server_config(sst2_export):
    export_dir = os.path.dirname(os.path.dirname(sst2_export.saved_model_dir))
    with open(os.path.join(export_dir, "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.model_platform) == ("kd_sst2", "tensorflow")
    assert entry.base_path == os.path.abspath(os.path.join(export_dir, "kd_sst2"))


def test_metadata_records_provenance(sst2_export, tiny_runs):
    with open(os.path.join(sst2_export.saved_model_dir, "tfkd_export.json")) as f:
        meta = json.load(f)
    assert meta["tfkd_version"] == tfkd.__version__
    assert meta["vocab_sha256"] == vocab_checksum(tiny_runs.vocab)
    assert meta["task"] == "sst2" and meta["label_names"] == ["negative", "positive"]
    assert meta["method"]["name"] == "kd" and meta["method"]["losses"][0]["key"] == "kd"
    assert meta["teacher"]["source"] == "minilm"
    assert meta["teacher"]["model_dir"] == os.path.join(tiny_runs.sst2, "teacher", "model")
    assert meta["dev_metrics"] == {"student": {"accuracy": 0.80}, "teacher": {"accuracy": 0.82}}
    assert meta["flags"]["max_seq_length"] == 16
    assert meta["blessing"]["blessed"] is True and meta["blessing"]["forced"] is False
    assert meta["student"]["layers"] == 2 and meta["student"]["hidden_dim"] == 8
    assert meta["tflite"]["seq_length"] == sst2_export.tflite_seq_length
    assert meta["tflite"]["files"]["full_int8"]["inputs"]["input_ids"] == {
        "dtype": "int32", "shape": [1, sst2_export.tflite_seq_length]}
    # the phone bundle carries the same metadata
    with open(os.path.join(os.path.dirname(sst2_export.tflite_files["float32"]), "tfkd_export.json")) as f:
        assert json.load(f) == meta


def test_next_free_version_and_taken_versions(stsb_export, tmp_path):
    export_dir = os.path.dirname(os.path.dirname(stsb_export.saved_model_dir))
    assert stsb_export.version == 1
    assert next_version(os.path.join(export_dir, "kd_stsb")) == 2
    options = ExportOptions(stsb_export.run.workdir, export_dir, version=1, quantize=(), text_tflite=False, force=True)
    with pytest.raises(TfkdError, match="version 1 of 'kd_stsb' exists"):
        export(options, log=quiet)
    assert not os.path.exists(os.path.join(export_dir, "tflite"))  # nothing for phones was asked for
    for name in ("3", "10", "latest", ".tmp-11"):  # only integer folders are versions
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 11
    assert next_version(str(tmp_path / "new_model")) == 1


def test_model_name_must_suit_tf_serving(tiny_runs, tmp_path):
    with pytest.raises(TfkdError, match="model name 'my model'"):
        export(ExportOptions(tiny_runs.sst2, str(tmp_path), model_name="my model", quantize=()), log=quiet)


def test_shipped_models_config_example_parses():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "export", "models.config")) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == ["kd_mrpc", "kd_sst2"]
