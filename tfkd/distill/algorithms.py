"""Training algorithms as stage schedules: joint, progressive (PID), stacked (SID), tinybert.

Aguilar et al. (AAAI 2020) distil internal representations either all at
once (*joint*), one layer pair at a time bottom-up (*progressive*), or with a
growing prefix of pairs (*stacked*); every algorithm ends with a soft-label
stage (KD + CE on the whole student). *tinybert* is TinyBERT's two-step task
distillation (Jiao et al., 2020): every pair's internal losses alone, then the
soft-label stage (its "prediction-layer distillation"), both on the training
set as it is, so on the enlarged set of `--augment`. A stage is a set of loss weights,
layer-pair weights and per-layer gradient multipliers; the `StageScheduler`
callback assigns them to the distiller's variables at stage boundaries, so
the compiled train step is never retraced.

"Output" losses are those reading only the teacher's logits (or nothing):
`ce`, `kd`. Every other loss is "internal" and is what the stages schedule.

Example: losses ce, kd (output) and pkd (internal) on 3 layer pairs, 40 steps, the last 10 soft-label.

>>> plan = StagePlan(base_weights=(0.5, 0.5, 1.0), output_mask=(True, True, False),
...                  student_layers_of_pairs=(1, 2, 3), num_student_layers=3, total_steps=40,
...                  steps_per_stage=10, final_steps=10, freeze_distilled=False)
>>> stages = build_stages("stacked", plan)
>>> [(s.name, s.steps, list(s.loss_weights), list(s.pair_weights)) for s in stages]  # doctest: +NORMALIZE_WHITESPACE
[('stacked 1/3', 10, [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]),
 ('stacked 2/3', 10, [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]),
 ('stacked 3/3', 10, [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]),
 ('soft-label', 10, [0.5, 0.5, 0.0], [1.0, 1.0, 1.0])]

With a `Distiller` holding those three losses (built as in its docstring), one `fit` runs every stage; that
training is left to tests/distill/test_algorithms.py:

>>> distiller.fit(ds, epochs=4, steps_per_epoch=10, callbacks=[StageScheduler(distiller, stages)])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence

import keras

from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.core.registry import Registry

if TYPE_CHECKING:
    from tfkd.distill.distiller import Distiller

ALGORITHMS: Registry = Registry("algorithm")
register_algorithm = ALGORITHMS.register


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: how long it runs and the distiller variables it sets."""

    name: str
    steps: int
    loss_weights: Sequence[float]
    pair_weights: Sequence[float]
    grad_scale: Sequence[float]


def is_output_loss(layer) -> bool:
    return set(layer.teacher_needs) <= {"logits"}


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What an algorithm needs to know to lay out its stages."""

    base_weights: Sequence[float]
    output_mask: Sequence[bool]
    student_layers_of_pairs: Sequence[int]
    num_student_layers: int
    total_steps: int
    steps_per_stage: int
    final_steps: int
    freeze_distilled: bool

    def weights(self, internal: bool, output: bool) -> List[float]:
        """Each loss's configured weight where its kind (internal / output) is on, else 0."""
        return [
            w if (output if is_out else internal) else 0.0
            for w, is_out in zip(self.base_weights, self.output_mask)
        ]

    def final_stage(self) -> List[Stage]:
        """The closing soft-label stage (output losses only), or none when `final_steps` is 0."""
        if self.final_steps <= 0:
            return []
        n = len(self.student_layers_of_pairs)
        return [Stage("soft-label", self.final_steps, self.weights(False, True), [1.0] * n, self.grad_scale(()))]

    def grad_scale(self, frozen_layers: Sequence[int]) -> List[float]:
        """Per student layer group (embeddings, layers, head) 1.0, or 0.0 for the frozen layers."""
        scale = [1.0] * (self.num_student_layers + 2)
        for layer in frozen_layers:
            scale[layer] = 0.0
        return scale


@register_algorithm("joint")
def joint(plan: StagePlan) -> List[Stage]:
    """All pairs' internal losses with KD + CE, then the soft-label stage."""
    n = len(plan.student_layers_of_pairs)
    main = plan.total_steps - max(plan.final_steps, 0)
    if main <= 0:
        raise TfkdError("--final_stage_epochs leaves no steps for the joint stage. Fix: train for more epochs.")
    return [Stage("joint", main, plan.weights(True, True), [1.0] * n, plan.grad_scale(()))] + plan.final_stage()


def _check_final_stage(plan: StagePlan, label: str) -> None:
    if plan.final_steps <= 0:
        raise TfkdError(
            f"the {label} algorithm's layer stages train only internal losses, so without a final soft-label stage "
            "the classifier is never trained. Fix: give it final steps (--final_stage_epochs=1, the default for "
            f"{label})."
        )


@register_algorithm("tinybert")
def tinybert(plan: StagePlan) -> List[Stage]:
    """TinyBERT's two steps: all pairs' internal losses alone (no KD, no CE), then the soft-label stage.

    The internal stage has the run's steps but the final stage's (`--epochs` counts both).

    Example:
    >>> plan = StagePlan(base_weights=(0.5, 0.5, 1.0), output_mask=(True, True, False),
    ...                  student_layers_of_pairs=(1, 2), num_student_layers=2, total_steps=40,
    ...                  steps_per_stage=10, final_steps=10, freeze_distilled=False)
    >>> [(s.name, s.steps, list(s.loss_weights), list(s.pair_weights)) for s in tinybert(plan)]
    [('intermediate', 30, [0.0, 0.0, 1.0], [1.0, 1.0]), ('soft-label', 10, [0.5, 0.5, 0.0], [1.0, 1.0])]
    """
    _check_final_stage(plan, "tinybert")
    main = plan.total_steps - plan.final_steps
    if main <= 0:
        raise TfkdError("--final_stage_epochs leaves no steps for tinybert's intermediate stage. Fix: train for more "
                        "epochs (--epochs counts both stages).")
    n = len(plan.student_layers_of_pairs)
    return [Stage("intermediate", main, plan.weights(True, False), [1.0] * n, plan.grad_scale(()))] + plan.final_stage()


def _per_pair(plan: StagePlan, pair_weights: Callable[[int, int], List[float]], label: str) -> List[Stage]:
    _check_final_stage(plan, label)
    n = len(plan.student_layers_of_pairs)
    stages = []
    for k in range(n):
        frozen: List[int] = []
        if plan.freeze_distilled and k > 0:
            # Embeddings sit below the first pair's layer: distilled with it.
            frozen = [0] + list(plan.student_layers_of_pairs[:k])
        stages.append(
            Stage(f"{label} {k + 1}/{n}", plan.steps_per_stage, plan.weights(True, False), pair_weights(k, n), plan.grad_scale(frozen))
        )
    return stages + plan.final_stage()


@register_algorithm("progressive")
def progressive(plan: StagePlan) -> List[Stage]:
    """PID: stage k optimises only pair k's internal losses, bottom-up."""
    return _per_pair(plan, lambda k, n: [1.0 if j == k else 0.0 for j in range(n)], "progressive")


@register_algorithm("stacked")
def stacked(plan: StagePlan) -> List[Stage]:
    """SID: stage k optimises the sum over pairs 1..k."""
    return _per_pair(plan, lambda k, n: [1.0 if j <= k else 0.0 for j in range(n)], "stacked")


def build_stages(name: str, plan: StagePlan) -> List[Stage]:
    """The stages of algorithm `name` (`joint`, `progressive`, `stacked`, or a registered one) for `plan`.

    Example:
    >>> plan = StagePlan(base_weights=(0.5, 0.5, 1.0), output_mask=(True, True, False),
    ...                  student_layers_of_pairs=(2, 4), num_student_layers=4, total_steps=30,
    ...                  steps_per_stage=10, final_steps=10, freeze_distilled=True)
    >>> for stage in build_stages("progressive", plan):  # gradient scale of embeddings, layers 1-4, head
    ...     print(stage.name, list(stage.pair_weights), list(stage.grad_scale))
    progressive 1/2 [1.0, 0.0] [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    progressive 2/2 [0.0, 1.0] [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    soft-label [1.0, 1.0] [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> [s.name for s in build_stages("joint", plan)]
    ['joint', 'soft-label']
    """
    stages = ALGORITHMS.get(name)(plan)
    if not any(not is_out for is_out in plan.output_mask) and name != "joint":
        raise TfkdError(f"--algorithm={name} schedules internal losses, but only output losses are configured. Fix: add an internal loss or use --algorithm=joint.")
    return stages


class StageScheduler(keras.callbacks.Callback):
    """Assigns each stage's weights to the distiller when its first step begins.

    Args:
        distiller: the `Distiller`.
        stages: the stage list from `build_stages`.
        initial_step: the global step training resumes from.
    """

    def __init__(self, distiller: "Distiller", stages: Sequence[Stage], initial_step: int = 0):
        super().__init__()
        self.distiller = distiller
        self.stages = list(stages)
        self.step = initial_step
        self.current: Optional[int] = None
        self.boundaries = []
        start = 0
        for stage in self.stages:
            self.boundaries.append(start)
            start += stage.steps

    def stage_at(self, step: int) -> int:
        """The index of the stage that global step `step` belongs to."""
        index = 0
        for i, start in enumerate(self.boundaries):
            if step >= start:
                index = i
        return index

    def on_train_batch_begin(self, batch, logs=None):
        index = self.stage_at(self.step)
        if index != self.current:
            stage = self.stages[index]
            self.distiller.set_stage(stage.loss_weights, stage.pair_weights, stage.grad_scale)
            if self.current is not None or len(self.stages) > 1:
                log(f"stage '{stage.name}' from step {self.step} ({stage.steps} steps)")
            self.current = index
        self.step += 1
