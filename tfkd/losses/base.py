"""The loss contract every distillation term follows, and the loss registry.

A loss is a Keras layer so that its own trainable parameters (projection
heads) and state (memory banks) belong to the distiller: they are trained and
checkpointed with it and never exported with the student.

Every loss is called as `loss(teacher, student, batch, training=...)`:

- `teacher`, `student`: model output dicts (see `tfkd.models`):
  `"logits"` `[B, C]`, `"hidden_states"` (L+1 tensors `[B, n, d]`, index 0 is
  the embedding output) and, when the model was built with attentions,
  `"attentions"` (L tensors `[B, H, n, n]`, softmax output before dropout).
- `batch`: `"padding_mask"` `[B, n]` (1 = real token), `"labels"` `[B]`,
  `"index"` `[B]` (stable example index) and optionally `"pair_weights"` `[P]`
  (one weight per layer-map pair; progressive/stacked algorithms set them).

It returns a float32 scalar: the mean over this replica's examples. All
arithmetic is float32 even under a mixed-precision policy.

Example: a user-defined loss, registered without editing tfkd:

```python
import tfkd

@tfkd.register_loss("hidden_mse")
class HiddenMSE(tfkd.DistillationLoss):
    teacher_needs = ("hidden_states",)

    def call(self, teacher, student, batch, training=False):
        s, t = self.context.layer_map[-1]
        diff = tfkd.losses.to_float32(student["hidden_states"][s]) - tfkd.losses.to_float32(
            teacher["hidden_states"][t])
        return tfkd.losses.masked_mean(tf.reduce_mean(diff**2, -1), batch["padding_mask"])
```
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._distribute import replica_share
from tfkd.models.layer_map import LayerMap
from tfkd.core.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The widths a loss needs to know about one model."""

    num_layers: int
    hidden_dim: int
    num_heads: int


@dataclasses.dataclass(frozen=True)
class DistillContext:
    """What every loss is constructed with.

    Args:
        teacher, student: the two models' `ModelSpec`.
        layer_map: `(student_layer, teacher_layer)` pairs (see `tfkd.models.layer_map`).
        num_classes: number of classes (1 for regression).
        is_regression: whether the task's label is a real number.
        num_train_examples: size of the training set (memory banks have one row each).
        train_labels: labels of the training set by example index, for
            label-aware negative sampling; None when unknown (pre-training).
    """

    teacher: ModelSpec
    student: ModelSpec
    layer_map: LayerMap
    num_classes: int = 2
    is_regression: bool = False
    num_train_examples: int = 0
    train_labels: Optional[np.ndarray] = dataclasses.field(default=None, compare=False)

    def to_config(self) -> Dict[str, Any]:
        config = dataclasses.asdict(self)
        config["layer_map"] = [list(p) for p in self.layer_map]
        config["train_labels"] = None if self.train_labels is None else self.train_labels.tolist()
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistillContext":
        config = dict(config)
        config["teacher"] = ModelSpec(**config["teacher"])
        config["student"] = ModelSpec(**config["student"])
        config["layer_map"] = tuple(tuple(p) for p in config["layer_map"])
        if config.get("train_labels") is not None:
            config["train_labels"] = np.asarray(config["train_labels"])
        return cls(**config)


class DistillationLoss(keras.layers.Layer):
    """Base class of every loss term. Subclasses implement `call`.

    Class attributes a subclass sets:
        teacher_needs: teacher outputs the loss reads ("logits",
            "hidden_states", "attentions"); the distiller runs the teacher
            only for what some loss needs.
        student_needs: the same for the student.

    A loss whose teacher side is per-example (logits, pooled layer states)
    overrides `teacher_features`, so a teacher-output cache can stand in for
    the live teacher.

    A loss that can fail quietly (a contrastive task that saturates or finds a
    shortcut) lists `diagnostics` and calls `record` in its training-mode
    `call`: each becomes a running mean, logged by the distiller as
    `<term name>_<diagnostic>` with the loss terms (progress log, TensorBoard), updated
    inside the compiled step without a host sync.

    Args:
        context: a `DistillContext`.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).
    """

    teacher_needs: Tuple[str, ...] = ()
    student_needs: Tuple[str, ...] = ("logits",)
    diagnostics: Tuple[str, ...] = ()

    def __init__(self, context: DistillContext, **kwargs):
        # A float32 layer policy under a mixed global policy also keeps Keras from
        # autocasting float32 inputs (teacher outputs, regression labels) down
        # to float16 before `call` sees them.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.context = context
        self.diagnostic_metrics: List[keras.metrics.Mean] = [
            keras.metrics.Mean(name=f"{self.name}_{name}") for name in self.diagnostics
        ]

    def record(self, diagnostic: str, value: tf.Tensor) -> None:
        """Adds this step's `value` (a scalar) to the running mean of `diagnostic`."""
        self.diagnostic_metrics[self.diagnostics.index(diagnostic)].update_state(tf.stop_gradient(value))

    def prepare(self, teacher_batches: Iterable[Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]]) -> None:
        """Called once before training with `(teacher_outputs, batch)` for the whole
        training set (e.g. to fill a memory bank). Default: nothing to prepare."""

    @property
    def needs_preparation(self) -> bool:
        return type(self).prepare is not DistillationLoss.prepare

    def teacher_features(self) -> Optional[Tuple[str, ...]]:
        """The per-example teacher features this loss reads (`"logits"`, or
        `"mean_<layer>"`/`"cls_<layer>"` pooled states read with
        `teacher_vector`); None when it reads token-level teacher outputs,
        which no cache holds. Default: none when the loss needs no teacher,
        else None."""
        return None if self.teacher_needs else ()

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["context"] = self.context.to_config()
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "DistillationLoss":
        config = dict(config)
        config["context"] = DistillContext.from_config(config["context"])
        return cls(**config)


def to_float32(x: tf.Tensor) -> tf.Tensor:
    """Casts to float32 (losses keep their arithmetic there under mixed precision)."""
    return tf.cast(x, tf.float32)


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` over the entries where `mask` is 1, divided by the number
    of valid entries (never the padded size); 0 when nothing is valid."""
    mask = tf.cast(mask, tf.float32)
    values = to_float32(values)
    return tf.reduce_sum(values * mask) / tf.maximum(replica_share(tf.reduce_sum(mask)), 1.0)


def pair_weights(batch: Mapping[str, tf.Tensor], num_pairs: int) -> tf.Tensor:
    """The per-pair weights an algorithm set for this step (ones by default)."""
    weights = batch.get("pair_weights")
    if weights is None:
        return tf.ones([num_pairs], tf.float32)
    return tf.cast(weights, tf.float32)


def weighted_pair_sum(per_pair: Sequence[tf.Tensor], batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Σ_k w_k ℓ_k over layer-map pairs, with `w` from `pair_weights`."""
    stacked = tf.stack([to_float32(v) for v in per_pair])
    return tf.reduce_sum(stacked * pair_weights(batch, len(per_pair)))


def require_outputs(outputs: Mapping[str, Any], keys: Sequence[str], who: str, loss_name: str) -> None:
    """Raises a clear error when a model output a loss needs is missing."""
    for key in keys:
        if key not in outputs:
            hint = (
                " Fix: build the model with output_attentions=True (the distiller does this "
                "when a loss lists 'attentions' in its needs)."
                if key == "attentions"
                else ""
            )
            raise TfkdError(f"loss '{loss_name}' needs the {who}'s '{key}' output, which is missing.{hint}")
