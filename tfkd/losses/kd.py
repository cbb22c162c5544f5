"""Output losses: cross-entropy with the label (`ce`) and Hinton's KD (`kd`).

METHODS.md §1. The distiller combines them as `(1−β)·CE + β·KD`; the weights
live in the distiller, not in these losses.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import tensorflow as tf

from tfkd.losses._common import Outputs
from tfkd.losses._distribute import all_reduce_sum
from tfkd.losses.base import (
    GOLD,
    DistillationLoss,
    DistillContext,
    HyperParameter,
    gold_mean,
    masked_mean,
    register_loss,
    require_outputs,
    to_float32,
)

# The diagnostics of a KD term on a training set with augmented rows: its value on each kind of row.
GOLD_SPLIT = ("original", "augmented")


@register_loss("ce")
class CrossEntropyLoss(DistillationLoss):
    """Cross-entropy of the student's logits with the label; MSE for regression.

    Reads no teacher output, so it also serves as the dev-set loss. On a
    training set enlarged by data augmentation it averages over the rows with
    a gold label only (`tfkd.losses.gold_mean`).

    Args:
        context: the `DistillContext` (`is_regression` picks MSE).

    Example:
    ```python
    ce = tfkd.LOSSES.get("ce")(context)
    value = ce({}, {"logits": logits}, {"labels": labels})
    ```
    """

    student_needs = ("logits",)
    # The output terms share the kd_ flags (their weights are kd_beta's).
    flag_prefix = "kd"

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(student, ["logits"], "student", "ce")
        logits = to_float32(student["logits"])
        if self.context.is_regression:
            return gold_mean(tf.square(logits[:, 0] - to_float32(batch["labels"])), batch)
        labels = tf.cast(batch["labels"], tf.int32)
        return gold_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), batch)


@register_loss("kd")
class KDLoss(DistillationLoss):
    """Hinton's soft-label loss `T² · KL(softmax(z_T/T) ‖ softmax(z_S/T))`, batch mean.

    For regression it is `MSE(z_S, z_T)` (no temperature).

    It uses every row, augmented ones included (the teacher labels them).
    When the training set has augmented rows (`context.augmented_examples`),
    its value on the original and on the augmented rows of the training
    batches are logged apart, as `<name>_original` and `<name>_augmented`.

    Args:
        context: the `DistillContext`.
        temperature: `T` (default 2.0, where CoDIR's KD sweep starts).

    Example:
    ```python
    kd = tfkd.LOSSES.get("kd")(context, temperature=2.0)
    value = kd({"logits": teacher_logits}, {"logits": student_logits}, batch)
    ```
    """

    teacher_needs = ("logits",)
    student_needs = ("logits",)
    hyperparameters = (
        HyperParameter("temperature", float, 2.0, "Softmax temperature T of KD (the loss is scaled by T²)."),
    )

    def __init__(self, context: DistillContext, temperature: float = 2.0, **kwargs):
        if context.augmented_examples:
            self.diagnostics = GOLD_SPLIT  # before the base class makes one running mean per diagnostic
        super().__init__(context, **kwargs)
        self.temperature = float(temperature)

    def teacher_features(self) -> Tuple[str, ...]:
        return ("logits",)

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(teacher, ["logits"], "teacher", "kd")
        require_outputs(student, ["logits"], "student", "kd")
        z_t = to_float32(teacher["logits"])
        z_s = to_float32(student["logits"])
        if self.context.is_regression:
            per_example, scale = tf.reduce_mean(tf.square(z_s - z_t), axis=-1), 1.0
        else:
            log_p_t = tf.nn.log_softmax(z_t / self.temperature, axis=-1)
            log_p_s = tf.nn.log_softmax(z_s / self.temperature, axis=-1)
            per_example, scale = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1), self.temperature**2
        if training and self.diagnostics == GOLD_SPLIT and GOLD in batch:
            gold = tf.cast(batch[GOLD], tf.float32)
            for diagnostic, rows in zip(GOLD_SPLIT, (gold, 1.0 - gold)):
                # Weighted by the rows it averages: a batch without such rows adds nothing to the mean.
                self.record(diagnostic, scale * masked_mean(per_example, rows), all_reduce_sum(tf.reduce_sum(rows)))
        return scale * tf.reduce_mean(per_example)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
