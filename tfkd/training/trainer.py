"""The one training loop under fine-tuning, distillation and CoDIR pre-training.

`Trainer` wires what every run needs once: the optimizer schedule,
checkpoints that hold the whole training state (a re-run resumes at the exact
step, or at the epoch for pre-training, whose masks replay only from an
epoch's start), SIGTERM/Ctrl-C that save a checkpoint and stop, the stage
schedule, dev evaluation with best-model saving, throughput and TensorBoard.
The teacher-output cache and the loss-preparation pass (memory banks) batch
the training split exactly like training does (same `pad_to_multiple_of`),
so every pass compiles the same shapes.

Example (a tiny run, see `tests/training/test_trainer.py`):
>>> trainer = Trainer(distiller, "/tmp/run", data=DataConfig(batch_size=8), optim=OptimConfig(epochs=1),
...                   runtime=RuntimeConfig(jit_compile=False), steps_per_epoch=4)  # doctest: +SKIP
>>> outcome = trainer.fit(train_split)  # doctest: +SKIP
>>> outcome.throughput.epoch_seconds  # doctest: +SKIP
[3.2]
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tfkd.core.errors import TrainingPreempted
from tfkd.core.log import log
from tfkd.data.pipeline import TokenizedSplit, make_dataset, steps_per_epoch
from tfkd.distill import Distiller, StageScheduler, make_optimizer
from tfkd.distill.algorithms import Stage
from tfkd.distill.teacher_cache import TeacherCache, cacheable_features, load_or_build
from tfkd.evaluate.evaluator import Evaluator
from tfkd.training.callbacks import DevEvaluation, PreemptionSignal, Throughput, TrainingCheckpoint
from tfkd.training.config import DataConfig, OptimConfig, RuntimeConfig

BatchTransform = Callable[[tf.data.Dataset], tf.data.Dataset]


@dataclasses.dataclass
class FitOutcome:
    """What `Trainer.fit` measured.

    Args:
        start_step: the global step training resumed from (0: a fresh run).
        history: Keras' per-epoch logs of the epochs run now (`loss`, `loss_<term>`, diagnostics).
        throughput: per-epoch seconds and examples/s.
        dev: the dev evaluation (history, best epoch and metrics), when there was one.
        wall_seconds: the time `fit` took.
    """

    start_step: int
    history: Dict[str, List[float]]
    throughput: Throughput
    dev: Optional[DevEvaluation]
    wall_seconds: float


class Trainer:
    """Trains a compiled-here `Distiller` in `workdir`, resuming from its checkpoints.

    Args:
        distiller: the student, (teacher) and weighted losses.
        workdir: where `checkpoints/` and `logs/` go.
        data: batch sizes and bucketing (every pass of this trainer uses them).
        optim: learning rate schedule and seed (data order).
        runtime: XLA, checkpoint cadence, TensorBoard cadence.
        steps_per_epoch: batches per epoch.
        stages: the stage schedule (`build_stages`); None: one stage, the distiller's weights as they are.
        total_steps: steps of the whole run (default: `optim.epochs` epochs).
        step_checkpoints: also checkpoint every `runtime.checkpoint_every_steps` steps (and stop there on
            SIGTERM); False: at epoch ends only, for data whose order replays only from an epoch's start.
        restore_directory: where to restore checkpoints from (a MultiWorker worker restores the chief's).
    """

    def __init__(
        self,
        distiller: Distiller,
        workdir: str,
        *,
        data: DataConfig,
        optim: OptimConfig,
        runtime: RuntimeConfig,
        steps_per_epoch: int,
        stages: Optional[Sequence[Stage]] = None,
        total_steps: Optional[int] = None,
        step_checkpoints: bool = True,
        restore_directory: Optional[str] = None,
    ):
        self.distiller, self.workdir = distiller, workdir
        self.data, self.optim, self.runtime = data, optim, runtime
        self.steps_per_epoch = steps_per_epoch
        self.stages = list(stages) if stages else None
        self.total_steps = total_steps or optim.epochs * steps_per_epoch
        self.epochs = -(-self.total_steps // steps_per_epoch)
        self.step_checkpoints = step_checkpoints
        self.cache_seconds = 0.0  # the teacher-cache load or build, see `teacher_cache`
        distiller.compile(
            optimizer=make_optimizer(optim.learning_rate, self.total_steps, optim.warmup_ratio, optim.weight_decay,
                                     optim.clipnorm),
            jit_compile=runtime.jit_compile,
        )
        checkpoints = os.path.join(workdir, "checkpoints")
        self.checkpoint = TrainingCheckpoint(
            checkpoints, distiller, steps_per_epoch,
            every_steps=runtime.checkpoint_every_steps if step_checkpoints else 0,
            restore_directory=restore_directory or checkpoints,
        )
        distiller.build_for_restore()
        self.start_step = self.checkpoint.restore()
        if not step_checkpoints:
            self.start_step -= self.start_step % steps_per_epoch

    @property
    def start_epoch(self) -> int:
        return self.start_step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.start_step >= self.epochs * self.steps_per_epoch

    def dataset(self, split: TokenizedSplit, *, training: bool, extras=None, epochs: int = 1, start_epoch: int = 0,
                start_step: int = 0) -> tf.data.Dataset:
        """`split` batched the way every pass of this run batches it; `training` shuffles with the run's seed
        at the training batch size, otherwise in order at the evaluation batch size."""
        return make_dataset(
            split, self.data.batch_size if training else self.data.eval_batch_size, shuffle=training,
            seed=self.optim.seed, epochs=epochs, start_epoch=start_epoch, start_step=start_step,
            pad_to_multiple_of=self.data.pad_to_multiple_of, extras=extras,
        )

    def teacher_cache(self, train: TokenizedSplit, vocab_path: str, directory: str, dtype: str,
                      known_tail: Optional[Mapping[str, Any]] = None) -> Optional[TeacherCache]:
        """The cached teacher outputs this run trains from (`directory`, or `<workdir>/teacher_cache` for
        'auto'), or None when the teacher runs live ('off', no teacher, or a loss that reads token-level states).
        `known_tail`: features of `train`'s last rows already computed (`tfkd.distill.teacher_cache.load_or_build`)."""
        distiller = self.distiller
        self.cache_seconds = 0.0
        if directory == "off" or distiller.teacher is None:
            return None
        features, blockers = cacheable_features(distiller.loss_layers)
        if features is None:
            log(f"teacher cache: not used, {', '.join(blockers)} read token-level teacher states; the teacher runs "
                "every step")
            return None
        if not features:
            return None
        directory = os.path.join(self.workdir, "teacher_cache") if directory == "auto" else directory
        start = time.perf_counter()
        cache = load_or_build(directory, distiller.teacher, vocab_path, train, features, dtype,
                              self.data.eval_batch_size, pad_to_multiple_of=self.data.pad_to_multiple_of,
                              known_tail=known_tail)
        self.cache_seconds = time.perf_counter() - start
        how = "loaded" if not cache.built else f"computed (the last {cache.reused} rows reused, not recomputed)" \
            if cache.reused else "computed"
        log(f"teacher cache: {how} {', '.join(features)} for {len(train)} examples "
            f"({cache.nbytes / 2**20:.1f} MB {dtype}) in {directory}; the teacher does not run during training")
        return cache

    def prepare_losses(self, split: TokenizedSplit, extras=None, transform: Optional[BatchTransform] = None) -> None:
        """One pass over `split` for losses that need one before training (memory banks); only on a fresh run,
        a resumed one restores them from the checkpoint."""
        if self.start_step:
            return
        dataset = self.dataset(split, training=False, extras=extras)
        self.distiller.prepare_losses(transform(dataset) if transform else dataset,
                                      steps_per_epoch(split, self.data.eval_batch_size))

    def fit(
        self,
        train: TokenizedSplit,
        *,
        extras=None,
        transform: Optional[BatchTransform] = None,
        evaluator: Optional[Evaluator] = None,
        save_best: Optional[Callable[[int, Dict[str, float]], None]] = None,
        dev_history_path: Optional[str] = None,
    ) -> FitOutcome:
        """Trains from the restored step to the end of the run.

        Args:
            train: the training split.
            extras: per-example arrays gathered into each batch (cached teacher outputs).
            transform: applied to the batched dataset (pre-training's masking).
            evaluator: scores the student after every epoch (then `save_best` gets the improving epochs).
            save_best: called with `(epoch, metrics)` when the primary dev metric improves.
            dev_history_path: where the per-epoch dev metrics are kept across resumes.
        """
        dev = None
        if evaluator is not None:
            dev = DevEvaluation(evaluator, lambda: self.distiller.student, save_best or (lambda epoch, metrics: None),
                                dev_history_path)
            dev.restore(self.start_epoch)
        throughput = Throughput(self.data.batch_size)
        callbacks: List[keras.callbacks.Callback] = []
        if self.stages:
            callbacks.append(StageScheduler(self.distiller, self.stages, initial_step=self.start_step))
        callbacks += [throughput] + ([dev] if dev else []) + [
            keras.callbacks.TensorBoard(os.path.join(self.workdir, "logs"),
                                        update_freq=self.runtime.tensorboard_update_freq),
            self.checkpoint,
        ]
        history: Dict[str, List[float]] = {}
        start = time.perf_counter()
        if self.step_checkpoints:
            with PreemptionSignal() as preemption:
                self.checkpoint.preemption = preemption
                self._fit_from(train, callbacks, extras, transform, history)
                if preemption.requested and self.checkpoint.step < self.epochs * self.steps_per_epoch:
                    raise TrainingPreempted(
                        f"{preemption.signal_name}: saved checkpoint {self.checkpoint.manager.latest_checkpoint} at "
                        f"{self.checkpoint.where(self.checkpoint.step)}", preemption.signal_name)
        else:
            self._fit_from(train, callbacks, extras, transform, history)
        return FitOutcome(self.start_step, history, throughput, dev, time.perf_counter() - start)

    def _fit_from(self, train, callbacks, extras, transform, history: Dict[str, List[float]]) -> None:
        # Resumed mid-epoch, a first `fit` runs the rest of that epoch (its dataset
        # starts at the next batch of the epoch's plan), so Keras still ends it with
        # the epoch's callbacks (dev evaluation, checkpoint); a second `fit` runs the
        # remaining whole epochs.
        def fit(first_epoch: int, end_epoch: int, skip: int) -> None:
            ds = self.dataset(train, training=True, extras=extras, epochs=end_epoch, start_epoch=first_epoch,
                              start_step=skip)
            result = self.distiller.fit(
                transform(ds) if transform else ds, epochs=end_epoch, initial_epoch=first_epoch,
                steps_per_epoch=self.steps_per_epoch - skip, callbacks=callbacks, shuffle=False,
                verbose=2 if not sys.stdout.isatty() else 1)
            for key, values in result.history.items():
                history.setdefault(key, []).extend(values)

        epoch, batch = divmod(self.start_step, self.steps_per_epoch)
        if batch:
            log(f"finishing epoch {epoch + 1}: its batches {batch + 1}..{self.steps_per_epoch}")
            fit(epoch, epoch + 1, batch)
            epoch += 1
            if self.distiller.stop_training:  # preempted at the epoch's end
                return
        if epoch < self.epochs:
            fit(epoch, self.epochs, 0)
