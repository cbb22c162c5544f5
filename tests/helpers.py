"""Tiny shared test helpers: padded batches, fake model outputs, loss contexts.

Every loss test builds its inputs here, so all of them see the same kinds of
batches: ragged lengths, one fully padded row, teacher and student of
different widths and head counts.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.losses.base import DistillContext, ModelSpec

# Ragged lengths of the default 4-example batch; the last row is fully padded.
LENGTHS = (7, 5, 2, 0)
SEQ_LEN = 7
TEACHER = ModelSpec(num_layers=4, hidden_dim=12, num_heads=3)
STUDENT = ModelSpec(num_layers=2, hidden_dim=8, num_heads=2)


def padding_mask(lengths: Sequence[int] = LENGTHS, seq_len: int = SEQ_LEN) -> np.ndarray:
    """`[B, n]` int32 mask with `lengths[b]` real tokens at the front of row b."""
    return (np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)


def make_context(
    teacher: ModelSpec = TEACHER,
    student: ModelSpec = STUDENT,
    layer_map: Optional[Tuple[Tuple[int, int], ...]] = None,
    num_classes: int = 2,
    is_regression: bool = False,
    num_train_examples: int = 0,
    train_labels: Optional[np.ndarray] = None,
) -> DistillContext:
    """A `DistillContext`; the default layer map is uniform (4→2: (1, 2), (2, 4))."""
    if layer_map is None:
        step = teacher.num_layers // student.num_layers
        layer_map = tuple((k, k * step) for k in range(1, student.num_layers + 1))
    return DistillContext(
        teacher=teacher,
        student=student,
        layer_map=layer_map,
        num_classes=num_classes,
        is_regression=is_regression,
        num_train_examples=num_train_examples,
        train_labels=train_labels,
    )


def _attention(rng: np.random.Generator, mask: np.ndarray, heads: int) -> np.ndarray:
    """Softmax over the real keys of random scores (padded keys get 0; a row
    without any real key is uniform, as a masked softmax would give)."""
    batch, seq_len = mask.shape
    scores = rng.normal(size=(batch, heads, seq_len, seq_len)) * 2.0
    keys = mask[:, None, None, :].astype(bool)
    scores = np.where(keys, scores, -np.inf)
    scores = np.where(keys.any(-1, keepdims=True), scores, 0.0)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    return probs / probs.sum(-1, keepdims=True)


def fake_outputs(
    rng: np.random.Generator,
    spec: ModelSpec,
    mask: np.ndarray,
    num_classes: int = 2,
    attentions: bool = True,
    dtype: str = "float32",
) -> Dict[str, Any]:
    """A model-output dict as `BertModel` returns it, filled with random values."""
    batch, seq_len = mask.shape
    outputs: Dict[str, Any] = {
        "logits": tf.constant(rng.normal(size=(batch, num_classes)) * 2.0, dtype),
        "hidden_states": [
            tf.constant(rng.normal(size=(batch, seq_len, spec.hidden_dim)), dtype) for _ in range(spec.num_layers + 1)
        ],
    }
    if attentions:
        outputs["attentions"] = [
            tf.constant(_attention(rng, mask, spec.num_heads), dtype) for _ in range(spec.num_layers)
        ]
    return outputs


def make_batch(
    mask: np.ndarray,
    labels: Optional[np.ndarray] = None,
    index: Optional[np.ndarray] = None,
    pair_weights: Optional[Sequence[float]] = None,
) -> Dict[str, tf.Tensor]:
    """A batch dict: padding mask, labels (default 0/1 alternating), index (default 0..B-1)."""
    batch_size = mask.shape[0]
    labels = np.arange(batch_size) % 2 if labels is None else np.asarray(labels)
    index = np.arange(batch_size) if index is None else np.asarray(index)
    batch = {
        "padding_mask": tf.constant(mask),
        "labels": tf.constant(labels, tf.float32 if labels.dtype.kind == "f" else tf.int32),
        "index": tf.constant(index, tf.int32),
    }
    if pair_weights is not None:
        batch["pair_weights"] = tf.constant(pair_weights, tf.float32)
    return batch


def as_numpy(outputs: Dict[str, Any]) -> Dict[str, Any]:
    """The same dict with float64 NumPy arrays, for the loop references."""
    return tf.nest.map_structure(lambda x: np.asarray(tf.cast(x, tf.float64)), outputs)


def variables_of(outputs: Dict[str, Any]) -> Dict[str, Any]:
    """The same dict with every tensor turned into a float32 `tf.Variable`."""
    return tf.nest.map_structure(lambda x: tf.Variable(tf.cast(x, tf.float32)), outputs)


@contextlib.contextmanager
def global_policy(name: str) -> Iterator[None]:
    """Runs the body under a Keras dtype policy and always restores float32."""
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def finite_gradients(loss_fn: Callable[[], tf.Tensor], variables: List[tf.Variable]) -> bool:
    """Whether the loss and every gradient it has are finite."""
    with tf.GradientTape() as tape:
        value = loss_fn()
    gradients = tape.gradient(value, variables)
    checks = [np.isfinite(value.numpy())]
    checks += [np.all(np.isfinite(g.numpy())) for g in gradients if g is not None]
    return bool(all(checks)) and any(g is not None for g in gradients)


def optimise(
    loss_fn: Callable[[], tf.Tensor], variables: List[tf.Variable], steps: int = 8, lr: float = 0.05
) -> Tuple[float, float]:
    """A few Adam steps on `variables` alone; returns the first and last loss."""
    optimizer = keras.optimizers.Adam(lr)
    values = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            value = loss_fn()
        values.append(float(value))
        gradients = tape.gradient(value, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
    return values[0], float(loss_fn())


def l2n(x: np.ndarray) -> np.ndarray:
    """NumPy L2 normalisation of one vector (zero stays zero)."""
    norm = np.sqrt(np.sum(x * x))
    return x / max(norm, 1e-12)


def dense_np(layer: keras.layers.Dense, x: np.ndarray) -> np.ndarray:
    """A Keras `Dense` applied in NumPy float64 with the layer's own weights."""
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    bias = np.asarray(layer.bias.numpy(), np.float64)
    return x @ kernel + bias


# The vocabulary of the tiny end-to-end runs (tests/conftest.py's `tiny_setup`).
WORDS = ["good", "bad", "great", "awful", "not", "movie", "the", "was", "very", "dull", "fun", "plot"]


def write_vocab(path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["."]
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")
    return len(tokens)


def tiny_run_config(setup, workdir, *, glue=None, epochs: int = 1, student: Optional[Dict[str, Any]] = None,
                    method: Optional[Dict[str, Any]] = None, **sections):
    """The run the in-process training tests start from: `tiny_setup`'s teacher and SST-2 files (or `glue`), a
    1-layer student copied from the teacher, no XLA; `student` and `method` override fields of those sections,
    `sections` set others (e.g. `augment=`)."""
    import tfkd

    return tfkd.RunConfig(
        workdir=str(workdir),
        data=tfkd.DataConfig(task="sst2", glue_dir=str(glue or setup / "glue"), max_seq_length=16, batch_size=8,
                             eval_batch_size=8),
        teacher=tfkd.TeacherConfig(source=str(setup / "teacher")),
        student=tfkd.StudentConfig(**{"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32,
                                      "init": "teacher"} | (student or {})),
        method=tfkd.MethodConfig(**(method or {})),
        optim=tfkd.OptimConfig(epochs=epochs, learning_rate=1e-3),
        runtime=tfkd.RuntimeConfig(jit_compile=False),
        **sections,
    )
