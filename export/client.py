"""A small TF Serving client for a tfkd student: gRPC (tensorflow-serving-api protos) and REST JSON.

Needs only `tensorflow-serving-api` (which brings tensorflow, grpcio and
protobuf) and numpy; not tfkd.

    # gRPC (port 8500)
    python export/client.py --server=localhost:8500 --model_name=kd_sst2 --text="a gorgeous, witty film"
    # REST (port 8501)
    python export/client.py --rest=http://localhost:8501 --model_name=kd_mrpc \
        --text="He said the pie business does not fit." --text_pair="The pie business does not fit our strategy."

Text inputs are named after the model's signature: `sentence` for one text,
`sentence1`/`sentence2` for pairs (other GLUE tasks: see the model's
`tfkd_export.json`, `serving.signatures`); `--fields` overrides.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

SERVING_SIGNATURE = "serving_default"


def text_inputs(texts: Sequence[str], pairs: Optional[Sequence[str]] = None,
                fields: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """The signature inputs for a batch of texts (or text pairs): `{field: string array [B]}`.

    Args:
        texts: the first (or only) text of each example.
        pairs: the second text of each example, for sentence-pair models.
        fields: the input names (default `sentence`, or `sentence1`/`sentence2`).

    Example:
    >>> text_inputs(["a fine film"])
    {'sentence': array(['a fine film'], dtype=object)}
    """
    columns = [list(texts)] + ([list(pairs)] if pairs is not None else [])
    if fields is None:
        fields = ["sentence"] if pairs is None else ["sentence1", "sentence2"]
    if len(fields) != len(columns) or len({len(c) for c in columns}) != 1:
        raise ValueError(f"need one text per field {list(fields)} for every example")
    return {field: np.array(column, dtype=object) for field, column in zip(fields, columns)}


def predict_request(model_name: str, inputs: Dict[str, np.ndarray], signature_name: str = SERVING_SIGNATURE,
                    version: Optional[int] = None) -> predict_pb2.PredictRequest:
    """A gRPC `PredictRequest` carrying `inputs` as TensorProtos.

    Args:
        model_name: the served model name.
        inputs: `{input name: array}` (strings, or int32 ids for `predict_ids`).
        signature_name: `serving_default` (text) or `predict_ids`.
        version: a specific version (default: the latest the server has).
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def grpc_predict(target: str, request: predict_pb2.PredictRequest, timeout: float = 10.0) -> Dict[str, np.ndarray]:
    """Sends `request` to TF Serving's gRPC PredictionService; returns `{output: array}`.

    Args:
        target: `host:port` of the server's gRPC port (8500 by default).
        request: from `predict_request`.
        timeout: seconds.
    """
    with grpc.insecure_channel(target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def rest_body(inputs: Dict[str, np.ndarray], signature_name: str = SERVING_SIGNATURE) -> Dict:
    """TF Serving's REST predict body in row format: one instance per example.

    Example:
    >>> rest_body(text_inputs(["a fine film"]))
    {'signature_name': 'serving_default', 'instances': [{'sentence': 'a fine film'}]}
    """
    names = list(inputs)
    count = len(inputs[names[0]])
    instances = [{name: np.asarray(inputs[name][i]).tolist() for name in names} for i in range(count)]
    return {"signature_name": signature_name, "instances": instances}


def rest_predict(base_url: str, model_name: str, body: Dict, version: Optional[int] = None,
                 timeout: float = 10.0) -> List[Dict]:
    """POSTs `body` to `<base_url>/v1/models/<model_name>[/versions/<v>]:predict`; returns the predictions.

    Args:
        base_url: e.g. `http://localhost:8501`.
        model_name: the served model name.
        body: from `rest_body`.
        version: a specific version (default: the latest).
        timeout: seconds.
    """
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    request = urllib.request.Request(base_url.rstrip("/") + path, data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))["predictions"]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--text", action="append", required=True, help="Text to classify (repeat for a batch).")
    parser.add_argument("--text_pair", action="append", help="Second text of each pair (sentence-pair models).")
    parser.add_argument("--fields", help="Comma-separated input names, if not sentence / sentence1,sentence2.")
    parser.add_argument("--version", type=int)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--server", help="gRPC host:port, e.g. localhost:8500")
    target.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    args = parser.parse_args(argv)
    inputs = text_inputs(args.text, args.text_pair, args.fields.split(",") if args.fields else None)
    if args.server:
        outputs = grpc_predict(args.server, predict_request(args.model_name, inputs, version=args.version))
        rows = [{name: np.asarray(value[i]).tolist() for name, value in outputs.items()} for i in range(len(args.text))]
    else:
        rows = rest_predict(args.rest, args.model_name, rest_body(inputs), version=args.version)
    for text, row in zip(args.text, rows):
        label = row.get("label")
        label = label.decode("utf-8") if isinstance(label, bytes) else label
        print(json.dumps({"text": text, **row, **({"label": label} if label is not None else {})}))


if __name__ == "__main__":
    main()
