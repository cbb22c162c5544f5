"""`export_hf`: a trained student → a Hugging Face `BertForSequenceClassification` directory.

The directory is what transformers' `save_pretrained` writes, so transformers,
optimum and ONNX tooling load it as they load any BERT classifier:

    config.json               architectures, sizes, hidden_act, layer_norm_eps, id2label/label2id, problem_type
    model.safetensors         transformers' tensor names; Linear weights [out, in]
    vocab.txt                 the student's WordPiece vocabulary (the teacher's, or its trimmed copy)
    tokenizer_config.json     do_lower_case, model_max_length
    special_tokens_map.json

tfkd reads it back as a fine-tuned teacher (`--teacher=<dir>`).

Example:
>>> export_hf("workdirs/kd_sst2", "/tmp/kd_sst2_hf")  # doctest: +SKIP
'/tmp/kd_sst2_hf'
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Dict, List

import numpy as np
from safetensors.numpy import save_file

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import write_json
from tfkd.core.log import log as cli_log
from tfkd.core.paths import check_directory_target
from tfkd.export.blessing import bless
from tfkd.export.exporter import as_float32
from tfkd.export.run import load_run
from tfkd.models.bert import BertModel
from tfkd.models.hf_classifier import CLASSIFICATION, HEAD_BIAS, HEAD_WEIGHT, REGRESSION, WEIGHTS_FILE
from tfkd.models.model_dir import ModelMetadata, load_model_dir

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}


def _linear(kernel: np.ndarray, out_dim: int) -> np.ndarray:
    """A Keras kernel `[in..., out...]` as a torch Linear weight `[out, in]`."""
    return np.ascontiguousarray(np.reshape(kernel, (-1, out_dim)).T)


def hf_tensors(model: BertModel) -> Dict[str, np.ndarray]:
    """`model`'s weights under `BertForSequenceClassification`'s names (the inverse of keras-hub's converter)."""
    h = model.hidden_dim

    def weights(name: str) -> List[np.ndarray]:
        return model.get_layer(name).get_weights()

    gamma, beta = weights("embeddings_layer_norm")
    tensors = {
        "bert.embeddings.word_embeddings.weight": weights("token_embedding")[0],
        "bert.embeddings.position_embeddings.weight": weights("position_embedding")[0],
        "bert.embeddings.token_type_embeddings.weight": weights("segment_embedding")[0],
        "bert.embeddings.LayerNorm.weight": gamma,
        "bert.embeddings.LayerNorm.bias": beta,
    }
    for i in range(model.num_layers):
        block = model.get_layer(f"transformer_layer_{i}")
        attention = block._self_attention_layer
        p = f"bert.encoder.layer.{i}."
        dense = {
            "attention.self.query": attention.query_dense,
            "attention.self.key": attention.key_dense,
            "attention.self.value": attention.value_dense,
            "attention.output.dense": attention.output_dense,
            "intermediate.dense": block._feedforward_intermediate_dense,
            "output.dense": block._feedforward_output_dense,
        }
        for name, layer in dense.items():
            out_dim = model.intermediate_dim if name == "intermediate.dense" else h
            tensors[p + name + ".weight"] = _linear(layer.kernel.numpy(), out_dim)
            tensors[p + name + ".bias"] = np.reshape(layer.bias.numpy(), (out_dim,))
        for name, norm in (("attention.output.LayerNorm", block._self_attention_layer_norm),
                           ("output.LayerNorm", block._feedforward_layer_norm)):
            tensors[p + name + ".weight"], tensors[p + name + ".bias"] = norm.gamma.numpy(), norm.beta.numpy()
    kernel, bias = weights("pooled_dense")
    tensors["bert.pooler.dense.weight"], tensors["bert.pooler.dense.bias"] = _linear(kernel, h), bias
    kernel, bias = weights("logits")
    tensors[HEAD_WEIGHT], tensors[HEAD_BIAS] = _linear(kernel, model.num_classes), bias
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in tensors.items()}


def hf_config(model: BertModel, label_names: List[str], pad_token_id: int) -> Dict:
    """`config.json` of `model` as a `BertForSequenceClassification`."""
    is_regression = model.num_classes == 1 and not label_names
    names = label_names or [f"LABEL_{i}" for i in range(model.num_classes)]
    return {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": model.vocabulary_size,
        "hidden_size": model.hidden_dim,
        "num_hidden_layers": model.num_layers,
        "num_attention_heads": model.num_heads,
        "intermediate_size": model.intermediate_dim,
        # transformers' "gelu" is the erf form; "gelu_new" the tanh approximation keras-hub uses.
        "hidden_act": "gelu" if model.exact_gelu else "gelu_new",
        "hidden_dropout_prob": model.dropout,
        "attention_probs_dropout_prob": model.dropout,
        "max_position_embeddings": model.max_sequence_length,
        "type_vocab_size": model.num_segments,
        "initializer_range": 0.02,
        "layer_norm_eps": model.layer_norm_epsilon,
        "pad_token_id": pad_token_id,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "id2label": {str(i): name for i, name in enumerate(names)},
        "label2id": {name: i for i, name in enumerate(names)},
        "problem_type": REGRESSION if is_regression else CLASSIFICATION,
        "torch_dtype": "float32",
    }


def write_hf_directory(directory: str, model: BertModel, vocab_path: str, metadata: ModelMetadata) -> None:
    """Writes `model` (float32) as a Hugging Face classifier directory; see the module docstring."""
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    missing = [token for token in SPECIAL_TOKENS.values() if token not in vocab]
    if missing:
        raise TfkdError(f"{vocab_path} lacks the special token(s) {', '.join(missing)} a BERT tokenizer needs. Fix: use a BERT vocabulary.")
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "config.json"), hf_config(model, list(metadata.label_names), vocab.index("[PAD]")))
    save_file(hf_tensors(model), os.path.join(directory, WEIGHTS_FILE), metadata={"format": "pt"})
    shutil.copyfile(vocab_path, os.path.join(directory, "vocab.txt"))
    write_json(os.path.join(directory, "tokenizer_config.json"), {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": metadata.lowercase,
        # tfkd strips accents exactly when the vocabulary is uncased, as BERT's tokenizer does by default.
        "strip_accents": None,
        "tokenize_chinese_chars": True,
        "model_max_length": model.max_sequence_length,
        **SPECIAL_TOKENS,
    })
    write_json(os.path.join(directory, "special_tokens_map.json"), SPECIAL_TOKENS)


def export_hf(workdir: str, export_dir: str, bless_min_ratio: float = 0.95, force: bool = False,
              log: Callable[[str], None] = cli_log) -> str:
    """Writes the best student of the run in `workdir` to `export_dir` as a Hugging Face directory.

    Args:
        workdir: a finished `tfkd.train` run.
        export_dir: the new directory (refused when it exists and is not empty).
        bless_min_ratio: least student/teacher ratio of the primary dev metric.
        force: export even if the student is not blessed.
        log: where progress lines go.

    Returns:
        `export_dir`.
    """
    if not export_dir:
        raise TfkdError("--export_dir is required. Fix: pass --export_dir=<the new Hugging Face model folder>.")
    check_directory_target(export_dir, "--export_dir")
    if os.path.isdir(export_dir) and os.listdir(export_dir):
        raise TfkdError(f"--export_dir={export_dir} is not empty. Fix: pass a new folder for the Hugging Face model, or empty it.")
    run = load_run(workdir)
    blessing = bless(run, bless_min_ratio, force)
    log(f"blessing: {blessing.metric} student {blessing.student:.4f}: "
        + ("blessed" if blessing.blessed else "NOT blessed, exported because of --force"))
    model, vocab_path, metadata = load_model_dir(run.model_dir)
    if not metadata.label_names and not run.task.is_regression:
        metadata.label_names = list(run.task.label_names or ())
    staging = os.path.join(os.path.dirname(os.path.abspath(export_dir)), f".tmp-{os.path.basename(os.path.abspath(export_dir))}")
    shutil.rmtree(staging, ignore_errors=True)  # left behind by an interrupted export
    write_hf_directory(staging, as_float32(model), vocab_path, metadata)
    if os.path.isdir(export_dir):
        os.rmdir(export_dir)
    os.rename(staging, export_dir)
    log(f"wrote {export_dir}: BertForSequenceClassification, {model.num_layers} layers, hidden {model.hidden_dim}, "
        + (f"labels {', '.join(metadata.label_names)}" if metadata.label_names else "one score"))
    return export_dir
