"""The method flags of the training commands, generated from the losses' declarations.

Every hyper-parameter a registered loss declares (see
`tfkd.losses.HyperParameter`) is a flag `--<flag_prefix>_<name>` with the
declared type, default, bounds, choices and help; every loss that is a term
of a method has a weight flag `--<key>_weight`, and every method whose losses
have weight presets a `--<method>_preset`. A loss registered before the flags
are defined (a user's, registered by a launcher) gets its flags the same way.
`method_config` maps the parsed flags onto a `MethodConfig`.

User-registered losses are combined with `--losses=name:weight,...` and
configured with `--loss_args=name.arg=value,...`, checked while the flags are
parsed.

Example:
>>> from absl import flags
>>> values = flags.FlagValues()
>>> define_flags(values)
>>> _ = values(["train", "--method=codir", "--codir_weight=0.5", "--codir_temperature=0.1"])
>>> config = method_config(values)
>>> config.name, config.weights, config.loss_args
('codir', {'codir': 0.5}, {'codir': {'temperature': 0.1}})
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from absl import flags

from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES, HyperParameter, flag_prefix, hyperparameters, loss_arguments
from tfkd.training.config import MethodConfig
from tfkd.training.methods import METHODS, method_of, preset_names


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the method flags of `tfkd.train`: the method, its schedule, and
    the flags of every registered loss (called once, at import of the command).

    Raises:
        TfkdError: two losses sharing a flag prefix declare one hyper-parameter
            differently, or a generated flag takes the name of a defined one.
    """
    _define_fixed_flags(flag_values)
    keys = LOSSES.in_registration_order()
    hyper = _hyperparameter_flags(keys)
    weights = {f"{key}_weight": key for key in keys if method_of(key)}
    presets = {f"{method}_preset": method for method in METHODS if preset_names(method)}
    _check_unique(flag_values, [("hyper-parameter flag", hyper), ("weight flag", weights), ("preset flag", presets)])
    for name, (declared, _) in hyper.items():
        _define_hyperparameter(name, declared, flag_values)
    for name, key in weights.items():
        loss = LOSSES.get(key)
        flags.DEFINE_float(name, loss.default_weight, loss.weight_help or f"Weight of the {key} loss.",
                           flag_values=flag_values)
    for name, method in presets.items():
        terms = METHODS[method]
        explicit = (f"--{method}_*_weight" if all(key.startswith(f"{method}_") for key in terms)
                    else ", ".join(f"--{key}_weight" for key in terms))
        flags.DEFINE_enum(name, "none", ["none"] + preset_names(method),
                          f"Official per-task {method.upper()} weights; explicit {explicit} flags win.",
                          flag_values=flag_values)


def define_loss_flags(
    keys: Sequence[str],
    defaults: Optional[Mapping[str, Any]] = None,
    choices: Optional[Mapping[str, Sequence[str]]] = None,
    flag_values: flags.FlagValues = flags.FLAGS,
) -> None:
    """Defines only the hyper-parameter flags of the losses `keys` (no weight
    flags), for a command that builds its own objective (`tfkd.pretrain`).

    Args:
        keys: registry keys of the losses.
        defaults: flag name → the default this command uses instead of the declared one.
        choices: flag name → the subset of the declared choices this command accepts.
        flag_values: where to define them.

    Example:
    >>> from absl import flags
    >>> values = flags.FlagValues()
    >>> define_loss_flags(["codir"], defaults={"codir_negatives": "uniform"},
    ...                   choices={"codir_negatives": ["uniform", "in_batch"]}, flag_values=values)
    >>> _ = values(["pretrain"])
    >>> values["codir_negatives"].parser.enum_values, loss_args_from_flags(values, ["codir"])
    (['uniform', 'in_batch'], {'codir': {'negatives': 'uniform'}})
    """
    hyper = _hyperparameter_flags(keys)
    _check_unique(flag_values, [("hyper-parameter flag", hyper)])
    defaults, choices = dict(defaults or {}), dict(choices or {})
    unknown = sorted((set(defaults) | set(choices)) - set(hyper))
    if unknown:
        raise TfkdError(f"define_loss_flags: no flag {', '.join(unknown)} among the flags of {', '.join(keys)}. "
                        f"Fix: use one of {', '.join(hyper)}.")
    for name, (declared, _) in hyper.items():
        outside = [c for c in choices.get(name, ()) if c not in (declared.choices or ())]
        if outside:
            raise TfkdError(f"define_loss_flags: --{name} choices {outside} are not among the declared "
                            f"{list(declared.choices or ())}. Fix: restrict it to a subset of those.")
        declared = dataclasses.replace(declared, default=defaults.get(name, declared.default),
                                       choices=tuple(choices[name]) if name in choices else declared.choices)
        _define_hyperparameter(name, declared, flag_values)


def method_config(values: flags.FlagValues = flags.FLAGS) -> MethodConfig:
    """The `MethodConfig` of parsed flags defined by `define_flags`.

    A hyper-parameter flag sets `loss_args[key][name]` of every loss whose
    prefix and declarations make it that flag, when its value differs from the
    declared default; `--loss_args` entries win over it. A weight flag enters
    `weights` only when set (command line, flagfile or assignment), so an
    unset one leaves the preset's weight or the default.

    Raises:
        TfkdError: a `--losses` entry is not name:weight, or `--layer_map` is not a list of integers.
    """
    defined = _defined_by_this_module(values)
    keys = LOSSES.in_registration_order()
    loss_args = {key: args for key, args in _flag_loss_args(values, keys, defined).items() if args}
    for key, args in _parse_loss_args(values.loss_args).items():
        loss_args.setdefault(key, {}).update(args)
    weights = {key: values[f"{key}_weight"].value for key in keys
               if f"{key}_weight" in defined and not values[f"{key}_weight"].using_default_value}
    preset = f"{values.method}_preset"
    return MethodConfig(
        name=values.method,
        losses=tuple(_loss_term(item) for item in values.losses),
        weights=weights,
        loss_args=loss_args,
        kd_beta=values.kd_beta,
        weight_preset=values[preset].value if preset in defined else "none",
        layer_map=layer_map(values.layer_map),
        algorithm=values.algorithm,
        stage_epochs=values.stage_epochs,
        stage_steps=values.stage_steps,
        final_stage_epochs=values.final_stage_epochs,
        freeze_distilled=values.freeze_distilled,
    )


def loss_args_from_flags(values: flags.FlagValues, keys: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Constructor arguments of the losses `keys` from flags defined by
    `define_loss_flags`: each loss's entry (possibly empty) holds the values
    that differ from its declared defaults."""
    return _flag_loss_args(values, keys, _defined_by_this_module(values))


def flag_values(values: flags.FlagValues = flags.FLAGS) -> Dict[str, Any]:
    """Every flag this module defined in `values`, by name (what results.json records)."""
    return {flag.name: flag.value for flag in values.get_flags_for_module(__name__)}


def _define_fixed_flags(flag_values: flags.FlagValues) -> None:
    """The flags that belong to no loss."""
    flags.DEFINE_enum("method", "kd", sorted(METHODS) + ["custom"], "Distillation method (custom: use --losses).",
                      flag_values=flag_values)
    flags.DEFINE_list("losses", [], "Explicit losses as name:weight (registry keys), replacing the method's set, e.g. "
                      "ce:0.5,kd:0.5,my_loss:1.", flag_values=flag_values)
    flags.DEFINE_list("loss_args", [], "Extra loss arguments as name.arg=value, e.g. my_loss.margin=0.3 or "
                      "codir.num_negatives=4096.", flag_values=flag_values)
    flags.register_validator("loss_args", _check_loss_args, flag_values=flag_values)
    flags.DEFINE_float("kd_beta", 0.5, "β in (1-β)·CE + β·KD.", flag_values=flag_values)
    flags.DEFINE_string("layer_map", "", "Teacher layer (1-based, 0 = embeddings) for each student layer, e.g. 2,4,6. "
                        "Empty: uniform k·L_T/L_S.", flag_values=flag_values)
    flags.DEFINE_enum("algorithm", "joint", ["joint", "progressive", "stacked", "tinybert"], "How internal losses "
                      "are scheduled (Aguilar et al.; tinybert: all pairs' internal losses alone, then KD + CE, as "
                      "TinyBERT's task distillation); each ends with --final_stage_epochs of KD + CE.",
                      flag_values=flag_values)
    flags.DEFINE_integer("stage_epochs", 1, "progressive/stacked: epochs per layer-pair stage.",
                         flag_values=flag_values)
    flags.DEFINE_integer("stage_steps", 0, "progressive/stacked: steps per layer-pair stage (overrides --stage_epochs "
                         "when > 0).", flag_values=flag_values)
    flags.DEFINE_integer("final_stage_epochs", None, "Epochs of the final soft-label stage (KD + CE only). Default: 1 "
                         "for progressive/stacked (their layer stages never train the classifier), 0 for joint.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_bool("freeze_distilled", False, "progressive/stacked: freeze already-distilled student layers "
                      "(gradient masking).", flag_values=flag_values)


def _hyperparameter_flags(keys: Sequence[str]) -> Dict[str, Tuple[HyperParameter, List[str]]]:
    """Flag name → (declaration, the losses that declare it), one flag for
    losses sharing a prefix and a declaration."""
    table: Dict[str, Tuple[HyperParameter, List[str]]] = {}
    for key in keys:
        prefix = flag_prefix(key)
        for declared in hyperparameters(key):
            name = f"{prefix}_{declared.name}"
            if name in table and table[name][0] != declared:
                raise TfkdError(
                    f"losses '{table[name][1][0]}' and '{key}' declare --{name} differently ({table[name][0]} vs "
                    f"{declared}). Fix: declare it the same in both, or give one of them another flag_prefix."
                )
            table.setdefault(name, (declared, []))[1].append(key)
    return table


def _check_unique(flag_values: flags.FlagValues, groups: Sequence[Tuple[str, Mapping[str, Any]]]) -> None:
    seen = {name: "defined flag" for name in flag_values}
    for kind, names in groups:
        for name in names:
            if name in seen:
                raise TfkdError(f"--{name} would be both a {seen[name]} and a {kind}. Fix: rename the loss's "
                                "hyper-parameter or give the loss another flag_prefix.")
            seen[name] = kind


def _define_hyperparameter(name: str, declared: HyperParameter, flag_values: flags.FlagValues) -> None:
    bounds = {"lower_bound": declared.lower, "upper_bound": declared.upper}
    if declared.type is bool:
        flags.DEFINE_bool(name, declared.default, declared.help, flag_values=flag_values)
    elif declared.type is int:
        flags.DEFINE_integer(name, declared.default, declared.help, flag_values=flag_values, **bounds)
    elif declared.type is float:
        flags.DEFINE_float(name, declared.default, declared.help, flag_values=flag_values, **bounds)
    elif declared.choices is not None:
        flags.DEFINE_enum(name, declared.default, list(declared.choices), declared.help, flag_values=flag_values)
    else:
        flags.DEFINE_string(name, declared.default, declared.help, flag_values=flag_values)


def _defined_by_this_module(values: flags.FlagValues) -> Set[str]:
    return {flag.name for flag in values.get_flags_for_module(__name__)}


def _flag_loss_args(values: flags.FlagValues, keys: Sequence[str], defined: Set[str]) -> Dict[str, Dict[str, Any]]:
    # Only values that differ from the declared defaults: the same run gives the
    # same configuration whether a flag repeats its default or is left out.
    loss_args: Dict[str, Dict[str, Any]] = {}
    for key in keys:
        args = loss_args.setdefault(key, {})
        for declared in hyperparameters(key):
            name = f"{flag_prefix(key)}_{declared.name}"
            if name in defined and values[name].value != declared.default:
                args[declared.name] = values[name].value
    return loss_args


def _parse_loss_args(entries: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """`--loss_args` entries `name.arg=value` → loss key → checked arguments."""
    raw: Dict[str, Dict[str, str]] = {}
    for item in entries:
        key, _, assignment = item.partition(".")
        arg, sep, value = assignment.partition("=")
        if not key or not arg or not sep:
            raise TfkdError(f"--loss_args entry '{item}' is not name.arg=value. "
                            "Fix: e.g. --loss_args=codir.num_negatives=4096")
        raw.setdefault(key, {})[arg] = value
    return {key: loss_arguments(key, args) for key, args in raw.items()}


def _check_loss_args(entries: Sequence[str]) -> bool:
    try:
        _parse_loss_args(entries)
    except TfkdError as e:
        raise flags.ValidationError(str(e)) from None
    return True


def _loss_term(item: str) -> Tuple[str, float]:
    key, sep, weight = item.partition(":")
    try:
        return key, float(weight) if sep else 1.0
    except ValueError:
        raise TfkdError(f"--losses entry '{item}' is not name:weight. Fix: e.g. --losses=ce:0.5,kd:0.5") from None


def layer_map(text: str) -> Tuple[int, ...]:
    """A `--layer_map` value (`2,4,6`; empty or `uniform`: the default) as `MethodConfig.layer_map`."""
    spec = text.replace(" ", "")
    if spec in ("", "uniform"):
        return ()
    try:
        return tuple(int(x) for x in spec.split(",") if x)
    except ValueError:
        raise TfkdError(f"--layer_map '{text}' is not a comma-separated list of integers. "
                        "Fix: e.g. --layer_map=2,4,6") from None
