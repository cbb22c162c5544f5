"""What a run produced, as one typed result with a versioned JSON schema: `<workdir>/results.json`.

The trainer builds a `RunResult` and writes it (`RunResult.write`: strict JSON,
atomic); `tfkd.report`, `tfkd.export` and its blessing gate read it back with
`read_result`, which refuses a missing or damaged file in one line naming the
file, the problem and the fix. `tfkd.evaluate --output` writes an `EvalResult`.

Schema versions (`schema_version` in the file):

- 0: results.json as tfkd wrote it before versioning (every `docs/runs/*/results.json`):
  no `schema_version`, `kind`, `role` or `method`, the run's settings only as `flags`.
  Read and migrated in memory: a pre-training run is the one with `"stage": "codir_pretrain"`,
  a fine-tuning run one with `--mode=finetune` (or the teacher a distillation run
  fine-tuned first: cross-entropy alone, no teacher); role and method follow the flags.
- 1: adds `schema_version`, `kind`, `role`, `method` and `config`; a pre-training
  run's own figures are its `pretrain` section. A field whose default is None is
  left out of the file while it is None (a fine-tuning run has no `teacher`).

Example:
>>> import os, tempfile
>>> result = RunResult(
...     kind="finetune", role="student", task="mrpc", primary_metric="f1", best_epoch=1,
...     best_dev={"f1": 0.82, "accuracy": 0.70}, last_dev={"f1": 0.81, "accuracy": 0.72},
...     dev_history=[{"epoch": 1, "f1": 0.82, "accuracy": 0.70}, {"epoch": 2, "f1": 0.81, "accuracy": 0.72}],
...     student=StudentSummary(layers=3, hidden_dim=384, params=17_390_594),
...     losses=[LossTerm(name="ce", key="ce", weight=1.0)], train_examples=3668,
...     train_examples_per_second=37.1, epoch_seconds=[99.2, 98.9], wall_seconds=199.0, padding_efficiency=0.86)
>>> workdir = tempfile.mkdtemp()
>>> result.write(os.path.join(workdir, RESULTS_FILE))
>>> read_result(workdir) == result, read_result(workdir).primary
(True, 0.82)
>>> with open(os.path.join(workdir, RESULTS_FILE), "w") as f:
...     _ = f.write('{"schema_version": 1, "kind": "finetune"')
>>> read_result(workdir)  # doctest: +ELLIPSIS
Traceback (most recent call last):
tfkd.core.errors.TfkdError: '.../results.json' is not valid JSON (...). Fix: re-run the command that wrote it ...
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import jsonable, read_json, write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
KINDS = ("finetune", "distill", "pretrain")
ROLES = ("teacher", "student")
# How a version-0 (unversioned) file of `tfkd.pretrain` says what it is.
LEGACY_PRETRAIN_STAGE = "codir_pretrain"

# Dev metrics by name; a metric that is undefined (a diverged model) is None (null in the file).
Metrics = Dict[str, Optional[float]]

FIX = ("re-run the command that wrote it (the same tfkd.train or tfkd.pretrain flags: it resumes from the "
       "workdir's checkpoints and writes results.json again)")


class InvalidResult(TfkdError):
    """A run result that does not fit the schema: built so in code, or read so (then `read_result`
    re-raises it as a `TfkdError` that names the file).

    Args:
        problem: what is wrong, phrased after the thing's name ("lacks student.params").
        fix: the fix for a result built or passed in code.
        file_fix: the fix for a result read from a file.
    """

    def __init__(self, problem: str, fix: str = "pass the values as RunResult.to_dict writes them",
                 file_fix: str = FIX):
        super().__init__(f"the run result {problem}. Fix: {fix}.")
        self.problem, self.file_fix = problem, file_fix


@dataclasses.dataclass(kw_only=True)
class StudentSummary:
    """The trained model's size (a fine-tuned teacher's too).

    Args:
        vocab: a trimmed vocabulary (`--student_vocab=task`): its `size`, the teacher's `teacher_size`, and
            the share of dev tokens that are `[UNK]` under the student's (`dev_unk_share`) and the teacher's
            vocabulary (`teacher_dev_unk_share`); None when the student keeps the teacher's.
    """

    layers: int
    hidden_dim: int
    params: int
    vocab: Optional[Dict[str, Any]] = None


@dataclasses.dataclass(kw_only=True)
class TeacherSummary:
    """The teacher a student was distilled from.

    Args:
        source: where it came from (the `TeacherConfig.source`, e.g. 'minilm' or a model directory).
        layers, params: its size.
        dev: its dev metrics (None for pre-training, which has no dev set).
    """

    source: str
    layers: int
    params: int
    dev: Optional[Metrics] = None


@dataclasses.dataclass(kw_only=True)
class LossTerm:
    """One weighted term of the objective: `name` (as logged), registry `key`, `weight`, constructor `args`."""

    name: str
    key: str
    weight: float
    args: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class TeacherCacheSummary:
    """The cached teacher outputs a run trained from: where, which, how stored, and whether this run computed them."""

    directory: str
    features: List[str]
    dtype: str
    megabytes: float
    built: bool
    seconds: float


@dataclasses.dataclass(kw_only=True)
class AugmentationSummary:
    """The teacher-labelled augmented examples a run trained on with its training examples (`tfkd.data.augment`).

    Args:
        augmenters: the augmenters, by name.
        factor: copies made per training example.
        original_examples: the training examples (with gold labels); the run trained on these plus `kept`.
        made: examples the augmenters made.
        kept: those left after dropping duplicates.
        duplicates: the dropped ones by what they repeated: `dev` (a dev example, or for pairs one of its
            texts), `train` (a training example), `augmented` (one made before).
        mean_length: mean tokens of the kept examples, [CLS]/[SEP] included.
        fingerprint: digest of the kept examples (the teacher cache of the enlarged set is keyed on it).
        teacher_labels: classification: how many kept examples the teacher assigns to each class, by name
            (their class for label-aware negatives); None for regression.
        seconds: the time it took to make, deduplicate and teacher-label them.
    """

    augmenters: List[str]
    factor: int
    original_examples: int
    made: int
    kept: int
    duplicates: Dict[str, int]
    mean_length: float
    fingerprint: str
    teacher_labels: Optional[Dict[str, int]] = None
    seconds: float = 0.0


@dataclasses.dataclass(kw_only=True)
class ComparisonRow:
    """One model of a distillation run's closing teacher-vs-student comparison."""

    model: str
    params: int
    dev: Metrics
    forward_examples_per_second: Optional[float]
    layers: Optional[int] = None


@dataclasses.dataclass(kw_only=True)
class PretrainSummary:
    """What only a pre-training run has.

    Args:
        corpus: the text it was pre-trained on.
        loss_history: per epoch, `epoch` and each loss term's value by name, plus `total`.
        max_predictions_per_example: masked positions per example at most.
        model_dir: the pre-trained student (a `--student_init` for `tfkd.train`).
        mlm_logit_kd: why KD on MLM logits is not part of the objective.
    """

    corpus: str
    loss_history: List[Metrics]
    max_predictions_per_example: int
    model_dir: str
    mlm_logit_kd: str = ""

    @property
    def final_losses(self) -> Metrics:
        """The last epoch's losses by name (empty when no epoch ran)."""
        return {k: v for k, v in self.loss_history[-1].items() if k != "epoch"} if self.loss_history else {}


@dataclasses.dataclass(kw_only=True)
class RunResult:
    """One run's result: what `results.json` holds.

    Sections may be given as their dataclasses or as plain dicts and lists (as
    `to_dict` writes them); either way they are checked and stored as the
    dataclasses, with NaN as None, so a written and re-read result is equal.

    Args:
        kind: 'finetune' (one model on labels alone), 'distill' (a student from a teacher) or 'pretrain'
            (CoDIR pre-training, no task).
        role: which model was trained: 'teacher' (a fine-tuned teacher) or 'student'. None: as the settings
            say (`config`, else `flags`): fine-tuning trains what `finetune_model` names when `mode` is
            'finetune', else the teacher a distillation run fine-tunes first; the rest train the student.
        method: a distillation run's method (kd, pkd, internal, codir, ackd, ckd, custom). None: the
            settings' method name.
        task, primary_metric: the task and the dev metric that selects the best epoch (fine-tuning, distillation).
        best_epoch: the epoch of the saved model (None when unknown).
        best_dev, last_dev: dev metrics of the best and the last epoch.
        dev_history: per epoch, `epoch` and its dev metrics.
        train_examples_per_second: steady-state training speed; None (NaN in memory) when no epoch was timed.
        epoch_seconds, wall_seconds: training time per epoch and in all.
        train_examples: training-set size (augmented examples included).
        padding_efficiency: real / padded tokens of the training batches.
        teacher_cache: the cached teacher outputs trained from, None when the teacher ran live.
        peak_rss_mb: the process's peak resident memory.
        student: the trained model's size.
        losses: the objective's terms.
        algorithm: how layer losses were scheduled (joint, progressive, stacked).
        layer_map: `[student_layer, teacher_layer]` pairs (tuples are stored as lists).
        teacher: the teacher distilled from.
        comparison: the closing teacher-vs-student comparison of a distillation run.
        pretrain: a pre-training run's own figures.
        augmentation: the teacher-labelled augmented examples trained on; None without augmentation (and in
            files written before it existed).
        task_spec: the task as trained (`TaskSpec.to_dict()`: texts, label names in logit order, type, metrics;
            for your own files their paths, format and fields); None in older files.
        config: the run's configuration, `RunConfig.to_dict()` (a configuration dataclass is stored as its
            `to_dict()`); None in version-0 files.
        flags: the command's flags, by name; None when the run was started from Python.
        flag_changes: settings changed on resume (`flag`, `old`, `new`).
    """

    kind: str
    role: Optional[str] = None
    method: Optional[str] = None
    task: Optional[str] = None
    primary_metric: Optional[str] = None
    best_epoch: Optional[int] = None
    best_dev: Optional[Metrics] = None
    last_dev: Optional[Metrics] = None
    dev_history: Optional[List[Metrics]] = None
    train_examples_per_second: Optional[float]
    epoch_seconds: List[float]
    wall_seconds: float
    train_examples: int
    padding_efficiency: float
    teacher_cache: Optional[TeacherCacheSummary] = None
    peak_rss_mb: Optional[float] = None
    student: StudentSummary
    losses: List[LossTerm]
    algorithm: Optional[str] = None
    layer_map: List[List[int]] = dataclasses.field(default_factory=list)
    teacher: Optional[TeacherSummary] = None
    comparison: Optional[List[ComparisonRow]] = None
    pretrain: Optional[PretrainSummary] = None
    augmentation: Optional[AugmentationSummary] = None
    task_spec: Optional[Dict[str, Any]] = None
    config: Optional[Dict[str, Any]] = None
    flags: Optional[Dict[str, Any]] = None
    flag_changes: Optional[List[Dict[str, Any]]] = None

    def __post_init__(self) -> None:
        if dataclasses.is_dataclass(self.config):
            self.config = self.config.to_dict()
        # Checked and stored the way a re-read file has them: dataclasses, lists for tuples, None for NaN.
        for name, hint in _RUN_HINTS.items():
            setattr(self, name, _decode(hint, _plain(getattr(self, name)), name))
        if self.kind not in KINDS:
            raise InvalidResult(f"has kind {self.kind!r}", fix=f"use one of {', '.join(KINDS)}")
        role, method = _inferred(self.kind, self.config if self.config is not None else self.flags or {})
        self.role = self.role or role
        # Settings are free-form, so what they name is checked like a given method.
        self.method = _decode(_RUN_HINTS["method"], self.method or method, "method")
        if self.role not in ROLES:
            raise InvalidResult(f"has role {self.role!r}", fix=f"use one of {', '.join(ROLES)}")
        needed = _KIND_NEEDS[self.kind]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise InvalidResult(f"of kind '{self.kind}' lacks {', '.join(missing)}",
                           fix=f"a '{self.kind}' result needs {', '.join(needed)}")

    @property
    def primary(self) -> Optional[float]:
        """The best epoch's primary dev metric; None for pre-training, or when undefined."""
        return None if self.best_dev is None else self.best_dev.get(self.primary_metric)

    @property
    def teacher_primary(self) -> Optional[float]:
        """The teacher's primary dev metric; None without a teacher measured on the dev set."""
        if self.teacher is None or self.teacher.dev is None:
            return None
        return self.teacher.dev.get(self.primary_metric)

    def setting(self, section: str, name: str, flag: str) -> Any:
        """A run setting: `config[section][name]`, or the command's `--<flag>` when there is no config
        (a version-0 file records only flags); None when neither records it.

        Example:
        >>> result = RunResult(kind="pretrain", student=StudentSummary(layers=3, hidden_dim=384, params=1),
        ...                    losses=[], train_examples=2, train_examples_per_second=None, epoch_seconds=[],
        ...                    wall_seconds=0.0, padding_efficiency=1.0, flags={"glue_dir": "glue"},
        ...                    pretrain=PretrainSummary(corpus="sst2", loss_history=[],
        ...                                             max_predictions_per_example=20, model_dir="run/model"))
        >>> result.setting("data", "glue_dir", flag="glue_dir")
        'glue'
        """
        if self.config is not None:
            return self.config.get(section, {}).get(name)
        return (self.flags or {}).get(flag)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON values, `schema_version` first; non-finite floats become None, None-default fields that are None are left out."""
        return {"schema_version": SCHEMA_VERSION, **_plain(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunResult":
        """The inverse of `to_dict`, for every schema version up to `SCHEMA_VERSION` (older ones are migrated).

        Raises a `TfkdError` naming the first thing that does not fit: a missing or unknown key,
        a value of the wrong type, or a newer schema version.
        """
        if not isinstance(values, Mapping):
            raise InvalidResult(f"is {_json_type(values)}, not a JSON object")
        version = values.get("schema_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidResult(f"has schema_version {version!r}, not a version number")
        if version > SCHEMA_VERSION:
            upgrade = f"read it with a tfkd that knows schema version {version} (upgrade tfkd)"
            raise InvalidResult(f"has schema version {version}; this tfkd reads versions up to {SCHEMA_VERSION}",
                           fix=upgrade, file_fix=upgrade)
        values = _from_version_0(values) if version == 0 else {k: v for k, v in values.items() if k != "schema_version"}
        _check_keys(cls, values, "")
        return cls(**values)

    @classmethod
    def read(cls, path: str) -> "RunResult":
        """`read_result(path)`."""
        return read_result(path)

    def write(self, path: str) -> None:
        """Writes the result to `path` (a results.json) atomically, as strict JSON."""
        write_json(path, self.to_dict())


def read_result(path: str) -> RunResult:
    """The `RunResult` in `path`: a workdir (its results.json) or a results.json file.

    Raises a `TfkdError` of one line naming the file, what is wrong (missing, not JSON,
    not an object, a missing key, a newer schema version) and the fix.
    """
    file = os.path.join(path, RESULTS_FILE) if os.path.isdir(path) else path
    data = read_json(file, fix=FIX)
    try:
        return RunResult.from_dict(data)
    except InvalidResult as e:
        raise TfkdError(f"'{file}' {e.problem}. Fix: {e.file_fix}.") from None


@dataclasses.dataclass(kw_only=True)
class EvalResult:
    """What `tfkd.evaluate` measured: one model scored on one split.

    Args:
        model: the model directory scored.
        task, split: what it was scored on.
        examples: examples in the split.
        metrics: the task's metrics.
        forward_examples_per_second: inference speed at the evaluation batch size.

    Example:
    >>> EvalResult(model="run/model", task="mrpc", split="dev", examples=408, metrics={"f1": 0.82},
    ...            forward_examples_per_second=160.0).to_dict()["schema_version"]
    1
    """

    model: str
    task: str
    split: str
    examples: int
    metrics: Metrics
    forward_examples_per_second: Optional[float]

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON values, `schema_version` first."""
        return {"schema_version": SCHEMA_VERSION, **_plain(self)}

    def write(self, path: str) -> None:
        """Writes the metrics to `path` atomically, as strict JSON."""
        write_json(path, self.to_dict())


_KIND_NEEDS = {
    "finetune": ("task", "primary_metric", "best_dev", "last_dev", "dev_history"),
    "distill": ("method", "task", "primary_metric", "best_dev", "last_dev", "dev_history"),
    "pretrain": ("pretrain",),
}
_RUN_HINTS = typing.get_type_hints(RunResult)
_RUN_FIELDS = set(_RUN_HINTS)
# Keys of a version-0 pre-training file that are `PretrainSummary` fields; its other figures are derived from them.
_PRETRAIN_FIELDS = {f.name for f in dataclasses.fields(PretrainSummary)}


def _inferred(kind: str, settings: Mapping[str, Any]) -> Tuple[str, Optional[str]]:
    """(role, method) as a run's settings (a configuration dict, or a command's flags) say."""
    if kind == "finetune":
        # With mode 'finetune' the run trained what finetune_model names; any other fine-tuning run is the
        # teacher a distillation run fine-tunes first (into <workdir>/teacher).
        return (settings.get("finetune_model", "teacher") if settings.get("mode") == "finetune" else "teacher"), None
    if kind != "distill":
        return "student", None
    method = settings.get("method")  # a flag, or the configuration's method section
    return "student", method.get("name") if isinstance(method, Mapping) else method


def _from_version_0(values: Mapping[str, Any]) -> Dict[str, Any]:
    """A version-0 file as version-1 values; `role` and `method` are then inferred from its flags."""
    # Keys of earlier tfkd versions that no reader uses are dropped.
    migrated = {k: v for k, v in values.items() if k in _RUN_FIELDS}
    if values.get("stage") == LEGACY_PRETRAIN_STAGE:
        # Version 0 recorded each loss's final value under `losses`, not the terms and their weights.
        migrated.update(kind="pretrain", losses=[],
                        pretrain={k: v for k, v in values.items() if k in _PRETRAIN_FIELDS})
    else:
        flags = values.get("flags") if isinstance(values.get("flags"), dict) else {}
        losses = values.get("losses") if isinstance(values.get("losses"), list) else []
        # The teacher a distillation run fine-tuned first recorded the distillation's flags, but trained on
        # cross-entropy alone and has no teacher (neither has a distillation run that stopped before its comparison).
        ce_only = all(isinstance(term, dict) and term.get("key") == "ce" for term in losses)
        finetune = flags.get("mode") == "finetune" or ("teacher" not in values and ce_only)
        migrated["kind"] = "finetune" if finetune else "distill"
    return migrated


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.default is None and getattr(value, f.name) is None)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return jsonable(value)


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "true/false"), (dict, "an object"), (list, "a list"), (str, "a string"),
                       (int, "an integer"), (float, "a number"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _where(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _decode(kind: Any, value: Any, where: str) -> Any:
    """`value` checked against the type hint `kind`; dataclasses built from objects. `where` names it in errors."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin is Union:  # Optional[X]
        return None if value is None else _decode(next(a for a in args if a is not type(None)), value, where)
    if dataclasses.is_dataclass(kind):
        return _decode_dataclass(kind, value, where)
    expected = {list: (list, "a list"), dict: (dict, "an object"), str: (str, "a string"), bool: (bool, "true/false"),
                int: (int, "an integer"), float: ((int, float), "a number")}[origin or kind]
    if not isinstance(value, expected[0]) or (isinstance(value, bool) and kind is not bool):
        raise InvalidResult(f"has {where} = {_json_type(value)}, not {expected[1]}")
    if origin is list:
        return [_decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        return {key: _decode(args[1], item, _where(where, key)) for key, item in value.items()}
    return value


def _check_keys(cls: type, value: Mapping[str, Any], where: str) -> None:
    """Refuses keys `cls` does not have and lacking keys it needs."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in value if key not in fields]
    if unknown:
        raise InvalidResult(f"has unknown key(s) {', '.join(_where(where, k) for k in unknown)}")
    missing = [name for name, f in fields.items() if name not in value
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InvalidResult(f"lacks {', '.join(_where(where, name) for name in missing)}")


def _decode_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise InvalidResult(f"has {where} = {_json_type(value)}, not an object")
    _check_keys(cls, value, where)
    hints = typing.get_type_hints(cls)
    return cls(**{name: _decode(hints[name], item, _where(where, name)) for name, item in value.items()})
