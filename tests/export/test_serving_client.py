"""export/client.py against the SavedModel, through gRPC and REST test doubles of TF Serving.

No TF Serving binary can be installed here. The doubles below only decode
what the client sends exactly as TF Serving would (TensorProtos for gRPC,
row-format JSON for REST), call the loaded SavedModel's signature and encode
the answer the same way. They live in the tests and are never shipped.
"""

import base64
import importlib.util
import json
import os
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_client():
    spec = importlib.util.spec_from_file_location("tfkd_serving_client", os.path.join(ROOT, "export", "client.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = load_client()


class PredictionServiceDouble(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, name, signatures):
        self.name, self.signatures = name, signatures

    def Predict(self, request, context):
        if request.model_spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        signature = self.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        response = predict_pb2.PredictResponse()
        for name, value in signature(**inputs).items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope="module")
def signatures(sst2_export):
    return tf.saved_model.load(sst2_export.saved_model_dir).signatures


@pytest.fixture(scope="module")
def grpc_target(signatures):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServiceDouble("kd_sst2", signatures), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _json_value(value):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    return value


@pytest.fixture(scope="module")
def rest_url(signatures):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.path == "/v1/models/kd_sst2:predict", self.path
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            instances = body["instances"]
            columns = {name: tf.constant([row[name] for row in instances]) for name in instances[0]}
            outputs = signatures[body.get("signature_name", "serving_default")](**columns)
            predictions = [{name: _json_value(np.asarray(value.numpy()[i]).tolist()) for name, value in outputs.items()}
                           for i in range(len(instances))]
            payload = json.dumps({"predictions": predictions}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_grpc_request_carries_what_the_signature_takes(sst2_export, grpc_target, signatures):
    texts = sst2_export.dev.text_a[:5]
    request = client.predict_request("kd_sst2", client.text_inputs(texts))
    assert request.model_spec.signature_name == "serving_default"
    assert [s.decode() for s in tf.make_ndarray(request.inputs["sentence"])] == texts
    outputs = client.grpc_predict(grpc_target, request)
    direct = signatures["serving_default"](sentence=tf.constant(texts))
    assert sorted(outputs) == ["label", "logits", "probabilities"]
    np.testing.assert_allclose(outputs["logits"], direct["logits"], atol=1e-6)
    assert list(outputs["label"]) == list(direct["label"].numpy())


def test_grpc_id_request(sst2_export, grpc_target):
    from tiny_runs import id_batch, keras_logits

    batch = id_batch(sst2_export.dev_split, range(3))
    outputs = client.grpc_predict(grpc_target, client.predict_request("kd_sst2", batch, "predict_ids"))
    np.testing.assert_allclose(outputs["logits"], keras_logits(sst2_export.model, batch), atol=1e-5)


def test_rest_row_format_round_trip(sst2_export, rest_url, signatures):
    texts = sst2_export.dev.text_a[:4]
    body = client.rest_body(client.text_inputs(texts))
    assert body == {"signature_name": "serving_default", "instances": [{"sentence": t} for t in texts]}
    predictions = client.rest_predict(rest_url, "kd_sst2", body)
    direct = signatures["serving_default"](sentence=tf.constant(texts))
    np.testing.assert_allclose([p["logits"] for p in predictions], direct["logits"], atol=1e-6)
    assert [p["label"] for p in predictions] == [s.decode() for s in direct["label"].numpy()]


def test_client_command_line(grpc_target, rest_url, capsys):
    client.main(["--server", grpc_target, "--model_name", "kd_sst2", "--text", "a great film", "--text", "dull"])
    client.main(["--rest", rest_url, "--model_name", "kd_sst2", "--text", "a great film"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a great film", "dull", "a great film"]
    assert rows[0]["label"] == rows[2]["label"] and rows[0]["label"] in ("negative", "positive")
    np.testing.assert_allclose(rows[0]["logits"], rows[2]["logits"], atol=1e-6)


def test_pair_inputs_need_both_texts():
    assert sorted(client.text_inputs(["a"], ["b"])) == ["sentence1", "sentence2"]
    with pytest.raises(ValueError):
        client.text_inputs(["a", "b"], ["c"])
