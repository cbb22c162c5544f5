"""The loss contract every distillation term follows, and the loss registry.

A loss is a Keras layer so that its own trainable parameters (projection
heads) and state (memory banks) belong to the distiller: they are trained and
checkpointed with it and never exported with the student.

Every loss is called as `loss(teacher, student, batch, training=...)`:

- `teacher`, `student`: model output dicts (see `tfkd.models`):
  `"logits"` `[B, C]`, `"hidden_states"` (L+1 tensors `[B, n, d]`, index 0 is
  the embedding output) and, when the model was built with attentions,
  `"attentions"` (L tensors `[B, H, n, n]`, softmax output before dropout).
- `batch`: `"padding_mask"` `[B, n]` (1 = real token), `"labels"` `[B]`,
  `"index"` `[B]` (stable example index) and optionally `"pair_weights"` `[P]`
  (one weight per layer-map pair; progressive/stacked algorithms set them)
  and `"gold"` `[B]` (`GOLD`: 1 where the label is gold, 0 for a row that data
  augmentation added, whose label is only the teacher's prediction; a loss
  that reads `"labels"` averages over the gold rows with `gold_mean`).

It returns a float32 scalar: the mean over this replica's examples. All
arithmetic is float32 even under a mixed-precision policy.

Example: a user-defined loss, registered without editing tfkd:

```python
import tfkd

@tfkd.register_loss("hidden_mse")
class HiddenMSE(tfkd.DistillationLoss):
    teacher_needs = ("hidden_states",)

    def call(self, teacher, student, batch, training=False):
        s, t = self.context.layer_map[-1]
        diff = tfkd.losses.to_float32(student["hidden_states"][s]) - tfkd.losses.to_float32(
            teacher["hidden_states"][t])
        return tfkd.losses.masked_mean(tf.reduce_mean(diff**2, -1), batch["padding_mask"])
```

A loss's constructor arguments that a run may set are declared once on its
class as `HyperParameter`s (`hyperparameters`); `loss_arguments` checks
values against them and the train command makes each a flag
`--<flag_prefix>_<name>`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import numbers
import types
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.core.registry import Registry
from tfkd.losses._distribute import replica_share
from tfkd.models.layer_map import LayerMap


class LossRegistry(Registry):
    """The loss `Registry`, which also knows the order losses were registered in."""

    def in_registration_order(self) -> List[str]:
        """The registered names, in the order of registration (a method's terms
        keep the order of their module)."""
        return list(self._entries)


LOSSES: LossRegistry = LossRegistry("loss")
register_loss = LOSSES.register

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_TRUE, _FALSE = ("true", "t", "yes", "1"), ("false", "f", "no", "0")


@dataclasses.dataclass(frozen=True)
class HyperParameter:
    """One constructor argument of a loss that a run configuration may set.

    Args:
        name: the constructor argument.
        type: int, float, bool or str.
        default: the constructor's default; None for an optional value that is
            "not given" by default.
        help: one line: what it means (the help of its flag).
        lower, upper: inclusive bounds of an int or float.
        choices: the values a str accepts.

    Example:
    >>> margin = HyperParameter("margin", float, 0.3, "Hinge margin.", lower=0.0)
    >>> margin.coerce("0.5")  # text from a command line
    0.5
    >>> margin.coerce(-1)
    Traceback (most recent call last):
    ...
    ValueError: below the lower bound 0.0
    """

    name: str
    type: type
    default: Any
    help: str
    lower: Optional[float] = None
    upper: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None

    def __post_init__(self) -> None:
        what = f"hyper-parameter '{self.name}'"
        if self.type not in _TYPE_NAMES:
            raise TfkdError(f"{what} has type {self.type!r}. Fix: declare it int, float, bool or str.")
        if self.choices is not None:
            if self.type is not str:
                raise TfkdError(f"{what} lists choices but is {self.type.__name__}. Fix: choices apply to str.")
            object.__setattr__(self, "choices", tuple(self.choices))
        if (self.lower is not None or self.upper is not None) and self.type not in (int, float):
            raise TfkdError(f"{what} has bounds but is {self.type.__name__}. Fix: bounds apply to int and float.")
        try:
            self.coerce(self.default)
        except ValueError as e:
            raise TfkdError(f"{what}: default {self.default!r} is invalid ({e}). "
                            "Fix: declare a valid default.") from None

    def coerce(self, value: Any) -> Any:
        """`value` as this hyper-parameter's type (text is parsed: "3" → 3, "false" → False),
        or a `ValueError` saying what is wrong with it."""
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"it takes {self.expects()}")
        if isinstance(value, str) and self.type is not str:
            value = _from_text(value, self.type)
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"not {_TYPE_NAMES[bool]}")
            return bool(value)
        if self.type is int:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise ValueError(f"not {_TYPE_NAMES[int]}")
            value = int(value)
        elif self.type is float:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise ValueError(f"not {_TYPE_NAMES[float]}")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"not {_TYPE_NAMES[str]}")
        if self.lower is not None and value < self.lower:
            raise ValueError(f"below the lower bound {self.lower}")
        if self.upper is not None and value > self.upper:
            raise ValueError(f"above the upper bound {self.upper}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"not one of {', '.join(map(repr, self.choices))}")
        return value

    def expects(self) -> str:
        """What a valid value is, in words (for error messages)."""
        if self.choices is not None:
            return f"one of {', '.join(map(repr, self.choices))}"
        bounds = []
        if self.lower is not None:
            bounds.append(f">= {self.lower}")
        if self.upper is not None:
            bounds.append(f"<= {self.upper}")
        return " ".join([_TYPE_NAMES[self.type], " and ".join(bounds)]).strip()


def _from_text(text: str, kind: type) -> Any:
    if kind is bool:
        if text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise ValueError(f"not {_TYPE_NAMES[bool]}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"not {_TYPE_NAMES[kind]}") from None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The widths a loss needs to know about one model."""

    num_layers: int
    hidden_dim: int
    num_heads: int


@dataclasses.dataclass(frozen=True)
class DistillContext:
    """What every loss is constructed with.

    Args:
        teacher, student: the two models' `ModelSpec`.
        layer_map: `(student_layer, teacher_layer)` pairs (see `tfkd.models.layer_map`).
        num_classes: number of classes (1 for regression).
        is_regression: whether the task's label is a real number.
        num_train_examples: size of the training set (memory banks have one row each).
        train_labels: labels of the training set by example index, for
            label-aware negative sampling; None when unknown (pre-training).
            An augmented row's label is the teacher's predicted class.
        augmented_examples: how many of the training examples data
            augmentation added (rows without a gold label; 0: none).
    """

    teacher: ModelSpec
    student: ModelSpec
    layer_map: LayerMap
    num_classes: int = 2
    is_regression: bool = False
    num_train_examples: int = 0
    train_labels: Optional[np.ndarray] = dataclasses.field(default=None, compare=False)
    augmented_examples: int = 0

    def to_config(self) -> Dict[str, Any]:
        config = dataclasses.asdict(self)
        config["layer_map"] = [list(p) for p in self.layer_map]
        config["train_labels"] = None if self.train_labels is None else self.train_labels.tolist()
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistillContext":
        config = dict(config)
        config["teacher"] = ModelSpec(**config["teacher"])
        config["student"] = ModelSpec(**config["student"])
        config["layer_map"] = tuple(tuple(p) for p in config["layer_map"])
        if config.get("train_labels") is not None:
            config["train_labels"] = np.asarray(config["train_labels"])
        return cls(**config)


class DistillationLoss(keras.layers.Layer):
    """Base class of every loss term. Subclasses implement `call`.

    Class attributes a subclass sets:
        teacher_needs: teacher outputs the loss reads ("logits",
            "hidden_states", "attentions"); the distiller runs the teacher
            only for what some loss needs.
        student_needs: the same for the student.

    A loss whose teacher side is per-example (logits, pooled layer states)
    overrides `teacher_features`, so a teacher-output cache can stand in for
    the live teacher.

    A loss that can fail quietly (a contrastive task that saturates or finds a
    shortcut) lists `diagnostics` and calls `record` in its training-mode
    `call`: each becomes a running mean, logged by the distiller as
    `<term name>_<diagnostic>` with the loss terms (progress log, TensorBoard), updated
    inside the compiled step without a host sync.

    What a run may configure, declared on the class (the train command derives
    its flags from these, see `tfkd.cli.method_flags`):
        hyperparameters: the constructor arguments a configuration may set, as
            `HyperParameter`s with the constructor's defaults; a subclass adds
            to its parents' (see `hyperparameters`). The run's seed is passed
            to a constructor with a `seed` argument and is not declared.
        flag_prefix: the flags are `--<flag_prefix>_<name>` (default: the
            registry key; losses sharing a prefix share their flags).
        method: the built-in method this loss is a term of (pkd, internal,
            codir, ackd, ckd), on the class itself: a subclass does not
            inherit it. None: only reached through explicit losses.
        default_weight, weight_help: the term's weight in its method, and the
            help of its `--<key>_weight` flag.
        weight_presets: the term's weight in a named per-task preset (CKD's
            official weights, say), by preset name.

    Args:
        context: a `DistillContext`.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).
    """

    teacher_needs: Tuple[str, ...] = ()
    student_needs: Tuple[str, ...] = ("logits",)
    diagnostics: Tuple[str, ...] = ()
    hyperparameters: Tuple[HyperParameter, ...] = ()
    flag_prefix: Optional[str] = None
    method: Optional[str] = None
    default_weight: float = 1.0
    weight_help: str = ""
    weight_presets: Mapping[str, float] = types.MappingProxyType({})

    def __init__(self, context: DistillContext, **kwargs):
        # A float32 layer policy under a mixed global policy also keeps Keras from
        # autocasting float32 inputs (teacher outputs, regression labels) down
        # to float16 before `call` sees them.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.context = context
        self.diagnostic_metrics: List[keras.metrics.Mean] = [
            keras.metrics.Mean(name=f"{self.name}_{name}") for name in self.diagnostics
        ]

    def record(self, diagnostic: str, value: tf.Tensor, weight: Optional[tf.Tensor] = None) -> None:
        """Adds this step's `value` (a scalar) to the running mean of `diagnostic`, with `weight` (e.g. the
        number of examples it averages; default 1)."""
        self.diagnostic_metrics[self.diagnostics.index(diagnostic)].update_state(
            tf.stop_gradient(value), sample_weight=None if weight is None else tf.stop_gradient(weight))

    def prepare(self, teacher_batches: Iterable[Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]]) -> None:
        """Called once before training with `(teacher_outputs, batch)` for the whole
        training set (e.g. to fill a memory bank). Default: nothing to prepare."""

    @property
    def needs_preparation(self) -> bool:
        return type(self).prepare is not DistillationLoss.prepare

    def teacher_features(self) -> Optional[Tuple[str, ...]]:
        """The per-example teacher features this loss reads (`"logits"`, or
        `"mean_<layer>"`/`"cls_<layer>"` pooled states read with
        `teacher_vector`); None when it reads token-level teacher outputs,
        which no cache holds. Default: none when the loss needs no teacher,
        else None."""
        return None if self.teacher_needs else ()

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config["context"] = self.context.to_config()
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "DistillationLoss":
        config = dict(config)
        config["context"] = DistillContext.from_config(config["context"])
        return cls(**config)


def hyperparameters(key: str) -> Tuple[HyperParameter, ...]:
    """The hyper-parameters loss `key` declares, its parent classes' included
    (where both declare a name, the subclass's declaration wins).

    Example:
    >>> [h.name for h in hyperparameters("ckd_wr_angle")]
    ['alignment', 'window', 'window_mode']
    """
    by_name: Dict[str, HyperParameter] = {}
    for klass in reversed(LOSSES.get(key).__mro__):
        for declared in vars(klass).get("hyperparameters", ()):
            by_name[declared.name] = declared
    return tuple(by_name.values())


def flag_prefix(key: str) -> str:
    """The prefix of loss `key`'s hyper-parameter flags (its `flag_prefix`, else the key).

    Example:
    >>> flag_prefix("ckd_wr_pair"), flag_prefix("codir")
    ('ckd', 'codir')
    """
    return LOSSES.get(key).flag_prefix or key


def constructor_arguments(key: str) -> Dict[str, Any]:
    """Name → default (`inspect.Parameter.empty` when none) of the named
    constructor arguments of loss `key` and of the loss classes it extends (a
    subclass may pass its parent's through `**kwargs`); `context` excluded.

    Example:
    >>> constructor_arguments("kd")
    {'temperature': 2.0}
    """
    arguments: Dict[str, Any] = {}
    for klass in LOSSES.get(key).__mro__:
        if not issubclass(klass, DistillationLoss) or klass is DistillationLoss or "__init__" not in vars(klass):
            continue
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name not in ("self", "context") and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                arguments.setdefault(name, param.default)
    return arguments


def loss_arguments(key: str, args: Mapping[str, Any], name: Optional[str] = None) -> Dict[str, Any]:
    """`args` for loss `key`, checked against its declared hyper-parameters:
    names, types (text, as a command line gives it, is converted: "3" → 3),
    bounds and choices. A loss that declares none (a user's loss, say) takes
    its named constructor arguments unchecked, text read as a Python literal.

    Args:
        key: the loss's registry key.
        args: argument name → value.
        name: the term's name, for the error message (default: `key`).

    Returns:
        The arguments with converted values.

    Raises:
        TfkdError: one line naming the loss, the argument, the value and the fix.

    Example:
    >>> loss_arguments("codir", {"num_negatives": "4096", "pooling": "cls"})
    {'num_negatives': 4096, 'pooling': 'cls'}
    >>> loss_arguments("kd", {"temperature": "warm"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: loss 'kd' (kd) rejects temperature='warm': not a number. Fix: pass a number ...
    """
    declared = {h.name: h for h in hyperparameters(key)}
    known = list(declared) or list(constructor_arguments(key))
    unknown = [arg for arg in args if arg not in known]
    if unknown:
        valid = ", ".join(known) or "(none: it takes no arguments)"
        raise TfkdError(f"loss '{key}' has no argument '{unknown[0]}'. Fix: use one of {valid}.")
    if not declared:
        return {arg: _literal(value) if isinstance(value, str) else value for arg, value in args.items()}
    checked = {}
    for arg, value in args.items():
        try:
            checked[arg] = declared[arg].coerce(value)
        except ValueError as e:
            raise TfkdError(
                f"loss '{name or key}' ({key}) rejects {arg}={value!r}: {e}. "
                f"Fix: pass {declared[arg].expects()} (default {declared[arg].default!r})."
            ) from None
    return checked


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def to_float32(x: tf.Tensor) -> tf.Tensor:
    """Casts to float32 (losses keep their arithmetic there under mixed precision)."""
    return tf.cast(x, tf.float32)


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `values` over the entries where `mask` is 1, divided by the number
    of valid entries (never the padded size); 0 when nothing is valid."""
    mask = tf.cast(mask, tf.float32)
    values = to_float32(values)
    return tf.reduce_sum(values * mask) / tf.maximum(replica_share(tf.reduce_sum(mask)), 1.0)


# Batch key of the gold-label mask of a training set enlarged by data augmentation (`tfkd.data.augment`).
GOLD = "gold"


def gold_mean(values: tf.Tensor, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Mean of per-example `values` over the rows whose label is gold: all rows of a batch without a `GOLD`
    mask, else the rows it marks 1 (0 when there is none), so a term that reads labels never learns an
    augmented row's placeholder.

    Example:
    >>> values = tf.constant([1.0, 3.0, 98.0])
    >>> float(gold_mean(values, {})), float(gold_mean(values, {GOLD: tf.constant([1.0, 1.0, 0.0])}))
    (34.0, 2.0)
    """
    if GOLD not in batch:
        return tf.reduce_mean(to_float32(values))
    return masked_mean(values, batch[GOLD])


def pair_weights(batch: Mapping[str, tf.Tensor], num_pairs: int) -> tf.Tensor:
    """The per-pair weights an algorithm set for this step (ones by default)."""
    weights = batch.get("pair_weights")
    if weights is None:
        return tf.ones([num_pairs], tf.float32)
    return tf.cast(weights, tf.float32)


def weighted_pair_sum(per_pair: Sequence[tf.Tensor], batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Σ_k w_k ℓ_k over layer-map pairs, with `w` from `pair_weights`."""
    stacked = tf.stack([to_float32(v) for v in per_pair])
    return tf.reduce_sum(stacked * pair_weights(batch, len(per_pair)))


def require_outputs(outputs: Mapping[str, Any], keys: Sequence[str], who: str, loss_name: str) -> None:
    """Raises a clear error when a model output a loss needs is missing."""
    for key in keys:
        if key not in outputs:
            hint = (
                " Fix: build the model with output_attentions=True (the distiller does this "
                "when a loss lists 'attentions' in its needs)."
                if key == "attentions"
                else ""
            )
            raise TfkdError(f"loss '{loss_name}' needs the {who}'s '{key}' output, which is missing.{hint}")
