import keras
import keras_hub
import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.models import BertModel, copy_weights_by_layer_name
from tfkd.models.encoder import TransformerEncoder

TINY = dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)


def ragged_inputs(batch=3, length=7, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    lengths = [length, 4, 2][:batch]
    mask = np.zeros((batch, length), "int32")
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return {
        "token_ids": (rng.integers(1, vocab, (batch, length)) * mask).astype("int32"),
        "segment_ids": np.zeros((batch, length), "int32"),
        "padding_mask": mask,
    }


def test_outputs_structure_and_attention_probabilities():
    model = BertModel(**TINY, num_classes=3, output_attentions=True)
    x = ragged_inputs()
    out = model(x)
    assert out["logits"].shape == (3, 3)
    assert len(out["hidden_states"]) == 3 and out["hidden_states"][0].shape == (3, 7, 8)
    assert len(out["attentions"]) == 2 and out["attentions"][0].shape == (3, 2, 7, 7)
    probs = out["attentions"][1].numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # keys beyond a row's length get no attention
    assert np.abs(probs[1, :, :, 4:]).max() < 1e-6 and np.abs(probs[2, :, :, 2:]).max() < 1e-6


@pytest.mark.parametrize("exact", [True, False])
def test_hidden_states_equal_keras_hub_backbone(exact):
    backbone = keras_hub.models.BertBackbone(**TINY)
    if exact:  # give keras-hub the same activation to compare the graph, not the GELU form
        for layer in backbone.transformer_layers:
            layer._feedforward_intermediate_dense.activation = keras.activations.get("gelu")
    model = BertModel(**TINY, num_classes=2, exact_gelu=exact, output_attentions=False)
    copy_weights_by_layer_name(backbone, model)
    x = ragged_inputs()
    reference = backbone(x)
    out = model(x)
    mask = x["padding_mask"][..., None]
    np.testing.assert_allclose(out["hidden_states"][-1] * mask, reference["sequence_output"] * mask, atol=1e-5)
    # turning attention outputs on changes nothing else
    twin = model.with_outputs(True)
    np.testing.assert_allclose(twin(x)["hidden_states"][-1], out["hidden_states"][-1], atol=1e-5)


def test_exact_gelu_is_the_erf_form():
    def activation(model):
        return model.transformer_layers[0]._feedforward_intermediate_dense.activation
    x = np.array([1.0, -0.5], "float32")
    # erf GELU: x·Φ(x); Φ(1) = 0.841345, Φ(-0.5) = 0.308538. The tanh form gives 0.841192 at 1.
    np.testing.assert_allclose(activation(BertModel(**TINY, exact_gelu=True))(x), [0.841345, -0.154269], atol=1e-6)
    assert abs(float(activation(BertModel(**TINY, exact_gelu=False))(x)[0]) - 0.841192) < 1e-5


def test_config_round_trip_and_keras_saving(tmp_path):
    model = BertModel(**TINY, num_classes=2, exact_gelu=True)
    clone = BertModel.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    x = ragged_inputs()
    np.testing.assert_allclose(restored(x)["logits"], model(x)["logits"], atol=1e-6)
    assert restored.exact_gelu is True


def test_logits_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = BertModel(**TINY, output_attentions=True)
    out = model(ragged_inputs())
    assert out["logits"].dtype == "float32"
    assert out["hidden_states"][1].dtype == "bfloat16"


def test_encoder_layer_config_keeps_attention_flag():
    layer = TransformerEncoder(num_heads=2, intermediate_dim=8, return_attention_scores=True)
    restored = TransformerEncoder.from_config(layer.get_config())
    y, probs = restored(np.zeros((1, 3, 4), "float32"))
    assert probs.shape == (1, 2, 3, 3)
