"""TFLite students: builtin ops only, batch 1 / fixed length, agreement with Keras per variant."""

import numpy as np
import pytest
from tiny_runs import id_batch, keras_logits

from tfkd.data import make_tokenizer, tokenize
from tfkd.export import LiteModel, logits_function
from tfkd.export.exporter import lite_inputs

# max |Δlogit| against Keras on the tiny student (|logits| up to 1.7), and the
# least share of equal predictions; measured: float32 3e-6, float16 1.0e-3,
# dynamic_int8 3e-6 (the converter leaves tensors under 1,024 weights in
# float, which is all of them here), full_int8 0.32 with 22 of 24 agreeing.
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "dynamic_int8": 5e-2, "full_int8": 5e-1}
AGREEMENT = {"float32": 1.0, "float16": 1.0, "dynamic_int8": 1.0, "full_int8": 0.75}


@pytest.fixture(scope="module")
def dev_at_lite_length(sst2_export):
    tokenizer = make_tokenizer(sst2_export.vocab_path, True)
    return tokenize(sst2_export.dev, tokenizer, sst2_export.tflite_seq_length)


def test_finite_mask_graph_equals_keras_on_padded_batches(sst2_export):
    batch = id_batch(sst2_export.dev_split)
    assert batch["padding_mask"].min() == 0  # rows of different lengths
    logits = logits_function(sst2_export.model)(batch["input_ids"], batch["segment_ids"], batch["padding_mask"])
    np.testing.assert_allclose(logits, keras_logits(sst2_export.model, batch), atol=1e-6)


@pytest.mark.parametrize("variant", list(TOLERANCE))
def test_id_variant_runs_in_plain_litert_and_agrees_with_keras(sst2_export, dev_at_lite_length, variant):
    n = sst2_export.tflite_seq_length
    lite = LiteModel(sst2_export.tflite_files[variant])  # no custom ops registered
    ops = lite.op_names()
    assert all(op.isupper() for op in ops), ops  # builtin op names only: no custom or Flex ops
    assert {name: (d["dtype"], d["shape"].tolist()) for name, d in lite.input_details.items()} == {
        name: (np.int32, [1, n]) for name in ("input_ids", "segment_ids", "padding_mask")}
    assert lite.output_details["logits"]["shape"].tolist() == [1, 2]
    split = dev_at_lite_length
    logits = np.concatenate([lite(**lite_inputs(split, i, n))["logits"] for i in range(len(split))])
    reference = keras_logits(sst2_export.model, id_batch(split))
    assert np.abs(logits - reference).max() < TOLERANCE[variant]
    assert np.mean(logits.argmax(-1) == reference.argmax(-1)) >= AGREEMENT[variant]


def test_full_int8_quantizes_attention_scores_in_a_narrow_range(sst2_export):
    """The softmax inputs are int8 with the range of real scores, not of a -1e9 mask."""
    lite = LiteModel(sst2_export.tflite_files["full_int8"])
    tensors = {t["index"]: t for t in lite.interpreter.get_tensor_details()}
    softmax_inputs = [tensors[op["inputs"][0]] for op in lite.interpreter._get_ops_details() if op["op_name"] == "SOFTMAX"]
    assert len(softmax_inputs) == 2  # one per layer
    for tensor in softmax_inputs:
        scale = tensor["quantization_parameters"]["scales"][0]
        assert tensor["dtype"] == np.int8 and 255 * scale < 50, (tensor["name"], scale)


def test_text_model_needs_tensorflow_text_ops_and_matches_the_text_signature(sst2_export, dev_at_lite_length):
    import tensorflow as tf

    path = sst2_export.tflite_files["text_float32"]
    with pytest.raises(Exception, match="FastBertNormalize"):  # plain LiteRT lacks the tokenizer kernels
        LiteModel(path)(sentence=np.array([b"a film"]))
    lite = LiteModel(path, custom_ops=True)
    assert {"FastBertNormalize", "FastWordpieceTokenizeWithOffsets"} <= set(lite.op_names())
    signature = tf.saved_model.load(sst2_export.saved_model_dir).signatures["serving_default"]
    texts = sst2_export.dev.text_a
    served = signature(sentence=tf.constant(texts))["logits"].numpy()
    split = dev_at_lite_length
    for i, text in enumerate(texts):
        out = lite(sentence=np.array([text.encode()]))
        ids = split.example(i)[0]
        np.testing.assert_array_equal(out["token_ids"][0, :len(ids)], ids)  # tokenized as in training
        np.testing.assert_allclose(out["logits"][0], served[i], atol=1e-5)


def test_pair_text_model_packs_and_truncates_like_training(mrpc_export):
    n = mrpc_export.tflite_seq_length
    assert n == 14
    split = tokenize(mrpc_export.dev, make_tokenizer(mrpc_export.vocab_path, True), n)
    assert split.num_truncated > 0
    lite = LiteModel(mrpc_export.tflite_files["text_float32"], custom_ops=True)
    reference = keras_logits(mrpc_export.model, id_batch(split))
    for i in range(len(split)):
        out = lite(sentence1=np.array([mrpc_export.dev.text_a[i].encode()]),
                   sentence2=np.array([mrpc_export.dev.text_b[i].encode()]))
        np.testing.assert_array_equal(out["token_ids"][0, :split.lengths[i]], split.example(i)[0])
        np.testing.assert_allclose(out["logits"][0], reference[i], atol=1e-5)
