"""The warm-up file: PredictionLog records from real dev examples that the SavedModel answers."""

import numpy as np
import tensorflow as tf

from tfkd.export import read_warmup_requests


def test_warmup_records_are_prediction_logs_of_dev_examples(sst2_export):
    logs = read_warmup_requests(sst2_export.saved_model_dir)
    requests = [log.predict_log.request for log in logs]
    assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
        ("kd_sst2", "serving_default"), ("kd_sst2", "serving_default"),
        ("kd_sst2", "predict_ids"), ("kd_sst2", "predict_ids")]
    sentences = tf.make_ndarray(requests[1].inputs["sentence"])
    assert [s.decode() for s in sentences] == sst2_export.dev.text_a[:8]
    assert tf.make_ndarray(requests[2].inputs["input_ids"]).shape[0] == 1


def test_saved_model_answers_every_warmup_request(sst2_export):
    """What TF Serving does at load time: replay each request against its signature."""
    signatures = tf.saved_model.load(sst2_export.saved_model_dir).signatures
    results = []
    for log in read_warmup_requests(sst2_export.saved_model_dir):
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        results.append(signatures[request.model_spec.signature_name](**inputs)["logits"].numpy())
    # the same first example through the text and the id signature
    np.testing.assert_allclose(results[0], results[2], atol=1e-5)
    assert [r.shape[0] for r in results] == [1, 8, 1, 8]
