"""A run's configuration as plain dataclasses: what a notebook, a launcher or a command passes to `tfkd.distill`.

Every field has the default of the matching `tfkd.train` flag, so a command
is a mapping from flags to these objects and back (`RunConfig.to_dict` is
what `results.json` records, `RunConfig.from_dict` reads it back).

Example:
>>> from tfkd.training.config import AugmentConfig, DataConfig, MethodConfig, RunConfig
>>> config = RunConfig(workdir="/tmp/kd_mrpc", data=DataConfig(task="mrpc"), method=MethodConfig(name="codir"),
...                    augment=AugmentConfig(augmenters=("embedding_neighbours", "delete"), factor=8))
>>> config.method.loss_args
{}
>>> RunConfig.from_dict(config.to_dict()) == config
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from tfkd.core.errors import TfkdError, register_option_fields


@dataclasses.dataclass
class DataConfig:
    """Which examples a run trains and evaluates on, and how they are batched.

    Args:
        task: a GLUE task name (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli) or 'synthetic'.
        glue_dir: directory of the original GLUE TSV files; None reads tensorflow-datasets' glue/<task>.
        max_train_examples: use only the first N training examples.
        max_seq_length: tokens per example, [CLS]/[SEP] included.
        batch_size: global training batch size.
        eval_batch_size: batch size of every pass that does not train (dev, teacher cache, banks).
        pad_to_multiple_of: pad each batch to a multiple of this; 0: geometric buckets (every pass uses the same).
        train_file, dev_file, test_file: your own data (CSV, TSV or JSON Lines) instead of a GLUE task;
            then `task` is only the name recorded for it.
        data_format: csv, tsv or jsonl; empty: by file extension.
        text_fields: the one or two text columns of your files.
        label_field: the label column.
        label_names: class names in logit order; empty: the sorted labels of the training file.
        task_type: classification, regression, or empty: inferred from the labels.
        metrics: metric names (the first selects the best epoch); empty: by task type.
        positive_label: the class binary F1 counts as positive.
    """

    task: str = "sst2"
    glue_dir: Optional[str] = None
    max_train_examples: Optional[int] = None
    max_seq_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    pad_to_multiple_of: int = 0
    train_file: str = ""
    dev_file: str = ""
    test_file: str = ""
    data_format: str = ""
    text_fields: Tuple[str, ...] = ()
    label_field: str = "label"
    label_names: Tuple[str, ...] = ()
    task_type: str = ""
    metrics: Tuple[str, ...] = ()
    positive_label: str = ""


@dataclasses.dataclass
class TeacherConfig:
    """Where the teacher comes from.

    Args:
        source: 'minilm' (packaged, offline), a keras-hub preset, a Hugging Face BERT directory
            (a fine-tuned BertForSequenceClassification keeps its head), or a tfkd model directory.
        finetune_epochs: fine-tune a teacher whose head is untrained this many epochs first.
        finetuned_dir: where that fine-tuned teacher lives (default <workdir>/teacher); runs can share it.
        learning_rate: peak learning rate of that fine-tuning.
        allow_task_mismatch: distil from a teacher whose metadata names another task.
    """

    source: str = "minilm"
    finetune_epochs: int = 0
    finetuned_dir: str = ""
    learning_rate: float = 5e-5
    allow_task_mismatch: bool = False


@dataclasses.dataclass
class StudentConfig:
    """The student's shape and initialisation.

    Args:
        num_layers, hidden_dim, num_heads, intermediate_dim: its architecture.
        dropout: dropout of the model being trained (the teacher too when fine-tuning it).
        init: 'pretrained' (the teacher's pretrained source), 'teacher', 'random', 'pruned' (the fine-tuned
            teacher sliced by unit importance into this shape, `tfkd.models.prune`), or a tfkd model
            directory / Hugging Face BERT directory with the teacher's vocabulary.
        layers_from: 1-based source layers copied into the student; empty: uniform (6 → 3: 2, 4, 6);
            ("importance",): the source layers with the highest block influence on training batches
            (`tfkd.models.prune.layer_importance`), in their original order; init 'random' refuses it.
        vocab: 'teacher' (the teacher's vocabulary) or 'task' (trimmed to the special tokens and the WordPiece
            ids of the training text, `tfkd.data.vocab`; distillation only).
        vocab_corpus: with vocab='task', a text file (one text per line) whose ids are kept too.
        vocab_corpus_top: keep only that corpus' this many most frequent ids (0: all of them).
    """

    num_layers: int = 3
    hidden_dim: int = 384
    num_heads: int = 12
    intermediate_dim: int = 1536
    dropout: float = 0.1
    init: str = "pretrained"
    layers_from: Tuple[int | str, ...] = ()
    vocab: str = "teacher"
    vocab_corpus: str = ""
    vocab_corpus_top: int = 0

    def __post_init__(self) -> None:
        if self.vocab not in ("teacher", "task"):
            raise TfkdError(f"student vocab '{self.vocab}' is not 'teacher' or 'task'. Fix: use one of those.")
        if self.vocab == "teacher" and (self.vocab_corpus or self.vocab_corpus_top):
            raise TfkdError("a vocabulary corpus only adds to a trimmed vocabulary, and the student keeps the "
                            "teacher's. Fix: add --student_vocab=task, or drop --student_vocab_corpus(_top).")


@dataclasses.dataclass
class MethodConfig:
    """The distillation objective: a method's weighted losses and how they are scheduled.

    Args:
        name: kd, pkd, internal, codir, ackd, ckd, or custom (then `losses` says which).
        losses: explicit `(loss key, weight)` terms replacing the method's, e.g. (("ce", .5), ("kd", .5)).
        weights: weight of a method term by loss key, overriding its default (e.g. {"codir": 0.5}).
        loss_args: constructor arguments by loss key (e.g. {"codir": {"temperature": 0.1}}); every
            argument a loss declares has a default, see `tfkd.losses.hyperparameters`.
        kd_beta: β in (1 − β)·CE + β·KD.
        weight_preset: a per-task weight preset of the method's losses (CKD: sst2, mrpc, rte, cola);
            explicit `weights` win.
        layer_map: teacher layer (1-based, 0 = embeddings) for each student layer; empty: uniform.
        algorithm: joint, progressive, stacked or tinybert (how layer losses are scheduled; tinybert: every
            pair's internal losses alone, then the final KD + CE stage).
        stage_epochs, stage_steps: length of a progressive/stacked layer stage.
        final_stage_epochs: epochs of the final KD + CE stage; None: 1 for progressive/stacked/tinybert, 0 for joint.
        freeze_distilled: progressive/stacked: freeze already-distilled student layers.
    """

    name: str = "kd"
    losses: Sequence[Tuple[str, float]] = ()
    weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    loss_args: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    kd_beta: float = 0.5
    weight_preset: str = "none"
    layer_map: Tuple[int, ...] = ()
    algorithm: str = "joint"
    stage_epochs: int = 1
    stage_steps: int = 0
    final_stage_epochs: Optional[int] = None
    freeze_distilled: bool = False


@dataclasses.dataclass
class OptimConfig:
    """AdamW with linear warm-up and decay.

    Args:
        epochs: training epochs (progressive/stacked: derived from the stages when 0).
        learning_rate: peak learning rate.
        warmup_ratio: fraction of steps with linear warm-up.
        weight_decay: AdamW weight decay (not on biases and LayerNorm).
        clipnorm: global gradient-norm clip (0: off).
        seed: data order, initialisation, dropout, negatives.
    """

    epochs: int = 3
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    seed: int = 1


@dataclasses.dataclass
class AugmentConfig:
    """Teacher-labelled data augmentation (`tfkd.data.augment`): new, perturbed copies of the training inputs,
    labelled by the teacher and distilled on with the originals (distillation only).

    Args:
        augmenters: registered augmenter names (embedding_neighbours, mlm, delete, swap, file, or your own);
            empty: no augmentation.
        factor: perturbed copies per training example, spread round-robin over the perturbing augmenters
            (`file` adds its examples once); duplicates (of one another, of training or dev examples) are dropped.
        file: the in-domain text the `file` augmenter adds (one example per line, or CSV/TSV/JSONL in the
            training data's layout).
        args: options by augmenter name, e.g. {"embedding_neighbours": {"top_k": 10}} (see each augmenter's
            `options`).
    """

    augmenters: Tuple[str, ...] = ()
    factor: int = 8
    file: str = ""
    args: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 0:
            raise TfkdError(f"augment factor {self.factor!r} is not a whole number >= 0. Fix: pass "
                            "--augment_factor=8 (copies per training example; 0: none).")


@dataclasses.dataclass
class RuntimeConfig:
    """How a run computes and what it keeps; none of these change its result.

    Args:
        jit_compile: compile the train step with XLA.
        eval_jit_compile: also compile dev evaluation.
        mixed_precision: float32, bfloat16 or float16.
        strategy: tf.distribute strategy (auto, default, mirrored, multi_worker, tpu).
        tpu: TPU name for strategy='tpu'.
        cpu_replicas: split the CPU into N logical devices.
        tensorboard_update_freq: per-step TensorBoard scalars every N steps.
        checkpoint_every_steps: also checkpoint every N steps within an epoch (0: epoch ends only).
        deterministic: deterministic TensorFlow ops.
        teacher_cache: 'auto', 'off' or a directory of cached teacher outputs.
        teacher_cache_dtype: float32 or float16.
    """

    jit_compile: bool = True
    eval_jit_compile: bool = False
    mixed_precision: str = "float32"
    strategy: str = "auto"
    tpu: Optional[str] = None
    cpu_replicas: int = 0
    tensorboard_update_freq: int = 50
    checkpoint_every_steps: int = 500
    deterministic: bool = False
    teacher_cache: str = "auto"
    teacher_cache_dtype: str = "float32"


@dataclasses.dataclass
class RunConfig:
    """Everything one run needs.

    Args:
        workdir: output directory (model/, checkpoints/, logs/, dev_history.json, results.json).
        mode: 'distill' (a student from the teacher) or 'finetune' (one model on labels alone).
        finetune_model: with mode='finetune': 'teacher' or 'student' (the no-teacher baseline).
        augment: teacher-labelled data augmentation of the training set (distillation).
        allow_changed: resume checkpoints although settings that change the run differ.
    """

    workdir: str
    mode: str = "distill"
    finetune_model: str = "teacher"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    allow_changed: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("distill", "finetune"):
            raise TfkdError(f"mode '{self.mode}' is not 'distill' or 'finetune'. Fix: use one of those.")
        if self.finetune_model not in ("teacher", "student"):
            raise TfkdError(f"finetune_model '{self.finetune_model}' is not 'teacher' or 'student'. Fix: use one of those.")
        if self.mode == "finetune" and self.student.vocab != "teacher":
            raise TfkdError("vocabulary trimming makes a distilled student's vocabulary, and this run fine-tunes. "
                            "Fix: drop --student_vocab=task, or pass --mode=distill.")
        if self.mode == "finetune" and self.augment.augmenters:
            raise TfkdError("augmented examples are labelled by the teacher, and fine-tuning has none. "
                            "Fix: drop --augment, or pass --mode=distill.")

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able values, by section."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        """The inverse of `to_dict`; an unknown section or field is refused by name."""
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: Dict[str, Any] = {}
        for name, value in values.items():
            if name not in sections:
                raise TfkdError(f"run configuration has no field '{name}'. Fix: use one of {', '.join(sections)}.")
            section = SECTIONS.get(name)
            kwargs[name] = _section(section, value) if section else value
        return cls(**kwargs)


@dataclasses.dataclass
class MLMConfig:
    """BERT's masking for CoDIR pre-training (keras-hub's `MaskedLMMaskGenerator`).

    Args:
        probability: fraction of the real tokens (not [CLS]/[SEP]) predicted per example.
        mask_token_rate: fraction of the predicted tokens replaced by [MASK].
        random_token_rate: fraction replaced by a random token (the rest are kept).
    """

    probability: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1


@dataclasses.dataclass
class PretrainConfig:
    """CoDIR's pre-training stage: the student's masked-LM loss plus CoDIR against the teacher, on unlabelled text.

    Args:
        workdir: output directory (model/, checkpoints/, logs/, results.json).
        text_file: a UTF-8 corpus, one sentence per line; or empty and `data.task` names a GLUE task whose
            training texts (labels dropped) are the corpus.
        data: corpus task, GLUE directory, subset, lengths and batching.
        teacher: the teacher (its head plays no part).
        student: shape and initialisation ('pretrained', 'teacher' or 'random').
        mlm: the masking.
        method: the weighted losses, by default `mlm` 1.0 + `codir` 0.1 with uniform negatives; a zero
            weight drops a term (CoDIR 0: MLM only, no teacher pass).
        optim: learning rate schedule and seed.
        runtime: as for training.
        allow_changed: resume although settings that change the run differ.
    """

    workdir: str
    text_file: str = ""
    data: DataConfig = dataclasses.field(default_factory=lambda: DataConfig(task=""))
    teacher: TeacherConfig = dataclasses.field(default_factory=TeacherConfig)
    student: StudentConfig = dataclasses.field(default_factory=StudentConfig)
    mlm: MLMConfig = dataclasses.field(default_factory=MLMConfig)
    method: MethodConfig = dataclasses.field(default_factory=lambda: MethodConfig(
        name="custom", losses=(("mlm", 1.0), ("codir", 0.1)), loss_args={"codir": {"negatives": "uniform"}}))
    optim: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(learning_rate=1e-4))
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    allow_changed: bool = False

    def __post_init__(self) -> None:
        if self.student.vocab != "teacher":
            raise TfkdError("pre-training keeps the teacher's vocabulary (its masked-LM head predicts every token). "
                            "Fix: trim when distilling on the task: python -m tfkd.train --student_vocab=task "
                            "--student_init=<this run's model dir>.")

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able values, by section."""
        return _plain(dataclasses.asdict(self))


SECTIONS = {"data": DataConfig, "teacher": TeacherConfig, "student": StudentConfig, "method": MethodConfig,
            "optim": OptimConfig, "runtime": RuntimeConfig, "augment": AugmentConfig}

# The flag of each field whose flag is named otherwise (None: no flag of its own;
# `weights` come from `--<key>_weight` flags), read off the commands' mappings
# (tfkd.cli.train.run_config, tfkd.cli.pretrain.pretrain_config): a library error
# naming `--teacher` then names `TeacherConfig.source` outside a command.
_RENAMED_FLAGS: Dict[type, Dict[str, Optional[str]]] = {
    TeacherConfig: {"source": "teacher", "finetune_epochs": "finetune_teacher_epochs",
                    "finetuned_dir": "finetuned_teacher_dir", "learning_rate": "teacher_learning_rate"},
    StudentConfig: {"num_layers": "student_layers", "hidden_dim": "student_hidden_dim", "num_heads": "student_heads",
                    "intermediate_dim": "student_intermediate_dim", "init": "student_init",
                    "layers_from": "student_layers_from", "vocab": "student_vocab",
                    "vocab_corpus": "student_vocab_corpus", "vocab_corpus_top": "student_vocab_corpus_top"},
    MethodConfig: {"name": "method", "weights": None, "weight_preset": None},
    AugmentConfig: {"augmenters": "augment", "factor": "augment_factor", "file": "augment_file", "args": "augment_args"},
    MLMConfig: {"probability": "mlm_probability"},
    RunConfig: {"allow_changed": "allow_changed_flags"},
    PretrainConfig: {"allow_changed": "allow_changed_flags"},
}

for _cls in (RunConfig, PretrainConfig, *SECTIONS.values(), MLMConfig):
    _renamed = _RENAMED_FLAGS.get(_cls, {})
    register_option_fields(_cls.__name__, {
        _renamed.get(f.name, f.name): f.name for f in dataclasses.fields(_cls)
        if _renamed.get(f.name, f.name) is not None and f.name not in SECTIONS and f.name != "mlm"})

_TUPLE_FIELDS = {("student", "layers_from"), ("method", "layer_map"), ("data", "text_fields"), ("data", "label_names"),
                 ("data", "metrics"), ("augment", "augmenters")}


def _section(cls: type, values: Mapping[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TfkdError(f"{cls.__name__} has no field {', '.join(map(repr, unknown))}. Fix: use {', '.join(sorted(known))}.")
    section = next(name for name, klass in SECTIONS.items() if klass is cls)
    values = {k: tuple(v) if (section, k) in _TUPLE_FIELDS else v for k, v in values.items()}
    if cls is MethodConfig and "losses" in values:
        values["losses"] = tuple((str(key), float(weight)) for key, weight in values["losses"])
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
