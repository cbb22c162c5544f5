"""Internal-representation KD (Aguilar et al., AAAI 2020): attention KL and [CLS] cosine.

METHODS.md §3. Both losses sum over the layer-map pairs with the pair
weights an algorithm sets, so the joint, progressive (PID) and stacked (SID)
schedules switch stages by assigning weights, never by retracing.
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._common import (
    Outputs,
    apply_optional,
    example_mask,
    feature_key,
    l2_normalize,
    masked_example_mean,
    pair_projections,
    teacher_vector,
    token_mask,
)
from tfkd.losses.base import (
    DistillationLoss,
    DistillContext,
    masked_mean,
    register_loss,
    require_outputs,
    to_float32,
    weighted_pair_sum,
)

_CLIP = 1e-12


@register_loss("attention_kl")
class AttentionKLLoss(DistillationLoss):
    """`KL(A_T[g(k)][h,q,:] ‖ A_S[k][h,q,:])` over keys, mean over heads and real query rows.

    Per layer pair, for every head `h` and real query token `q`, the KL
    divergence between the teacher's and the student's attention
    distributions over the keys; probabilities are clipped at 1e-12 before the
    log. Padded keys are left out of the sum (their probability is 0 in both
    models anyway). The mean is over heads and over all real query rows of the
    batch. When the head counts differ, the head-averaged distributions are
    compared. The attention probabilities must be the softmax output before
    attention dropout, as `BertModel` returns them.

    Args:
        context: the `DistillContext`; every mapped layer must be a
            transformer layer (no attention exists for the embeddings, layer 0).

    Example:
    ```python
    att = tfkd.LOSSES.get("attention_kl")(context)
    value = att(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    teacher_needs = ("attentions",)
    student_needs = ("attentions",)
    method = "internal"
    default_weight = 1.0
    weight_help = "Weight of the attention KL loss."

    def __init__(self, context: DistillContext, **kwargs):
        super().__init__(context, **kwargs)
        if any(s < 1 or t < 1 for s, t in context.layer_map):
            raise TfkdError(
                f"loss 'attention_kl' maps embedding layers ({context.layer_map}), which have no "
                "attention. Fix: map student layers 1..L_S to teacher layers 1..L_T in --layer_map."
            )

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(teacher, ["attentions"], "teacher", "attention_kl")
        require_outputs(student, ["attentions"], "student", "attention_kl")
        mask = batch["padding_mask"]
        key_mask = token_mask(mask)[:, None, None, :]
        per_pair = []
        for s, t in self.context.layer_map:
            a_s = to_float32(student["attentions"][s - 1])
            a_t = to_float32(teacher["attentions"][t - 1])
            if a_s.shape[1] != a_t.shape[1]:
                a_s = tf.reduce_mean(a_s, axis=1, keepdims=True)
                a_t = tf.reduce_mean(a_t, axis=1, keepdims=True)
            log_ratio = tf.math.log(tf.maximum(a_t, _CLIP)) - tf.math.log(tf.maximum(a_s, _CLIP))
            kl = tf.reduce_sum(a_t * log_ratio * key_mask, axis=-1)
            per_pair.append(masked_mean(tf.reduce_mean(kl, axis=1), mask))
        return weighted_pair_sum(per_pair, batch)


@register_loss("cls_cosine")
class CLSCosineLoss(DistillationLoss):
    """`1 − cos(h_S[k][CLS]·W, h_T[g(k)][CLS])`, mean over the batch's real examples.

    `W` is a learned `Dense` (with bias, one per layer pair) that exists only
    when the widths differ.

    Args:
        context: the `DistillContext`.

    Example:
    ```python
    cos = tfkd.LOSSES.get("cls_cosine")(context)
    value = cos(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)
    method = "internal"
    default_weight = 1.0
    weight_help = "Weight of the [CLS] cosine loss."

    def __init__(self, context: DistillContext, **kwargs):
        super().__init__(context, **kwargs)
        self.projections = pair_projections(context)

    def teacher_features(self) -> Tuple[str, ...]:
        return tuple(feature_key("cls", t) for _, t in self.context.layer_map)

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(student, ["hidden_states"], "student", "cls_cosine")
        valid = example_mask(batch["padding_mask"])
        per_pair = []
        for k, (s, t) in enumerate(self.context.layer_map):
            projection = self.projections[k] if self.projections else None
            v_s = l2_normalize(apply_optional(projection, to_float32(student["hidden_states"][s][:, 0, :])))
            v_t = l2_normalize(teacher_vector(teacher, t, "cls", batch["padding_mask"], "cls_cosine"))
            per_pair.append(masked_example_mean(1.0 - tf.reduce_sum(v_s * v_t, axis=-1), valid))
        return weighted_pair_sum(per_pair, batch)
