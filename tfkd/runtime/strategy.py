"""Choosing the `tf.distribute` strategy a run trains under.

`--strategy=auto` picks MirroredStrategy when more than one GPU is visible and
the default (single-device) strategy otherwise. `--cpu_replicas=N` splits the
CPU into N logical devices so multi-replica code paths run on a laptop or in CI.

Example: two replicas on one CPU. `configure_cpu_replicas` must run before TensorFlow touches a device, at
process start (`python -m tfkd.train --cpu_replicas=2` does), so these two lines cannot run inside a test process:

>>> configure_cpu_replicas(2)  # doctest: +SKIP
>>> make_strategy("mirrored", cpu_replicas=2).num_replicas_in_sync  # doctest: +SKIP
2
>>> make_strategy("nccl")
Traceback (most recent call last):
...
tfkd.core.errors.TfkdError: unknown RuntimeConfig.strategy 'nccl'. Fix: use one of auto, one_device, mirrored, multi_worker, tpu.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from tfkd.core.errors import TfkdError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def configure_cpu_replicas(num_replicas: int) -> None:
    """Splits the first CPU into `num_replicas` logical devices (must run before TF initialises devices)."""
    if num_replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_replicas)
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != num_replicas:
            raise TfkdError(
                f"--cpu_replicas={num_replicas} came after TensorFlow initialised {existing} CPU device(s). "
                "Fix: set it at process start (python -m tfkd.train does)."
            ) from None


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's place among MultiWorkerMirroredStrategy workers: 0 for the
    chief (the only one that writes the run's outputs) and for single-process
    strategies, 1.. for the other workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 0
    if resolver.task_type == "chief":
        return 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return int(resolver.task_id) + (1 if has_chief else 0)


def make_strategy(name: str = "auto", tpu: Optional[str] = None, cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """Returns the strategy named by `--strategy` (see module docstring)."""
    # Physical, not logical: listing logical devices starts TensorFlow's
    # runtime, after which MultiWorkerMirroredStrategy can no longer be set up.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if cpu_replicas > 1:
            name = "mirrored"
        else:
            return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if cpu_replicas > 1:
            # Collective ops between logical CPUs of one process may run in a
            # different order on each replica ("Shape mismatch in the
            # collective instance"); reducing through one device has no order.
            return tf.distribute.MirroredStrategy(
                [f"/cpu:{i}" for i in range(cpu_replicas)], cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as e:
            raise TfkdError(f"no TPU found at '{tpu or 'local'}' ({e}). Fix: pass --tpu=<name or grpc://address> on a TPU VM.") from None
        return tf.distribute.TPUStrategy(resolver)
    raise TfkdError(f"unknown --strategy '{name}'. Fix: use one of {', '.join(STRATEGIES)}.")
