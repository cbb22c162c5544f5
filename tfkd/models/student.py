"""Building the student: a smaller `BertModel`, initialised from a teacher or at random."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

from tfkd.core.errors import TfkdError
from tfkd.data.tokenizer import vocab_checksum
from tfkd.models.bert import ENCODER_LAYER_NAMES, BertModel
from tfkd.models.layer_map import uniform_layer_map
from tfkd.models.model_dir import is_model_dir, load_model_dir
from tfkd.models.sources import load_hf_directory


@dataclasses.dataclass(frozen=True)
class StudentShape:
    """The student's shape (the architecture `build_student` makes).

    Args:
        num_layers: transformer layers.
        hidden_dim: hidden width (must equal the source's to copy its weights).
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        dropout: dropout rate.
    """

    num_layers: int = 3
    hidden_dim: int = 384
    num_heads: int = 12
    intermediate_dim: int = 1536
    dropout: float = 0.1


def build_student(
    config: StudentShape,
    like: BertModel,
    init_from: Optional[BertModel] = None,
    layers_from: Optional[Sequence[int]] = None,
    output_attentions: bool = False,
) -> BertModel:
    """Builds a student with `like`'s vocabulary, head size, GELU and LayerNorm epsilon.

    Args:
        config: the student's `StudentShape`.
        like: the teacher (vocabulary size, classes, positions, GELU form, LayerNorm epsilon).
        init_from: a model whose embeddings, pooler and chosen layers are
            copied into the student; None for random initialisation.
        layers_from: 1-based layers of `init_from` copied into student layers
            1..L_S, in order. Default: uniformly spaced (6→3: 2,4,6).
        output_attentions: also output attention probabilities (for attention losses).

    Example:
    >>> teacher = BertModel(vocabulary_size=30, num_layers=6, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> student = build_student(StudentShape(num_layers=3, hidden_dim=8, num_heads=2, intermediate_dim=16),
    ...                         like=teacher, init_from=teacher, layers_from=[2, 4, 6])
    >>> student.num_layers, student.vocabulary_size
    (3, 30)
    """
    if config.hidden_dim % config.num_heads:
        raise TfkdError(
            f"student hidden size {config.hidden_dim} is not divisible by {config.num_heads} heads. "
            "Fix: choose --student_heads dividing --student_hidden_dim."
        )
    student = BertModel(
        vocabulary_size=like.vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        num_classes=like.num_classes,
        dropout=config.dropout,
        max_sequence_length=like.max_sequence_length,
        num_segments=like.num_segments,
        exact_gelu=like.exact_gelu,
        layer_norm_epsilon=like.layer_norm_epsilon,
        output_attentions=output_attentions,
        name="student",
    )
    if init_from is not None:
        initialize_from(student, init_from, layers_from)
    return student


def initialize_from(student: BertModel, source: BertModel, layers_from: Optional[Sequence[int]] = None) -> None:
    """Copies `source`'s embeddings, pooler and `layers_from` (1-based) into `student`."""
    if layers_from is None or len(layers_from) == 0:
        layers_from = [t for _, t in uniform_layer_map(source.num_layers, student.num_layers)]
    layers_from = list(layers_from)
    if len(layers_from) != student.num_layers:
        raise TfkdError(
            f"--student_layers_from lists {len(layers_from)} layers but the student has {student.num_layers}. "
            "Fix: give one source layer per student layer."
        )
    bad = [k for k in layers_from if not 1 <= k <= source.num_layers]
    if bad:
        raise TfkdError(f"--student_layers_from names layer(s) {bad}; the source has layers 1..{source.num_layers}. Fix: use numbers in that range.")
    mismatched = [
        f"{name}: student {getattr(student, name)} vs source {getattr(source, name)}"
        for name in ("hidden_dim", "intermediate_dim", "num_heads", "vocabulary_size")
        if getattr(student, name) != getattr(source, name)
    ]
    if mismatched:
        raise TfkdError(
            "cannot copy the source's weights into the student: " + "; ".join(mismatched)
            + ". Fix: make the student as wide as the source, or pass --student_init=random."
        )
    source_layers = {layer.name: layer for layer in source.layers}
    for name in ENCODER_LAYER_NAMES:
        student.get_layer(name).set_weights(source_layers[name].get_weights())
    for k, source_layer in enumerate(layers_from):
        student.get_layer(f"transformer_layer_{k}").set_weights(
            source_layers[f"transformer_layer_{source_layer - 1}"].get_weights()
        )


def load_init_source(path: str, teacher_vocab_path: str) -> BertModel:
    """The model `--student_init=<path>` names: a tfkd model directory (or `.keras` file) or a
    Hugging Face BERT directory, refused unless its vocabulary is the teacher's.

    The student reads the teacher's token ids, so embeddings copied from a model
    with another vocabulary would give every id another word's vector.

    Args:
        path: the directory (or `.keras` file).
        teacher_vocab_path: the teacher's `vocab.txt`.

    Example:
    >>> from tfkd.models.model_dir import ModelMetadata, save_model_dir
    >>> with open("vocab.txt", "w") as f:
    ...     _ = f.write("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> source = BertModel(vocabulary_size=8, num_layers=4, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> save_model_dir("source", source, "vocab.txt", ModelMetadata())
    >>> load_init_source("source", teacher_vocab_path="vocab.txt").num_layers  # the teacher has this vocabulary too
    4
    """
    if path.endswith(".keras") or is_model_dir(path):
        model, vocab_path, _ = load_model_dir(path)
    elif os.path.isdir(path):
        loaded = load_hf_directory(path, num_classes=2)  # its head, if any, is not copied
        model, vocab_path = loaded.model, loaded.vocab_path
    else:
        raise TfkdError(
            f"--student_init={path} is not pretrained, teacher, random or an existing directory. Fix: pass one of "
            "those words, a tfkd model directory or a Hugging Face BERT directory (config.json, model.safetensors, vocab.txt)."
        )
    theirs, ours = vocab_checksum(vocab_path), vocab_checksum(teacher_vocab_path)
    if theirs != ours:
        raise TfkdError(
            f"--student_init={path} has another vocabulary than the teacher: {vocab_path} ({_count_lines(vocab_path)} tokens, "
            f"sha256 {theirs[:12]}) vs {teacher_vocab_path} ({_count_lines(teacher_vocab_path)} tokens, sha256 {ours[:12]}), "
            "so its embeddings belong to other token ids. Fix: initialise from a model with the teacher's vocab.txt, "
            "or pass --student_init=pretrained, teacher or random."
        )
    return model


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)
