"""What a run is made of, built from its configuration: data, teacher, student and distiller.

Each function takes configuration objects (`tfkd.training.config`), never
flags, so the commands, `tfkd.distill`/`tfkd.finetune` and the benchmark
build a run the same way.

Example:
>>> from tfkd.training.config import StudentConfig
>>> from tfkd.training.build import student_shape
>>> student_shape(StudentConfig(num_layers=2, hidden_dim=64, num_heads=2, intermediate_dim=128))
StudentShape(num_layers=2, hidden_dim=64, num_heads=2, intermediate_dim=128, dropout=0.1)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.data import load_split, load_unlabeled_text, make_tokenizer
from tfkd.data.augment import AUGMENTERS, AugmentContext, check_settings, decode, enlarge, materialise
from tfkd.data.load import stream_split
from tfkd.data.pipeline import TokenizedSplit, padding_efficiency, tokenize, tokenize_chunks
from tfkd.data.tasks import GlueTask
from tfkd.data.tokenizer import read_vocab
from tfkd.data.vocab import VocabularyTrim, corpus_token_counts, trim_vocabulary, unk_share
from tfkd.distill import Distiller
from tfkd.distill.teacher_cache import teacher_pass
from tfkd.losses import LOSSES, DistillationLoss, DistillContext, ModelSpec
from tfkd.models import (
    BertModel,
    LoadedModel,
    StudentShape,
    build_student,
    load_teacher,
)
from tfkd.models.masked_lm import load_masked_lm
from tfkd.models.prune import (
    IMPORTANCE,
    IMPORTANCE_BATCHES,
    check_prunable,
    choose_layers,
    importance,
    layer_importance,
    pruned_student,
    source_layers,
)
from tfkd.models.student import initialize_from, load_init_source
from tfkd.training.config import AugmentConfig, DataConfig, StudentConfig
from tfkd.training.methods import LossSpec
from tfkd.training.results import AugmentationSummary


def load_data(task: GlueTask, tokenizer, data: DataConfig) -> Tuple[TokenizedSplit, TokenizedSplit]:
    """The tokenized train and dev splits of `task`, with one progress line about them."""
    # Streamed: a large file of your own is read and tokenized a chunk at a time.
    train = tokenize_chunks(stream_split(task, "train", data.glue_dir, max_examples=data.max_train_examples), tokenizer,
                            data.max_seq_length)
    dev = tokenize(load_split(task, "dev", data.glue_dir), tokenizer, data.max_seq_length)
    efficiency = padding_efficiency(train, data.batch_size, pad_to_multiple_of=data.pad_to_multiple_of)
    log(
        f"{task.name}: {len(train.lengths)} train / {len(dev.lengths)} dev examples, "
        f"mean length {train.lengths.mean():.1f} tokens, {train.num_truncated} truncated to {data.max_seq_length}; "
        f"padding efficiency {efficiency:.3f} (real / padded tokens, batch {data.batch_size})"
    )
    return train, dev


def student_shape(config: StudentConfig) -> StudentShape:
    """The architecture part of a `StudentConfig`."""
    return StudentShape(config.num_layers, config.hidden_dim, config.num_heads, config.intermediate_dim, config.dropout)


def needs_batches(config: StudentConfig) -> bool:
    """Whether `make_student` measures the teacher on training batches for `config` (pruned init, or layers chosen
    by importance)."""
    return config.init == "pruned" or tuple(config.layers_from) == (IMPORTANCE,)


def make_student(
    config: StudentConfig,
    teacher: LoadedModel,
    num_classes: int,
    output_attentions: bool,
    workdir: Optional[str] = None,
    batches: Optional[Iterable[Mapping[str, Any]]] = None,
    record: Optional[Dict[str, Any]] = None,
) -> BertModel:
    """The student of `config`, shaped like `teacher` where `config` is silent and initialised as `config.init` says.

    Args:
        config: its shape, initialisation and source layers (`layers_from=("importance",)`: the source's layers
            with the highest block influence, `tfkd.models.prune.layer_importance`).
        teacher: the loaded teacher (vocabulary, positions, activation; the source of `init='teacher'` and
            `init='pruned'`, and the metadata that names the pretrained source of `init='pretrained'`).
        num_classes: classes of the task (1 for regression).
        output_attentions: whether some loss reads the student's attention maps.
        workdir: where a downloaded source is kept.
        batches: where `needs_batches(config)`: training batches (`make_dataset` dicts) the teacher's units or the
            source's layers are scored on; the first `IMPORTANCE_BATCHES` are used.
        record: a dict that receives, where the layers were chosen by importance, `layers_from` (1-based, the
            chosen source layers) and `layer_importance` (one score per source layer), for the caller's metadata
            and results.
    """
    shape = student_shape(config)
    by_importance = tuple(config.layers_from) == (IMPORTANCE,)
    if config.init == "random":
        if by_importance:
            raise TfkdError("--student_layers_from=importance chooses the teacher layers a student copies, and "
                            "--student_init=random copies none. Fix: pass --student_init=teacher or pruned, or drop "
                            "--student_layers_from.")
        return build_student(shape, like=teacher.model, output_attentions=output_attentions)
    if needs_batches(config) and batches is None:
        what = "--student_init=pruned" if config.init == "pruned" else "--student_layers_from=importance"
        raise TfkdError(f"{what} needs batches of the training split to score the teacher on, and none were given. "
                        "Fix: pass batches=make_dataset(train, ...) to make_student.")
    if config.init == "pruned":
        check_prunable(teacher.model, shape)  # before the measuring, which takes a while
        scores = importance(teacher.model, batches, max_batches=IMPORTANCE_BATCHES)
        layers_from = (_layers_by_importance(scores.layers, shape.num_layers, record) if by_importance
                       else config.layers_from)
        log(f"pruned initialisation: teacher units scored on {scores.num_batches} training batches "
            f"({scores.num_tokens} tokens); keeping teacher layers "
            f"{','.join(str(i + 1) for i in source_layers(teacher.model.num_layers, shape.num_layers, layers_from))}, "
            f"{shape.num_heads}/{teacher.model.num_heads} heads, "
            f"{shape.intermediate_dim}/{teacher.model.intermediate_dim} FFN units and "
            f"{shape.hidden_dim}/{teacher.model.hidden_dim} hidden channels")
        return pruned_student(teacher.model, shape, layers_from, scores, output_attentions)
    student = build_student(shape, like=teacher.model, output_attentions=output_attentions)
    layers_from = list(config.layers_from)
    if config.init == "teacher":
        source = teacher.model
    elif config.init == "pretrained":
        if not teacher.metadata.base:
            raise TfkdError("--student_init=pretrained needs to know the teacher's pretrained source, which its metadata "
                            "lacks. Fix: pass --student_init=teacher or random.")
        source = load_teacher(teacher.metadata.base, num_classes, workdir).model
    else:
        source = load_init_source(config.init, teacher.vocab_path)
        if source.num_layers == student.num_layers:
            # A student-sized source (e.g. a CoDIR pre-training output) is copied layer for layer.
            if layers_from and layers_from != list(range(1, student.num_layers + 1)):
                log(f"--student_init={config.init} has the student's {student.num_layers} layers: copying them 1:1, "
                    "ignoring --student_layers_from")
            layers_from = list(range(1, student.num_layers + 1))
    if layers_from == [IMPORTANCE]:
        # The layers copied are the source's, so they are scored on the source (the teacher itself for init=teacher).
        scores = layer_importance(source, batches, max_batches=IMPORTANCE_BATCHES)
        layers_from = list(_layers_by_importance(scores, student.num_layers, record))
    initialize_from(student, source, layers_from)
    return student


def _layers_by_importance(scores: np.ndarray, num_layers: int, record: Optional[Dict[str, Any]]) -> Tuple[int, ...]:
    layers = choose_layers(scores, num_layers)
    log("source layers by block influence (1 - cos(input, output) on training batches): "
        + ", ".join(f"{i + 1}: {s:.4f}" for i, s in enumerate(scores))
        + f"; the student copies layers {','.join(map(str, layers))}")
    if record is not None:
        record.update(layers_from=list(layers), layer_importance=[float(s) for s in scores])
    return layers


def needs_attentions(specs: Sequence[LossSpec]) -> Tuple[bool, bool]:
    """Whether some loss of `specs` reads the teacher's, and the student's, attention maps."""
    teacher = any("attentions" in LOSSES.get(spec.key).teacher_needs for spec in specs)
    student = any("attentions" in LOSSES.get(spec.key).student_needs for spec in specs)
    return teacher, student


def loss_context(
    student: BertModel,
    teacher: Optional[BertModel],
    layer_map,
    is_regression: bool = False,
    train_labels: Optional[np.ndarray] = None,
    num_train_examples: Optional[int] = None,
    augmented_examples: int = 0,
) -> DistillContext:
    """What every loss of this run is constructed with (`augmented_examples`: training rows without a gold label)."""
    return DistillContext(
        teacher=ModelSpec(teacher.num_layers, teacher.hidden_dim, teacher.num_heads) if teacher else ModelSpec(0, 0, 0),
        student=ModelSpec(student.num_layers, student.hidden_dim, student.num_heads),
        layer_map=tuple(layer_map),
        num_classes=student.num_classes,
        is_regression=is_regression,
        num_train_examples=len(train_labels) if num_train_examples is None else num_train_examples,
        train_labels=train_labels,
        augmented_examples=augmented_examples,
    )


def make_loss(spec: LossSpec, context: DistillContext, **extra) -> DistillationLoss:
    """The loss layer of `spec`; a value its constructor rejects is named with the loss."""
    try:
        return LOSSES.get(spec.key)(context, name=spec.name, **spec.args, **extra)
    except (TypeError, ValueError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in spec.args.items()) or "no arguments"
        raise TfkdError(f"loss '{spec.name}' ({spec.key}) rejects {given}: {e}. Fix: correct that --loss_args entry "
                        "or method flag.") from None


def build_distiller(
    student: BertModel,
    teacher: Optional[BertModel],
    specs: Sequence[LossSpec],
    layer_map,
    is_regression: bool,
    train_labels: np.ndarray,
    freeze_layers: bool = False,
    augmented_examples: int = 0,
) -> Distiller:
    """The `Distiller` of the weighted losses `specs`, with dev CE as its evaluation loss; `augmented_examples`
    of the `train_labels` are the teacher's labels of augmented rows."""
    context = loss_context(student, teacher, layer_map, is_regression, train_labels,
                           augmented_examples=augmented_examples)
    losses = [(spec.name, make_loss(spec, context), spec.weight) for spec in specs]
    return Distiller(student, teacher, losses, eval_loss=LOSSES.get("ce")(context, name="dev_ce"),
                     num_pairs=max(len(layer_map), 1), freeze_layers=freeze_layers)


@dataclasses.dataclass
class StudentVocabulary:
    """A distilled student's own, trimmed vocabulary (`tfkd.data.vocab`).

    Args:
        trim: which teacher ids it keeps; `trim.transform` gives training batches the student's ids.
        path: its `vocab.txt`.
        dev: the dev split tokenized with it, as serving will tokenize.
        summary: what results.json records (`StudentSummary.vocab`).
    """

    trim: VocabularyTrim
    path: str
    dev: TokenizedSplit
    summary: Dict[str, Any]


def student_vocabulary(config: StudentConfig, task: GlueTask, data: DataConfig, teacher: LoadedModel, tokenizer,
                       train: TokenizedSplit, dev: TokenizedSplit, path: str) -> Optional[StudentVocabulary]:
    """The trimmed vocabulary `config.vocab='task'` asks for, written to `path`; None for the teacher's.

    Args:
        config: the student's vocabulary settings.
        task: the task (its dev split is tokenized again with the student's vocabulary).
        data: where the task's files are and the length limit.
        teacher: the teacher, whose vocabulary is trimmed.
        tokenizer: the teacher's tokenizer (for the extra corpus).
        train, dev: the splits in the teacher's ids.
        path: where the student's `vocab.txt` goes.
    """
    if config.vocab == "teacher":
        return None
    corpus = None
    if config.vocab_corpus:
        corpus = corpus_token_counts(load_unlabeled_text(config.vocab_corpus), tokenizer, tokenizer.vocabulary_size())
    trim = trim_vocabulary(teacher.vocab_path, train, corpus, config.vocab_corpus_top)
    trim.write(path)
    student_dev = tokenize(load_split(task, "dev", data.glue_dir), make_tokenizer(path, teacher.lowercase),
                           data.max_seq_length)
    summary = trim.summary() | {"dev_unk_share": unk_share(student_dev, path),
                                "teacher_dev_unk_share": unk_share(dev, teacher.vocab_path)}
    if config.vocab_corpus:
        summary |= {"corpus": config.vocab_corpus, "corpus_top": config.vocab_corpus_top}
    log(f"student vocabulary: {trim.size} of the teacher's {trim.teacher_size} tokens (the training text"
        f"{' and ' + config.vocab_corpus if config.vocab_corpus else ''}), written to {path}; "
        f"{100 * summary['dev_unk_share']:.2f} % of dev tokens become [UNK] "
        f"(teacher: {100 * summary['teacher_dev_unk_share']:.2f} %)")
    return StudentVocabulary(trim, path, student_dev, summary)


@dataclasses.dataclass
class AugmentedTraining:
    """A training split enlarged by teacher-labelled augmented examples (`augment_training_set`).

    Args:
        train: the training examples, then the augmented ones; the latter labelled with the teacher's
            prediction (its class, or its score for regression).
        gold: float32 `[N + M]`, 1 for the training examples (gold labels), 0 for the augmented ones; batches
            carry it as `tfkd.losses.GOLD`, so terms that read labels skip augmented rows.
        fingerprint: digest of the augmented examples (`tfkd.data.augment.Augmentation.fingerprint`).
        summary: what results.json records.
        teacher_outputs: the labelling pass's teacher features of the augmented rows (`"logits"`), which a
            teacher-output cache of `train` reuses rather than recomputes.
    """

    train: TokenizedSplit
    gold: np.ndarray
    fingerprint: str
    summary: AugmentationSummary
    teacher_outputs: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def augmented_examples(self) -> int:
        return self.summary.kept


def check_augment(config: AugmentConfig) -> None:
    """Refuses augmentation settings that cannot work (see `tfkd.data.augment.check_settings`), before any
    model is loaded."""
    check_settings(config.augmenters, config.factor, config.file, config.args)


def _what_is_made(config: AugmentConfig) -> str:
    """The report's words for what `config` makes: the factor counts only the augmenters that perturb."""
    perturbs = {name: AUGMENTERS.get(name).perturbs for name in config.augmenters}
    made = [f"{config.factor} copies per training example"] if any(perturbs.values()) else []
    return "; ".join(made + [f"each example of {name} once" for name, p in perturbs.items() if not p])


def augment_training_set(config: AugmentConfig, task: GlueTask, data: DataConfig, teacher: LoadedModel, tokenizer,
                         train: TokenizedSplit, dev: TokenizedSplit, seed: int) -> AugmentedTraining:
    """`train` enlarged by the augmented examples `config` asks for, labelled by the teacher, with one report line.

    Args:
        config: the augmenters, copies per example, file and options.
        task: the task (an augment file's columns, pairs or not, class names).
        data: the length limit and the batching of the teacher's labelling pass.
        teacher: the fine-tuned teacher: its vocabulary and token embeddings feed the augmenters, its
            predictions label the new examples.
        tokenizer: the teacher's tokenizer.
        train, dev: the tokenized splits, in the teacher's ids; no dev text reaches the augmented examples.
        seed: the augmentation's seed (the run's).
    """
    start = time.perf_counter()
    vocabulary = read_vocab(teacher.vocab_path)
    embeddings = keras.ops.convert_to_numpy(teacher.model.get_layer("token_embedding").embeddings)
    context = AugmentContext(vocabulary, data.max_seq_length, embeddings=embeddings, tokenizer=tokenizer, task=task,
                             file=config.file, batch_size=data.eval_batch_size, load_masked_lm=load_masked_lm)
    made = materialise(train, dev, config.augmenters, config.factor, seed, context, config.args)
    outputs = teacher_pass(teacher.model, made.split, ("logits",), batch_size=data.eval_batch_size,
                           pad_to_multiple_of=data.pad_to_multiple_of) if made.kept else {}
    if made.kept:
        logits = outputs["logits"]
        labels = logits[:, 0] if task.is_regression else np.argmax(logits, axis=-1).astype(np.int32)
    else:
        labels = np.zeros(0, train.labels.dtype)
    enlarged, gold = enlarge(train, made.split, labels)
    counts = None if task.is_regression else {
        name: int(np.sum(labels == c)) for c, name in enumerate(task.label_names)}
    summary = AugmentationSummary(
        augmenters=list(config.augmenters), factor=config.factor, original_examples=len(train), made=made.made,
        kept=made.kept, duplicates=dict(made.duplicates), mean_length=made.mean_length,
        fingerprint=made.fingerprint, teacher_labels=counts, seconds=time.perf_counter() - start)
    duplicates = made.duplicates
    shares = "" if not counts or not made.kept else "; teacher labels: " + ", ".join(
        f"{name} {100 * n / made.kept:.1f} %" for name, n in counts.items())
    log(f"augmentation ({', '.join(config.augmenters)}; {_what_is_made(config)}, seed {seed}): "
        f"made {made.made}, kept {made.kept} (mean length {made.mean_length:.1f} tokens; training examples "
        f"{train.lengths.mean():.1f}); dropped as duplicates: {duplicates['augmented']} of one another, "
        f"{duplicates['train']} of training examples, {duplicates['dev']} of dev examples{shares}; training on "
        f"{len(train)} examples with gold labels + {made.kept} teacher-labelled = {len(enlarged)} "
        f"({summary.seconds:.1f} s)")
    perturbed = np.flatnonzero(made.origin >= 0)
    if len(perturbed):
        first = int(perturbed[0])
        log(f"e.g. {decode(train.example(int(made.origin[first]))[0][1:-1], vocabulary)!r} → "
            f"{decode(made.split.example(first)[0][1:-1], vocabulary)!r}")
    return AugmentedTraining(enlarged, gold, made.fingerprint, summary, outputs)
