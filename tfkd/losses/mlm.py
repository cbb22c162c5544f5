"""The student's masked-LM loss, for CoDIR's pre-training stage (METHODS.md §4, CoDIR-Pre).

The MLM head (keras-hub's `MaskedLMHead`: dense + GELU + LayerNorm, then the
transposed token embedding and an output bias, as in BERT) lives in this
loss layer, so it is trained and checkpointed with the distiller; tfkd.pretrain
saves its weights beside the student (`tfkd.models.masked_lm`, for the `mlm`
augmenter), and the export never includes it. Its output matrix is the student's own
`token_embedding`, passed in by the constructor: the MLM gradient trains the
student's embeddings, and the head adds only `d² + 3d + V` parameters.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import keras
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._common import Outputs
from tfkd.losses._distribute import replica_share
from tfkd.losses.base import DistillationLoss, DistillContext, HyperParameter, register_loss, require_outputs
from tfkd.models.masked_lm import masked_lm_head, untied


@register_loss("mlm")
class MaskedLMLoss(DistillationLoss):
    """Masked-LM cross-entropy of the student over the masked positions only.

    `L = Σ_{b,p} w_bp · CE(head(h_S[L][b, pos_bp]), id_bp) / Σ_{b,p} w_bp`:
    the mean over the batch's real predictions (BERT's definition), where
    `pos`, `id`, `w` are the batch's `mask_positions`, `mask_ids` and
    `mask_weights` (see `tfkd.data.pretrain.mask_batches`) and `h_S[L]` the
    student's last hidden state. Logits are cast to float32 before the
    softmax, so the cross-entropy stays float32 under mixed precision; the
    head itself computes in the embedding's dtype policy, like the student.

    KD on MLM logits needs a teacher MLM head; tfkd's teachers carry none
    (the packaged MiniLM is a sentence-transformers export without
    `cls.predictions` weights), so this loss has no teacher term.

    Args:
        context: the `DistillContext` (the student's width).
        token_embedding: the student's `ReversibleEmbedding` layer
            (`student.get_layer("token_embedding")`); the head's output matrix
            is its transpose.
        layer_norm_epsilon: ε of the head's LayerNorm (BERT: 1e-12).

    Example:
    ```python
    mlm = tfkd.LOSSES.get("mlm")(context, token_embedding=student.get_layer("token_embedding"))
    value = mlm({}, student(inputs), batch)  # batch from mask_batches
    ```
    """

    teacher_needs = ()
    student_needs = ("hidden_states",)
    # token_embedding is the student's own layer, passed by the caller: not a hyper-parameter.
    hyperparameters = (
        HyperParameter("layer_norm_epsilon", float, 1e-12, "ε of the MLM head's LayerNorm (BERT: 1e-12).", lower=0.0),
    )

    def __init__(
        self,
        context: DistillContext,
        token_embedding: Optional[keras.layers.ReversibleEmbedding] = None,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(context, **kwargs)
        if token_embedding is None:
            raise TfkdError(
                "loss 'mlm' ties its output matrix to the student's token embedding, which was not given. "
                "Fix: construct it with token_embedding=student.get_layer('token_embedding')."
            )
        if token_embedding.output_dim != context.student.hidden_dim:
            raise TfkdError(
                f"loss 'mlm': the token embedding is {token_embedding.output_dim} wide but the student's hidden "
                f"states are {context.student.hidden_dim}. Fix: pass the student's own token_embedding layer."
            )
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        # The same head keras-hub's BertMaskedLM puts on a BERT backbone, built now: the
        # distiller collects the loss layers' variables before the first step.
        self.head = masked_lm_head(token_embedding, self.layer_norm_epsilon)
        self.built = True

    @property
    def token_embedding(self) -> keras.layers.ReversibleEmbedding:
        return self.head.token_embedding

    def _own(self, variables: List[Any]) -> List[Any]:
        # The tied embedding belongs to the student: listing it here too would
        # hand the optimizer the same variable twice.
        return untied(variables, self.token_embedding)

    @property
    def variables(self) -> List[Any]:
        return self._own(super().variables)

    @property
    def weights(self) -> List[Any]:
        return self._own(super().weights)

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(student, ["hidden_states"], "student", "mlm")
        for key in ("mask_positions", "mask_ids", "mask_weights"):
            if key not in batch:
                raise TfkdError(
                    f"loss 'mlm' needs the batch's '{key}', which is missing. Fix: mask the batches with "
                    "tfkd.data.pretrain.mask_batches (python -m tfkd.pretrain does)."
                )
        hidden = tf.convert_to_tensor(student["hidden_states"][-1])
        logits = tf.cast(self.head(hidden, mask_positions=tf.cast(batch["mask_positions"], tf.int32)), tf.float32)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(batch["mask_ids"], tf.int32), logits=logits
        )
        weights = tf.cast(batch["mask_weights"], tf.float32)
        return tf.reduce_sum(cross_entropy * weights) / tf.maximum(replica_share(tf.reduce_sum(weights)), 1.0)

    def get_config(self) -> Dict[str, Any]:
        """The config without the tied embedding: `from_config` needs it again,
        e.g. `MaskedLMLoss.from_config({**config, "token_embedding": layer})`."""
        config = super().get_config()
        config.update(layer_norm_epsilon=self.layer_norm_epsilon)
        return config
