"""`tfkd.models.masked_lm`: a tfkd encoder's MLM head saved beside it, loaded back exactly, refused in one line
when missing, damaged or for another vocabulary."""

import json
import os

import numpy as np
import pytest

from tests.helpers import write_vocab
from tfkd.core.errors import TfkdError
from tfkd.data.augment import AUGMENTERS, AugmentContext
from tfkd.data.tokenizer import read_vocab
from tfkd.models import BertModel, ModelMetadata, save_model_dir
from tfkd.models.masked_lm import HEAD_FILE, HEAD_METADATA_KEY, MaskedLM, load_masked_lm, masked_lm_head, save_head

INPUTS = {"token_ids": np.array([[2, 5, 4, 7, 3], [2, 6, 8, 4, 3]]), "segment_ids": np.zeros((2, 5), "int32"),
          "padding_mask": np.ones((2, 5), "int32"), "mask_positions": np.array([[3, 1], [3, 2]])}


@pytest.fixture
def saved(tmp_path):
    vocab = str(tmp_path / "vocab.txt")
    encoder = BertModel(write_vocab(vocab), num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        max_sequence_length=16)
    head = masked_lm_head(encoder.get_layer("token_embedding"), layer_norm_epsilon=1e-6)
    rng = np.random.default_rng(0)
    for variable in head.weights:  # not the initial values, so a load that skipped a weight would show
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    directory = str(tmp_path / "model")
    os.makedirs(directory)
    save_model_dir(directory, encoder, vocab, ModelMetadata(extra={HEAD_METADATA_KEY: save_head(directory, head)}))
    hidden = encoder({k: INPUTS[k] for k in ("token_ids", "segment_ids", "padding_mask")})["hidden_states"][-1]
    return directory, np.asarray(head(hidden, mask_positions=INPUTS["mask_positions"]))


def test_the_loaded_masked_lm_computes_what_the_saved_one_did(saved):
    directory, want = saved
    model = MaskedLM.from_directory(directory)
    assert model.head.layer_norm_epsilon == 1e-6
    np.testing.assert_allclose(np.asarray(model(INPUTS)), want, rtol=1e-5, atol=1e-5)


def test_the_mlm_augmenter_loads_a_tfkd_masked_lm_and_keras_hub_presets_still_go_to_keras_hub(saved, tmp_path):
    directory, _ = saved
    vocabulary = read_vocab(os.path.join(directory, "vocab.txt"))
    context = AugmentContext(vocabulary, 16, load_masked_lm=load_masked_lm)
    assert isinstance(AUGMENTERS.get("mlm")(context, preset=directory).model, MaskedLM)
    with pytest.raises(TfkdError, match="cannot load the keras-hub masked LM 'no_such_preset'"):
        load_masked_lm("no_such_preset", vocabulary)


def test_a_missing_damaged_or_foreign_head_is_one_line_with_a_fix(saved, tmp_path):
    directory, _ = saved
    vocabulary = read_vocab(os.path.join(directory, "vocab.txt"))
    with pytest.raises(TfkdError, match="another vocabulary") as error:
        load_masked_lm(directory, vocabulary[:-1] + ["[unused9]"])
    assert "Fix: pass AugmentConfig.args=mlm.preset=" in str(error.value) and "\n" not in str(error.value)

    with np.load(os.path.join(directory, HEAD_FILE)) as arrays:
        heads = {name: arrays[name] for name in arrays.files}
    np.savez(os.path.join(directory, HEAD_FILE), **{**heads, "intermediate_dense/kernel": np.zeros((8, 9))})
    with pytest.raises(TfkdError, match=r"does not hold this encoder's head \(intermediate_dense/kernel is \(8, 9\)\)"):
        MaskedLM.from_directory(directory)

    with open(os.path.join(directory, HEAD_FILE), "wb") as f:
        f.write(b"not a numpy archive")
    with pytest.raises(TfkdError, match="could not be read"):
        MaskedLM.from_directory(directory)

    meta_path = os.path.join(directory, "tfkd_model.json")
    with open(meta_path) as f:
        meta = json.load(f)
    del meta["extra"][HEAD_METADATA_KEY]
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    with pytest.raises(TfkdError, match="has no masked-LM head") as error:
        load_masked_lm(directory, vocabulary)
    assert "python -m tfkd.pretrain" in str(error.value) and "\n" not in str(error.value)
