"""`feature_mse`: keras.distillation's `FeatureDistillation(loss="mse")` as a tfkd loss.

MSE between the last layer-map pair's hidden states, over real tokens: the
peer toolkit's feature loss, so `tfkd.bench` can time tfkd's step on exactly
the objective keras.distillation computes, and users can compare with it.

Example: `--losses=ce:0.5,kd:0.5,feature_mse:1`.
"""

from __future__ import annotations

import tensorflow as tf

from tfkd.losses.base import DistillationLoss, masked_mean, register_loss, to_float32


@register_loss("feature_mse")
class FeatureMSELoss(DistillationLoss):
    """Mean squared difference of the last mapped pair's hidden states, averaged over real tokens."""

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)

    def call(self, teacher, student, batch, training=False):
        s, t = self.context.layer_map[-1]
        diff = to_float32(student["hidden_states"][s]) - to_float32(teacher["hidden_states"][t])
        return masked_mean(tf.reduce_mean(tf.square(diff), axis=-1), batch["padding_mask"])
