"""What one training step of each method costs, next to the floor and keras.distillation.

For a run configuration's teacher, student and method hyper-parameters, at
fixed shapes (the configuration's batch size, each of `lengths`), it times in
one process, all XLA-compiled:

- `student`: the student alone, CE on labels, one jit-compiled function;
- `floor`: teacher forward (`training=False`, outside the tape) + student
  forward/backward with CE + soft-label KD in one jit-compiled function: the
  least work any distillation step can do;
- `peer`: `keras.distillation.Distiller` with `LogitsDistillation` +
  `FeatureDistillation` (MSE between the teacher's last and the student's last
  transformer layer), compiled with `jit_compile=True`;
- each method of `methods` built as a distillation run builds it
  (`tfkd.training.build`), plus `feature_mse` (tfkd's step on the peer's exact
  loss) and, with `cached`, kd and codir fed from cached teacher outputs.

Each row gives the median ms/step, the ratio to the floor and to the
student-only step, and the first step's seconds (XLA compile).

Example (MiniLM as the teacher and XLA-compiled timings: minutes, so not run here):
>>> from tfkd.training.bench import BenchOptions, benchmark
>>> from tfkd.training.config import RunConfig
>>> options = BenchOptions(lengths=(64,), methods=("kd", "codir"), steps=3)
>>> report = benchmark(RunConfig(workdir="/tmp/bench"), options)  # doctest: +SKIP
>>> [row["step"] for row in report["rows"]][:2]  # doctest: +SKIP
['student', 'floor']
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.distill import make_optimizer, model_inputs
from tfkd.distill.teacher_cache import PREFIX, cacheable_features, compute_features
from tfkd.losses import hyperparameters
from tfkd.models import BertModel, LoadedModel, check_sequence_length, load_teacher, parse_layer_map
from tfkd.runtime.precision import set_precision
from tfkd.training import methods
from tfkd.training.build import build_distiller, make_student, needs_attentions
from tfkd.training.config import MethodConfig, RunConfig


@dataclasses.dataclass
class BenchOptions:
    """What to time.

    Args:
        lengths: sequence lengths (every batch is full: no padding).
        methods: methods to time; `pkd_all_tokens` is pkd with `variant='all_tokens'`.
        steps: timed steps per row (the median is reported).
        warmup: untimed steps per row before timing; the first one compiles.
        bank_rows: memory-bank rows (training-set size) for codir and ackd.
        peer: also time keras.distillation.Distiller.
        cached: also time kd and codir fed from cached teacher outputs.
    """

    lengths: Sequence[int] = (64, 128)
    methods: Sequence[str] = ("kd", "pkd", "pkd_all_tokens", "internal", "codir", "ackd", "ckd")
    steps: int = 3
    warmup: int = 1
    bank_rows: int = 1024
    peer: bool = True
    cached: bool = True


def method_variant(method: MethodConfig, name: str) -> MethodConfig:
    """`method` switched to the benchmark row `name` (a method, `pkd_all_tokens` or `feature_mse`)."""
    if name == "pkd_all_tokens":
        args = {**method.loss_args, "pkd": {**method.loss_args.get("pkd", {}), "variant": "all_tokens"}}
        return dataclasses.replace(method, name="pkd", losses=(), loss_args=args)
    if name == "feature_mse":
        return dataclasses.replace(method, name="custom", losses=(("ce", 0.5), ("kd", 0.5), ("feature_mse", 1.0)))
    return dataclasses.replace(method, name=name, losses=())


def random_batch(batch_size: int, length: int, vocab_size: int, num_rows: int, seed: int) -> Dict[str, tf.Tensor]:
    rng = np.random.default_rng(seed)
    return {
        "token_ids": tf.constant(rng.integers(5, vocab_size, (batch_size, length)), tf.int32),
        "segment_ids": tf.zeros((batch_size, length), tf.int32),
        "padding_mask": tf.ones((batch_size, length), tf.int32),
        "labels": tf.constant(rng.integers(0, 2, batch_size), tf.int32),
        "index": tf.constant(rng.choice(num_rows, batch_size, replace=False), tf.int32),
        "weight": tf.ones((batch_size,), tf.float32),
    }


def time_steps(step: Callable[[Dict], object], batches: List[Dict], steps: int, warmup: int) -> Dict[str, float]:
    """First-step seconds and median ms over `steps` after `warmup` untimed steps."""
    start = time.perf_counter()
    step(batches[0])
    compile_seconds = time.perf_counter() - start
    for i in range(1, warmup):
        step(batches[i % len(batches)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "first_step_s": compile_seconds,
            "spread_ms": 1000 * (max(times) - min(times))}


class _Bench:
    def __init__(self, config: RunConfig, options: BenchOptions, loaded: LoadedModel):
        self.config, self.options, self.loaded = config, options, loaded
        # The KD temperature the method rows use: the run's, else the one the kd loss declares.
        declared = {h.name: h.default for h in hyperparameters("kd")}
        self.temperature = {**declared, **config.method.loss_args.get("kd", {})}["temperature"]

    def optimizer(self):
        optim = self.config.optim
        return make_optimizer(optim.learning_rate, 10_000, optim.warmup_ratio, optim.weight_decay, optim.clipnorm)

    def student(self, output_attentions: bool = False) -> BertModel:
        return make_student(self.config.student, self.loaded, 2, output_attentions, self.config.workdir)

    def bare_step(self, teacher: Optional[BertModel]) -> Callable:
        """The student's CE step as one jit-compiled function; with `teacher`, the
        floor: the teacher's logits (outside the tape) add soft-label KD."""
        student = self.student()
        optimizer = self.optimizer()
        optimizer.build(student.trainable_variables)
        temperature, beta = self.temperature, self.config.method.kd_beta

        @tf.function(jit_compile=True)
        def step(batch):
            inputs = model_inputs(batch)
            teacher_logits = None if teacher is None else tf.stop_gradient(teacher(inputs, training=False)["logits"])
            with tf.GradientTape() as tape:
                logits = student(inputs, training=True)["logits"]
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch["labels"], logits))
                if teacher_logits is not None:
                    log_p_t = tf.nn.log_softmax(teacher_logits / temperature)
                    log_p_s = tf.nn.log_softmax(logits / temperature)
                    kd_loss = temperature**2 * tf.reduce_mean(tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), -1))
                    loss = (1 - beta) * loss + beta * kd_loss
            gradients = tape.gradient(loss, student.trainable_variables)
            optimizer.apply_gradients(zip(gradients, student.trainable_variables))
            return loss

        return lambda batch: step(batch).numpy()

    def peer_step(self, teacher: BertModel, teacher_layer: int, student_layer: int) -> Callable:
        """keras.distillation on flat single-output twins of the two models: its
        `FeatureDistillation` finds layers by name at a model's top level only."""
        student = self.student()
        flat_teacher = keras.Model(teacher.input, teacher.output["logits"], name="flat_teacher")
        flat_student = keras.Model(student.input, student.output["logits"], name="flat_student")
        peer = keras.distillation.Distiller(
            teacher=flat_teacher,
            student=flat_student,
            distillation_losses=[
                keras.distillation.LogitsDistillation(temperature=self.temperature),
                keras.distillation.FeatureDistillation(
                    loss="mse",
                    teacher_layer_name=f"transformer_layer_{teacher_layer - 1}",
                    student_layer_name=f"transformer_layer_{student_layer - 1}",
                ),
            ],
            distillation_loss_weights=[1.0, 1.0],
            student_loss_weight=1 - self.config.method.kd_beta,
        )
        peer.compile(optimizer=self.optimizer(), loss="sparse_categorical_crossentropy", jit_compile=True)
        return lambda batch: peer.train_on_batch(model_inputs(batch), batch["labels"], return_dict=True)

    def method_step(self, name: str, labels: np.ndarray, cached_for: Optional[List[Dict]] = None) -> Callable:
        """One method's step as a distillation run builds it (joint algorithm).

        With `cached_for`, the step trains on those batches with cached teacher
        outputs added, computed here before any timing as the teacher cache would."""
        specs = methods.method_losses(method_variant(self.config.method, name), seed=self.config.optim.seed)
        teacher_attentions, student_attentions = needs_attentions(specs)
        student = self.student(student_attentions)
        teacher = self.loaded.model.with_outputs(teacher_attentions)
        layer_map = parse_layer_map(list(self.config.method.layer_map) or None, teacher.num_layers, student.num_layers)
        distiller = build_distiller(student, teacher, specs, layer_map, False, labels)
        distiller.compile(optimizer=self.optimizer(), jit_compile=True)
        if cached_for is None:
            return lambda batch: distiller.train_on_batch(batch, return_dict=True)
        features, blockers = cacheable_features(distiller.loss_layers)
        if features is None:
            raise TfkdError(f"cached rows: {', '.join(blockers)} cannot read cached teacher outputs. Fix: time them live.")
        cached = [dict(batch) | {PREFIX + key: value for key, value in
                                 compute_features(teacher(model_inputs(batch), training=False), batch["padding_mask"],
                                                  features).items()}
                  for batch in cached_for]
        by_batch = {id(batch): with_cache for batch, with_cache in zip(cached_for, cached)}
        return lambda batch: distiller.train_on_batch(by_batch[id(batch)], return_dict=True)

    def rows_for_length(self, length: int) -> List[Dict]:
        options = self.options
        teacher = self.loaded.model.with_outputs(False)
        labels = np.random.default_rng(0).integers(0, 2, options.bank_rows).astype(np.int32)
        batches = [random_batch(self.config.data.batch_size, length, teacher.vocabulary_size, options.bank_rows, seed)
                   for seed in (1, 2)]
        layer_map = parse_layer_map(list(self.config.method.layer_map) or None, teacher.num_layers,
                                    self.config.student.num_layers)
        builders = [("student", lambda: self.bare_step(None)), ("floor", lambda: self.bare_step(teacher))]
        if options.peer:
            builders.append(("peer", lambda: self.peer_step(teacher, layer_map[-1][1], layer_map[-1][0])))
        for method in options.methods:
            builders.append((method, lambda m=method: self.method_step(m, labels)))
        builders.append(("feature_mse", lambda: self.method_step("feature_mse", labels)))
        if options.cached:
            for method in ("kd", "codir"):
                builders.append((f"{method} (cached)", lambda m=method: self.method_step(m, labels, cached_for=batches)))
        rows = []
        for name, build in builders:
            row = {"length": length, "step": name, **time_steps(build(), batches, options.steps, options.warmup)}
            rows.append(row)
            log(f"[{length}] {name:<18} {row['ms']:8.1f} ms/step  (first step {row['first_step_s']:.1f} s)")
        by_name = {row["step"]: row["ms"] for row in rows}
        for row in rows:
            row["x_floor"] = row["ms"] / by_name["floor"]
            row["x_student"] = row["ms"] / by_name["student"]
        return rows


def benchmark(config: RunConfig, options: BenchOptions = BenchOptions()) -> Dict:
    """Times every row of `options` for `config`'s teacher and student; returns the report
    (`rows`, `machine`, `teacher`, `batch_size`, `seconds`)."""
    keras.utils.set_random_seed(config.optim.seed)
    set_precision(config.runtime.mixed_precision)
    # Timing does not depend on the weights: the student is copied from the teacher, which is loaded once.
    config = dataclasses.replace(config, student=dataclasses.replace(config.student, init="teacher"))
    loaded = load_teacher(config.teacher.source, 2, config.workdir)
    for length in options.lengths:
        check_sequence_length(loaded.model, length, "--bench_lengths")
    log(f"teacher {config.teacher.source} ({loaded.model.num_layers} layers, {loaded.model.hidden_dim} wide) → "
        f"student {config.student.num_layers} layers, {config.student.hidden_dim} wide; batch {config.data.batch_size}; "
        f"{options.warmup} warm-up + {options.steps} timed steps per row; XLA on")
    bench = _Bench(config, options, loaded)
    start = time.perf_counter()
    rows = [row for length in options.lengths for row in bench.rows_for_length(length)]
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "devices": [d.name for d in tf.config.list_logical_devices()], "tensorflow": tf.__version__,
                    "keras": keras.__version__},
        "teacher": config.teacher.source, "batch_size": config.data.batch_size, "seconds": time.perf_counter() - start,
        "rows": rows,
    }


def format_table(rows: List[Dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| length | step | ms/step | × floor | × student-only | first step (s) |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['length']} | {row['step']} | {row['ms']:.0f} | {row['x_floor']:.2f} | "
                     f"{row['x_student']:.2f} | {row['first_step_s']:.0f} |")
    return "\n".join(lines)
