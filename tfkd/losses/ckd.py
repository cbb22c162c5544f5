"""CKD: contextual knowledge distillation (Park et al., EMNLP 2021).

METHODS.md §6. Four relation losses, each registered on its own so that the
distiller weighs them separately (`λ_wr_pair`, `λ_wr_angle`, `λ_ltr_pair`,
`λ_ltr_angle`): word relations (WR) between the tokens of one layer, and
layer-transforming relations (LTR) between the layers of one token. Only
relations are compared, so no projection is needed and the teacher and student
widths may differ. Padded tokens never enter a relation except in the
official window mode of the WR angle loss.

The layer set is the embedding output plus the P mapped layers
(`alignment="mapped"`), or the official code's `"emb+skip"`: the embeddings
plus every `L_T/L_S`-th teacher layer against all student layers.

Where tfkd deviates from the official code (GeondoPark/CKD):
- Normalisers: WR pair divides by the number of valid (i≠j) pairs, the code by
  `Σ n_valid²` (`normalizer="official"`); the WR angle loss averages over
  non-degenerate triples of valid, distinct window positions, the code over
  `valid centres × w²` with a clamped window that includes padded neighbours
  (`window_mode="reference"`); LTR averages over non-degenerate pairs/triples,
  the code over `n_valid × P²` / `n_valid × P³` (`normalizer="official"`).
  Degenerate terms (a zero difference vector) are 0 in both forms, as in the code.
- Masked entries are zeroed explicitly; the code multiplies −inf by a 0 mask,
  which only the old PyTorch it pins turns into 0 instead of NaN.
- The WR angle loss is computed from the Gram matrix
  (`⟨e_i−e_j, e_i−e_k⟩ = G_ii − G_ij − G_ik + G_jk`) instead of materialising
  `[B, n, w, d]` differences; two vectors closer than ~1e-3 of their norms
  count as a zero difference (float32 Gram entries cannot resolve them).
- The code's total loss with logit KD is KD alone (a soft cross-entropy, no T²);
  tfkd's `(1−β)·CE + β·KD + Σ λ·relation` is its own composition.
"""

from __future__ import annotations

import types
import warnings
from typing import Any, Dict, List, Sequence, Tuple

import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._common import NEG_LARGE, Outputs, check_choice, l2_normalize
from tfkd.losses._distribute import replica_share
from tfkd.losses.base import (
    DistillationLoss,
    DistillContext,
    HyperParameter,
    pair_weights,
    register_loss,
    require_outputs,
    to_float32,
)

# Squared differences below this fraction of ‖a‖² + ‖b‖² are float32 noise of the Gram form.
_RELATIVE_ZERO = 1e-6

# The official per-task weights, as configured in GeondoPark/CKD (both pair
# losses share one, both angle losses the other). The released code applies
# only the WR ones (its LTR weights sit under a name the loss never reads, so
# LTR ran at 1.0); tfkd's presets apply all four as configured.
_PAIR_PRESETS = types.MappingProxyType({"sst2": 100.0, "mrpc": 1.0, "rte": 1.0, "cola": 1.0})
_ANGLE_PRESETS = types.MappingProxyType({"sst2": 1000.0, "mrpc": 1.0, "rte": 10.0, "cola": 10.0})

_NORMALIZER = HyperParameter("normalizer", str, "valid",
                             "Relation-loss normaliser: valid pairs (tfkd) or the official code's.",
                             choices=("valid", "official"))


def _relation_kl(c_t: tf.Tensor, c_s: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Σ over rows of `KL(softmax(c_T) ‖ softmax(c_S))`, each row's softmax over
    the entries where `mask` is true; masked entries contribute exactly 0."""
    log_q_t = tf.nn.log_softmax(tf.where(mask, c_t, NEG_LARGE), axis=-1)
    log_q_s = tf.nn.log_softmax(tf.where(mask, c_s, NEG_LARGE), axis=-1)
    return tf.reduce_sum(tf.where(mask, tf.exp(log_q_t) * (log_q_t - log_q_s), 0.0))


def _inverse_distance(sq_norm_a: tf.Tensor, sq_norm_b: tf.Tensor, dot_ab: tf.Tensor, distinct: tf.Tensor) -> tf.Tensor:
    """`1/‖a − b‖` from Gram entries, 0 for a zero difference (the angle is then 0)."""
    dist2 = sq_norm_a - 2.0 * dot_ab + sq_norm_b
    nonzero = tf.logical_and(distinct, dist2 > _RELATIVE_ZERO * (sq_norm_a + sq_norm_b))
    return tf.where(nonzero, tf.math.rsqrt(tf.maximum(dist2, 1e-30)), 0.0)


class _CKDLoss(DistillationLoss):
    """Shared layer selection of the four CKD losses."""

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)
    key = "ckd"
    flag_prefix = "ckd"
    hyperparameters = (
        HyperParameter("alignment", str, "mapped",
                       "Layers related: embeddings + mapped layers (P = L_S + 1) or the official emb+skip.",
                       choices=("mapped", "emb+skip")),
    )

    def __init__(self, context: DistillContext, alignment: str = "mapped", **kwargs):
        super().__init__(context, **kwargs)
        check_choice(self.key, "alignment", alignment, ("mapped", "emb+skip"))
        self.alignment = alignment
        if alignment == "mapped":
            mapped = tuple(context.layer_map)
        else:
            num_t, num_s = context.teacher.num_layers, context.student.num_layers
            if num_t % num_s:
                raise TfkdError(
                    f"loss '{self.key}': alignment='emb+skip' needs L_T ({num_t}) to be a multiple of "
                    f"L_S ({num_s}). Fix: use alignment='mapped' with an explicit --layer_map."
                )
            mapped = tuple((k, k * num_t // num_s) for k in range(1, num_s + 1))
        self.layer_pairs: Tuple[Tuple[int, int], ...] = ((0, 0),) + mapped

    def _states(self, teacher: Outputs, student: Outputs) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
        require_outputs(teacher, ["hidden_states"], "teacher", self.key)
        require_outputs(student, ["hidden_states"], "student", self.key)
        return (
            [to_float32(teacher["hidden_states"][t]) for _, t in self.layer_pairs],
            [to_float32(student["hidden_states"][s]) for s, _ in self.layer_pairs],
        )

    def _layer_mean(self, terms: Sequence[tf.Tensor], batch: Dict[str, Any]) -> tf.Tensor:
        """Mean over layers, with the algorithm's pair weights: the embedding
        relation is weighted like the lowest pair (it is distilled with it)."""
        weights = pair_weights(batch, len(self.layer_pairs) - 1)
        weights = tf.concat([weights[:1], weights], axis=0)
        return tf.reduce_sum(tf.stack(terms) * weights) / len(terms)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["alignment"] = self.alignment
        return config


@register_loss("ckd_wr_pair")
class CKDWordPairLoss(_CKDLoss):
    """WR pair: per example and layer, `KL(q_T,i ‖ q_S,i)` of the row softmax of
    the token cosine matrix over `j ≠ i` (real tokens, no temperature).

    Summed over rows, examples and layers and divided by the number of valid
    pairs over examples and layers (i.e. a mean over layers, each layer weighted
    by its pair weight).

    Args:
        context: the `DistillContext`.
        alignment: "mapped" (default) or "emb+skip" (see the module docstring).
        normalizer: "valid" (default: `Σ n_valid·(n_valid−1)`) or "official"
            (`Σ n_valid²`, the diagonal counted, as the code does).

    Example:
    ```python
    wr = tfkd.LOSSES.get("ckd_wr_pair")(context, normalizer="valid")
    value = wr(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    key = "ckd_wr_pair"
    hyperparameters = (_NORMALIZER,)
    method = "ckd"
    weight_help = "Weight of CKD's word-relation pair loss."
    weight_presets = _PAIR_PRESETS

    def __init__(self, context: DistillContext, alignment: str = "mapped", normalizer: str = "valid", **kwargs):
        super().__init__(context, alignment=alignment, **kwargs)
        check_choice(self.key, "normalizer", normalizer, ("valid", "official"))
        self.normalizer = normalizer

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        states_t, states_s = self._states(teacher, student)
        real = tf.cast(batch["padding_mask"], tf.bool)
        n = tf.shape(real)[1]
        pair_mask = real[:, :, None] & real[:, None, :] & ~tf.eye(n, dtype=tf.bool)[None]
        counted = pair_mask if self.normalizer == "valid" else real[:, :, None] & real[:, None, :]
        count = tf.maximum(replica_share(tf.reduce_sum(tf.cast(counted, tf.float32))), 1.0)
        terms = []
        for e_t, e_s in zip(states_t, states_s):
            u_t, u_s = l2_normalize(e_t), l2_normalize(e_s)
            c_t = tf.matmul(u_t, u_t, transpose_b=True)
            c_s = tf.matmul(u_s, u_s, transpose_b=True)
            terms.append(_relation_kl(c_t, c_s, pair_mask) / count)
        return self._layer_mean(terms, batch)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["normalizer"] = self.normalizer
        return config


@register_loss("ckd_wr_angle")
class CKDWordAngleLoss(_CKDLoss):
    """WR angle with a locality window: MSE of `⟨unit(e_i−e_j), unit(e_i−e_k)⟩`
    between teacher and student, for centre token i and j, k in its window.

    Default window mode "valid": j and k are real tokens at distinct positions
    within ±`window//2` of i, both different from i (non-degenerate triples, no
    duplicated window edges). "reference": the official clamped window (positions
    clipped to the sequence, so edges repeat) including padded neighbours and
    degenerate triples, averaged over `valid centres × w²`. Computed from each
    layer's Gram matrix; the loss is the mean over layers (pair-weighted).

    Args:
        context: the `DistillContext`.
        alignment: "mapped" (default) or "emb+skip".
        window: odd window width w (default 21, i.e. ±10).
        window_mode: "valid" (default) or "reference".

    Example:
    ```python
    angle = tfkd.LOSSES.get("ckd_wr_angle")(context, window=21)
    value = angle(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    key = "ckd_wr_angle"
    hyperparameters = (
        HyperParameter("window", int, 21, "Locality window width of the WR angle loss."),
        HyperParameter("window_mode", str, "valid",
                       "valid: padded neighbours excluded, edges not duplicated; "
                       "reference: the official clamped window.",
                       choices=("valid", "reference")),
    )
    method = "ckd"
    weight_help = "Weight of CKD's word-relation angle loss."
    weight_presets = _ANGLE_PRESETS

    def __init__(
        self,
        context: DistillContext,
        alignment: str = "mapped",
        window: int = 21,
        window_mode: str = "valid",
        **kwargs,
    ):
        super().__init__(context, alignment=alignment, **kwargs)
        check_choice(self.key, "window_mode", window_mode, ("valid", "reference"))
        if window < 1 or window % 2 == 0:
            raise TfkdError(f"loss '{self.key}': window={window} must be a positive odd number. Fix: e.g. 21.")
        self.window = int(window)
        self.window_mode = window_mode

    def _angles(self, e: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        """`[B, n, w, w]` angle cosines at centre i between window positions j and k."""
        n = tf.shape(e)[1]
        gram = tf.matmul(e, e, transpose_b=True)
        diag = tf.linalg.diag_part(gram)
        flat = tf.reshape(gram, [tf.shape(e)[0], n * n])
        rows = tf.range(n)[:, None]
        g_ij = tf.gather(flat, rows * n + idx, axis=1)
        g_jj = tf.gather(diag, idx, axis=1)
        g_jk = tf.gather(flat, idx[:, :, None] * n + idx[:, None, :], axis=1)
        g_ii = diag[:, :, None]
        inv = _inverse_distance(g_ii, g_jj, g_ij, (idx != rows)[None])
        dot = g_ii[..., None] - g_ij[..., :, None] - g_ij[..., None, :] + g_jk
        return dot * inv[..., :, None] * inv[..., None, :]

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        states_t, states_s = self._states(teacher, student)
        real = tf.cast(batch["padding_mask"], tf.bool)
        n = tf.shape(real)[1]
        half = self.window // 2
        offsets = tf.range(-half, half + 1)
        positions = tf.range(n)[:, None] + offsets[None, :]
        idx = tf.clip_by_value(positions, 0, n - 1)
        centre = real[:, :, None, None]
        if self.window_mode == "reference":
            triples = tf.broadcast_to(centre, [tf.shape(real)[0], n, self.window, self.window])
        else:
            in_sequence = (positions >= 0) & (positions < n) & (offsets != 0)[None, :]
            neighbour = tf.gather(real, idx, axis=1) & in_sequence[None]
            distinct = (offsets[:, None] != offsets[None, :])[None, None]
            triples = centre & neighbour[..., :, None] & neighbour[..., None, :] & distinct
        count = tf.maximum(replica_share(tf.reduce_sum(tf.cast(triples, tf.float32))), 1.0)
        terms = []
        for e_t, e_s in zip(states_t, states_s):
            diff = self._angles(e_t, idx) - self._angles(e_s, idx)
            terms.append(tf.reduce_sum(tf.where(triples, tf.square(diff), 0.0)) / count)
        return self._layer_mean(terms, batch)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(window=self.window, window_mode=self.window_mode)
        return config


def _warn_if_constant(key: str, num_layers: int) -> None:
    # With two layers every row softmax has one entry and no triple of distinct
    # layers exists: the loss is identically 0 and teaches nothing.
    if num_layers < 3:
        warnings.warn(
            f"loss '{key}' relates only {num_layers} layers (embeddings + {num_layers - 1} mapped), so it is "
            "always 0. Fix: use a student with at least 2 layers, or drop this term.",
            stacklevel=3,
        )


def _stack_layers(states: Sequence[tf.Tensor]) -> tf.Tensor:
    """L' tensors `[B, n, d]` → `[B, n, L', d]`: each token's vectors across layers."""
    return tf.stack(states, axis=2)


@register_loss("ckd_ltr_pair")
class CKDLayerPairLoss(_CKDLoss):
    """LTR pair: per real token, the cosine matrix across the layer set, row
    softmax over the other layers, `KL(teacher ‖ student)` summed over rows.

    LTR relates all layers at once, so the algorithm's pair weights do not
    apply to it.

    Args:
        context: the `DistillContext`.
        alignment: "mapped" (default) or "emb+skip".
        normalizer: "valid" (default: real tokens × L'(L'−1) off-diagonal
            pairs) or "official" (real tokens × L'², as the code does).

    Example:
    ```python
    ltr = tfkd.LOSSES.get("ckd_ltr_pair")(context)
    value = ltr(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    key = "ckd_ltr_pair"
    hyperparameters = (_NORMALIZER,)
    method = "ckd"
    weight_help = "Weight of CKD's layer-transforming-relation pair loss."
    weight_presets = _PAIR_PRESETS

    def __init__(self, context: DistillContext, alignment: str = "mapped", normalizer: str = "valid", **kwargs):
        super().__init__(context, alignment=alignment, **kwargs)
        check_choice(self.key, "normalizer", normalizer, ("valid", "official"))
        self.normalizer = normalizer
        _warn_if_constant(self.key, len(self.layer_pairs))

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        states_t, states_s = self._states(teacher, student)
        real = tf.cast(batch["padding_mask"], tf.bool)
        num = len(self.layer_pairs)
        u_t = l2_normalize(_stack_layers(states_t))
        u_s = l2_normalize(_stack_layers(states_s))
        c_t = tf.matmul(u_t, u_t, transpose_b=True)
        c_s = tf.matmul(u_s, u_s, transpose_b=True)
        mask = real[:, :, None, None] & ~tf.eye(num, dtype=tf.bool)[None, None]
        per_token = num * (num - 1) if self.normalizer == "valid" else num * num
        count = tf.maximum(replica_share(tf.reduce_sum(tf.cast(real, tf.float32))) * per_token, 1.0)
        return _relation_kl(c_t, c_s, mask) / count

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["normalizer"] = self.normalizer
        return config


@register_loss("ckd_ltr_angle")
class CKDLayerAngleLoss(_CKDLoss):
    """LTR angle: per real token, MSE between teacher and student of
    `⟨unit(e_l − e_m), unit(e_l − e_r)⟩` over the layer triples (l, m, r).

    The pair weights do not apply (see `ckd_ltr_pair`).

    Args:
        context: the `DistillContext`.
        alignment: "mapped" (default) or "emb+skip".
        normalizer: "valid" (default: the L'(L'−1)(L'−2) triples of distinct
            layers) or "official" (all L'³ triples, degenerate ones counted as
            0, as the code does).

    Example:
    ```python
    angle = tfkd.LOSSES.get("ckd_ltr_angle")(context)
    value = angle(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    key = "ckd_ltr_angle"
    hyperparameters = (_NORMALIZER,)
    method = "ckd"
    weight_help = "Weight of CKD's layer-transforming-relation angle loss."
    weight_presets = _ANGLE_PRESETS

    def __init__(self, context: DistillContext, alignment: str = "mapped", normalizer: str = "valid", **kwargs):
        super().__init__(context, alignment=alignment, **kwargs)
        check_choice(self.key, "normalizer", normalizer, ("valid", "official"))
        self.normalizer = normalizer
        _warn_if_constant(self.key, len(self.layer_pairs))

    @staticmethod
    def _angles(e: tf.Tensor) -> tf.Tensor:
        """`[B, n, L', d]` → `[B, n, L', L', L']` angle cosines at layer l between m and r."""
        gram = tf.matmul(e, e, transpose_b=True)
        diag = tf.linalg.diag_part(gram)
        num = e.shape[2]
        distinct = ~tf.eye(num, dtype=tf.bool)[None, None]
        inv = _inverse_distance(diag[..., :, None], diag[..., None, :], gram, distinct)
        dot = diag[..., :, None, None] - gram[..., :, :, None] - gram[..., :, None, :] + gram[..., None, :, :]
        return dot * inv[..., :, :, None] * inv[..., :, None, :]

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        states_t, states_s = self._states(teacher, student)
        real = tf.cast(batch["padding_mask"], tf.bool)
        num = len(self.layer_pairs)
        diff = self._angles(_stack_layers(states_t)) - self._angles(_stack_layers(states_s))
        eye = tf.eye(num, dtype=tf.bool)
        if self.normalizer == "valid":
            distinct = ~(eye[:, :, None] | eye[:, None, :] | eye[None, :, :])
            per_token = num * (num - 1) * (num - 2)
        else:
            distinct = tf.ones([num, num, num], tf.bool)
            per_token = num**3
        mask = real[:, :, None, None, None] & distinct[None, None]
        count = tf.maximum(replica_share(tf.reduce_sum(tf.cast(real, tf.float32))) * per_token, 1.0)
        return tf.reduce_sum(tf.where(mask, tf.square(diff), 0.0)) / count

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["normalizer"] = self.normalizer
        return config
