"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these `PredictionLog` records when it loads a version,
before it reports the version available, so the first real requests do not
pay for graph initialisation and lookup-table loading. tfkd writes requests
built from real dev examples, for both signatures and more than one batch size.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from tfkd.data import Examples, TokenizedSplit
from tfkd.export.saved_model import ID_INPUTS, IDS_SIGNATURE, SERVING_SIGNATURE

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

Request = Tuple[str, Dict[str, np.ndarray]]


def dev_requests(
    examples: Examples, split: TokenizedSplit, text_fields: Sequence[str], batch_sizes: Sequence[int] = (1, 8)
) -> List[Request]:
    """`(signature, inputs)` pairs from the first dev examples: text and id requests per batch size.

    Args:
        examples: dev examples (their texts feed `serving_default`).
        split: the same examples tokenized (their ids feed `predict_ids`).
        text_fields: the text input names.
        batch_sizes: one request of each size per signature.

    Example:
    >>> import pathlib
    >>> from tfkd.data import make_tokenizer, tokenize
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> dev = Examples(["a fine film", "a film", "fine"], None, np.array([1, 0, 1], np.int32), "dev.tsv")
    >>> requests = dev_requests(dev, tokenize(dev, make_tokenizer("vocab.txt"), 16), ("sentence",), batch_sizes=(1, 2))
    >>> for name, inputs in requests:
    ...     print(name, {key: value.shape for key, value in inputs.items()})
    serving_default {'sentence': (1,)}
    serving_default {'sentence': (2,)}
    predict_ids {'input_ids': (1, 5), 'segment_ids': (1, 5), 'padding_mask': (1, 5)}
    predict_ids {'input_ids': (2, 5), 'segment_ids': (2, 5), 'padding_mask': (2, 5)}
    """
    texts = [examples.text_a] + ([examples.text_b] if examples.is_pair else [])
    requests: List[Request] = []
    for size in batch_sizes:
        size = min(size, len(examples))
        requests.append((SERVING_SIGNATURE, {f: np.array(t[:size], dtype=object) for f, t in zip(text_fields, texts)}))
    for size in batch_sizes:
        size = min(size, len(split))
        rows = [split.example(i) for i in range(size)]
        width = max(len(ids) for ids, _ in rows)
        arrays = {name: np.zeros((size, width), np.int32) for name in ID_INPUTS}
        for i, (ids, segments) in enumerate(rows):
            arrays["input_ids"][i, : len(ids)] = ids
            arrays["segment_ids"][i, : len(ids)] = segments
            arrays["padding_mask"][i, : len(ids)] = 1
        requests.append((IDS_SIGNATURE, arrays))
    return requests


def write_warmup_requests(saved_model_dir: str, model_name: str, requests: Sequence[Request]) -> str:
    """Writes `requests` as PredictionLog TFRecords into the SavedModel; returns the file path.

    Args:
        saved_model_dir: the version folder.
        model_name: the served model name (set in each request's model spec).
        requests: `(signature_name, {input: array})` pairs.

    Example:
    >>> requests = [("serving_default", {"sentence": np.array(["a fine film"], dtype=object)})]  # `dev_requests`
    >>> write_warmup_requests("serving/sst2_kd/1", "sst2_kd", requests)
    'serving/sst2_kd/1/assets.extra/tf_serving_warmup_requests'
    """
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, array in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str) -> List[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records of a SavedModel's warm-up file.

    Args:
        saved_model_dir: the version folder.

    Example:
    >>> ids = {name: np.zeros((1, 4), np.int32) for name in ID_INPUTS}
    >>> write_warmup_requests("serving/sst2_kd/1", "sst2_kd", [("serving_default", {"sentence": np.array(["a"], dtype=object)}),
    ...                                                         ("predict_ids", ids)])
    'serving/sst2_kd/1/assets.extra/tf_serving_warmup_requests'
    >>> [log.predict_log.request.model_spec.signature_name for log in read_warmup_requests("serving/sst2_kd/1")]
    ['serving_default', 'predict_ids']
    """
    logs = []
    for record in tf.data.TFRecordDataset(os.path.join(saved_model_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs
