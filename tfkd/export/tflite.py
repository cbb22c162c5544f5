"""TFLite students for phones: id-input variants in builtin ops, and a text-input variant.

Every model takes one example (batch 1) at a fixed sequence length, the
shapes a phone app allocates once.

- id input (`input_ids`, `segment_ids`, `padding_mask` int32 `[1, n]` →
  `logits` float32 `[1, C]`), converted with builtin ops only (no Flex
  delegate, no custom ops), so plain LiteRT runs it:
  `float32`; `float16` (fp16 weights, half the size);
  `dynamic_int8` (int8 weights, float activations);
  `full_int8` (int8 weights and activations, ranges calibrated on training
  examples; the graph keeps float32 logits at its output).
  The attention mask is finite (see `tfkd.export.graph`), so int8 ranges
  are those of the real activations.
- text input (`sentence`, or the task's two text fields, string `[1]` →
  `logits`, and the packed `token_ids` for checking): float32 weights,
  tensorflow-text's `FastBertTokenizer` (LiteRT custom ops) plus packing in
  builtin ops. It needs an interpreter with tensorflow-text's ops
  registered (`LiteModel` does it; on Android/iOS, a LiteRT build with the
  tensorflow-text kernels), in exchange the app needs no tokenizer of its own.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.export.graph import logits_function
from tfkd.export.saved_model import ID_INPUTS, write_archive
from tfkd.export.text import lite_preprocessor
from tfkd.models.bert import BertModel

VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")
TEXT_VARIANT = "text_float32"
SIGNATURE = "serving_default"

Calibration = Callable[[], Iterable[Dict[str, np.ndarray]]]


def _converter(folder: str) -> tf.lite.TFLiteConverter:
    # Converting from a written SavedModel keeps the Keras variables as
    # weights; a Keras 3 model wrapped in a bare tf.Module converts without them.
    return tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SIGNATURE])


def convert_ids_models(
    model: BertModel, seq_length: int, variants: Sequence[str], calibration: Optional[Calibration] = None
) -> Dict[str, bytes]:
    """The id-input TFLite flatbuffers of `model`, builtin ops only, one per variant.

    Args:
        model: the student.
        seq_length: the fixed number of tokens.
        variants: some of `VARIANTS`.
        calibration: for `full_int8`, a callable yielding input dicts
            (`input_ids`, `segment_ids`, `padding_mask` int32 `[1, seq_length]`)
            of training examples.

    Example:
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> flatbuffers = convert_ids_models(model, 8, ["float32", "dynamic_int8"])
    >>> ids = np.array([[2, 5, 6, 7, 3, 0, 0, 0]], np.int32)  # [CLS] a fine film [SEP], padded to 8
    >>> lite = LiteModel(flatbuffers["float32"])
    >>> lite(input_ids=ids, segment_ids=np.zeros_like(ids), padding_mask=(ids > 0).astype(np.int32))["logits"].shape
    (1, 2)
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise TfkdError(f"unknown TFLite variant(s) {', '.join(unknown)}. Fix: use some of {', '.join(VARIANTS)}.")
    if "full_int8" in variants and calibration is None:
        raise ValueError("full_int8 needs calibration examples")
    forward = logits_function(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE,
        lambda input_ids, segment_ids, padding_mask: {"logits": forward(input_ids, segment_ids, padding_mask)},
        input_signature=[tf.TensorSpec([1, seq_length], tf.int32, name=name) for name in ID_INPUTS],
    )
    flatbuffers = {}
    with tempfile.TemporaryDirectory() as folder:
        write_archive(archive, folder)
        for variant in variants:
            converter = _converter(folder)
            # Builtins only: conversion fails instead of falling back to Flex ops.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if variant != "float32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if variant == "float16":
                converter.target_spec.supported_types = [tf.float16]
            elif variant == "full_int8":
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.representative_dataset = calibration
            flatbuffers[variant] = converter.convert()
    return flatbuffers


def convert_text_model(
    model: BertModel, vocab_path: str, lowercase: bool, seq_length: int, text_fields: Sequence[str]
) -> bytes:
    """The text-input TFLite flatbuffer (float32): tokenizer custom ops + builtin ops.

    Args:
        model: the student.
        vocab_path: its `vocab.txt`.
        lowercase: whether the vocabulary is uncased.
        seq_length: the fixed number of tokens.
        text_fields: the input names, one per text of an example.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> flatbuffer = convert_text_model(model, "vocab.txt", True, 8, ("sentence",))
    >>> outputs = LiteModel(flatbuffer, custom_ops=True)(sentence=np.array([b"a fine film"]))
    >>> outputs["logits"].shape, outputs["token_ids"].tolist()  # [CLS] a fine film [SEP], padded to 8
    ((1, 2), [[2, 5, 6, 7, 3, 0, 0, 0]])
    """
    forward = logits_function(model)
    tokenizer, preprocess = lite_preprocessor(vocab_path, lowercase, seq_length)

    def predict(*texts):
        token_ids, segment_ids, padding_mask = preprocess(*texts)
        return {"logits": forward(token_ids, segment_ids, padding_mask), "token_ids": token_ids}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint(
        SIGNATURE, predict, input_signature=[tf.TensorSpec([1], tf.string, name=field) for field in text_fields]
    )
    with tempfile.TemporaryDirectory() as folder:
        write_archive(archive, folder)
        converter = _converter(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = True
        return converter.convert()


class LiteModel:
    """A TFLite model in LiteRT's interpreter, called with named numpy inputs.

    Args:
        model: a flatbuffer (bytes) or a `.tflite` path.
        custom_ops: register tensorflow-text's LiteRT ops (text-input models).
        num_threads: interpreter threads.

    Example:
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> with open("sst2_kd_float32.tflite", "wb") as f:  # what `tfkd.export` writes
    ...     _ = f.write(convert_ids_models(model, 8, ["float32"])["float32"])
    >>> lite = LiteModel("sst2_kd_float32.tflite")
    >>> ids = np.array([[2, 5, 6, 7, 3, 0, 0, 0]], np.int32)
    >>> lite(input_ids=ids, segment_ids=np.zeros_like(ids), padding_mask=(ids > 0).astype(np.int32))["logits"].shape
    (1, 2)
    """

    def __init__(self, model: Union[bytes, str, os.PathLike], custom_ops: bool = False, num_threads: int = 2):
        from ai_edge_litert import interpreter as litert

        source = {"model_path": model} if isinstance(model, (str, os.PathLike)) else {"model_content": model}
        if custom_ops:
            import tensorflow_text

            self.interpreter = litert.InterpreterWithCustomOps(
                custom_op_registerers=tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS,
                num_threads=num_threads,
                **source,
            )
        else:
            self.interpreter = litert.Interpreter(num_threads=num_threads, **source)
        self._runner = self.interpreter.get_signature_runner(SIGNATURE)

    @property
    def input_details(self) -> Dict[str, Dict]:
        return self._runner.get_input_details()

    @property
    def output_details(self) -> Dict[str, Dict]:
        return self._runner.get_output_details()

    def op_names(self) -> List[str]:
        """The distinct op names in the graph (builtin ones upper case, custom ones as registered)."""
        # LiteRT lists the XNNPACK delegate as a node of its own, next to the ops it took over.
        return sorted({op["op_name"] for op in self.interpreter._get_ops_details()} - {"DELEGATE"})

    def __call__(self, **inputs: np.ndarray) -> Dict[str, np.ndarray]:
        return self._runner(**inputs)
