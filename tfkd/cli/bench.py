"""`python -m tfkd.bench`: what one training step of each method costs, next to the floor and keras.distillation.

For the configured teacher and student (the `tfkd.train` flags: `--teacher`,
`--student_*`, method hyper-parameters), at fixed shapes (`--batch_size`,
each of `--bench_lengths`), it times in one process, all XLA-compiled:

- `student`: the student alone, CE on labels, one jit-compiled function;
- `floor`: teacher forward (`training=False`, outside the tape) + student
  forward/backward with CE + soft-label KD in one jit-compiled function: the
  least work any distillation step can do;
- `peer`: `keras.distillation.Distiller` with `LogitsDistillation` +
  `FeatureDistillation` (MSE between the teacher's last and the student's last
  transformer layer), compiled with `jit_compile=True`;
- each method in `--bench_methods` as `tfkd.train` builds it, plus
  `feature_mse` (tfkd's step on the peer's exact loss) and, with
  `--bench_cached`, kd and codir fed from cached teacher outputs.

It prints the median ms/step, the ratio to the floor and to the student-only
step, the first step's seconds (XLA compile), and writes the table as JSON.

Example:
    python -m tfkd.bench --bench_json=docs/bench_cpu.json
    python -m tfkd.bench --bench_lengths=64 --bench_methods=kd,codir --bench_steps=3
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

from absl import app, flags

import tfkd.cli.train as cli  # defines the model and method flags the benchmark shares

import keras
import numpy as np
import tensorflow as tf

from tfkd.cli import flags as cli_flags
from tfkd.training import methods
from tfkd.distill import make_optimizer, model_inputs
from tfkd.distill.teacher_cache import PREFIX, cacheable_features, compute_features
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES, DistillationLoss, masked_mean, register_loss, to_float32
from tfkd.models import BertModel, check_sequence_length, load_teacher, parse_layer_map
from tfkd.runtime.precision import set_precision

FLAGS = flags.FLAGS

cli_flags.define_int_list("bench_lengths", [64, 128], "Sequence lengths to time (every batch is full: no padding).", lower_bound=2)
flags.DEFINE_list("bench_methods", ["kd", "pkd", "pkd_all_tokens", "internal", "codir", "ackd", "ckd"],
                  "Methods to time (pkd_all_tokens: pkd with --pkd_variant=all_tokens).")
flags.DEFINE_integer("bench_steps", 3, "Timed steps per row (the median is reported).", lower_bound=1)
flags.DEFINE_integer("bench_warmup", 1, "Untimed steps per row before timing; the first one compiles.", lower_bound=1)
flags.DEFINE_integer("bench_bank_rows", 1024, "Memory-bank rows (training-set size) for codir and ackd.", lower_bound=1)
flags.DEFINE_bool("bench_peer", True, "Also time keras.distillation.Distiller.")
flags.DEFINE_bool("bench_cached", True, "Also time kd and codir fed from cached teacher outputs.")
flags.DEFINE_string("bench_json", "", "Write the table here as JSON.")


@register_loss("feature_mse")
class FeatureMSELoss(DistillationLoss):
    """MSE between the last layer-map pair's hidden states (keras.distillation's
    `FeatureDistillation(loss="mse")`), over real tokens."""

    teacher_needs = ("hidden_states",)
    student_needs = ("hidden_states",)

    def call(self, teacher, student, batch, training=False):
        s, t = self.context.layer_map[-1]
        diff = to_float32(student["hidden_states"][s]) - to_float32(teacher["hidden_states"][t])
        return masked_mean(tf.reduce_mean(tf.square(diff), axis=-1), batch["padding_mask"])


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


def time_steps(step: Callable[[Dict], object], batches: List[Dict]) -> Dict[str, float]:
    """First-step seconds and median ms over `--bench_steps` after `--bench_warmup` untimed steps."""
    start = time.perf_counter()
    step(batches[0])
    compile_seconds = time.perf_counter() - start
    for i in range(1, FLAGS.bench_warmup):
        step(batches[i % len(batches)])
    times = []
    for i in range(FLAGS.bench_steps):
        start = time.perf_counter()
        step(batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "first_step_s": compile_seconds,
            "spread_ms": 1000 * (max(times) - min(times))}


def _optimizer():
    return make_optimizer(FLAGS.learning_rate, 10_000, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm)


def _train_on_batch(model: keras.Model) -> Callable[[Dict], object]:
    return lambda batch: model.train_on_batch(batch, return_dict=True)


def bare_step(loaded, teacher: Optional[BertModel]) -> Callable:
    """The student's CE step as one jit-compiled function; with `teacher`, the
    floor: the teacher's logits (outside the tape) add soft-label KD."""
    student = cli.make_student(loaded, 2, output_attentions=False)
    optimizer = _optimizer()
    optimizer.build(student.trainable_variables)
    temperature = FLAGS.kd_temperature

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
                kd = temperature**2 * tf.reduce_mean(tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1))
                loss = (1 - FLAGS.kd_beta) * loss + FLAGS.kd_beta * kd
        gradients = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients(zip(gradients, student.trainable_variables))
        return loss

    return lambda batch: step(batch).numpy()


def peer_step(loaded, teacher: BertModel, teacher_layer: int, student_layer: int) -> Callable:
    """keras.distillation on flat single-output twins of the two models: its
    `FeatureDistillation` finds layers by name at a model's top level only."""
    student = cli.make_student(loaded, 2, output_attentions=False)
    flat_teacher = keras.Model(teacher.input, teacher.output["logits"], name="flat_teacher")
    flat_student = keras.Model(student.input, student.output["logits"], name="flat_student")
    peer = keras.distillation.Distiller(
        teacher=flat_teacher,
        student=flat_student,
        distillation_losses=[
            keras.distillation.LogitsDistillation(temperature=FLAGS.kd_temperature),
            keras.distillation.FeatureDistillation(
                loss="mse",
                teacher_layer_name=f"transformer_layer_{teacher_layer - 1}",
                student_layer_name=f"transformer_layer_{student_layer - 1}",
            ),
        ],
        distillation_loss_weights=[1.0, 1.0],
        student_loss_weight=1 - FLAGS.kd_beta,
    )
    peer.compile(optimizer=_optimizer(), loss="sparse_categorical_crossentropy", jit_compile=True)
    return lambda batch: peer.train_on_batch(model_inputs(batch), batch["labels"], return_dict=True)


def method_step(method: str, loaded, labels, cached_for: Optional[List[Dict]] = None) -> Callable:
    """One method's step exactly as `tfkd.train` builds it (joint algorithm).

    With `cached_for`, the step trains on those batches with cached teacher
    outputs added, computed here before any timing as `--teacher_cache` would."""
    saved = FLAGS.method, FLAGS.pkd_variant, FLAGS.losses
    FLAGS.method, FLAGS.losses = method, []
    if method == "pkd_all_tokens":
        FLAGS.method, FLAGS.pkd_variant = "pkd", "all_tokens"
    elif method == "feature_mse":
        FLAGS.method, FLAGS.losses = "custom", ["ce:0.5", "kd:0.5", "feature_mse:1"]
    try:
        specs = methods.method_losses(FLAGS)
    finally:
        FLAGS.method, FLAGS.pkd_variant, FLAGS.losses = saved
    needs = lambda side: any("attentions" in getattr(LOSSES.get(key), side) for _, key, _, _ in specs)  # noqa: E731
    student = cli.make_student(loaded, 2, needs("student_needs"))
    teacher = loaded.model.with_outputs(needs("teacher_needs"))
    layer_map = parse_layer_map(FLAGS.layer_map, teacher.num_layers, student.num_layers)
    distiller = cli.build_distiller(student, teacher, specs, layer_map, False, labels)
    distiller.compile(optimizer=_optimizer(), jit_compile=True)
    if cached_for is None:
        return _train_on_batch(distiller)
    features, blockers = cacheable_features(distiller.loss_layers)
    if features is None:
        raise TfkdError(f"--bench_cached: {', '.join(blockers)} cannot read cached teacher outputs")
    cached = [dict(batch) | {PREFIX + key: value for key, value in
                             compute_features(teacher(model_inputs(batch), training=False), batch["padding_mask"],
                                              features).items()}
              for batch in cached_for]
    by_batch = {id(batch): with_cache for batch, with_cache in zip(cached_for, cached)}
    return lambda batch: distiller.train_on_batch(by_batch[id(batch)], return_dict=True)


def rows_for_length(loaded, length: int) -> List[Dict]:
    teacher = loaded.model.with_outputs(False)
    num_rows = FLAGS.bench_bank_rows
    labels = np.random.default_rng(0).integers(0, 2, num_rows).astype(np.int32)
    batches = [random_batch(FLAGS.batch_size, length, teacher.vocabulary_size, num_rows, seed) for seed in (1, 2)]
    layer_map = parse_layer_map(FLAGS.layer_map, teacher.num_layers, FLAGS.student_layers)
    builders = [("student", lambda: bare_step(loaded, None)), ("floor", lambda: bare_step(loaded, teacher))]
    if FLAGS.bench_peer:
        builders.append(("peer", lambda: peer_step(loaded, teacher, layer_map[-1][1], layer_map[-1][0])))
    for method in FLAGS.bench_methods:
        builders.append((method, lambda m=method: method_step(m, loaded, labels)))
    builders.append(("feature_mse", lambda: method_step("feature_mse", loaded, labels)))
    if FLAGS.bench_cached:
        for method in ("kd", "codir"):
            builders.append((f"{method} (cached)", lambda m=method: method_step(m, loaded, labels, cached_for=batches)))

    rows = []
    for name, build in builders:
        row = {"length": length, "step": name, **time_steps(build(), batches)}
        rows.append(row)
        print(f"  [{length}] {name:<18} {row['ms']:8.1f} ms/step  (first step {row['first_step_s']:.1f} s)", flush=True)
    by_name = {row["step"]: row["ms"] for row in rows}
    for row in rows:
        row["x_floor"] = row["ms"] / by_name["floor"]
        row["x_student"] = row["ms"] / by_name["student"]
    return rows


def format_table(rows: List[Dict]) -> str:
    lines = ["| length | step | ms/step | × floor | × student-only | first step (s) |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['length']} | {row['step']} | {row['ms']:.0f} | {row['x_floor']:.2f} | "
                     f"{row['x_student']:.2f} | {row['first_step_s']:.0f} |")
    return "\n".join(lines)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    keras.utils.set_random_seed(FLAGS.seed)
    set_precision(FLAGS.mixed_precision)
    # Timing does not depend on the weights: the student is copied from the teacher, which is loaded once.
    FLAGS.student_init = "teacher"
    FLAGS.dropout = 0.1
    loaded = load_teacher(FLAGS.teacher, 2, FLAGS.workdir)
    lengths = cli_flags.int_list(FLAGS.bench_lengths)
    for length in lengths:
        check_sequence_length(loaded.model, length, "--bench_lengths")
    print(f"tfkd.bench: teacher {FLAGS.teacher} ({loaded.model.num_layers} layers, {loaded.model.hidden_dim} wide) → "
          f"student {FLAGS.student_layers} layers, {FLAGS.student_hidden_dim} wide; batch {FLAGS.batch_size}; "
          f"{FLAGS.bench_warmup} warm-up + {FLAGS.bench_steps} timed steps per row; XLA on", flush=True)
    start = time.perf_counter()
    rows = [row for length in lengths for row in rows_for_length(loaded, length)]
    print("\n" + format_table(rows))
    report = {
        "command": " ".join(["python -m tfkd.bench"] + sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "devices": [d.name for d in tf.config.list_logical_devices()], "tensorflow": tf.__version__,
                    "keras": keras.__version__},
        "teacher": FLAGS.teacher, "batch_size": FLAGS.batch_size, "seconds": time.perf_counter() - start, "rows": rows,
    }
    print(f"\ntotal {report['seconds']:.0f} s")
    if FLAGS.bench_json:
        cli.write_json(FLAGS.bench_json, report)
        print(f"wrote {FLAGS.bench_json}")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
