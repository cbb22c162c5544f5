"""Building the student: a smaller `BertModel`, initialised from a teacher or at random."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from tfkd.errors import TfkdError
from tfkd.models.bert import ENCODER_LAYER_NAMES, BertModel


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """The student's shape.

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
    config: StudentConfig,
    like: BertModel,
    init_from: Optional[BertModel] = None,
    layers_from: Optional[Sequence[int]] = None,
    output_attentions: bool = False,
) -> BertModel:
    """Builds a student with `like`'s vocabulary, head size and GELU.

    Args:
        config: the student's `StudentConfig`.
        like: the teacher (vocabulary size, classes, positions, GELU form).
        init_from: a model whose embeddings, pooler and chosen layers are
            copied into the student; None for random initialisation.
        layers_from: 1-based layers of `init_from` copied into student layers
            1..L_S, in order. Default: uniformly spaced (6→3: 2,4,6).
        output_attentions: also output attention probabilities (for attention losses).

    Example:
    >>> student = build_student(StudentConfig(num_layers=3), like=teacher,
    ...                         init_from=teacher, layers_from=[2, 4, 6])
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
        output_attentions=output_attentions,
        name="student",
    )
    if init_from is not None:
        initialize_from(student, init_from, layers_from)
    return student


def initialize_from(student: BertModel, source: BertModel, layers_from: Optional[Sequence[int]] = None) -> None:
    """Copies `source`'s embeddings, pooler and `layers_from` (1-based) into `student`."""
    if layers_from is None or len(layers_from) == 0:
        step = source.num_layers / student.num_layers
        layers_from = [round((k + 1) * step) for k in range(student.num_layers)]
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
