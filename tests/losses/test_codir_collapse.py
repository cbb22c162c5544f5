"""CoDIR cannot be satisfied by drift: trained alone on a generated task, its
training loss stays what the same student vectors score against freshly
embedded negatives, and the student learns to pick out its own teacher example.

The teacher is frozen (fixed summaries: class means plus noise); the student
sees a noisy rotation of them through a trainable linear encoder. Only CoDIR
trains. The check against fresh negatives is computed here in NumPy from the
current heads, independently of the loss's own `fresh_loss` diagnostic. A bank
of projected rows scored against a fresh positive (the old default, kept as
`objective="infonce_stale"`) fails both checks: its heads drift away from the
stale rows, its training loss falls far below the fresh one, and its student
learns much less.
"""

import keras
import numpy as np
import tensorflow as tf

from tests.helpers import dense_np, l2n
from tfkd.losses import LOSSES, DistillContext, ModelSpec

N, WIDTH, LAYERS, K, TAU = 1024, 16, 2, 100, 0.07


def _task(seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, N)
    teacher = 0.5 * rng.normal(size=(2, LAYERS * WIDTH))[labels] + rng.normal(size=(N, LAYERS * WIDTH))
    rotation = np.linalg.qr(rng.normal(size=(LAYERS * WIDTH, LAYERS * WIDTH)))[0]
    student = teacher @ rotation + 2.0 * rng.normal(size=teacher.shape)
    return teacher.astype(np.float32), student.astype(np.float32), labels


def _train(objective, steps=600, seed=1):
    """Trains encoder + heads with CoDIR alone (its default objective when `objective` is None); returns
    (loss layer, encoder, data, mean loss of the last 100 steps)."""
    keras.utils.set_random_seed(seed)
    teacher_x, student_x, labels = _task(seed)
    context = DistillContext(
        teacher=ModelSpec(2 * LAYERS, WIDTH, 1), student=ModelSpec(LAYERS, WIDTH, 1),
        layer_map=tuple((k, 2 * k) for k in range(1, LAYERS + 1)),
        num_classes=2, num_train_examples=N, train_labels=labels,
    )
    chosen = {} if objective is None else {"objective": objective}
    loss = LOSSES.get("codir")(context, negatives="uniform", num_negatives=K, temperature=TAU, seed=seed,
                               name="codir", **chosen)
    encoder = keras.layers.Dense(LAYERS * WIDTH)
    encoder.build((None, LAYERS * WIDTH))

    def outputs(index):
        t, s = tf.gather(teacher_x, index), encoder(tf.gather(student_x, index))
        teacher = {"features": {f"mean_{2 * k}": t[:, (k - 1) * WIDTH:k * WIDTH] for k in range(1, LAYERS + 1)}}
        student = {"hidden_states": [None] + [s[:, None, (k - 1) * WIDTH:k * WIDTH] for k in range(1, LAYERS + 1)]}
        batch = {"index": index, "padding_mask": tf.ones([tf.shape(index)[0], 1], tf.int32)}
        return teacher, student, batch

    loss.prepare((teacher, batch) for teacher, _, batch in map(outputs, map(tf.constant, np.array_split(np.arange(N), 8))))
    variables = encoder.trainable_variables + loss.trainable_variables
    optimizer = keras.optimizers.Adam(2e-3)

    @tf.function
    def step(index):
        with tf.GradientTape() as tape:
            value = loss(*outputs(index), training=True)
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        return value

    rng = np.random.default_rng(seed)
    values = [float(step(tf.constant(rng.choice(N, 32, replace=False)))) for _ in range(steps)]
    return loss, encoder, (teacher_x, student_x), float(np.mean(values[-100:]))


def _embed(loss, encoder, data, index):
    teacher_x, student_x = data
    z_t = np.array([l2n(dense_np(loss.teacher_head, row)) for row in teacher_x[index]])
    hidden = encoder(student_x[index]).numpy()
    z_s = np.array([l2n(dense_np(loss.student_head, row)) for row in hidden])
    return z_s, z_t


def _fresh_infonce(loss, encoder, data, seed=2):
    """InfoNCE of 256 examples against K uniformly drawn others, all embedded by the current heads."""
    rng = np.random.default_rng(seed)
    index = rng.choice(N, 256, replace=False)
    z_s, _ = _embed(loss, encoder, data, index)
    _, z_all = _embed(loss, encoder, data, np.arange(N))
    values = []
    for b, i in enumerate(index):
        negatives = rng.choice(np.delete(np.arange(N), i), K)
        logits = np.concatenate([[z_s[b] @ z_all[i]], z_all[negatives] @ z_s[b]]) / TAU
        values.append(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[0])
    return float(np.mean(values))


def _top1(loss, encoder, data, seed=3):
    """How often an example's student vector picks its own teacher vector among 256."""
    index = np.random.default_rng(seed).choice(N, 256, replace=False)
    z_s, z_t = _embed(loss, encoder, data, index)
    return float(np.mean(np.argmax(z_s @ z_t.T, axis=1) == np.arange(len(index))))


def test_default_objective_does_not_collapse_and_teaches_the_student():
    loss, encoder, data, train = _train(objective=None)
    fresh = _fresh_infonce(loss, encoder, data)
    assert abs(train - fresh) < 0.25 * fresh, (train, fresh)
    assert fresh < 0.8 * np.log(K + 1)  # well below chance: it learnt something
    assert _top1(loss, encoder, data) > 0.4  # chance: 1/256


def test_the_stale_bank_form_shows_the_shortcut():
    """The same checks on the old form: documents why it is not the default (and that the checks can fail)."""
    loss, encoder, data, train = _train("infonce_stale")
    fresh = _fresh_infonce(loss, encoder, data)
    assert train < 0.6 * fresh, (train, fresh)
