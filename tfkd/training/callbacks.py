"""Callbacks of a tfkd training run: dev evaluation with best-model keeping,
checkpoints with exact resume (mid-epoch included), preemption and divergence
handling, and throughput timing."""

from __future__ import annotations

import glob
import math
import os
import shutil
import signal
import threading
import time
from typing import Callable, Dict, List, Optional

import keras
import tensorflow as tf

from tfkd.core.errors import TfkdError, TrainingPreempted
from tfkd.core.jsonfile import read_json, write_json
from tfkd.core.log import log
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.metrics import primary_metric


class DevEvaluation(keras.callbacks.Callback):
    """Scores the student on the dev split after each epoch and keeps the best one.

    Dev metrics are added to the epoch logs as `dev_<metric>` (so the
    TensorBoard callback after this one writes them), with the learning rate.
    With `history_path`, the history is written there after every epoch, so a
    resumed run (`restore`) keeps the earlier epochs and the best so far.

    Args:
        evaluator: the dev `Evaluator`.
        model_fn: returns the model to score (the distiller's student).
        save_best: called with `(epoch, metrics)` when the primary metric improves.
        history_path: a JSON file for the per-epoch dev metrics.

    Example:
    >>> import pathlib
    >>> import numpy as np
    >>> from tfkd.data import Examples, get_task, make_tokenizer, tokenize
    >>> from tfkd.models import BertModel
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> dev = tokenize(Examples(["a fine film", "a film"], None, np.array([1, 0], np.int32), "dev"),
    ...                make_tokenizer("vocab.txt"), 16)
    >>> student = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> evaluator = Evaluator(get_task("sst2"), dev, batch_size=2, jit_compile=False)
    >>> saved = []
    >>> dev_eval = DevEvaluation(evaluator, lambda: student, lambda epoch, metrics: saved.append(epoch),
    ...                          "dev_history.json")
    >>> write_json("dev_history.json", [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "accuracy": 0.8},
    ...                                 {"epoch": 3, "accuracy": 0.9}])
    >>> dev_eval.restore(epochs_done=2)  # after resuming from a checkpoint of epoch 2: epoch 3 was not saved
    >>> dev_eval.best_epoch, dev_eval.best, saved
    (2, {'accuracy': 0.8}, [])
    """

    def __init__(self, evaluator: Evaluator, model_fn: Callable, save_best: Callable[[int, Dict[str, float]], None],
                 history_path: Optional[str] = None):
        super().__init__()
        self.evaluator = evaluator
        self.model_fn = model_fn
        self.save_best = save_best
        self.history_path = history_path
        self.metric = primary_metric(evaluator.task)
        self.history: List[Dict[str, float]] = []
        self.best: Optional[Dict[str, float]] = None
        self.best_epoch: Optional[int] = None

    def _add(self, epoch: int, metrics: Dict[str, float]) -> bool:
        """Appends an epoch's metrics; returns whether they are the best so far."""
        self.history.append({"epoch": epoch, **metrics})
        improved = self.best is None or metrics[self.metric] > self.best[self.metric]
        if improved:
            self.best, self.best_epoch = metrics, epoch
        return improved

    def restore(self, epochs_done: int) -> None:
        """Reloads the metrics of epochs 1..`epochs_done` from `history_path` (later ones were not checkpointed)."""
        if not self.history_path or not os.path.exists(self.history_path):
            return
        damaged = "(the dev metrics of the epochs done) is damaged"
        fix = ("delete it to resume without the earlier epochs' metrics (best-model selection restarts "
               "from the next epoch), or start a new --workdir")
        stored = read_json(self.history_path, fix=fix, damaged=damaged)
        try:
            entries = [entry for entry in stored if entry["epoch"] <= epochs_done]
        except (TypeError, KeyError) as e:
            raise TfkdError(f"'{self.history_path}' {damaged} ({type(e).__name__}: {e}). Fix: {fix}.") from None
        for entry in entries:
            self._add(entry["epoch"], {k: v for k, v in entry.items() if k != "epoch"})

    def on_epoch_end(self, epoch, logs=None):
        metrics = self.evaluator.evaluate(self.model_fn())
        logs = logs if logs is not None else {}
        logs.update({f"dev_{k}": v for k, v in metrics.items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        line = ", ".join(f"{k} {100 * v:.2f}" for k, v in metrics.items())
        improved = self._add(epoch + 1, metrics)
        log(f"epoch {epoch + 1} dev: {line}{'  (best so far)' if improved else ''}")
        if improved:
            self.save_best(epoch + 1, metrics)
        if self.history_path:
            write_json(self.history_path, self.history)


class Throughput(keras.callbacks.Callback):
    """Measures training examples per second per epoch (dev evaluation excluded).

    Counts the batches each epoch really ran, so the remainder of an epoch
    resumed mid-way is measured right.
    """

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        self.epoch_seconds: List[float] = []
        self.epoch_batches: List[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(self._last - self._start)
        self.epoch_batches.append(self._batches)

    def examples_per_second(self) -> float:
        """Steady-state speed: epochs after the first (which pays for compilation) when there are any;
        NaN when no epoch was timed (a run resumed after its last epoch; `write_json` writes null)."""
        steady = slice(1, None) if len(self.epoch_seconds) > 1 else slice(None)
        seconds = sum(self.epoch_seconds[steady])
        if not seconds:
            return float("nan")
        return self.batch_size * sum(self.epoch_batches[steady]) / seconds


def _state_only_variables(distiller) -> List:
    """Variables that `weights` leaves out but training depends on: the seed
    states of every dropout layer and negative sampler, in model order."""
    weights = {id(v) for v in distiller.weights}
    return [v for v in distiller.variables if id(v) not in weights]


class TrainingCheckpoint(keras.callbacks.Callback):
    """Saves the whole training state every `every_steps` steps and after every epoch; restores it on re-run.

    A checkpoint holds the distiller (student, stage variables), its loss
    layers (projection heads, memory banks, normalisers: a Keras-tracked list
    that `tf.train.Checkpoint` would not follow from the distiller), every
    random-seed state (dropout, negative samplers: `Layer.variables` but not
    `weights`), the optimizer (its iteration count drives the learning-rate
    schedule), the running loss means of the epoch, and the global step. The
    epoch and the batch to resume at follow from the step, and the data
    pipeline is deterministic in (seed, epoch), so a resumed run continues
    exactly where the checkpoint was taken. Mid-epoch saves skip an epoch's
    last step: the epoch-end save follows it, after the dev evaluation.

    No checkpoint is ever written after a non-finite loss: before every save,
    at every epoch's last step (before the dev evaluation) and every
    `check_every_steps` steps the distiller's in-graph record is read, and a
    non-finite term stops training with a `TfkdError` naming it and its step.

    With `preemption` set (a `PreemptionSignal`), a SIGTERM or SIGINT makes it save at
    the next step boundary and raise `TrainingPreempted`; at an epoch's last
    step it lets the epoch end (dev evaluation, save) and stops `fit` there.

    A checkpoint that is unreadable (truncated, overwritten) or does not fit
    the current model (other shapes, other vocabulary, other batches per
    epoch) is refused with a clear error, never silently ignored.

    Args:
        directory: where checkpoints go (`ckpt-<step>`).
        distiller: the compiled `Distiller`, built (`build_for_restore`).
        steps_per_epoch: batches per epoch.
        every_steps: save every this many steps as well (0: at epoch ends only).
        max_to_keep: checkpoints kept.
        check_every_steps: read the non-finite record at least this often.
        restore_directory: resume from the checkpoints there instead (a
            non-chief worker saves into scratch but resumes from the chief's).

    Example:
    >>> from tfkd.distill import Distiller
    >>> from tfkd.losses import LOSSES, DistillContext, ModelSpec
    >>> from tfkd.models import BertModel
    >>> def make_distiller():
    ...     student = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    ...     ce = LOSSES.get("ce")(DistillContext(ModelSpec(1, 8, 2), ModelSpec(1, 8, 2), ((1, 1),)))
    ...     distiller = Distiller(student, None, [("ce", ce, 1.0)])  # fine-tuning: no teacher
    ...     distiller.compile(optimizer=keras.optimizers.AdamW(1e-3))
    ...     distiller.build_for_restore()
    ...     return distiller
    >>> checkpoint = TrainingCheckpoint("run/checkpoints", make_distiller(), steps_per_epoch=100, every_steps=50)
    >>> checkpoint.restore()  # a new run starts at step 0
    0
    >>> checkpoint.step = 150  # what distiller.fit(ds, callbacks=[checkpoint], ...) counts
    >>> checkpoint.save()
    [tfkd] saved checkpoint run/checkpoints/ckpt-150 at step 150 (epoch 2, batch 50 of 100)
    'run/checkpoints/ckpt-150'
    >>> TrainingCheckpoint("run/checkpoints", make_distiller(), steps_per_epoch=100).restore()  # the resumed run
    [tfkd] resumed from run/checkpoints/ckpt-150 at step 150 (epoch 2, batch 50 of 100)
    150
    """

    def __init__(self, directory: str, distiller, steps_per_epoch: int, every_steps: int = 0, max_to_keep: int = 2,
                 check_every_steps: int = 50, restore_directory: Optional[str] = None):
        super().__init__()
        self.directory = directory
        self.restore_directory = restore_directory or directory
        self.distiller = distiller
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.max_to_keep = max_to_keep
        self.check_every_steps = check_every_steps
        self.preemption: Optional[PreemptionSignal] = None
        self.step = 0
        self._step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._steps_per_epoch_var = tf.Variable(steps_per_epoch, dtype=tf.int64, trainable=False, name="steps_per_epoch")
        self._metric_vars = [v for metric in distiller.metrics for v in metric.variables]
        self._resumed_metrics: Optional[List] = None
        self.checkpoint = tf.train.Checkpoint(
            distiller=distiller,
            losses=list(distiller.loss_layers),
            rng=_state_only_variables(distiller),
            optimizer=distiller.optimizer,
            metrics=self._metric_vars,
            step=self._step_var,
            steps_per_epoch=self._steps_per_epoch_var,
        )
        try:
            self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)
        except Exception as e:  # a damaged state file fails to parse with protobuf's own errors
            raise TfkdError(
                f"the checkpoint state file {os.path.join(directory, 'checkpoint')} is damaged ({type(e).__name__}). "
                "Fix: delete it and write the line model_checkpoint_path: \"ckpt-<newest step>\" into it, or delete "
                "the folder to start from scratch."
            ) from None

    def _unreadable(self, path: str, error: Exception) -> TfkdError:
        detail = str(error).splitlines()[0][:300] if str(error) else ""
        return TfkdError(
            f"the checkpoint '{path}' is unreadable: truncated or damaged ({type(error).__name__}: {detail}). "
            f"Fix: delete its files and point {os.path.join(self.directory, 'checkpoint')} at the one before, or "
            "delete the checkpoints/ folder to start from scratch."
        )

    def where(self, step: int) -> str:
        """`step` in words: "step 11 (epoch 2, batch 3 of 8)"; batch k = the k-th batch is done."""
        epoch, batch = divmod(step, self.steps_per_epoch)
        if batch:
            return f"step {step} (epoch {epoch + 1}, batch {batch} of {self.steps_per_epoch})"
        return f"step {step} (end of epoch {epoch})" if epoch else "step 0"

    def restore(self) -> int:
        """Restores the latest checkpoint if there is one; returns the global step to start from."""
        source = self.restore_directory
        path = self.manager.latest_checkpoint if source == self.directory else tf.train.latest_checkpoint(source)
        if path is None:
            found = sorted(f[:-len(".index")] for f in os.listdir(source) if f.startswith("ckpt-") and f.endswith(".index")) if os.path.isdir(source) else []
            if found:
                raise TfkdError(
                    f"{source} holds checkpoints ({', '.join(found)}) but its state file 'checkpoint' is missing "
                    "or damaged, so the latest one is unknown. Fix: write that file with the line "
                    f"model_checkpoint_path: \"{found[-1]}\" (the newest), or delete the folder to start from scratch."
                )
            return 0
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError) as e:
            raise TfkdError(
                f"the checkpoint '{path}' does not fit this run ({type(e).__name__}: {str(e).splitlines()[0][:300]}). "
                "Fix: use a new --workdir, or delete its checkpoints/ folder to start from scratch."
            ) from None
        except Exception as e:  # damaged files fail in the reader with many kinds of errors (DataLoss, IndexError, ...)
            raise self._unreadable(path, e) from None
        saved_steps = int(self._steps_per_epoch_var.numpy())
        if saved_steps != self.steps_per_epoch:
            raise TfkdError(
                f"the checkpoint '{path}' was written with {saved_steps} batches per epoch, this run has "
                f"{self.steps_per_epoch}: its data position does not carry over. Fix: keep --batch_size and "
                "--max_train_examples as they were, or use a new --workdir."
            )
        self.step = int(self._step_var.numpy())
        if self.step % self.steps_per_epoch:
            # fit resets the running loss means when the interrupted epoch starts again.
            self._resumed_metrics = [v.numpy() for v in self._metric_vars]
        log(f"resumed from {path} at {self.where(self.step)}")
        return self.step

    def save(self) -> str:
        self._step_var.assign(self.step)
        try:
            path = self.manager.save(checkpoint_number=self.step)
        except tf.errors.ResourceExhaustedError as e:  # what TensorFlow's writer raises on ENOSPC and EDQUOT
            raise self._no_space(e) from None
        log(f"saved checkpoint {path} at {self.where(self.step)}")
        return path

    def _no_space(self, error: Exception) -> TfkdError:
        """Removes what the failed save left and says how much room a checkpoint takes."""
        name = f"ckpt-{self.step}"
        prefix = os.path.join(self.directory, name)
        leftovers = glob.glob(glob.escape(prefix) + "_temp*")
        leftovers += glob.glob(os.path.join(glob.escape(self.directory), "checkpoint.tmp*"))  # the state file's
        if prefix not in self.manager.checkpoints:  # a half-written index or data file of this step
            leftovers += glob.glob(glob.escape(prefix) + ".*")
        for path in leftovers:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        last = self.manager.latest_checkpoint
        if last:
            needed = sum(os.path.getsize(f) for f in glob.glob(glob.escape(last) + ".*"))
        else:
            variables = {id(v): v for v in self.distiller.variables + list(self.distiller.optimizer.variables)}
            needed = sum(v.numpy().nbytes for v in variables.values())
        free = shutil.disk_usage(self.directory).free
        kept = f"The last good checkpoint is kept: {last}." if last else "No checkpoint was written before it."
        # TensorFlow's message is "<op> <temp file>; No space left on device [Op:SaveV2]".
        reason = str(error).splitlines()[0].rsplit("; ", 1)[-1].split(" [Op:")[0] if str(error) else type(error).__name__
        return TfkdError(
            f"could not write checkpoint {name} in {self.directory} ({reason}): a checkpoint of this run needs "
            f"about {_size(needed)} and the filesystem has {_size(free)} free; the partial files are removed. {kept} "
            f"Fix: free space there (the last {self.max_to_keep} checkpoints are kept, one more is written "
            "before the oldest goes) or move --workdir to a larger disk, then re-run the same command to resume."
        )

    def check_finite(self) -> None:
        report = self.distiller.nonfinite_report()
        if report is None:
            return
        step, values = report
        terms = ", ".join(f"'{name}' is {value}" for name, value in values.items())
        last = self.manager.latest_checkpoint
        kept = f"The last good checkpoint is kept: {last}." if last else "No checkpoint was written before it."
        raise TfkdError(
            f"training diverged: {terms} at {self.where(step)}. {kept} "
            "Fix: lower --learning_rate or that loss's weight, or check the data."
        )

    def on_epoch_begin(self, epoch, logs=None):
        if self._resumed_metrics is not None:
            for variable, value in zip(self._metric_vars, self._resumed_metrics):
                variable.assign(value)
            self._resumed_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        epoch_end = self.step % self.steps_per_epoch == 0
        preempted = self.preemption is not None and self.preemption.requested
        if preempted and epoch_end:
            log(f"{self.preemption.signal_name} received: stopping after this epoch's dev evaluation and checkpoint")
        stop = preempted and not epoch_end
        periodic = self.every_steps > 0 and self.step % self.every_steps == 0 and not epoch_end
        if stop or periodic or epoch_end or self.step % self.check_every_steps == 0:
            self.check_finite()
        if stop or periodic:
            path = self.save()
        if stop:
            raise TrainingPreempted(f"{self.preemption.signal_name}: saved checkpoint {path} at {self.where(self.step)}",
                                    self.preemption.signal_name)

    def on_epoch_end(self, epoch, logs=None):
        self.save()
        if self.preemption is not None and self.preemption.requested:
            self.model.stop_training = True


def _size(num_bytes: int) -> str:
    """`num_bytes` for people: "97.5 KB", "1.3 GB"."""
    units = ("bytes", "KB", "MB", "GB", "TB")
    power = min(int(math.log10(max(num_bytes, 1)) // 3), len(units) - 1)
    return f"{num_bytes / 1000 ** power:.3g} {units[power]}"


class PreemptionSignal:
    """While active, SIGTERM and SIGINT (Ctrl-C) only set `requested` (a `TrainingCheckpoint` then saves and stops).

    `signal_name` says which one came (SIGTERM until one does). A second Ctrl-C raises `KeyboardInterrupt`
    at once, for a user who does not want to wait for the checkpoint.

    Example: a run sets `checkpoint.preemption = preemption` and calls `distiller.fit` inside the block.

    >>> with PreemptionSignal() as preemption:
    ...     os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before it stops the job
    >>> preemption.requested, preemption.signal_name
    (True, 'SIGTERM')
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.signal_name = "SIGTERM"
        self._previous: Dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        # Only flags: printing here could re-enter a print the signal interrupted.
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "PreemptionSignal":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
