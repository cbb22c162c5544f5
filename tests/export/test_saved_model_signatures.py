"""The serving SavedModel: signature names, dtypes and shapes; text vs id signatures; ops it needs."""

import os

import numpy as np
import tensorflow as tf
from tiny_runs import id_batch, keras_logits

from tfkd.export import required_ops

TEXT_OPS = ["CaseFoldUTF8", "FastWordpieceTokenizeWithOffsets", "NormalizeUTF8", "RegexSplitWithOffsets"]


def specs(function):
    inputs = {name: (spec.dtype, spec.shape.as_list()) for name, spec in function.structured_input_signature[1].items()}
    outputs = {name: (spec.dtype, spec.shape.as_list()) for name, spec in function.structured_outputs.items()}
    return inputs, outputs


def test_signature_names_dtypes_and_shapes(sst2_export):
    signatures = tf.saved_model.load(sst2_export.saved_model_dir).signatures
    assert sorted(signatures) == ["predict_ids", "serving_default"]
    outputs = {"probabilities": (tf.float32, [None, 2]), "label": (tf.string, [None]), "logits": (tf.float32, [None, 2])}
    assert specs(signatures["serving_default"]) == ({"sentence": (tf.string, [None])}, outputs)
    ids = {name: (tf.int32, [None, None]) for name in ("input_ids", "segment_ids", "padding_mask")}
    assert specs(signatures["predict_ids"]) == (ids, outputs)


def test_text_signature_tokenizes_like_training_and_matches_keras(sst2_export):
    signatures = tf.saved_model.load(sst2_export.saved_model_dir).signatures
    dev, split = sst2_export.dev, sst2_export.dev_split  # tokenized by tfkd.data, as in training
    text_out = signatures["serving_default"](sentence=tf.constant(dev.text_a))
    batch = id_batch(split)
    ids_out = signatures["predict_ids"](**{k: tf.constant(v) for k, v in batch.items()})
    reference = keras_logits(sst2_export.model, batch)
    np.testing.assert_allclose(text_out["logits"], reference, atol=1e-5)
    np.testing.assert_allclose(ids_out["logits"], reference, atol=1e-5)
    np.testing.assert_allclose(text_out["probabilities"].numpy().sum(-1), 1.0, atol=1e-6)
    labels = [b"negative", b"positive"]
    assert [labels[i] for i in reference.argmax(-1)] == list(text_out["label"].numpy())
    assert len(set(reference.argmax(-1))) == 2  # both classes occur, so the label mapping is exercised


def test_pair_signature_truncates_longest_first_like_training(mrpc_export, tiny_runs):
    signatures = tf.saved_model.load(mrpc_export.saved_model_dir).signatures
    dev = mrpc_export.dev
    assert sorted(signatures["serving_default"].structured_input_signature[1]) == ["sentence1", "sentence2"]
    split = mrpc_export.dev_split
    assert split.num_truncated > 0  # the tiny pairs exceed 16 tokens: truncation is exercised
    out = signatures["serving_default"](sentence1=tf.constant(dev.text_a), sentence2=tf.constant(dev.text_b))
    np.testing.assert_allclose(out["logits"], keras_logits(mrpc_export.model, id_batch(split)), atol=1e-5)


def test_regression_model_serves_a_score(stsb_export):
    result = stsb_export
    signatures = tf.saved_model.load(result.saved_model_dir).signatures
    inputs, outputs = specs(signatures["serving_default"])
    assert inputs == {"sentence1": (tf.string, [None]), "sentence2": (tf.string, [None])}
    assert outputs == {"score": (tf.float32, [None])}
    out = signatures["serving_default"](sentence1=tf.constant(result.dev.text_a), sentence2=tf.constant(result.dev.text_b))
    np.testing.assert_allclose(out["score"], keras_logits(result.model, id_batch(result.dev_split))[:, 0], atol=1e-5)


def test_required_ops_are_core_tensorflow_plus_four_tensorflow_text_ops(sst2_export):
    ops = required_ops(sst2_export.saved_model_dir)
    assert ops["custom"] == TEXT_OPS
    assert ops["unknown"] == []
    assert {"StatefulPartitionedCall", "BatchMatMulV2", "Softmax"} <= set(ops["tensorflow"])
    # FastBertNormalize, missing from some TF Serving images, is not needed.
    assert "FastBertNormalize" not in ops["custom"]
    assert sst2_export.export_metadata["serving"]["required_ops"] == ops


def test_weights_are_stored_once(sst2_export):
    # Keras' ExportArchive alone tracks every weight twice; count the stored tensors, not the file size,
    # because the checkpoint's object-graph proto outweighs a model this tiny.
    reader = tf.train.load_checkpoint(os.path.join(sst2_export.saved_model_dir, "variables", "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    stored = {name: int(np.prod(shape)) * dtypes[name].size for name, shape in shapes.items()
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert sum(stored.values()) == 4 * sst2_export.model.count_params()
    assert len(stored) == len(sst2_export.model.weights)
