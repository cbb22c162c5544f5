"""Callbacks of a tfkd training run: dev evaluation with best-model keeping,
per-epoch checkpoints with automatic resume, and throughput timing."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable, Dict, List, Optional

import keras
import tensorflow as tf

from tfkd.errors import TfkdError
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.metrics import primary_metric


class DevEvaluation(keras.callbacks.Callback):
    """Scores the student on the dev split after each epoch and keeps the best one.

    Dev metrics are added to the epoch logs as `dev_<metric>` (so the
    TensorBoard callback after this one writes them), with the learning rate.

    Args:
        evaluator: the dev `Evaluator`.
        model_fn: returns the model to score (the distiller's student).
        save_best: called with `(epoch, metrics)` when the primary metric improves.
    """

    def __init__(self, evaluator: Evaluator, model_fn: Callable, save_best: Callable[[int, Dict[str, float]], None]):
        super().__init__()
        self.evaluator = evaluator
        self.model_fn = model_fn
        self.save_best = save_best
        self.metric = primary_metric(evaluator.task)
        self.history: List[Dict[str, float]] = []
        self.best: Optional[Dict[str, float]] = None
        self.best_epoch: Optional[int] = None

    def on_epoch_end(self, epoch, logs=None):
        metrics = self.evaluator.evaluate(self.model_fn())
        self.history.append({"epoch": epoch + 1, **metrics})
        logs = logs if logs is not None else {}
        logs.update({f"dev_{k}": v for k, v in metrics.items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        line = ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())
        improved = self.best is None or metrics[self.metric] > self.best[self.metric]
        print(f"\n[tfkd] epoch {epoch + 1} dev: {line}{'  (best so far)' if improved else ''}")
        if improved:
            self.best, self.best_epoch = metrics, epoch + 1
            self.save_best(epoch + 1, metrics)


class Throughput(keras.callbacks.Callback):
    """Measures training examples per second per epoch (dev evaluation excluded)."""

    def __init__(self, examples_per_epoch: int):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.epoch_seconds: List[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(self._last - self._start)

    def examples_per_second(self) -> float:
        """Steady-state speed: epochs after the first (which pays for compilation) when there are any."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        if not steady:
            return float("nan")
        return self.examples_per_epoch * len(steady) / sum(steady)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves distiller, loss state and optimizer after every epoch; restores on re-run.

    A checkpoint that does not fit the current model (other shapes, other
    vocabulary) is refused with a clear error, never silently ignored.
    """

    def __init__(self, directory: str, distiller, max_to_keep: int = 2):
        super().__init__()
        self.distiller = distiller
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(distiller=distiller, optimizer=distiller.optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)

    def restore(self) -> int:
        """Restores the latest checkpoint if there is one; returns the epoch to start from."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as e:
            raise TfkdError(
                f"the checkpoint '{path}' does not fit this run ({type(e).__name__}: {str(e).splitlines()[0][:300]}). "
                "Fix: use a new --workdir, or delete its checkpoints/ folder to start from scratch."
            ) from None
        print(f"[tfkd] resumed from {path} (after epoch {int(self.epoch.numpy())})")
        return int(self.epoch.numpy())

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TfkdError(f"training diverged: '{key}' is {value} in epoch {epoch + 1}. The last good checkpoint is kept in {self.manager.directory}. Fix: lower --learning_rate or the weight of that loss.")
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def write_json(path: str, data: Dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=float)
