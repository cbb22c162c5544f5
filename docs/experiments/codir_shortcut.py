"""CoDIR's objectives on a generated task: which ones can be satisfied without learning.

A frozen "teacher" gives every example fixed summary vectors (class means plus
noise, one per mapped layer); the "student" sees a noisy random rotation of
them and must learn, through a trainable linear encoder, summaries that CoDIR
matches to the teacher's. Only the CoDIR loss trains (student encoder and both
heads, Adam). Every `--report_every` steps the script prints, per objective:

- `train`: the mean training loss since the last report;
- `fresh`: the same student vectors against the same negatives re-embedded by
  the current teacher head (`codir_fresh_loss`); a `train` far below it is the
  shortcut;
- `p+`: the mean probability of the positive (`codir_positive_probability`);
- `top1`: how often the student vector of an example picks its own teacher
  vector (current head) among 256 examples' (chance 0.4 %) — what the student
  has actually learnt.

    python docs/experiments/codir_shortcut.py                      # every objective
    python docs/experiments/codir_shortcut.py --objectives=infonce --steps=600
"""

from __future__ import annotations

import argparse
import time

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)

# isort: split

import keras
import numpy as np
import tensorflow as tf

from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.losses.codir import OBJECTIVES


def make_task(num_examples: int, width: int, layers: int, classes: int, noise: float, seed: int):
    """Teacher features per layer, the student's input and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, num_examples)
    means = rng.normal(size=(classes, layers * width))
    teacher = 0.5 * means[labels] + rng.normal(size=(num_examples, layers * width))
    rotation = np.linalg.qr(rng.normal(size=(layers * width, layers * width)))[0]
    student_input = teacher @ rotation + noise * rng.normal(size=teacher.shape)
    return teacher.astype(np.float32), student_input.astype(np.float32), labels


def simulate(objective: str, *, num_examples: int = 4096, width: int = 64, layers: int = 3, classes: int = 2,
             steps: int = 1500, batch_size: int = 32, learning_rate: float = 2e-4, num_negatives: int = 100,
             negatives: str = "uniform", noise: float = 3.0, report_every: int = 300, seed: int = 1, log=print):
    """Trains with CoDIR alone; returns the list of report rows (dicts)."""
    keras.utils.set_random_seed(seed)
    teacher_x, student_x, labels = make_task(num_examples, width, layers, classes, noise, seed)
    spec = ModelSpec(num_layers=2 * layers, hidden_dim=width, num_heads=1)
    context = DistillContext(
        teacher=spec, student=ModelSpec(layers, width, 1),
        layer_map=tuple((k, 2 * k) for k in range(1, layers + 1)),
        num_classes=classes, num_train_examples=num_examples, train_labels=labels,
    )
    loss = LOSSES.get("codir")(context, objective=objective, negatives=negatives, num_negatives=num_negatives, seed=seed,
                               name="codir")
    encoders = [keras.layers.Dense(width, name=f"student_layer_{k}") for k in range(layers)]
    for encoder in encoders:
        encoder.build((None, layers * width))

    def teacher_outputs(index):
        rows = tf.gather(teacher_x, index)
        return {"features": {f"mean_{2 * (k + 1)}": rows[:, k * width:(k + 1) * width] for k in range(layers)}}

    def student_outputs(index):
        x = tf.gather(student_x, index)
        return {"hidden_states": [x[:, None, :width]] + [encoder(x)[:, None, :] for encoder in encoders]}

    def batch_of(index):
        return {"index": index, "padding_mask": tf.ones([tf.shape(index)[0], 1], tf.int32),
                "labels": tf.gather(labels, index)}

    everything = np.arange(num_examples)
    loss.prepare((teacher_outputs(c), batch_of(c)) for c in np.array_split(everything, num_examples // 256))
    variables = [v for e in encoders for v in e.trainable_variables] + loss.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)

    @tf.function
    def step(index):
        with tf.GradientTape() as tape:
            value = loss(teacher_outputs(index), student_outputs(index), batch_of(index), training=True)
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        return value

    @tf.function
    def top1(index):
        mask = tf.ones([tf.shape(index)[0], 1], tf.int32)
        z_s = loss.embed_student(student_outputs(index), mask)
        z_t = loss.embed_teacher(teacher_outputs(index), mask)
        scores = tf.matmul(z_s, z_t, transpose_b=True)
        return tf.reduce_mean(tf.cast(tf.argmax(scores, axis=1) == tf.range(tf.shape(index)[0], dtype=tf.int64), tf.float32))

    rng = np.random.default_rng(seed + 1)
    rows, values = [], []
    for s in range(1, steps + 1):
        values.append(float(step(tf.constant(rng.choice(num_examples, batch_size, replace=False)))))
        if s % report_every == 0:
            metrics = {m.name.split("_", 1)[1]: float(m.result()) for m in loss.diagnostic_metrics}
            for m in loss.diagnostic_metrics:
                m.reset_state()
            probe = tf.constant(rng.choice(num_examples, 256, replace=False))
            row = {"objective": objective, "step": s, "train": float(np.mean(values)), "fresh": metrics["fresh_loss"],
                   "p+": metrics["positive_probability"], "top1": float(top1(probe))}
            values = []
            rows.append(row)
            log("  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--report_every", type=int, default=300)
    parser.add_argument("--num_examples", type=int, default=4096)
    parser.add_argument("--learning_rate", type=float, default=2e-4)
    parser.add_argument("--negatives", default="uniform", help="uniform or label_aware")
    parser.add_argument("--noise", type=float, default=3.0, help="std of the noise on the student's input")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"chance: InfoNCE loss {np.log(101):.3f} (K = 100), top1 {1 / 256:.3f}")
    for objective in args.objectives.split(","):
        start = time.perf_counter()
        simulate(objective, steps=args.steps, report_every=args.report_every, num_examples=args.num_examples,
                 learning_rate=args.learning_rate, negatives=args.negatives, noise=args.noise, seed=args.seed)
        print(f"  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
