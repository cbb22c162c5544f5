"""CoDIR: contrastive distillation on intermediate representations (Sun et al., EMNLP 2020).

METHODS.md §4. Per example, pooled hidden states of a set of layers are
concatenated into a summary vector, projected by a head (`f_S` for the
student, `f_T` for the teacher) to `d_c` dimensions and L2-normalised. The
student's vector must pick its own teacher vector out of K negatives read from
a memory bank of teacher vectors of the whole training set.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._common import (
    NEG_LARGE,
    Outputs,
    check_choice,
    dense,
    example_mask,
    feature_key,
    l2_normalize,
    masked_example_mean,
    pool,
    teacher_vector,
)
from tfkd.losses._distribute import all_gather, all_reduce_sum, replica_id
from tfkd.losses._memory import (
    FeatureBank,
    MemoryBank,
    draw_seed,
    for_this_replica,
    label_pools,
    sample_from_pools,
    sample_uniform,
)
from tfkd.losses.base import DistillationLoss, DistillContext, HyperParameter, register_loss, require_outputs

# The official CRD code adds this inside the NCE denominators.
_NCE_EPS = 1e-7


def _layer_list(spec: Union[str, Sequence[int]], num_layers: int) -> List[int]:
    if isinstance(spec, str):
        try:
            layers = [int(x) for x in spec.replace(" ", "").split(",") if x]
        except ValueError:
            raise TfkdError(
                f"loss 'codir': teacher_layers='{spec}' is not a comma-separated list of integers. "
                "Fix: e.g. teacher_layers='1,3,5'."
            ) from None
    else:
        layers = [int(x) for x in spec]
    if not layers or any(not 0 <= layer <= num_layers for layer in layers):
        raise TfkdError(
            f"loss 'codir': teacher_layers={layers} must be a non-empty list of teacher layers in "
            f"0..{num_layers} (0 = embeddings). Fix: e.g. teacher_layers='1,3,5'."
        )
    return layers


OBJECTIVES = ("infonce", "infonce_bank", "infonce_stale", "nce")
# The objectives that score rows of a bank of projected, momentum-updated vectors.
_PROJECTED_BANK = ("infonce_bank", "infonce_stale", "nce")


@register_loss("codir")
class CoDIRLoss(DistillationLoss):
    """CoDIR's contrastive loss between student and teacher summary vectors.

    `ℓ_i = −log(e^{s⁺/τ} / (e^{s⁺/τ} + Σ_k e^{s_k/τ}))` with `s⁺ = ⟨z_S,i, z_T,i⟩`
    and `s_k = ⟨z_S,i, z_T,neg_k⟩`; the objectives differ in where `z_T,i` and
    `z_T,neg_k` come from:

    - "infonce" (default): both through the current teacher head: `z_T,i`
      from the batch, the negatives' from a `[N, D]` bank of the frozen
      teacher's *unprojected* summaries (filled once by `prepare`, or from the
      teacher-output cache, and never updated), projected at every step. No
      row is stale, so no head can move away from the negatives; the teacher
      head learns, as the anchor's partner, only what separates examples.
      Cost: `B·K·D·d_c` multiply-adds per step for the negatives' projection
      (3 layers × 384 → 128, K = 100, B = 32: 0.47 G, about 4 % of a 3-layer
      student's training step at length 64). Memory: `D` values per training
      example (`bank_dtype`, float16 by default: 2.3 kB at D = 1152, 2.3 GB
      for 1M examples, 23 GB for 10M), or a fixed `pool_size` of examples
      whatever `N` is (negatives then come from that random subset).
    - "infonce_bank": positive and negatives both read from a bank of
      projected teacher vectors moved by momentum (`M[i] ← normalize(μ·M[i] +
      (1−μ)·z_T,i)`), the official code's choice of rows for its NCE form:
      equally stale, so no shortcut; the teacher head gets no gradient and
      stays at its initialisation (a fixed random projection). `d_c` floats
      per example.
    - "infonce_stale": the positive fresh, the negatives from that momentum
      bank. **Collapses** (the shortcut above); kept only to reproduce
      earlier runs. `d_c` floats per example.
    - "nce": the official code's CRD form: column 0 of the scored rows is the
      example's own bank row, noise probability `1/N`, normaliser `Z =
      mean(e^{s/τ})·N` fixed on the first training batch, and two symmetric
      terms (student anchor against the teacher bank, teacher anchor against
      a student bank, which is how its teacher head learns), averaged.

    The objectives other than "infonce" keep the unprojected summaries too,
    for the `fresh_loss` diagnostic.

    **Diagnostics** (logged as `<name>_positive_probability` and
    `<name>_fresh_loss`, see `DistillationLoss.record`): the mean softmax
    probability of the positive among the scored rows, and the InfoNCE value
    of the same student vectors against the same negatives re-embedded by the
    current teacher head. For "infonce" the second equals the loss; a
    training loss far below it is the shortcut at work.

    **Negatives** (K per example, drawn with replacement inside the compiled
    step): "label_aware": uniform over training examples with a different label
    (the fine-tuning default); "uniform": uniform over the whole bank except the
    example itself (the default for regression and when no training labels are
    known, e.g. pre-training); "in_batch": the fresh teacher vectors of the
    other examples of the global batch (no bank; "infonce" only; K is ignored).

    The distiller adds this term as `λ·L_codir` to `(1−β)·CE + β·KD`. The loss
    is a batch mean; the official code sums CE and KD over the batch, keeps the
    CRD term a batch mean and divides the gradient by B, so its λ corresponds to
    λ/B here.

    Where tfkd deviates from the official code (intersun/CoDIR), each as a
    default or an option:
    - Layers: tfkd pools the mapped layers (`layers="mapped"`); the code uses all
      student layer outputs and teacher layers 1,3,…,11: `layers="all"` plus
      `teacher_layers="1,3,5,7,9,11"` (or `"1,3,5"` for a 6→3 pair) reproduces it.
    - Pooling: tfkd averages the real tokens (the paper); the code takes [CLS]
      (`pooling="cls"`).
    - The teacher runs with dropout off (`training=False`); the code runs it in
      training mode inside the criterion (its summaries then change every
      step, which is what forces its bank).
    - Banks, heads and `exp(s/τ)` are float32 (the summaries may be stored
      as float16); the code's runs used float16.
    - Negatives are drawn with replacement (the code draws without replacement
      unless K exceeds the smallest pool); with K ≪ N the difference is rare
      duplicates.
    - Regression uses uniform negatives: tfkd's own choice, since the code has
      no regression path.
    - Banks and the NCE normaliser are kept identical across replicas (the
      code runs on one GPU and synchronises nothing).
    - The code's option parser defaults are T=1, KD weight 1 and λ=0.

    Args:
        context: the `DistillContext` (layer map, widths, `num_train_examples`
            for the bank size, `train_labels` for label-aware negatives).
        temperature: τ (default 0.07).
        num_negatives: K per example (default 100).
        projection_dim: `d_c`, the width of the projection heads (default 128).
        momentum: μ of the projected banks' update (default 0.5).
        pooling: "mean" (default, masked mean over real tokens) or "cls".
        layers: "mapped" (default: the layer map's layers) or "all"
            (transformer layers 1..L of each model, no embeddings).
        teacher_layers: an explicit teacher layer list (e.g. `"1,3,5"` or
            `[1, 3, 5]`) overriding `layers` on the teacher side; None or ""
            for none.
        negatives: "auto" (default: "label_aware" for classification with
            known training labels, else "uniform"), "label_aware", "uniform"
            or "in_batch".
        objective: "infonce" (default), "infonce_bank", "infonce_stale" or "nce".
        bank_init: "teacher" (default: projected banks filled by `prepare`) or
            "random" (the official code); only for the projected banks.
        pool_size: "infonce" only: keep the summaries of this many training
            examples (a random subset drawn with `seed`) as the negatives'
            pool, bounding the memory for very large sets; 0 (default): all.
        bank_dtype: storage of the unprojected summaries, "float16" (default)
            or "float32".
        seed: seed of the negative sampler, the pool and the random bank rows.

    Example:
    ```python
    codir = tfkd.LOSSES.get("codir")(context, num_negatives=100, temperature=0.07)
    codir.prepare(teacher_batches)  # (teacher_outputs, batch) over the training set
    value = codir(teacher_outputs, student_outputs, batch, training=True)
    ```
    """

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)
    diagnostics = ("positive_probability", "fresh_loss")
    hyperparameters = (
        HyperParameter("temperature", float, 0.07, "τ of CoDIR's InfoNCE."),
        HyperParameter("num_negatives", int, 100, "K negatives per example."),
        HyperParameter("projection_dim", int, 128, "d_c of the projection heads."),
        HyperParameter("momentum", float, 0.5, "μ of the memory-bank update."),
        HyperParameter("pooling", str, "mean", "Summary vector pooling: masked mean (paper) or [CLS] (official code).",
                       choices=("mean", "cls")),
        HyperParameter("layers", str, "mapped", "Layers concatenated into the summary vector.",
                       choices=("mapped", "all")),
        HyperParameter("teacher_layers", str, None,
                       "Explicit teacher layers for the teacher summary (official code, 6→3: 1,3,5)."),
        HyperParameter("negatives", str, "auto",
                       "Negative sampling; auto: label-aware for classification, uniform for regression.",
                       choices=("auto", "label_aware", "uniform", "in_batch")),
        HyperParameter("objective", str, "infonce",
                       "infonce: negatives' teacher summaries projected by the current head every step (default); "
                       "infonce_bank: positive and negatives from a momentum bank; infonce_stale: fresh positive "
                       "against bank negatives (collapses; earlier runs only); nce: the official code's CRD form.",
                       choices=OBJECTIVES),
        HyperParameter("bank_init", str, "teacher",
                       "Projected banks (infonce_bank, infonce_stale, nce): fill by one teacher pass, or randomly "
                       "(official code).", choices=("teacher", "random")),
        HyperParameter("pool_size", int, 0,
                       "infonce: keep the teacher summaries of only this many random training examples as negatives "
                       "(bounds memory on large sets); 0: all.", lower=0),
        HyperParameter("bank_dtype", str, "float16", "Storage of the teacher summaries CoDIR keeps for its negatives.",
                       choices=("float16", "float32")),
    )
    method = "codir"
    default_weight = 0.1
    weight_help = "λ of CoDIR (mean reduction; the official code's λ corresponds to λ/B here)."

    def __init__(
        self,
        context: DistillContext,
        temperature: float = 0.07,
        num_negatives: int = 100,
        projection_dim: int = 128,
        momentum: float = 0.5,
        pooling: str = "mean",
        layers: str = "mapped",
        teacher_layers: Optional[Union[str, Sequence[int]]] = None,
        negatives: str = "auto",
        objective: str = "infonce",
        bank_init: str = "teacher",
        pool_size: int = 0,
        bank_dtype: str = "float16",
        seed: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(context, **kwargs)
        check_choice("codir", "pooling", pooling, ("mean", "cls"))
        check_choice("codir", "layers", layers, ("mapped", "all"))
        check_choice("codir", "negatives", negatives, ("auto", "label_aware", "uniform", "in_batch"))
        check_choice("codir", "objective", objective, OBJECTIVES)
        check_choice("codir", "bank_init", bank_init, ("teacher", "random"))
        check_choice("codir", "bank_dtype", bank_dtype, ("float16", "float32"))
        if negatives == "auto":
            label_aware = not context.is_regression and context.train_labels is not None
            negatives = "label_aware" if label_aware else "uniform"
        if negatives == "label_aware" and (context.is_regression or context.train_labels is None):
            raise TfkdError(
                "loss 'codir': label-aware negatives need a classification task with known training "
                "labels. Fix: use negatives='uniform' (regression, pre-training) or 'in_batch'."
            )
        if negatives == "in_batch" and objective != "infonce":
            raise TfkdError(
                f"loss 'codir': the '{objective}' objective scores bank rows and cannot use in-batch negatives. "
                "Fix: use objective='infonce' with negatives='in_batch'."
            )
        if bank_init == "random" and objective not in _PROJECTED_BANK:
            raise TfkdError(
                f"loss 'codir': bank_init='random' applies to the projected banks of {', '.join(_PROJECTED_BANK)}; "
                f"'{objective}' keeps the teacher's own summaries. Fix: drop bank_init or pick one of those objectives."
            )
        self.uses_bank = negatives != "in_batch"
        if self.uses_bank and context.num_train_examples < 2:
            raise TfkdError(
                f"loss 'codir' needs a memory bank with one row per training example, but "
                f"num_train_examples={context.num_train_examples}. Fix: set it in the DistillContext."
            )
        if pool_size and (objective != "infonce" or not self.uses_bank):
            raise TfkdError(
                "loss 'codir': pool_size bounds the negatives of objective='infonce' with bank negatives; the other "
                "forms keep one row per example. Fix: drop pool_size or use objective='infonce'."
            )
        if not 0 <= pool_size <= context.num_train_examples:
            raise TfkdError(
                f"loss 'codir': pool_size={pool_size} must lie in 0..{context.num_train_examples} (the training "
                "examples). Fix: pass a smaller pool_size, or 0 for all."
            )

        # === Config ===
        self.temperature = float(temperature)
        self.num_negatives = int(num_negatives)
        self.projection_dim = int(projection_dim)
        self.momentum = float(momentum)
        self.pooling = pooling
        self.layer_set = layers
        # An empty flag value means "not given", like None.
        self.teacher_layers = (
            _layer_list(teacher_layers, context.teacher.num_layers) if teacher_layers not in (None, "") else None
        )
        self.negatives = negatives
        self.objective = objective
        self.bank_init = bank_init
        self.pool_size = int(pool_size)
        self.bank_dtype = bank_dtype
        self.seed = seed
        if layers == "all":
            self.student_layer_ids = list(range(1, context.student.num_layers + 1))
            teacher_ids = list(range(1, context.teacher.num_layers + 1))
        else:
            self.student_layer_ids = [s for s, _ in context.layer_map]
            teacher_ids = [t for _, t in context.layer_map]
        self.teacher_layer_ids = self.teacher_layers or teacher_ids

        # === Layers and state ===
        self.student_head = dense(
            len(self.student_layer_ids) * context.student.hidden_dim, self.projection_dim, "student_head"
        )
        summary_dim = len(self.teacher_layer_ids) * context.teacher.hidden_dim
        self.teacher_head = dense(summary_dim, self.projection_dim, "teacher_head")
        num_rows = context.num_train_examples
        if self.uses_bank:
            self.seed_generator = keras.random.SeedGenerator(seed)
            if self.pool_size:
                pool_ids = np.sort(np.random.default_rng(seed).permutation(num_rows)[: self.pool_size])
            else:
                pool_ids = np.arange(num_rows)
            self._pool_ids = pool_ids
            # Example index → row of the summary bank (-1: not in the pool).
            self._pool_row = np.full(num_rows, -1, np.int64)
            self._pool_row[pool_ids] = np.arange(len(pool_ids))
            self.summary_bank = FeatureBank(len(pool_ids), summary_dim, storage=bank_dtype, name="teacher_summaries")
        if objective in _PROJECTED_BANK:
            self.teacher_bank = MemoryBank(num_rows, self.projection_dim, seed=seed, name="teacher_bank")
        if objective == "nce":
            self.student_bank = MemoryBank(
                num_rows, self.projection_dim, seed=None if seed is None else seed + 1, name="student_bank"
            )
            # Z of the student-anchor and teacher-anchor terms; -1 = not set yet.
            self.normalizers = self.add_weight(
                shape=(2,),
                initializer=keras.initializers.Constant(-1.0),
                trainable=False,
                aggregation="only_first_replica",
                name="nce_normalizers",
            )
        if negatives == "label_aware":
            labels = np.asarray(context.train_labels).astype(np.int32).reshape(-1)
            self._train_labels = tf.constant(labels)
            self._pools, self._pool_sizes = label_pools(labels[self._pool_ids], context.num_classes, "codir")
        self.built = True

    # --- summary vectors ------------------------------------------------------------------

    def teacher_features(self) -> Tuple[str, ...]:
        return tuple(feature_key(self.pooling, l) for l in self.teacher_layer_ids)

    def embed_student(self, student: Dict[str, Any], padding_mask: tf.Tensor) -> tf.Tensor:
        """`z_S` `[B, d_c]`: the student's projected, normalised summary vectors."""
        summary = [pool(student["hidden_states"][l], padding_mask, self.pooling) for l in self.student_layer_ids]
        return l2_normalize(self.student_head(tf.concat(summary, axis=-1)))

    def teacher_summary(self, teacher: Dict[str, Any], padding_mask: tf.Tensor) -> tf.Tensor:
        """`[B, D]`: the teacher's unprojected summary vectors (pooled layers, concatenated)."""
        return tf.concat(
            [teacher_vector(teacher, l, self.pooling, padding_mask, "codir") for l in self.teacher_layer_ids], axis=-1
        )

    def project_teacher(self, summary: tf.Tensor) -> tf.Tensor:
        """`z_T` `[..., d_c]`: summaries through the current teacher head, normalised."""
        return l2_normalize(self.teacher_head(summary))

    def embed_teacher(self, teacher: Dict[str, Any], padding_mask: tf.Tensor) -> tf.Tensor:
        """`z_T` `[B, d_c]`: the teacher's projected, normalised summary vectors."""
        return self.project_teacher(self.teacher_summary(teacher, padding_mask))

    # --- memory bank ------------------------------------------------------------------------

    @property
    def needs_preparation(self) -> bool:
        return self.uses_bank

    def prepare(self, teacher_batches: Iterable[Tuple[Outputs, Outputs]]) -> None:
        """Fills the summary bank (and, with `bank_init="teacher"`, the projected
        teacher bank) from one teacher pass over the training set."""
        if not self.uses_bank:
            return
        for teacher_outputs, batch in teacher_batches:
            mask = batch["padding_mask"]
            real = example_mask(mask).numpy() > 0
            index = np.asarray(batch["index"]).astype(np.int64)[real]
            summary = tf.boolean_mask(self.teacher_summary(teacher_outputs, mask), real)
            rows = self._pool_row[index]
            kept = rows >= 0
            self.summary_bank.assign(tf.constant(rows[kept]), tf.boolean_mask(summary, kept))
            if self.objective in _PROJECTED_BANK and self.bank_init == "teacher":
                self.teacher_bank.assign(tf.constant(index), self.project_teacher(summary))

    def sample_negatives(self, index: tf.Tensor) -> tf.Tensor:
        """`[B, K]` rows of the summary bank to contrast each example with (with
        every example in the pool, the rows are example indices)."""
        seed = draw_seed(self.seed_generator)
        pool = len(self._pool_ids)

        def draw(index: tf.Tensor) -> tf.Tensor:
            if self.negatives == "label_aware":
                classes = tf.gather(self._train_labels, index)
                return sample_from_pools(seed, self._pools, self._pool_sizes, classes, self.num_negatives)
            if self.pool_size:  # the anchor may be in the pool: `_not_self` masks it
                return tf.random.stateless_uniform(
                    [tf.shape(index)[0], self.num_negatives], seed=seed, minval=0, maxval=pool, dtype=tf.int32
                )
            return sample_uniform(seed, index, pool, self.num_negatives)

        return for_this_replica(draw, index)

    def _not_self(self, index: tf.Tensor, rows: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        """`scores` with a uniformly drawn pool row that is the anchor itself masked out."""
        if not self.pool_size or self.negatives == "label_aware":
            return scores
        drawn = tf.gather(tf.constant(self._pool_ids, tf.int32), rows)
        return tf.where(drawn == tf.cast(index, tf.int32)[:, None], NEG_LARGE, scores)

    # --- objectives -------------------------------------------------------------------------

    def call(self, teacher: Outputs, student: Outputs, batch: Outputs, training: bool = False) -> tf.Tensor:
        require_outputs(student, ["hidden_states"], "student", "codir")
        mask = batch["padding_mask"]
        valid = example_mask(mask)
        index = tf.cast(batch["index"], tf.int32)
        z_s = self.embed_student(student, mask)
        z_t = self.embed_teacher(teacher, mask)
        fresh_positive = tf.reduce_sum(z_s * z_t, axis=-1) / self.temperature

        if not self.uses_bank:
            loss, p_positive = self._infonce(fresh_positive, self._in_batch_scores(z_s, z_t, valid), valid)
            fresh_loss = loss
        else:
            rows = self.sample_negatives(index)
            fresh_negative = self._not_self(
                index, rows, tf.einsum("bd,bkd->bk", z_s, self.project_teacher(self.summary_bank.read(rows)))
                / self.temperature
            )
            if self.objective == "infonce":
                loss, p_positive = self._infonce(fresh_positive, fresh_negative, valid)
                fresh_loss = loss
            else:
                fresh_loss, _ = self._infonce(fresh_positive, fresh_negative, valid)
                if self.objective == "nce":
                    loss, p_positive = self._nce(z_s, z_t, index, rows, valid, training)
                else:
                    negative = tf.einsum("bd,bkd->bk", z_s, self.teacher_bank.read(rows)) / self.temperature
                    positive = fresh_positive
                    if self.objective == "infonce_bank":
                        positive = tf.reduce_sum(z_s * self.teacher_bank.read(index), axis=-1) / self.temperature
                    loss, p_positive = self._infonce(positive, negative, valid)

        if training:
            self.record("positive_probability", p_positive)
            self.record("fresh_loss", fresh_loss)
            # Program order puts these writes after every bank read above, in
            # graphs and under XLA alike.
            if self.objective in _PROJECTED_BANK:
                self.teacher_bank.momentum_update(index, z_t, self.momentum, valid)
            if self.objective == "nce":
                self.student_bank.momentum_update(index, z_s, self.momentum, valid)
        return loss

    def _in_batch_scores(self, z_s: tf.Tensor, z_t: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
        """`[B, B_global]` scores against the other real examples of the global batch (the anchor masked)."""
        z_all = all_gather(z_t)
        valid_all = all_gather(valid)
        scores = tf.matmul(z_s, z_all, transpose_b=True) / self.temperature
        own = replica_id() * tf.shape(z_s)[0] + tf.range(tf.shape(z_s)[0])
        keep = tf.logical_and(tf.range(tf.shape(z_all)[0])[None, :] != own[:, None], valid_all[None, :] > 0)
        return tf.where(keep, scores, NEG_LARGE)

    def _infonce(self, positive: tf.Tensor, negative: tf.Tensor, valid: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """`(mean ℓ, mean p⁺)` over the valid examples, where `ℓ_i = −log p⁺_i`."""
        logits = tf.concat([positive[:, None], negative], axis=1)
        per_example = tf.reduce_logsumexp(logits, axis=1) - positive
        return masked_example_mean(per_example, valid), masked_example_mean(tf.exp(-per_example), valid)

    def _nce(
        self, z_s: tf.Tensor, z_t: tf.Tensor, index: tf.Tensor, negatives: tf.Tensor, valid: tf.Tensor, training: bool
    ) -> Tuple[tf.Tensor, tf.Tensor]:
        rows = tf.concat([index[:, None], negatives], axis=1)
        s_student = tf.einsum("bd,bkd->bk", z_s, self.teacher_bank.read(rows)) / self.temperature
        s_teacher = tf.einsum("bd,bkd->bk", z_t, self.student_bank.read(rows)) / self.temperature
        log_z = tf.math.log(self._normalizers(s_student, s_teacher, valid, training))
        loss = 0.5 * (self._nce_term(s_student - log_z[0], valid) + self._nce_term(s_teacher - log_z[1], valid))
        p_positive = masked_example_mean(tf.nn.softmax(s_student, axis=1)[:, 0], valid)
        return loss, p_positive

    def _normalizers(self, s_student: tf.Tensor, s_teacher: tf.Tensor, valid: tf.Tensor, training: bool) -> tf.Tensor:
        """`Z = mean(e^{s/τ})·N` over the first training batch (global batch under
        tf.distribute), then fixed; gradients do not flow through it."""
        real = valid[:, None]
        totals = all_reduce_sum(
            tf.stack(
                [
                    tf.reduce_sum(tf.exp(s_student) * real),
                    tf.reduce_sum(tf.exp(s_teacher) * real),
                    tf.reduce_sum(valid) * tf.cast(tf.shape(s_student)[1], tf.float32),
                ]
            )
        )
        fresh = tf.stop_gradient(totals[:2] / tf.maximum(totals[2], 1.0) * float(self.context.num_train_examples))
        current = tf.convert_to_tensor(self.normalizers)
        z = tf.where(current < 0, fresh, current)
        if training:
            self.normalizers.assign(z)
        return z

    def _nce_term(self, log_p: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
        """CRD's `−(log D1 + Σ_k log D0)` per example, batch mean, in the log domain:
        `D1 = P⁺/(P⁺ + K/N + ε)`, `D0 = (K/N)/(P_k + K/N + ε)`."""
        noise = self.num_negatives / float(self.context.num_train_examples)
        log_c = np.log(noise + _NCE_EPS)
        # log(P + c) = log c + softplus(log P − log c), exact without forming P.
        log_denominator = log_c + tf.math.softplus(log_p - log_c)
        log_d1 = log_p[:, 0] - log_denominator[:, 0]
        log_d0 = np.log(noise) - log_denominator[:, 1:]
        return masked_example_mean(-(log_d1 + tf.reduce_sum(log_d0, axis=1)), valid)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            temperature=self.temperature,
            num_negatives=self.num_negatives,
            projection_dim=self.projection_dim,
            momentum=self.momentum,
            pooling=self.pooling,
            layers=self.layer_set,
            teacher_layers=self.teacher_layers,
            negatives=self.negatives,
            objective=self.objective,
            bank_init=self.bank_init,
            pool_size=self.pool_size,
            bank_dtype=self.bank_dtype,
            seed=self.seed,
        )
        return config
