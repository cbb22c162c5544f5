"""What CoDIR costs per step with its negatives projected every step: the loss's
forward and backward at tfkd's default shapes, fresh (`infonce`: the K sampled
summaries through the teacher head, `B·K·D·d_c` multiply-adds) next to the
projected-bank form (`infonce_stale`, which also projects them for its
`fresh_loss` diagnostic and updates its bank), timed interleaved in one run so
machine load hits both alike.

    python docs/experiments/codir_step_cost.py            # B=32, K=100, 3 x 384 -> 128

Compare the difference with a training step of the 3-layer student
(docs/performance.md: 610 ms at length 64, 1265 ms at 128 on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)

# isort: split

import numpy as np
import tensorflow as tf

from tfkd.losses import LOSSES, DistillContext, ModelSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_negatives", type=int, default=100)
    parser.add_argument("--num_examples", type=int, default=67349)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    width, layers = 384, 3
    labels = rng.integers(0, 2, args.num_examples)
    context = DistillContext(ModelSpec(6, width, 12), ModelSpec(layers, width, 12), ((1, 2), (2, 4), (3, 6)),
                             num_classes=2, num_train_examples=args.num_examples, train_labels=labels)
    index = tf.constant(rng.choice(args.num_examples, args.batch_size, replace=False), tf.int32)
    teacher = {"features": {f"mean_{t}": tf.constant(rng.normal(size=(args.batch_size, width)), tf.float32)
                            for t in (2, 4, 6)}}
    student = {"hidden_states": [tf.Variable(rng.normal(size=(args.batch_size, 1, width)), dtype=tf.float32)
                                 for _ in range(layers + 1)]}
    batch = {"index": index, "padding_mask": tf.ones([args.batch_size, 1], tf.int32), "labels": tf.gather(labels, index)}
    steps = {}
    for objective in ("infonce", "infonce_stale"):
        loss = LOSSES.get("codir")(context, objective=objective, num_negatives=args.num_negatives, seed=1)
        variables = student["hidden_states"] + loss.trainable_variables

        @tf.function(jit_compile=True)
        def step(loss=loss, variables=variables):
            with tf.GradientTape() as tape:
                value = loss(teacher, student, batch, training=True)
            return tape.gradient(value, variables)

        step()  # compile
        steps[objective] = step
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda g: g.numpy() if g is not None else None, step())
            times[name].append(1000 * (time.perf_counter() - start))
    for name, values in times.items():
        print(f"{name:14s} forward+backward {np.median(values):6.1f} ms (median of {args.repeats}; "
              f"p10 {np.percentile(values, 10):.1f}, p90 {np.percentile(values, 90):.1f})")
    for name, values in times.items():
        share = np.median(values)
        print(f"{name}: {100 * share / 610:.1f} % of the 3-layer student's 610 ms step at length 64, "
              f"{100 * share / 1265:.1f} % at 128")

if __name__ == "__main__":
    main()
