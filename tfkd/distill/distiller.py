"""`Distiller`: the Keras model whose `train_step` composes weighted losses.

The distiller knows nothing about any loss's internals. It runs the teacher
(`training=False`, outside the gradient tape, only for the outputs some loss
needs), runs the student inside the tape, calls every loss with the same
`(teacher, student, batch)` and sums them with weights held in a
non-trainable variable. Algorithms (progressive, stacked, the final
soft-label stage) change those weights, the per-layer-pair weights and the
per-layer gradient mask between steps; since they are variables, no stage
switch retraces the compiled step.

Projection heads and memory banks live in the loss layers, which belong to
the distiller: they are trained and checkpointed with it and never exported
with the student.

Every step also records, inside the compiled step, the first step at which
each loss term (and the total) was non-finite, with its value: reading that
record now and then (`nonfinite_report`) finds a divergence at its exact step
without a per-step host sync.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.log import log
from tfkd.data.vocab import STUDENT_TOKEN_IDS
from tfkd.distill.teacher_cache import cached_outputs
from tfkd.losses._distribute import all_reduce_sum
from tfkd.losses.base import LOSSES, DistillationLoss
from tfkd.models.bert import INPUT_NAMES, BertModel

_LAYER_RE = re.compile(r"transformer_layer_(\d+)")


def _unpack(data) -> Dict[str, tf.Tensor]:
    """The batch dict, whether Keras passes it bare (fit) or as `(x,)` (train_on_batch)."""
    batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return batch


def model_inputs(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The three id tensors a `BertModel` takes, from a pipeline batch."""
    inputs = {name: batch[name] for name in INPUT_NAMES}
    inputs["padding_mask"] = tf.cast(inputs["padding_mask"], tf.int32)
    return inputs


def student_inputs(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """`model_inputs` with the student's own token ids when the batch carries them (a trimmed vocabulary,
    `tfkd.data.vocab`); the teacher keeps reading `token_ids`."""
    inputs = model_inputs(batch)
    if STUDENT_TOKEN_IDS in batch:
        inputs["token_ids"] = batch[STUDENT_TOKEN_IDS]
    return inputs


def _replicas_in_sync() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def _step_logs(metrics, names: Optional[Sequence[str]] = None) -> Dict[str, tf.Tensor]:
    logs = {name: m.result() for name, m in zip(names or [m.name for m in metrics], metrics)}
    strategy = tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode():
        # Keras reduces step outputs across workers with a MEAN over axis 0,
        # which a scalar lacks: give each value that axis.
        logs = {name: value[None] for name, value in logs.items()}
    return logs


class Distiller(keras.Model):
    """Trains `student` on a weighted sum of distillation losses.

    Args:
        student: the `BertModel` being trained (built with attention outputs
            if a loss needs the student's attentions).
        teacher: the frozen teacher `BertModel`, or None when no loss needs it.
        losses: `(name, loss_layer, weight)` triples; `name` labels the term
            in logs (`loss_<name>`).
        eval_loss: a loss computed on the dev set by `test_step` (e.g. `ce`).
        num_pairs: number of layer-map pairs (size of the pair-weight vector).
        freeze_layers: whether a stage will freeze layer groups (a zero in
            `set_stage`'s `grad_scale`). A masked gradient alone does not
            freeze: AdamW's weight decay and the momentum of earlier steps
            still move the weights. With this on, the step puts the frozen
            groups' values back after the update (bit-identical), at the
            cost of one copy of the student's weights per step.

    Example:
    >>> from tfkd.losses import LOSSES, DistillContext, ModelSpec
    >>> from tfkd.models import StudentShape, build_student
    >>> teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> student = build_student(StudentShape(1, 8, 2, 16), like=teacher)
    >>> context = DistillContext(ModelSpec(2, 8, 2), ModelSpec(1, 8, 2), layer_map=((1, 2),))
    >>> ce, kd = LOSSES.get("ce")(context), LOSSES.get("kd")(context, temperature=2.0)
    >>> distiller = Distiller(student, teacher, [("ce", ce, 0.5), ("kd", kd, 0.5)], eval_loss=ce)
    >>> distiller.compile(optimizer=keras.optimizers.AdamW(5e-5), jit_compile=False)  # True on a GPU
    >>> batch = {"token_ids": tf.constant([[2, 7, 9, 3]]), "segment_ids": tf.zeros((1, 4), tf.int32),
    ...          "padding_mask": tf.ones((1, 4), tf.int32), "labels": tf.constant([1]), "index": tf.constant([0])}
    >>> train_ds = tf.data.Dataset.from_tensors(batch).repeat()  # `tfkd.data.make_dataset` in a run
    >>> history = distiller.fit(train_ds, epochs=1, steps_per_epoch=2, verbose=0)
    >>> sorted(history.history), distiller.nonfinite_report()
    (['loss', 'loss_ce', 'loss_kd'], None)
    """

    def __init__(
        self,
        student: BertModel,
        teacher: Optional[BertModel],
        losses: Sequence[Tuple[str, DistillationLoss, float]],
        eval_loss: Optional[DistillationLoss] = None,
        num_pairs: int = 1,
        freeze_layers: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.freeze_layers = bool(freeze_layers)
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.loss_names: List[str] = [name for name, _, _ in losses]
        self.loss_layers: List[DistillationLoss] = [layer for _, layer, _ in losses]
        self.eval_loss = eval_loss
        self.teacher_needs = sorted({need for layer in self.loss_layers for need in layer.teacher_needs})
        if self.teacher_needs and teacher is None:
            raise ValueError(f"losses need teacher outputs {self.teacher_needs} but no teacher was given")
        self.loss_weights_var = self.add_weight(
            shape=(len(losses),),
            initializer=keras.initializers.Constant([float(w) for _, _, w in losses]),
            trainable=False,
            name="loss_weights",
        )
        self.pair_weights = self.add_weight(
            shape=(num_pairs,), initializer="ones", trainable=False, name="pair_weights"
        )
        # One gradient multiplier per student layer group: 0 = embeddings,
        # k = transformer layer k, L_S + 1 = pooler/head. 0 freezes the group.
        self.layer_grad_scale = self.add_weight(
            shape=(student.num_layers + 2,), initializer="ones", trainable=False, name="layer_grad_scale"
        )
        # Steps run, and per loss term (then the total) the first step with a
        # non-finite value (0: none yet) and that value.
        self.steps_run = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, aggregation="only_first_replica", name="steps_run"
        )
        self.nonfinite_step = self.add_weight(
            shape=(len(losses) + 1,), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="nonfinite_step",
        )
        self.nonfinite_value = self.add_weight(
            shape=(len(losses) + 1,), dtype="float32", initializer="zeros", trainable=False, autocast=False,
            aggregation="only_first_replica", name="nonfinite_value",
        )
        self.total_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = [keras.metrics.Mean(name=f"loss_{name}") for name in self.loss_names]
        self.eval_tracker = keras.metrics.Mean(name="dev_loss")

    # --- structure -------------------------------------------------------------------------

    @property
    def metrics(self):
        diagnostics = [metric for layer in self.loss_layers for metric in layer.diagnostic_metrics]
        return [self.total_tracker, *self.term_trackers, *diagnostics, self.eval_tracker]

    def train_log_names(self) -> List[str]:
        """The log name of every training metric: `loss`, `loss_<term>`, then
        `<term>_<diagnostic>` (named by the term, whatever its layer is called)."""
        diagnostics = [f"{name}_{diagnostic}" for name, layer in zip(self.loss_names, self.loss_layers)
                       for diagnostic in layer.diagnostics]
        return [m.name for m in (self.total_tracker, *self.term_trackers)] + diagnostics

    def get_config(self) -> Dict:
        # Losses are stored by registry key, so a user's registered loss
        # deserializes without being a Keras-registered class as well.
        def loss_config(layer: DistillationLoss) -> Dict:
            return {"key": LOSSES.name_of(type(layer)), "config": layer.get_config()}

        weights = keras.ops.convert_to_numpy(self.loss_weights_var).tolist()
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": None if self.teacher is None else keras.saving.serialize_keras_object(self.teacher),
            "losses": [{"name": name, **loss_config(layer), "weight": w}
                       for name, layer, w in zip(self.loss_names, self.loss_layers, weights)],
            "eval_loss": None if self.eval_loss is None else loss_config(self.eval_loss),
            "num_pairs": int(self.pair_weights.shape[0]),
            "freeze_layers": self.freeze_layers,
        }

    @classmethod
    def from_config(cls, config: Dict) -> "Distiller":
        config = dict(config)

        def loss(entry: Optional[Dict]) -> Optional[DistillationLoss]:
            return None if entry is None else LOSSES.get(entry["key"]).from_config(entry["config"])

        def model(entry: Optional[Dict]) -> Optional[BertModel]:
            return None if entry is None else keras.saving.deserialize_keras_object(entry)

        return cls(
            student=model(config.pop("student")),
            teacher=model(config.pop("teacher")),
            losses=[(entry["name"], loss(entry), entry["weight"]) for entry in config.pop("losses")],
            eval_loss=loss(config.pop("eval_loss")),
            **config,
        )

    def call(self, inputs, training=False):
        return self.student(student_inputs(inputs), training=training)

    def variable_groups(self) -> Tuple[List[keras.Variable], List[int]]:
        """The trained variables (student + loss layers) and each one's layer group."""
        variables, groups = [], []
        head_group = self.student.num_layers + 1
        for layer in self.student.layers:
            match = _LAYER_RE.fullmatch(layer.name)
            if match:
                group = int(match.group(1)) + 1
            elif layer.name in ("pooled_dense", "logits"):
                group = head_group
            else:
                group = 0
            for variable in layer.trainable_variables:
                variables.append(variable)
                groups.append(group)
        for loss_layer in self.loss_layers:
            for variable in loss_layer.trainable_variables:
                variables.append(variable)
                groups.append(-1)
        return variables, groups

    def build(self, input_shape=None):
        self._train_vars, self._train_groups = self.variable_groups()
        self.built = True

    def build_for_restore(self) -> None:
        """Creates every variable (optimizer slots included) so a checkpoint restores eagerly and is checked whole."""
        if not hasattr(self, "_train_vars"):
            self.build()
        self.optimizer.build(self._train_vars)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' fit draws a first batch and MEAN-reduces it across replicas
        # only to build state that is not built yet; MultiWorkerMirroredStrategy
        # cannot reduce a dict of tensors. A built distiller needs none of it.
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # --- steps -----------------------------------------------------------------------------

    def teacher_outputs(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """What the losses read of the teacher: cached features when the batch
        carries them (`tfkd.distill.teacher_cache`), else a live forward pass."""
        cached = cached_outputs(batch)
        if cached is not None:
            return cached
        if not self.teacher_needs:
            return {}
        outputs = self.teacher(model_inputs(batch), training=False)
        return tf.nest.map_structure(tf.stop_gradient, outputs)

    def _loss_terms(self, teacher_out, student_out, batch, training: bool) -> List[tf.Tensor]:
        return [tf.cast(layer(teacher_out, student_out, batch, training=training), tf.float32) for layer in self.loss_layers]

    def train_step(self, data):
        data = _unpack(data)
        if not hasattr(self, "_train_vars"):  # Keras may mark the model built without calling build()
            self.build()
        inputs = student_inputs(data)
        batch = dict(data, pair_weights=self.pair_weights)
        teacher_out = self.teacher_outputs(data)
        with tf.GradientTape() as tape:
            student_out = self.student(inputs, training=True)
            terms = self._loss_terms(teacher_out, student_out, batch, training=True)
            total = tf.reduce_sum(tf.stack(terms) * tf.cast(self.loss_weights_var, tf.float32))
            # Losses are per-replica means; the optimizer sums replica gradients.
            scaled = self.optimizer.scale_loss(total / _replicas_in_sync())
        gradients = tape.gradient(scaled, self._train_vars)
        scale = tf.convert_to_tensor(self.layer_grad_scale)
        gradients = [
            g if g is None or group < 0 else g * tf.cast(scale[group], g.dtype)
            for g, group in zip(gradients, self._train_groups)
        ]
        gradients = self._clip_global_batch_gradient(gradients)
        if self.freeze_layers:
            before = [tf.identity(v.value) if group >= 0 else None for v, group in zip(self._train_vars, self._train_groups)]
        self.optimizer.apply_gradients(zip(gradients, self._train_vars))
        if self.freeze_layers:
            self._keep_frozen(before, scale)
        self._record_nonfinite(terms, total)
        self.total_tracker.update_state(total)
        for tracker, term in zip(self.term_trackers, terms):
            tracker.update_state(term)
        return _step_logs(self.metrics[:-1], self.train_log_names())

    def _keep_frozen(self, before: List[Optional[tf.Tensor]], scale: tf.Tensor) -> None:
        """Puts the pre-step values back into the variables of frozen layer groups."""
        triples = [(v.value, old, scale[group] == 0.0)
                   for v, old, group in zip(self._train_vars, before, self._train_groups) if old is not None]

        def restore(distribution, triples):
            # Like Keras' own optimizer step: update mirrored variables from the cross-replica context.
            for variable, old, frozen in triples:
                distribution.extended.update(
                    variable, lambda var, old, frozen: var.assign(tf.where(frozen, old, var)), args=(old, frozen), group=False
                )

        tf.__internal__.distribute.interim.maybe_merge_call(restore, tf.distribute.get_strategy(), triples)

    def _clip_global_batch_gradient(self, gradients: List[Optional[tf.Tensor]]) -> List[Optional[tf.Tensor]]:
        """Global-norm clipping of the global batch's gradient under several replicas.

        Keras clips each replica's gradient before it sums them, which is not
        the clipped gradient of the global batch (nor the single-device step).
        Here the replicas' gradients are summed and clipped first, and each
        replica passes on 1/R of the result: the optimizer's own clipping then
        leaves it unchanged (its norm is at most clipnorm/R) and its sum
        restores it.
        """
        replicas = _replicas_in_sync()
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        if replicas == 1 or not inner.global_clipnorm:
            return gradients
        present = [i for i, g in enumerate(gradients) if g is not None]
        summed = all_reduce_sum([tf.cast(gradients[i], tf.float32) for i in present])
        # Under float16 loss scaling the gradients carry the loss scale.
        loss_scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if inner is not self.optimizer else 1.0
        norm = tf.linalg.global_norm(summed) / loss_scale
        factor = tf.minimum(1.0, inner.global_clipnorm / norm) / replicas
        clipped = list(gradients)
        for i, g in zip(present, summed):
            clipped[i] = tf.cast(g * factor, gradients[i].dtype)
        return clipped

    def _record_nonfinite(self, terms: List[tf.Tensor], total: tf.Tensor) -> None:
        step = self.steps_run.assign_add(1)
        # The global batch's values (the mean over replicas, as logged), so every replica records the same.
        values = all_reduce_sum(tf.stack(terms + [total])) / _replicas_in_sync()
        first = tf.logical_and(tf.logical_not(tf.math.is_finite(values)), self.nonfinite_step == 0)
        self.nonfinite_step.assign(tf.where(first, step, self.nonfinite_step))
        self.nonfinite_value.assign(tf.where(first, values, self.nonfinite_value))

    def nonfinite_report(self) -> Optional[Tuple[int, Dict[str, float]]]:
        """`(step, {log name: value})` of the first step (1-based) at which a loss was non-finite, or None.

        Reads two small variables (one host sync): call it at checkpoints and
        epoch ends, not after every step.

        Example: after a run whose CoDIR term overflowed at step 13 (None while every term stayed finite,
        as in the class example):

        >>> distiller.nonfinite_report()  # doctest: +SKIP
        (13, {'loss_codir': nan, 'loss': nan})
        """
        steps = keras.ops.convert_to_numpy(self.nonfinite_step)
        if not steps.any():
            return None
        first = int(steps[steps > 0].min())
        values = keras.ops.convert_to_numpy(self.nonfinite_value)
        names = [f"loss_{name}" for name in self.loss_names] + ["loss"]
        return first, {name: float(v) for name, s, v in zip(names, steps, values) if s == first}

    def test_step(self, data):
        data = _unpack(data)
        inputs = student_inputs(data)
        student_out = self.student(inputs, training=False)
        if self.eval_loss is not None:
            self.eval_tracker.update_state(self.eval_loss({}, student_out, data, training=False))
        return _step_logs([self.eval_tracker])

    def predict_step(self, data):
        data = _unpack(data)
        outputs = self.student(student_inputs(data), training=False)
        return {"logits": outputs["logits"], "index": data["index"], "weight": data["weight"]}

    # --- preparation -----------------------------------------------------------------------

    def prepare_losses(self, dataset: tf.data.Dataset, num_batches: Optional[int] = None) -> None:
        """Runs the teacher once over `dataset` for every loss that needs it (memory banks)."""
        preparing = [layer for layer in self.loss_layers if layer.needs_preparation]
        if not preparing:
            return
        forward = tf.function(self.teacher_outputs, jit_compile=False)

        def batches() -> Iterable:
            progress = keras.utils.Progbar(num_batches, unit_name="batch")
            for step, batch in enumerate(dataset):
                yield forward(batch), batch
                progress.update(step + 1)

        for layer in preparing:
            log(f"preparing loss '{layer.name}': one teacher pass over the training set")
            layer.prepare(batches())

    # --- algorithm controls ---------------------------------------------------------------

    def set_stage(self, loss_weights: Sequence[float], pair_weights: Sequence[float], grad_scale: Sequence[float]) -> None:
        """Switches the algorithm stage (assigns variables; the compiled step is reused)."""
        if not self.freeze_layers and min(grad_scale) == 0.0:
            raise ValueError("a stage freezes layer groups, but the distiller was built with freeze_layers=False")
        self.loss_weights_var.assign(np.asarray(loss_weights, np.float32))
        self.pair_weights.assign(np.asarray(pair_weights, np.float32))
        self.layer_grad_scale.assign(np.asarray(grad_scale, np.float32))
