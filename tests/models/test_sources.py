import json

import pytest

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.models.sources import load_hf_directory


def hf_directory(root, config_text):
    root.mkdir()
    (root / "config.json").write_text(config_text)
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    (root / "model.safetensors").write_bytes(b"")
    return str(root)


def test_damaged_hugging_face_directories_fail_with_a_fix(tmp_path):
    with pytest.raises(TfkdError, match="config.json' is not valid JSON .*Fix"):
        load_hf_directory(hf_directory(tmp_path / "bad_json", '{"model_type": "bert",'), 2)
    with pytest.raises(TfkdError, match="holds a JSON list, not an object"):
        load_hf_directory(hf_directory(tmp_path / "list", "[]"), 2)
    config = {"model_type": "bert", "vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 16, "max_position_embeddings": 16, "type_vocab_size": 2}
    with pytest.raises(TfkdError, match="keras-hub could not load the BERT checkpoint .*Fix"):
        load_hf_directory(hf_directory(tmp_path / "empty_weights", json.dumps(config)), 2)
