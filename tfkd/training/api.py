"""tfkd's entry points as functions: fine-tune a teacher, distil a student, pre-train one with CoDIR.

Each takes a run configuration (`tfkd.training.config`) and returns the
run's `RunResult`, which is also written to `<workdir>/results.json`. They do
what the commands do — placement (`tf.distribute`), precision, the workdir
lock, exact resume, preemption — and the commands are nothing but flags
mapped onto these calls.

Example (a tiny in-process run on generated data, as `tests/training/test_api.py` does):
>>> import tfkd
>>> config = tfkd.RunConfig(
...     workdir="/tmp/tfkd_doc_kd", data=tfkd.DataConfig(task="synthetic", batch_size=16),
...     teacher=tfkd.TeacherConfig(source="/tmp/teacher/model"), method=tfkd.MethodConfig(name="kd"),
...     optim=tfkd.OptimConfig(epochs=1))  # doctest: +SKIP
>>> result = tfkd.run_distill(config)  # doctest: +SKIP
>>> result.best_dev["accuracy"]  # doctest: +SKIP
0.93
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shutil
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.core.paths import check_directory_target
from tfkd.data import make_tokenizer
from tfkd.data.load import resolve_task
from tfkd.data.pipeline import TokenizedSplit, make_dataset, padding_efficiency, steps_per_epoch, tokenize
from tfkd.data.pretrain import MaskingConfig, load_pretraining_texts, mask_batches
from tfkd.data.tasks import GlueTask
from tfkd.distill import Distiller, build_stages
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.metrics import primary_metric
from tfkd.losses import GOLD, LOSSES
from tfkd.losses.mlm import MaskedLMLoss
from tfkd.models import (
    BertModel,
    LoadedModel,
    ModelMetadata,
    check_sequence_length,
    check_task,
    count_params,
    load_model_dir,
    load_teacher,
    parse_layer_map,
    read_metadata,
    save_model_dir,
)
from tfkd.models.labels import match_label_order
from tfkd.models.masked_lm import HEAD_FILE, HEAD_METADATA_KEY, save_head
from tfkd.models.sources import source_kind
from tfkd.models.vocab import keep_tokens
from tfkd.runtime.precision import set_precision
from tfkd.runtime.strategy import configure_cpu_replicas, make_strategy, worker_index
from tfkd.training import methods
from tfkd.training.build import (
    AugmentedTraining,
    augment_training_set,
    build_distiller,
    check_augment,
    load_data,
    loss_context,
    make_loss,
    make_student,
    needs_attentions,
    needs_batches,
    student_vocabulary,
)
from tfkd.training.config import DataConfig, PretrainConfig, RunConfig, RuntimeConfig, StudentConfig
from tfkd.training.methods import LossSpec
from tfkd.training.results import ComparisonRow, PretrainSummary, RunResult, TeacherSummary
from tfkd.training.trainer import BatchTransform, Trainer
from tfkd.training.workdir import RunFlags, WorkdirLock

# A trimmed student vocabulary (`--student_vocab=task`); the model directory gets a copy as its vocab.txt.
STUDENT_VOCAB_FILE = "student_vocab.txt"

PRETRAIN_STAGE = "codir_pretrain"
NO_MLM_KD = (
    "KD on MLM logits: skipped. It needs a teacher MLM head, and tfkd teachers have none (the packaged "
    "MiniLM is a sentence-transformers export without cls.predictions weights); the objective is "
    "mlm_weight*MLM + codir_weight*CoDIR."
)

# Settings that say where outputs go, how fast or how observably a run goes: a
# resume may change them (every other setting must match, see `allow_changed`).
RUN_INDEPENDENT = frozenset({
    "workdir", "allow_changed", "data.eval_batch_size", "teacher.finetuned_dir", "teacher.allow_task_mismatch",
    *(f"runtime.{f.name}" for f in dataclasses.fields(RuntimeConfig)),
})


@dataclasses.dataclass
class RunContext:
    """Where this process of a run writes, and how it computes (after the placement checks)."""

    workdir: str
    chief_workdir: str
    runtime: RuntimeConfig
    flags: Optional[Dict[str, Any]]
    flag_changes: List[Dict[str, Any]]

    def chief_path(self, path: str) -> str:
        """Where the chief keeps what this worker keeps at `path` (the same path on the chief itself)."""
        if self.workdir == self.chief_workdir:
            return path
        return os.path.join(self.chief_workdir, os.path.relpath(path, self.workdir))


def identity(config) -> Dict[str, Any]:
    """The settings of `config` that a resumed run must share with the run it resumes, as `section.field`."""
    flat: Dict[str, Any] = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v for k, v in flat.items() if k not in RUN_INDEPENDENT}


@contextlib.contextmanager
def run_context(config, flags: Optional[Mapping[str, Any]] = None,
                flag_identity: Optional[Mapping[str, Any]] = None) -> Iterator[RunContext]:
    """Places a run and owns its workdir while it trains.

    MultiWorkerMirroredStrategy must exist before TensorFlow runs anything
    else, so this comes first. Worker k > 0 writes into a scratch copy of the
    workdir (removed at the end). A run resuming checkpoints with settings
    that change it is refused unless `config.allow_changed`; `flag_identity`
    (a command's flags) replaces the configuration as what is compared, so
    messages name the flags the user typed.
    """
    runtime = config.runtime
    check_directory_target(config.workdir, "--workdir")
    if runtime.teacher_cache not in ("auto", "off"):
        check_directory_target(runtime.teacher_cache, "--teacher_cache")
    finetuned_dir = getattr(config.teacher, "finetuned_dir", "")
    if finetuned_dir:
        check_directory_target(finetuned_dir, "--finetuned_teacher_dir")
    configure_cpu_replicas(runtime.cpu_replicas)
    strategy = make_strategy(runtime.strategy, runtime.tpu, runtime.cpu_replicas)
    index = worker_index(strategy)
    if (runtime.cpu_replicas > 1 or runtime.strategy == "multi_worker") and runtime.jit_compile:
        log("XLA cannot compile the cross-device reductions of CPU replicas or workers; training without --jit_compile")
        runtime = dataclasses.replace(runtime, jit_compile=False)
    keras.utils.set_random_seed(config.optim.seed)
    set_precision(runtime.mixed_precision)
    if runtime.deterministic:
        tf.config.experimental.enable_op_determinism()
    workdir = config.workdir if index == 0 else os.path.join(config.workdir, "launch", f"worker-{index}-scratch")
    if index:
        log(f"worker {index}: the chief writes {config.workdir}; this worker's copy goes to {workdir} (removed at the end)")
    with WorkdirLock(workdir), strategy.scope():
        record = RunFlags(workdir)
        changes = record.check(dict(flag_identity) if flag_identity is not None else identity(config),
                               resuming=_has_checkpoints(workdir), allow_changes=config.allow_changed)
        if changes:
            if flag_identity is not None:
                what, allowed, prefix = "flags", "--allow_changed_flags", "--"
            else:
                what, allowed, prefix = "settings", "allow_changed=True", ""
            log(f"{what} changed since this run started ({allowed}; recorded in results.json): "
                + ", ".join(f"{prefix}{c['flag']} {c['old']!r} → {c['new']!r}" for c in changes))
        yield RunContext(workdir, config.workdir, runtime, dict(flags) if flags is not None else None, record.changes())
    if index:
        shutil.rmtree(workdir, ignore_errors=True)


def _has_checkpoints(workdir: str) -> bool:
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.startswith("ckpt-") for name in os.listdir(directory))


def run(config: RunConfig, *, flags: Optional[Mapping[str, Any]] = None,
        flag_identity: Optional[Mapping[str, Any]] = None) -> RunResult:
    """Runs `config` as its `mode` says (`run_finetune` or `run_distill`).

    Args:
        config: the run.
        flags: a command's flag values, recorded in results.json (None from the API).
        flag_identity: the flags a resume must share (see `run_context`).
    """
    with run_context(config, flags, flag_identity) as context:
        # Inside the lock: resolving a task of your own files reads the whole training file, and a second run
        # into a busy workdir must be refused at once.
        task = resolve_task(config.data)
        if config.mode == "finetune":
            loaded = load_teacher(config.teacher.source, task.num_labels, context.workdir)
            build = None
            if config.finetune_model == "student":
                def build(train: TokenizedSplit) -> BertModel:
                    return make_student(config.student, loaded, task.num_labels, False, context.workdir,
                                        batches=_scoring_batches(config.student, train, config.data, config.optim.seed))
            elif loaded.fine_tuned:  # fine-tuning further a classifier that has a head: its classes must be these
                _check_head(loaded, task, config.teacher)
            return _finetune(context, config, task, context.workdir, loaded, config.optim.epochs,
                             config.optim.learning_rate, build_model=build)
        return _distill(context, config, task)


def run_finetune(config: RunConfig, **kwargs) -> RunResult:
    """Fine-tunes `config.teacher.source` (or, with `finetune_model='student'`, the student) on labels alone."""
    return run(dataclasses.replace(config, mode="finetune"), **kwargs)


def run_distill(config: RunConfig, **kwargs) -> RunResult:
    """Distils a student of `config.student` from `config.teacher` with `config.method`'s losses."""
    return run(dataclasses.replace(config, mode="distill"), **kwargs)


def _check_head(loaded: LoadedModel, task: GlueTask, teacher) -> None:
    """Refuses a classifier whose head was trained for other classes; reorders its head to the task's label order
    when its label names say the same classes in another order."""
    what = f"the teacher '{teacher.source}'"
    check_task(loaded.model, loaded.metadata, task, what, teacher.allow_task_mismatch)
    matched = match_label_order(loaded.model, loaded.metadata, task, what)
    if matched:
        log(matched)


def _obtain_teacher(context: RunContext, config: RunConfig, task: GlueTask) -> LoadedModel:
    """The fine-tuned teacher: loaded, or fine-tuned first into `teacher.finetuned_dir` (default <workdir>/teacher),
    which is locked meanwhile."""
    teacher = config.teacher
    loaded = load_teacher(teacher.source, task.num_labels, context.workdir)
    if loaded.fine_tuned:
        _check_head(loaded, task, teacher)
        return loaded
    directory = teacher.finetuned_dir or os.path.join(context.workdir, "teacher")
    # Runs may share --finetuned_teacher_dir. While one fine-tunes the teacher there, another is refused (as a
    # second run into a busy --workdir is) rather than fine-tune it again into the same files; re-run it once
    # the teacher is done, and it is reused. Only the chief locks: the other workers fine-tune in step with it.
    chief = context.workdir == context.chief_workdir
    with WorkdirLock(directory, "--finetuned_teacher_dir") if chief else contextlib.nullcontext():
        previous = read_metadata(os.path.join(directory, "model"))
        if previous is not None and os.path.exists(os.path.join(directory, "results.json")):
            if previous.task != task.name or previous.base != loaded.metadata.base:
                raise TfkdError(
                    f"{directory} holds a teacher fine-tuned from '{previous.base}' on '{previous.task}', not from "
                    f"'{loaded.metadata.base}' on '{task.name}'. Fix: pass another --finetuned_teacher_dir."
                )
            log(f"reusing the teacher fine-tuned earlier in {directory}/model")
        elif teacher.finetune_epochs <= 0:
            raise TfkdError(
                f"the teacher '{teacher.source}' has no trained classification head for {task.name}. Fix: pass "
                "--finetune_teacher_epochs=3 to fine-tune it first, or --teacher=<dir> of a teacher fine-tuned "
                "with `python -m tfkd.train --mode=finetune`."
            )
        else:
            log(f"fine-tuning the teacher '{teacher.source}' on {task.name} for {teacher.finetune_epochs} epochs")
            _finetune(context, config, task, directory, loaded, teacher.finetune_epochs, teacher.learning_rate)
    return load_teacher(os.path.join(directory, "model"), task.num_labels, context.workdir)


def _finetune(context: RunContext, config: RunConfig, task: GlueTask, workdir: str, loaded: LoadedModel, epochs: int,
              learning_rate: float,
              build_model: Optional[Callable[[TokenizedSplit], BertModel]] = None) -> RunResult:
    """Fine-tunes `loaded.model` on labels alone, or the model `build_model` makes from the training split."""
    data = config.data
    check_sequence_length(loaded.model, data.max_seq_length)
    tokenizer = make_tokenizer(loaded.vocab_path, loaded.lowercase)
    train, dev = load_data(task, tokenizer, data)
    if build_model is not None:
        loaded.model = build_model(train)
    metadata = ModelMetadata(task=task.name, label_names=list(task.label_names or ()), lowercase=loaded.lowercase,
                             base=loaded.metadata.base, role="teacher", max_seq_length=data.max_seq_length,
                             task_spec=task.to_dict())
    result, _ = _train(
        context, config, workdir=workdir, task=task, student=loaded.model, teacher=None,
        specs=[LossSpec("ce", "ce", 1.0, {})], train=train, dev=dev, vocab_path=loaded.vocab_path, metadata=metadata,
        epochs=epochs, learning_rate=learning_rate, kind="finetune",
    )
    return result


def _distill(context: RunContext, config: RunConfig, task: GlueTask) -> RunResult:
    data, workdir = config.data, context.workdir
    if config.augment.augmenters:
        check_augment(config.augment)
    teacher = _obtain_teacher(context, config, task)
    check_sequence_length(teacher.model, data.max_seq_length)
    tokenizer = make_tokenizer(teacher.vocab_path, teacher.lowercase)
    train, dev = load_data(task, tokenizer, data)
    # Everything downstream (student vocabulary, memory banks, the teacher cache) sees the enlarged set.
    augmented = (augment_training_set(config.augment, task, data, teacher, tokenizer, train, dev, config.optim.seed)
                 if config.augment.augmenters else None)
    if augmented:
        train = augmented.train
    specs = methods.method_losses(config.method, task=task.name, seed=config.optim.seed)
    teacher_attentions, student_attentions = needs_attentions(specs)
    chosen: Dict[str, Any] = {}
    student = make_student(config.student, teacher, task.num_labels, student_attentions, workdir,
                           batches=_scoring_batches(config.student, train, data, config.optim.seed), record=chosen)
    vocabulary = student_vocabulary(config.student, task, data, teacher, tokenizer, train, dev,
                                    os.path.join(workdir, STUDENT_VOCAB_FILE))
    if vocabulary:
        student = keep_tokens(student, vocabulary.trim.kept_ids)
    layer_map = parse_layer_map(list(config.method.layer_map) or _copied_layers(config.student, chosen),
                                teacher.model.num_layers, student.num_layers)
    teacher_model = teacher.model.with_outputs(teacher_attentions)
    metadata = ModelMetadata(task=task.name, label_names=list(task.label_names or ()), lowercase=teacher.lowercase,
                             base=teacher.metadata.base, role="student", max_seq_length=data.max_seq_length,
                             task_spec=task.to_dict(),
                             extra={"method": config.method.name, "teacher": config.teacher.source, **chosen}
                             | ({"vocab": vocabulary.summary} if vocabulary else {}))
    result, evaluator = _train(
        context, config, workdir=workdir, task=task, student=student, teacher=teacher_model, specs=specs, train=train,
        dev=vocabulary.dev if vocabulary else dev, vocab_path=vocabulary.path if vocabulary else teacher.vocab_path,
        teacher_vocab_path=teacher.vocab_path, transform=vocabulary.trim.transform if vocabulary else None,
        metadata=metadata, epochs=config.optim.epochs, learning_rate=config.optim.learning_rate,
        algorithm=config.method.algorithm, layer_map=layer_map, kind="distill", augmented=augmented,
    )
    # A trimmed student reads its own ids; the teacher is scored on its own.
    teacher_evaluator = evaluator if vocabulary is None else Evaluator(
        task, dev, data.eval_batch_size, jit_compile=context.runtime.eval_jit_compile,
        pad_to_multiple_of=data.pad_to_multiple_of)
    teacher_metrics = teacher_evaluator.evaluate(teacher.model)
    best_student, _, _ = load_model_dir(os.path.join(workdir, "model"))
    result.teacher = TeacherSummary(source=config.teacher.source, layers=teacher.model.num_layers,
                                    params=count_params(teacher.model), dev=teacher_metrics)
    result.comparison = [
        ComparisonRow(model=label, layers=model.num_layers, params=count_params(model), dev=metrics,
                      forward_examples_per_second=scorer.throughput(model))
        for label, model, metrics, scorer in (("teacher", teacher.model, teacher_metrics, teacher_evaluator),
                                              ("student (best dev)", best_student, result.best_dev, evaluator))
    ]
    if vocabulary:
        result.student.vocab = vocabulary.summary
    result.write(os.path.join(workdir, "results.json"))
    return result


def _scoring_batches(student: StudentConfig, train: TokenizedSplit, data: DataConfig, seed: int) -> Optional[tf.data.Dataset]:
    """The training batches a pruned start, or layers chosen by importance, are measured on; None when neither."""
    if not needs_batches(student):
        return None
    return make_dataset(train, data.batch_size, shuffle=True, seed=seed, pad_to_multiple_of=data.pad_to_multiple_of)


def _copied_layers(student: StudentConfig, chosen: Mapping[str, Any]) -> Optional[List[int]]:
    """The teacher layers the student's layers were copied from, which layer losses then pair them with by
    default; None (uniform) when no teacher-shaped source was copied or no layers were named."""
    if student.init not in ("teacher", "pruned", "pretrained"):
        return None
    layers = chosen.get("layers_from") or [int(x) for x in student.layers_from if str(x).isdigit()]
    return list(layers) or None


def _train(
    context: RunContext,
    config: RunConfig,
    *,
    workdir: str,
    task: GlueTask,
    student: BertModel,
    teacher: Optional[BertModel],
    specs: Sequence[LossSpec],
    train: TokenizedSplit,
    dev: TokenizedSplit,
    vocab_path: str,
    metadata: ModelMetadata,
    epochs: int,
    learning_rate: float,
    kind: str,
    algorithm: Optional[str] = None,
    layer_map=(),
    teacher_vocab_path: Optional[str] = None,
    transform: Optional[BatchTransform] = None,
    augmented: Optional[AugmentedTraining] = None,
) -> tuple:
    """Trains `student` with the losses `specs`; returns its `RunResult` (also written to results.json) and the
    dev `Evaluator`.

    `dev` and `vocab_path` are the student's (the vocabulary saved with it); the teacher cache is keyed by
    `teacher_vocab_path` (default: the same); `transform` is applied to every batched pass over `train`
    (a trimmed vocabulary's student ids). With `augmented`, `train` is its enlarged split: batches carry its
    gold mask, and the teacher cache lives in a folder of its own per augmented set."""
    data, runtime, method = config.data, context.runtime, config.method
    optim = dataclasses.replace(config.optim, epochs=epochs, learning_rate=learning_rate)
    steps = steps_per_epoch(train, data.batch_size)
    distiller = build_distiller(student, teacher, specs, layer_map, task.is_regression, train.labels,
                                freeze_layers=method.freeze_distilled,
                                augmented_examples=augmented.augmented_examples if augmented else 0)
    plan = methods.stage_plan(method, distiller, layer_map, steps, epochs)
    if algorithm is None:  # plain fine-tuning: one stage, whatever the method says
        algorithm, plan = "joint", dataclasses.replace(plan, final_steps=0)
    stages = build_stages(algorithm, plan)
    checkpoints = os.path.join(workdir, "checkpoints")
    trainer = Trainer(distiller, workdir, data=data, optim=optim, runtime=runtime, steps_per_epoch=steps, stages=stages,
                      total_steps=sum(stage.steps for stage in stages), restore_directory=context.chief_path(checkpoints))
    cache_directory = runtime.teacher_cache
    if augmented and cache_directory != "off":
        # Keyed on the augmented set: other augmentation settings get (and build) their own cache, never this one.
        base = os.path.join(workdir, "teacher_cache") if cache_directory == "auto" else cache_directory
        cache_directory = os.path.join(base, f"augmented-{augmented.fingerprint[:12]}")
    cache = trainer.teacher_cache(train, teacher_vocab_path or vocab_path, cache_directory, runtime.teacher_cache_dtype,
                                  known_tail=augmented.teacher_outputs if augmented else None)
    if augmented and cache is None and teacher is not None:
        log(f"the live teacher also labels the {augmented.augmented_examples} augmented examples at every step")
    extras = (cache.extras() if cache else {}) | ({GOLD: augmented.gold} if augmented else {}) or None
    trainer.prepare_losses(train, extras, transform)
    evaluator = Evaluator(task, dev, data.eval_batch_size, jit_compile=runtime.eval_jit_compile,
                          pad_to_multiple_of=data.pad_to_multiple_of)
    model_dir = os.path.join(workdir, "model")

    def save_best(epoch: int, metrics: Dict[str, float]) -> None:
        metadata.extra.update(best_epoch=epoch, dev_metrics=metrics)
        save_model_dir(model_dir, student, vocab_path, metadata)

    log(f"training {trainer.epochs} epochs x {steps} steps from {trainer.checkpoint.where(trainer.start_step)}; losses: "
        + ", ".join(f"{s.weight:g}*{s.name}" for s in specs) + f"; algorithm {algorithm}; stages: "
        + ", ".join(f"{s.name} ({s.steps} steps)" for s in stages))
    outcome = trainer.fit(train, extras=extras, transform=transform, evaluator=evaluator, save_best=save_best,
                          dev_history_path=os.path.join(workdir, "dev_history.json"))
    dev_eval = outcome.dev
    if dev_eval.best is None:  # resumed after the last epoch: score what was saved
        best_model, _, saved = load_model_dir(model_dir)
        dev_eval.best, dev_eval.best_epoch = evaluator.evaluate(best_model), saved.extra.get("best_epoch")
    last_metrics = dev_eval.history[-1] if dev_eval.history else {}
    result = RunResult(
        kind=kind,
        task=task.name,
        primary_metric=primary_metric(task),
        best_epoch=dev_eval.best_epoch,
        best_dev=dev_eval.best,
        last_dev={k: v for k, v in last_metrics.items() if k != "epoch"},
        dev_history=dev_eval.history,
        train_examples_per_second=outcome.throughput.examples_per_second(),
        epoch_seconds=outcome.throughput.epoch_seconds,
        wall_seconds=outcome.wall_seconds,
        train_examples=int(len(train.lengths)),
        padding_efficiency=padding_efficiency(train, data.batch_size, pad_to_multiple_of=data.pad_to_multiple_of),
        teacher_cache=None if cache is None else {
            "directory": cache.directory, "features": sorted(cache.features), "dtype": runtime.teacher_cache_dtype,
            "megabytes": cache.nbytes / 2**20, "built": cache.built, "seconds": trainer.cache_seconds,
        },
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        student={"layers": student.num_layers, "hidden_dim": student.hidden_dim, "params": count_params(student)},
        losses=[{"name": s.name, "key": s.key, "weight": s.weight, "args": s.args} for s in specs],
        algorithm=algorithm,
        layer_map=[list(p) for p in layer_map],
        augmentation=augmented.summary if augmented else None,
        task_spec=task.to_dict(),
        config=config.to_dict(),
        flags=context.flags,
        flag_changes=context.flag_changes,
    )
    result.write(os.path.join(workdir, "results.json"))
    return result, evaluator


def _pretrain_source(spec: str, workdir: str) -> LoadedModel:
    # The classification head plays no part here: a saved tfkd model keeps its
    # own (0 skips the class-count check), other sources get a 2-way placeholder.
    return load_teacher(spec, 0 if source_kind(spec) == "tfkd_model" else 2, workdir)


def run_pretrain(config: PretrainConfig, *, flags: Optional[Mapping[str, Any]] = None,
                 flag_identity: Optional[Mapping[str, Any]] = None) -> RunResult:
    """CoDIR's pre-training stage (METHODS.md §4): the student's MLM loss plus CoDIR on unlabelled text.

    The student lands in `<workdir>/model/`, a tfkd model directory that `student.init` of a
    distillation run can start from. See `tfkd.cli.pretrain` for what differs from the paper.
    """
    with run_context(config, flags, flag_identity) as context:
        return _pretrain(context, config)


def _pretrain(context: RunContext, config: PretrainConfig) -> RunResult:
    data, workdir, runtime = config.data, context.workdir, context.runtime
    results_path, model_dir = os.path.join(workdir, "results.json"), os.path.join(workdir, "model")
    teacher = _pretrain_source(config.teacher.source, workdir)
    tokenizer = make_tokenizer(teacher.vocab_path, teacher.lowercase)
    examples = load_pretraining_texts(config.text_file, data.task, data.glue_dir, data.max_train_examples)
    corpus = tokenize(examples, tokenizer, data.max_seq_length)
    log(f"corpus {examples.source}: {len(corpus)} texts, mean length {corpus.lengths.mean():.1f} tokens, "
        f"{corpus.num_truncated} truncated to {data.max_seq_length}; padding efficiency "
        f"{padding_efficiency(corpus, data.batch_size, pad_to_multiple_of=data.pad_to_multiple_of):.3f}")
    check_sequence_length(teacher.model, data.max_seq_length)
    if config.student.init == "pretrained" and not teacher.fine_tuned:
        # An encoder that is not fine-tuned is its own pretrained source.
        student_config = dataclasses.replace(config.student, init="teacher")
    else:
        student_config = config.student
    student = make_student(student_config, teacher, teacher.model.num_classes, False, workdir,
                           batches=_scoring_batches(student_config, corpus, data, config.optim.seed))
    layer_map = parse_layer_map(list(config.method.layer_map) or None, teacher.model.num_layers, student.num_layers)
    context_ = loss_context(student, teacher.model, layer_map, num_train_examples=len(corpus))
    specs = [s for s in methods.method_losses(config.method, seed=config.optim.seed) if s.weight > 0]
    terms = [(s.name, make_loss(s, context_, **({"token_embedding": student.get_layer("token_embedding")}
                                                if s.key == "mlm" else {})), s.weight) for s in specs]
    log(NO_MLM_KD)
    mlm_heads = [loss.head for _, loss, _ in terms if isinstance(loss, MaskedLMLoss)]
    uses_teacher = any(LOSSES.get(s.key).teacher_needs for s in specs)
    distiller = Distiller(student, teacher.model if uses_teacher else None, terms, num_pairs=max(len(layer_map), 1))
    steps = steps_per_epoch(corpus, data.batch_size)
    # Epoch-end checkpoints only: masks follow the order of the batches from where
    # iteration starts (see mask_batches), so a mid-epoch position would not replay.
    trainer = Trainer(distiller, workdir, data=data, optim=config.optim, runtime=runtime, steps_per_epoch=steps,
                      step_checkpoints=False,
                      restore_directory=context.chief_path(os.path.join(workdir, "checkpoints")))
    masking = MaskingConfig.for_tokenizer(tokenizer, data.max_seq_length, config.mlm.probability,
                                          config.mlm.mask_token_rate, config.mlm.random_token_rate)
    # Masked like the training batches (own seed): the bank must hold the same kind
    # of teacher vectors as the positives it is contrasted with.
    trainer.prepare_losses(corpus, transform=lambda ds: mask_batches(ds, masking, seed=config.optim.seed + 1))
    log(f"pre-training {trainer.epochs} epochs x {steps} steps from epoch {trainer.start_epoch + 1}; losses: "
        + ", ".join(f"{w:g}*{n}" for n, _, w in terms) + f"; {masking.max_predictions} predictions per example at most")
    outcome = trainer.fit(corpus, transform=lambda ds: mask_batches(ds, masking, seed=config.optim.seed))
    finished_before = outcome.start_step and not outcome.history and os.path.exists(results_path)
    saved = read_metadata(model_dir) if finished_before else None
    if finished_before and (saved is None or HEAD_METADATA_KEY in saved.extra or not mlm_heads):
        log(f"already trained for {trainer.epochs} epochs; the model is in {model_dir}")
        return RunResult.read(results_path)
    extra = {"stage": PRETRAIN_STAGE, "teacher": config.teacher.source, "corpus": examples.source,
             "epochs": config.optim.epochs, "losses": {name: weight for name, _, weight in terms},
             "mlm_logit_kd": False}
    os.makedirs(model_dir, exist_ok=True)
    if mlm_heads:  # for --augment=mlm (tfkd.models.masked_lm)
        extra[HEAD_METADATA_KEY] = save_head(model_dir, mlm_heads[0])
    metadata = ModelMetadata(task="", lowercase=teacher.lowercase, base=teacher.metadata.base, role="student",
                             max_seq_length=data.max_seq_length, extra=extra)
    save_model_dir(model_dir, student, teacher.vocab_path, metadata)
    if finished_before:
        # A run made before tfkd saved the MLM head: its last checkpoint (just restored) holds it.
        log(f"already trained for {trainer.epochs} epochs; wrote its masked-LM head to {model_dir}/{HEAD_FILE}")
        return RunResult.read(results_path)
    history = outcome.history
    loss_history = [
        {"epoch": trainer.start_epoch + i + 1, **{name: float(history[f"loss_{name}"][i]) for name, _, _ in terms},
         "total": float(history["loss"][i])}
        for i in range(len(history.get("loss", [])))
    ]
    result = RunResult(
        kind="pretrain",
        task=data.task,
        train_examples=int(len(corpus)),
        train_examples_per_second=outcome.throughput.examples_per_second(),
        epoch_seconds=outcome.throughput.epoch_seconds,
        wall_seconds=outcome.wall_seconds,
        padding_efficiency=padding_efficiency(corpus, data.batch_size, pad_to_multiple_of=data.pad_to_multiple_of),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        student={"layers": student.num_layers, "hidden_dim": student.hidden_dim, "params": count_params(student)},
        teacher={"source": config.teacher.source, "layers": teacher.model.num_layers,
                 "params": count_params(teacher.model)},
        losses=[{"name": s.name, "key": s.key, "weight": s.weight, "args": s.args} for s in specs],
        layer_map=[list(p) for p in layer_map],
        config=config.to_dict(),
        flags=context.flags,
        flag_changes=context.flag_changes,
        pretrain=PretrainSummary(corpus=examples.source, loss_history=loss_history, mlm_logit_kd=NO_MLM_KD,
                                 max_predictions_per_example=masking.max_predictions, model_dir=model_dir),
    )
    result.write(results_path)
    return result
