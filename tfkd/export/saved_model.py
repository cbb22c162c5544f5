"""The TF Serving SavedModel of a student: text and id signatures, version folders, the ops it needs.

Layout (TF Serving's file-system source and TFX's Pusher):
`<export_dir>/<model_name>/<version>/saved_model.pb`, `variables/`,
`assets.extra/` (warm-up requests, `vocab.txt`, `labels.txt`).

Signatures (outputs are the same for both):
- `serving_default`: `sentence` (or `sentence1`/`sentence2`, or the task's
  own text field names) string `[B]`; tokenized in the graph like training.
- `predict_ids`: `input_ids`, `segment_ids`, `padding_mask` int32 `[B, n]`.
- outputs: `probabilities` float32 `[B, C]`, `label` string `[B]` (class
  names), `logits` float32 `[B, C]`; regression tasks return `score` float32 `[B]`.

TF Serving loads the whole graph of a SavedModel, so every op in it must be
registered in the server, whichever signature a client calls.
`required_ops` lists them and names the ones core TensorFlow lacks.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Sequence

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from tfkd.core.errors import TfkdError
from tfkd.export.text import serving_preprocessor
from tfkd.models.bert import BertModel

SERVING_SIGNATURE = "serving_default"
IDS_SIGNATURE = "predict_ids"
ID_INPUTS = ("input_ids", "segment_ids", "padding_mask")


def next_version(model_base: str) -> int:
    """The next free integer version under `<export_dir>/<model_name>` (1 for a new model).

    Args:
        model_base: the model's base path.

    Example:
    >>> next_version("serving/sst2_kd")  # a new model
    1
    >>> for version in ("1", "2"):
    ...     os.makedirs(os.path.join("serving/sst2_kd", version))
    >>> next_version("serving/sst2_kd")
    3
    """
    if not os.path.isdir(model_base):
        return 1
    versions = [int(name) for name in os.listdir(model_base) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def write_archive(archive: keras.export.ExportArchive, path: str) -> None:
    """`archive.write_out(path)`, with each weight stored once.

    Keras 3.15's ExportArchive checkpoints every weight twice: as the Keras
    variables `track()` lists and as the TensorFlow variables its endpoints
    capture (`model.export` writes a 4 MB layer as 8 MB). The signatures use
    only the captured ones, so the Keras-level lists are emptied first.

    Args:
        archive: an archive with its endpoints added.
        path: the SavedModel folder to write.
    """
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(archive._tf_trackable, name, [])
    archive.write_out(path, verbose=False)


def output_heads(logits: tf.Tensor, label_names: Sequence[str], is_regression: bool) -> Dict[str, tf.Tensor]:
    """The serving outputs computed from logits `[B, C]`."""
    if is_regression:
        return {"score": logits[:, 0]}
    return {
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "label": tf.gather(tf.constant(list(label_names)), tf.argmax(logits, axis=-1)),
        "logits": logits,
    }


def export_saved_model(
    model: BertModel,
    path: str,
    *,
    vocab_path: str,
    lowercase: bool,
    max_seq_length: int,
    text_fields: Sequence[str],
    label_names: Sequence[str],
    is_regression: bool,
) -> None:
    """Writes the serving SavedModel of `model` (logits only) to `path`.

    Args:
        model: the student.
        path: the version folder to create, e.g. `<export_dir>/<name>/3`.
        vocab_path: its `vocab.txt`.
        lowercase: whether the vocabulary is uncased.
        max_seq_length: tokens kept per example ([CLS]/[SEP] included), as in training.
        text_fields: the text input names (`("sentence",)`, `("sentence1", "sentence2")`).
        label_names: class names in logit order (ignored for regression).
        is_regression: one `score` output instead of classes.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> export_saved_model(model, "serving/sst2_kd/1", vocab_path="vocab.txt", lowercase=True,
    ...                    max_seq_length=128, text_fields=("sentence",),
    ...                    label_names=("negative", "positive"), is_regression=False)
    >>> sorted(signature_specs("serving/sst2_kd/1"))
    ['predict_ids', 'serving_default']
    >>> served = tf.saved_model.load("serving/sst2_kd/1").signatures["serving_default"]
    >>> sorted((name, value.shape.as_list()) for name, value in served(sentence=tf.constant(["a fine film"])).items())
    [('label', [1]), ('logits', [1, 2]), ('probabilities', [1, 2])]
    """
    if not is_regression and len(label_names) != model.num_classes:
        raise TfkdError(
            f"the model has {model.num_classes} logits but {len(label_names)} label names ({list(label_names)}). "
            "Fix: export a model trained on this task (its tfkd_model.json lists the label names)."
        )
    tokenizer, preprocess = serving_preprocessor(vocab_path, lowercase, max_seq_length)

    def predict(token_ids, segment_ids, padding_mask):
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
        return output_heads(model(inputs, training=False)["logits"], label_names, is_regression)

    archive = keras.export.ExportArchive()
    archive.track(model)
    tokenizer.build(None)  # a keras-hub tokenizer has no weights; ExportArchive only tracks built layers
    archive.track(tokenizer)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        lambda *texts: predict(*preprocess(*texts)),
        input_signature=[tf.TensorSpec([None], tf.string, name=field) for field in text_fields],
    )
    archive.add_endpoint(
        IDS_SIGNATURE,
        predict,
        input_signature=[tf.TensorSpec([None, None], tf.int32, name=name) for name in ID_INPUTS],
    )
    write_archive(archive, path)


def signature_specs(path: str) -> Dict[str, Dict[str, Dict[str, Dict]]]:
    """`{signature: {"inputs"|"outputs": {name: {"dtype", "shape"}}}}` read back from the SavedModel.

    Args:
        path: a SavedModel folder.
    """
    meta_graph = _read_saved_model(path).meta_graphs[0]
    specs = {}
    for name, signature in meta_graph.signature_def.items():
        if name.startswith("__"):  # TF's internal saver signature
            continue
        specs[name] = {
            side: {
                key: {
                    "dtype": tf.dtypes.as_dtype(info.dtype).name,
                    "shape": [None if d.size < 0 else d.size for d in info.tensor_shape.dim],
                }
                for key, info in sorted(getattr(signature, side).items())
            }
            for side in ("inputs", "outputs")
        }
    return specs


def required_ops(path: str) -> Dict[str, List[str]]:
    """The ops of a SavedModel's graph (functions included), by where they are registered.

    `tensorflow`: core ops (every TF Serving build has them). `custom`: ops
    registered by libraries loaded into this process (tensorflow-text's);
    a server must link them in (stock TF Serving links tensorflow-text's
    `ops_lib`; some image versions lacked newer ops of it). `unknown`: ops no
    loaded library registers.

    Args:
        path: a SavedModel folder.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> export_saved_model(model, "serving/sst2_kd/1", vocab_path="vocab.txt", lowercase=True, max_seq_length=128,
    ...                    text_fields=("sentence",), label_names=("negative", "positive"), is_regression=False)
    >>> ops = required_ops("serving/sst2_kd/1")
    >>> ops["custom"], ops["unknown"]  # tensorflow-text's ops, which a server must link in
    (['CaseFoldUTF8', 'FastWordpieceTokenizeWithOffsets', 'NormalizeUTF8', 'RegexSplitWithOffsets'], [])
    """
    ops = set()
    for meta_graph in _read_saved_model(path).meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    # tf.raw_ops is generated from core TensorFlow's op registry only; ops
    # that shared libraries such as tensorflow-text load are not in it.
    result: Dict[str, List[str]] = {"tensorflow": [], "custom": [], "unknown": []}
    for op in sorted(ops):
        if hasattr(tf.raw_ops, op):
            result["tensorflow"].append(op)
        elif op_def_registry.get(op) is not None:
            result["custom"].append(op)
        else:
            result["unknown"].append(op)
    return result


def _read_saved_model(path: str) -> saved_model_pb2.SavedModel:
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto
