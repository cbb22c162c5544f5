"""Memory banks and graph-side negative sampling for the contrastive losses.

Everything here runs inside the compiled train step (XLA included): random
draws are stateless, seeded from a Keras `SeedGenerator` the loss owns, and
banks are read and written row-wise (gather / scatter), never rewritten whole.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.losses._common import l2_normalize
from tfkd.losses._distribute import all_gather, local_rows


class FeatureBank(keras.layers.Layer):
    """A non-trainable `[num_rows, dim]` table of per-example vectors, read without gradient.

    Rows are stored as `storage` ("float32", or "float16" to halve the memory)
    and always read as float32. `assign` overwrites rows (e.g. from one teacher
    pass over the training set); nothing else writes them.

    Args:
        num_rows: number of stored examples.
        dim: width of the stored vectors.
        storage: "float32" or "float16".
        initializer: Keras initializer of the rows (default zeros).
    """

    def __init__(self, num_rows: int, dim: int, storage: str = "float32", initializer: Any = "zeros", **kwargs):
        kwargs.pop("dtype", None)  # the storage dtype is fixed by `storage`, not by the precision policy
        super().__init__(dtype="float32", **kwargs)
        if storage not in ("float32", "float16"):
            raise TfkdError(f"a feature bank stores 'float32' or 'float16', not {storage!r}. Fix: use one of those.")
        self.num_rows, self.dim, self.storage = num_rows, dim, storage
        self.rows = self.add_weight(
            shape=(num_rows, dim),
            initializer=initializer,
            dtype=storage,
            trainable=False,
            # With autocast off, `.value` is the backing tf.Variable, which has
            # the sparse read and scatter ops.
            autocast=False,
            aggregation="only_first_replica",
            name="rows",
        )
        self.built = True

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "num_rows": self.num_rows, "dim": self.dim, "storage": self.storage}

    @property
    def nbytes(self) -> int:
        return self.num_rows * self.dim * (2 if self.storage == "float16" else 4)

    def read(self, index: tf.Tensor) -> tf.Tensor:
        """Rows at `index` (any shape) → `index.shape + [dim]` float32, without gradient."""
        # tf.gather reads only these rows from a plain resource variable; a
        # MirroredVariable has no sparse read, and tf.gather falls back to
        # gathering from its local copy.
        return tf.stop_gradient(tf.cast(tf.gather(self.rows.value, index), tf.float32))

    def assign(self, index: tf.Tensor, vectors: tf.Tensor) -> None:
        """Overwrites the rows at `index` `[M]` with `vectors` `[M, dim]`."""
        self.rows.value.scatter_update(tf.IndexedSlices(tf.cast(vectors, self.storage), index))


class MemoryBank(FeatureBank):
    """A float32 `[num_rows, dim]` table with one unit vector per training example, moved by momentum.

    Initialised as the official CRD/CoDIR code does: uniform in `±1/sqrt(dim/3)`
    (rows of about unit norm); `assign` overwrites rows (e.g. from a teacher
    pass), `momentum_update` moves the batch's rows towards new vectors.

    Under `tf.distribute` the update gathers every replica's rows first, so all
    replicas write the same rows with the same values; the variable's
    "only_first_replica" aggregation then applies that one update to every copy.

    Args:
        num_rows: number of training examples `N`.
        dim: width of the stored vectors.
        seed: seed of the random initial rows.
    """

    def __init__(self, num_rows: int, dim: int, seed: Optional[int] = None, **kwargs):
        bound = 1.0 / math.sqrt(dim / 3.0)
        super().__init__(num_rows, dim, initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed), **kwargs)
        self.seed = seed

    def get_config(self) -> Dict[str, Any]:
        config = {**super().get_config(), "seed": self.seed}
        config.pop("storage")
        return config

    def momentum_update(self, index: tf.Tensor, vectors: tf.Tensor, momentum: float, valid: tf.Tensor) -> None:
        """`M[i] ← normalize(μ·M[i] + (1−μ)·v_i)` for the global batch's rows.

        Args:
            index: `[B]` example indices of this replica's batch.
            vectors: `[B, dim]` new vectors (gradients are not taken through them).
            momentum: `μ`.
            valid: `[B]` 1 for real examples; rows of filler examples are left unchanged.
        """
        index = all_gather(tf.cast(index, tf.int32))
        vectors = all_gather(tf.stop_gradient(tf.cast(vectors, tf.float32)))
        valid = all_gather(valid)
        old = self.read(index)
        new = l2_normalize(momentum * old + (1.0 - momentum) * vectors)
        self.assign(index, tf.where(valid[:, None] > 0, new, old))


def draw_seed(generator: keras.random.SeedGenerator) -> tf.Tensor:
    """A fresh int32 seed pair for `tf.random.stateless_*`. Every replica gets
    the same one: draws are made for the global batch (`for_this_replica`)."""
    return tf.cast(tf.math.floormod(generator.next(), 2**31 - 1), tf.int32)


def for_this_replica(draw: Callable[[tf.Tensor], tf.Tensor], index: tf.Tensor) -> tf.Tensor:
    """`draw(global_index)` computed for the whole global batch, then this
    replica's rows: each example gets the same negatives whatever the number
    of replicas the batch is split over (and replicas never share draws)."""
    index = tf.cast(index, tf.int32)
    return local_rows(draw(all_gather(index)), tf.shape(index)[0])


def sample_uniform(seed: tf.Tensor, index: tf.Tensor, num_rows: int, k: int) -> tf.Tensor:
    """`[B, k]` indices drawn uniformly (with replacement) from `0..num_rows-1`
    without the example's own index."""
    index = tf.cast(index, tf.int32)
    offsets = tf.random.stateless_uniform(
        [tf.shape(index)[0], k], seed=seed, minval=0, maxval=num_rows - 1, dtype=tf.int32
    )
    return offsets + tf.cast(offsets >= index[:, None], tf.int32)


def label_pools(train_labels: np.ndarray, num_classes: int, loss_name: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """Per class, the indices of the training examples with a *different* label.

    Returns `(pools, sizes)`: `pools` `[C * P]` (row-major `[C, P]`, padded
    with 0 to the largest pool `P`) and `sizes` `[C]`.
    """
    labels = np.asarray(train_labels).astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise TfkdError(
            f"loss '{loss_name}': training labels span {labels.min()}..{labels.max()} but the task has "
            f"{num_classes} classes. Fix: pass the task's num_classes in the DistillContext."
        )
    pools = [np.flatnonzero(labels != c) for c in range(num_classes)]
    present = [c for c in range(num_classes) if np.any(labels == c)]
    if any(pools[c].size == 0 for c in present):
        raise TfkdError(
            f"loss '{loss_name}': label-aware negatives need at least two classes in the training set. "
            "Fix: use negatives='uniform'."
        )
    width = max(p.size for p in pools)
    table = np.zeros((num_classes, width), np.int32)
    for c, pool in enumerate(pools):
        table[c, : pool.size] = pool
    return tf.constant(table.reshape(-1)), tf.constant([p.size for p in pools], tf.int32)


def sample_from_pools(seed: tf.Tensor, pools: tf.Tensor, sizes: tf.Tensor, classes: tf.Tensor, k: int) -> tf.Tensor:
    """`[B, k]` indices drawn uniformly (with replacement) from each example's class pool."""
    classes = tf.cast(classes, tf.int32)
    width = tf.shape(pools)[0] // tf.shape(sizes)[0]
    size = tf.gather(sizes, classes)[:, None]
    u = tf.random.stateless_uniform([tf.shape(classes)[0], k], seed=seed, dtype=tf.float32)
    # float32 rounding can put u * size on size itself for large pools.
    offset = tf.minimum(tf.cast(u * tf.cast(size, tf.float32), tf.int32), tf.maximum(size - 1, 0))
    return tf.gather(pools, classes[:, None] * width + offset)
