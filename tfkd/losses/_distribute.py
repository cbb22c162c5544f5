"""Cross-replica helpers for losses with global state (memory banks, normalisers).

Under `tf.distribute` with several replicas, each replica sees its own slice
of the global batch. Memory-bank updates must be identical on every replica,
so the batch's indices and vectors are gathered first; contrastive losses
also use the other replicas' examples as negatives. With one replica (or
outside any replica context) every helper is the identity.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def _replica_context() -> Optional[tf.distribute.ReplicaContext]:
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def replica_id() -> tf.Tensor:
    """This replica's position in the sync group (int32; 0 without distribution)."""
    context = _replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def all_gather(x: tf.Tensor) -> tf.Tensor:
    """Every replica's `x` concatenated along axis 0, in replica order
    (replicas hold equally many rows, as slices of one global batch do)."""
    context = _replica_context()
    if context is None:
        return x
    # A sum of zero-padded slots rather than ReplicaContext.all_gather, which
    # fails inside a tf.function under MultiWorkerMirroredStrategy
    # ("destinations can not be empty"); adding zeros is exact.
    replicas = context.num_replicas_in_sync
    slot = tf.reshape(tf.one_hot(replica_id(), replicas, dtype=x.dtype), [replicas] + [1] * x.shape.rank)
    gathered = context.all_reduce(tf.distribute.ReduceOp.SUM, slot * x[None])
    return tf.reshape(gathered, tf.concat([[-1], tf.shape(x)[1:]], axis=0))


def all_reduce_sum(x: tf.Tensor) -> tf.Tensor:
    """The sum of `x` over replicas."""
    context = _replica_context()
    if context is None:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def local_rows(global_values: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """This replica's `size` rows of a tensor computed for the global batch
    (the inverse of `all_gather` for equal per-replica batches)."""
    start = replica_id() * size
    return global_values[start : start + size]


def replica_share(count: tf.Tensor) -> tf.Tensor:
    """The global-batch `count` divided by the number of replicas.

    A per-replica mean `Σ_local / replica_share(n_local)` makes the replicas'
    average equal the mean over the global batch even when replicas hold
    different numbers of real tokens (the distiller divides by the replica
    count before the optimizer sums the replicas' gradients).
    """
    context = _replica_context()
    if context is None:
        return count
    return context.all_reduce(tf.distribute.ReduceOp.SUM, count) / context.num_replicas_in_sync
