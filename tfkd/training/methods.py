"""Methods as weighted sets of registered losses.

A method names the losses it combines; every method keeps the output terms
`(1 - β)·CE + β·KD` (METHODS.md) and adds the intermediate losses whose class
names it as its `method` (see `DistillationLoss`). A term's weight is
`MethodConfig.weights[key]`, else its weight in the configured preset, else
the loss's `default_weight`; its constructor arguments are
`MethodConfig.loss_args[key]`, checked against the loss's declared
hyper-parameters (`tfkd.losses.loss_arguments`). Explicit `losses` replace
the method's set, so a user's registered loss needs no code here.

Example:
>>> from tfkd.training.config import MethodConfig
>>> for spec in method_losses(MethodConfig(name="codir", weights={"codir": 0.5},
...                                        loss_args={"codir": {"temperature": "0.1"}})):
...     print(spec)
LossSpec(name='ce', key='ce', weight=0.5, args={})
LossSpec(name='kd', key='kd', weight=0.5, args={})
LossSpec(name='codir', key='codir', weight=0.5, args={'temperature': 0.1, 'seed': 1})
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from tfkd.core.errors import TfkdError
from tfkd.distill.algorithms import StagePlan, is_output_loss
from tfkd.losses import LOSSES, constructor_arguments, loss_arguments
from tfkd.training.config import MethodConfig

# The method made of the output terms alone.
OUTPUT_ONLY = "kd"
# `weight_preset` value: the preset named after the run's task.
TASK_PRESET = "task"


class LossSpec(NamedTuple):
    """One weighted term of a run: `(name, key, weight, args)`.

    Args:
        name: the term's name (its metrics are `loss_<name>`).
        key: the loss's registry key.
        weight: its weight in the total loss.
        args: its constructor arguments (checked, the run's seed included where it takes one).
    """

    name: str
    key: str
    weight: float
    args: Dict[str, Any]


def method_of(key: str) -> Optional[str]:
    """The method loss `key` is a term of: its class's own `method` (a subclass
    of a method's loss does not join that method unless it says so).

    Example:
    >>> method_of("ckd_wr_angle"), method_of("kd")
    ('ckd', None)
    """
    return vars(LOSSES.get(key)).get("method")


class _Methods(Mapping):
    """Method → its intermediate loss keys, in registration order, read from
    the registry on each access: a loss registered later joins its method."""

    def _table(self) -> Dict[str, Tuple[str, ...]]:
        table: Dict[str, List[str]] = {OUTPUT_ONLY: []}
        for key in LOSSES.in_registration_order():
            method = method_of(key)
            if method:
                table.setdefault(method, []).append(key)
        return {method: tuple(keys) for method, keys in table.items()}

    def __getitem__(self, method: str) -> Tuple[str, ...]:
        return self._table()[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


METHODS: Mapping[str, Tuple[str, ...]] = _Methods()


def preset_names(method: str) -> List[str]:
    """The weight presets some loss of `method` has, sorted.

    Example:
    >>> preset_names("ckd"), preset_names("codir")
    (['cola', 'mrpc', 'rte', 'sst2'], [])
    """
    return sorted({name for key in METHODS[method] for name in LOSSES.get(key).weight_presets})


def _preset_weights(config: MethodConfig, task: str) -> Dict[str, float]:
    if config.weight_preset == "none":
        return {}
    preset = task if config.weight_preset == TASK_PRESET else config.weight_preset
    known = sorted({name for method in METHODS for name in preset_names(method)})
    if preset not in known:
        raise TfkdError(
            f"weight preset '{preset}' (weight_preset='{config.weight_preset}') is no loss's preset. "
            f"Fix: use none, {TASK_PRESET} or one of {', '.join(known)}."
        )
    # A preset of another method's losses leaves this method's defaults, as a flagfile's unrelated flags do.
    keys = METHODS[config.name]
    return {key: LOSSES.get(key).weight_presets[preset] for key in keys if preset in LOSSES.get(key).weight_presets}


def _method_terms(config: MethodConfig, task: str) -> List[Tuple[str, float]]:
    if config.name not in METHODS:
        raise TfkdError(f"unknown method '{config.name}'. Fix: use one of {', '.join(sorted(METHODS))} or custom.")
    for key in config.weights:
        if method_of(key) is None:
            raise TfkdError(
                f"weights names '{key}', which is no method's term. Fix: set kd_beta for CE/KD, or give the "
                "terms explicitly in losses."
            )
    presets = _preset_weights(config, task)
    beta = config.kd_beta
    terms = [("ce", 1.0 - beta), ("kd", beta)]
    for key in METHODS[config.name]:
        weight = config.weights.get(key, presets.get(key, LOSSES.get(key).default_weight))
        terms.append((key, float(weight)))
    return terms


def method_losses(config: MethodConfig, task: str = "", seed: int = 1) -> List[LossSpec]:
    """The weighted terms of `config`.

    Args:
        config: the method, its weights, preset and loss arguments. Explicit
            `losses` replace the method's set; weights of other methods' losses
            are ignored (a flagfile may set them), as is a preset that none of
            this method's losses has.
        task: the run's task, for `weight_preset="task"` (the preset named after it).
        seed: the run's seed, passed to the losses that take one.

    Returns:
        One `LossSpec` per term, CE and KD first.

    Example:
    >>> from tfkd.training.config import MethodConfig
    >>> specs = method_losses(MethodConfig(name="ckd", weight_preset="task"), task="rte")
    >>> [spec.weight for spec in specs]
    [0.5, 0.5, 1.0, 10.0, 1.0, 10.0]
    >>> method_losses(MethodConfig(name="custom"))
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: method 'custom' needs its losses. Fix: give losses (MethodConfig.losses), e.g. ce:0.5,kd:0.5,my:1
    """
    if config.losses:
        terms = [(str(key), float(weight)) for key, weight in config.losses]
    elif config.name == "custom":
        raise TfkdError("method 'custom' needs its losses. Fix: give losses (--losses), e.g. ce:0.5,kd:0.5,my:1")
    else:
        terms = _method_terms(config, task)
    # Every entry is checked, also those of losses this run leaves out: a typo should not pass silently.
    checked = {key: loss_arguments(key, args) for key, args in config.loss_args.items()}
    specs = []
    for key, weight in terms:
        args = checked[key] if key in checked else loss_arguments(key, {})
        if "seed" in constructor_arguments(key):
            args = {**args, "seed": seed}
        specs.append(LossSpec(key, key, weight, args))
    return specs


def final_stage_epochs(config: MethodConfig) -> int:
    """`final_stage_epochs`, or its default for the algorithm when None (1 for
    progressive/stacked, whose layer stages never train the classifier; 0 for joint).

    Example:
    >>> from tfkd.training.config import MethodConfig
    >>> final_stage_epochs(MethodConfig(algorithm="stacked")), final_stage_epochs(MethodConfig())
    (1, 0)
    """
    if config.final_stage_epochs is not None:
        return config.final_stage_epochs
    return 0 if config.algorithm == "joint" else 1


def stage_plan(config: MethodConfig, distiller, layer_map, steps_per_epoch: int, epochs: int) -> StagePlan:
    """The stage layout inputs for `build_stages`, from the algorithm settings of `config`."""
    stage_steps = config.stage_steps or config.stage_epochs * steps_per_epoch
    return StagePlan(
        base_weights=[float(w) for w in distiller.loss_weights_var.numpy()],
        output_mask=[is_output_loss(layer) for layer in distiller.loss_layers],
        student_layers_of_pairs=[s for s, _ in layer_map] or [1],
        num_student_layers=distiller.student.num_layers,
        total_steps=epochs * steps_per_epoch,
        steps_per_stage=stage_steps,
        final_steps=final_stage_epochs(config) * steps_per_epoch,
        freeze_distilled=config.freeze_distilled,
    )
