"""The baseline intermediate loss: PKD-style L2 between normalised hidden states.

METHODS.md §2: the "simple L2 loss" that the seed papers improve on.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from tfkd.losses._common import (
    Outputs,
    apply_optional,
    check_choice,
    example_mask,
    feature_key,
    l2_normalize,
    masked_example_mean,
    pair_projections,
    teacher_vector,
)
from tfkd.losses.base import (
    DistillationLoss,
    DistillContext,
    HyperParameter,
    masked_mean,
    register_loss,
    require_outputs,
    to_float32,
    weighted_pair_sum,
)


@register_loss("pkd")
class PKDLoss(DistillationLoss):
    """`MSE(normalize(h_S[k]·W), normalize(h_T[g(k)]))` summed over the mapped layers.

    The MSE averages over the feature dimension (as `torch.nn.MSELoss`), so
    for unit vectors it equals `(2 − 2·cos) / d_T`. `W` is a learned `Dense`
    (with bias, one per layer pair) that exists only when the student and
    teacher widths differ. Pairs are summed with the algorithm's pair weights.

    Args:
        context: the `DistillContext` (layer map and widths).
        variant: "cls" (default): the [CLS] vectors, mean over the batch's
            real examples; "all_tokens": every real token, mean over the
            batch's real tokens.

    Example:
    ```python
    pkd = tfkd.LOSSES.get("pkd")(context, variant="cls")
    value = pkd(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)
    hyperparameters = (
        HyperParameter("variant", str, "cls", "PKD: [CLS] vectors or all valid tokens.", choices=("cls", "all_tokens")),
    )
    method = "pkd"
    default_weight = 100.0
    weight_help = "Weight of the PKD L2 loss (normalised vectors give small values; PKD used 100-500)."

    def __init__(self, context: DistillContext, variant: str = "cls", **kwargs):
        super().__init__(context, **kwargs)
        check_choice("pkd", "variant", variant, ("cls", "all_tokens"))
        self.variant = variant
        self.projections = pair_projections(context)

    def teacher_features(self) -> Optional[Tuple[str, ...]]:
        if self.variant == "all_tokens":
            return None
        return tuple(feature_key("cls", t) for _, t in self.context.layer_map)

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(student, ["hidden_states"], "student", "pkd")
        mask = batch["padding_mask"]
        per_pair = []
        for k, (s, t) in enumerate(self.context.layer_map):
            projection = self.projections[k] if self.projections else None
            h_s = to_float32(student["hidden_states"][s])
            if self.variant == "cls":
                v_t = teacher_vector(teacher, t, "cls", mask, "pkd")
                diff = l2_normalize(apply_optional(projection, h_s[:, 0, :])) - l2_normalize(v_t)
                per_pair.append(masked_example_mean(tf.reduce_mean(tf.square(diff), -1), example_mask(mask)))
            else:
                require_outputs(teacher, ["hidden_states"], "teacher", "pkd")
                h_t = to_float32(teacher["hidden_states"][t])
                diff = l2_normalize(apply_optional(projection, h_s)) - l2_normalize(h_t)
                per_pair.append(masked_mean(tf.reduce_mean(tf.square(diff), -1), mask))
        return weighted_pair_sum(per_pair, batch)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["variant"] = self.variant
        return config
