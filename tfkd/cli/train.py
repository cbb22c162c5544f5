"""`python -m tfkd.train`: fine-tune a teacher, or distil a student from it.

Examples:
    python -m tfkd.train --flagfile=configs/demo.flags          # offline demo
    python -m tfkd.train --flagfile=configs/teacher_mrpc.flags --glue_dir=../shared/glue
    python -m tfkd.train --flagfile=configs/codir.flags --glue_dir=../shared/glue

Every run writes into `--workdir`: `model/` (the best-dev model, a tfkd model
directory), `checkpoints/`, `logs/` (TensorBoard), `dev_history.json` and
`results.json`.

Fault tolerance: checkpoints (every `--checkpoint_every_steps` steps and at
every epoch end) hold the whole training state, and re-running the same
command resumes at the exact step. SIGTERM saves a checkpoint at the next step
boundary and exits with status 75 (`EXIT_PREEMPTED`), Ctrl-C likewise with
status 130 (`EXIT_INTERRUPTED`); a non-finite loss stops training with status
2, naming the term and the step, and keeps the last good checkpoint.

A run owns its workdir (`<workdir>/.lock`: a second run into it is refused)
and records its flags there (`run_flags.json`): resuming with flags that
change the run is refused unless `--allow_changed_flags`.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import sys
import time
from typing import Dict, Optional, Tuple

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)

import keras
import numpy as np
import tensorflow as tf

from tfkd.cli import flags as cli_flags
from tfkd.training import methods
from tfkd.training.callbacks import DevEvaluation, PreemptionSignal, Throughput, TrainingCheckpoint
from tfkd.cli.flags import log
from tfkd.data import load_split, make_tokenizer
from tfkd.data.pipeline import TokenizedSplit, make_dataset, padding_efficiency, steps_per_epoch, tokenize
from tfkd.data.tasks import GlueTask, get_task
from tfkd.distill import Distiller, StageScheduler, build_stages, make_optimizer
from tfkd.distill.teacher_cache import DTYPES as CACHE_DTYPES
from tfkd.distill.teacher_cache import TeacherCache, cacheable_features, load_or_build
from tfkd.core.errors import TfkdError, TrainingPreempted
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.metrics import primary_metric
from tfkd.core.jsonfile import write_json
from tfkd.runtime.precision import set_precision
from tfkd.runtime.strategy import configure_cpu_replicas, make_strategy, worker_index
from tfkd.training.workdir import RunFlags, WorkdirLock, check_directory_target
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import (
    BertModel,
    LoadedModel,
    ModelMetadata,
    StudentShape,
    build_student,
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
from tfkd.models.student import initialize_from, load_init_source

FLAGS = flags.FLAGS

# --- what to do -----------------------------------------------------------------------------
flags.DEFINE_enum("mode", "distill", ["distill", "finetune"], "distill: train a student from a teacher; finetune: train one model on labels alone.")
flags.DEFINE_enum("finetune_model", "teacher", ["teacher", "student"], "With --mode=finetune: fine-tune the --teacher, or the student built from the --student_* flags (the no-teacher baseline).")
flags.DEFINE_string("workdir", None, "Output directory (model/, checkpoints/, logs/, results.json).")
# --- data -----------------------------------------------------------------------------------
flags.DEFINE_string("task", "sst2", "GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli) or 'synthetic'.")
flags.DEFINE_string("glue_dir", None, "Directory of the original GLUE TSV files (the task folder or its parent). Without it, tensorflow-datasets' glue/<task> is used.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples (a documented subset).", lower_bound=1)
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.", lower_bound=1)
cli_flags.define_batch_flags()
# --- models ---------------------------------------------------------------------------------
flags.DEFINE_string("teacher", "minilm", "Teacher: 'minilm' (packaged, offline), a keras-hub preset, a Hugging Face BERT directory, or a tfkd model directory / .keras file.")
flags.DEFINE_integer("finetune_teacher_epochs", 0, "Distil mode with a teacher whose head is untrained: fine-tune it this many epochs first (into <workdir>/teacher; reused on re-runs).")
flags.DEFINE_string("finetuned_teacher_dir", "", "Where the teacher fine-tuned by --finetune_teacher_epochs lives (default <workdir>/teacher); several runs can share one.")
flags.DEFINE_float("teacher_learning_rate", 5e-5, "Peak learning rate of that teacher fine-tuning.")
flags.DEFINE_bool("allow_task_mismatch", False, "Distil from a --teacher whose metadata says it was fine-tuned on another task (its classes must really be this task's).")
flags.DEFINE_string("student_init", "pretrained", "pretrained: copy from the teacher's pretrained source (e.g. MiniLM before fine-tuning); teacher: copy from the (fine-tuned) teacher; random; or a tfkd model directory (e.g. a CoDIR pre-training output) or a Hugging Face BERT directory (e.g. a compact pretrained BERT) with the teacher's vocabulary.")
cli_flags.define_student_flags()
flags.DEFINE_float("dropout", 0.1, "Dropout of the model being trained.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("teacher_cache", "auto", "auto: when every loss reads only per-example teacher outputs (kd logits, CoDIR/ACKD summary vectors, [CLS] vectors), compute them once into <workdir>/teacher_cache and train without running the teacher; off: run the teacher every step; or a directory, which runs with the same teacher and data can share. A cache made for another teacher, vocabulary, data or max length is refused.")
flags.DEFINE_enum("teacher_cache_dtype", "float32", list(CACHE_DTYPES), "Storage of the teacher cache; float16 halves its memory.")
# --- optimisation ---------------------------------------------------------------------------
flags.DEFINE_integer("epochs", 3, "Training epochs (for progressive/stacked: derived from the stage flags when 0).")
cli_flags.define_optimization_flags(learning_rate=5e-5)
flags.DEFINE_integer("seed", 1, "Random seed (data order, initialisation, dropout).")
cli_flags.define_runtime_flags()
flags.DEFINE_bool("eval_jit_compile", False, "Also compile dev evaluation with XLA (pays off only for large dev sets: each padded length costs a compile).")
flags.DEFINE_integer("checkpoint_every_steps", 500, "Also checkpoint every N steps within an epoch (0: at epoch ends only); a re-run resumes at the exact step.")
flags.DEFINE_bool("deterministic", False, "Deterministic TensorFlow ops (tf.config.experimental.enable_op_determinism): bit-identical reruns, slower on GPU.")
flags.DEFINE_bool("allow_changed_flags", False, "Resume the checkpoints in --workdir although flags that change the run differ from the ones it started with (results.json records old and new values).")

methods.define_flags()

# Flags that say where outputs go, how fast or how observably a run goes: a
# resume may change them (every other flag must match, see --allow_changed_flags).
RUN_INDEPENDENT_FLAGS = frozenset({
    "workdir", "finetuned_teacher_dir", "teacher_cache", "eval_batch_size", "eval_jit_compile", "jit_compile",
    "deterministic", "strategy", "tpu", "cpu_replicas", "tensorboard_update_freq", "checkpoint_every_steps",
    "allow_changed_flags", "allow_task_mismatch",
})


def flag_values() -> Dict:
    """Every flag of this command and the method flags, by name (what results.json records)."""
    return {f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__])} | methods.flag_values(FLAGS)


def load_data(task: GlueTask, tokenizer, max_train_examples: Optional[int]) -> Tuple[TokenizedSplit, TokenizedSplit]:
    train = tokenize(load_split(task, "train", FLAGS.glue_dir, max_examples=max_train_examples), tokenizer, FLAGS.max_seq_length)
    dev = tokenize(load_split(task, "dev", FLAGS.glue_dir), tokenizer, FLAGS.max_seq_length)
    efficiency = padding_efficiency(train, FLAGS.batch_size, pad_to_multiple_of=FLAGS.pad_to_multiple_of)
    log(
        f"{task.name}: {len(train.lengths)} train / {len(dev.lengths)} dev examples, "
        f"mean length {train.lengths.mean():.1f} tokens, {train.num_truncated} truncated to {FLAGS.max_seq_length}; "
        f"padding efficiency {efficiency:.3f} (real / padded tokens, batch {FLAGS.batch_size})"
    )
    return train, dev


def build_distiller(
    student: BertModel,
    teacher: Optional[BertModel],
    loss_specs,
    layer_map,
    is_regression: bool,
    train_labels: np.ndarray,
    freeze_layers: bool = False,
) -> Distiller:
    """The `Distiller` of `loss_specs` (`(name, key, weight, args)`, see `methods.method_losses`)."""
    context = DistillContext(
        teacher=ModelSpec(teacher.num_layers, teacher.hidden_dim, teacher.num_heads) if teacher else ModelSpec(0, 0, 0),
        student=ModelSpec(student.num_layers, student.hidden_dim, student.num_heads),
        layer_map=tuple(layer_map),
        num_classes=student.num_classes,
        is_regression=is_regression,
        num_train_examples=len(train_labels),
        train_labels=train_labels,
    )
    losses = [(name, _make_loss(key, context, name, kwargs), weight) for name, key, weight, kwargs in loss_specs]
    return Distiller(student, teacher, losses, eval_loss=LOSSES.get("ce")(context, name="dev_ce"),
                     num_pairs=max(len(layer_map), 1), freeze_layers=freeze_layers)


def _make_loss(key: str, context: DistillContext, name: str, kwargs: Dict):
    # A value of the wrong type or range (from --loss_args or a method flag)
    # fails inside the loss's constructor; name the loss and what it was given.
    try:
        return LOSSES.get(key)(context, name=name, **kwargs)
    except (TypeError, ValueError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise TfkdError(f"loss '{name}' ({key}) rejects {given}: {e}. Fix: correct that --loss_args entry or method flag.") from None


def train_model(
    *,
    workdir: str,
    task: GlueTask,
    student: BertModel,
    teacher: Optional[BertModel],
    loss_specs,
    train: TokenizedSplit,
    dev: TokenizedSplit,
    vocab_path: str,
    metadata: ModelMetadata,
    epochs: int,
    learning_rate: float,
    algorithm: Optional[str] = None,
    layer_map=(),
) -> Tuple[Dict, Evaluator]:
    """Trains `student` with the given losses; returns the results dict (also written to results.json)
    and the dev `Evaluator`."""
    steps = steps_per_epoch(train, FLAGS.batch_size)
    distiller = build_distiller(student, teacher, loss_specs, layer_map, task.is_regression, train.labels,
                                freeze_layers=FLAGS.freeze_distilled)
    plan = methods.stage_plan(FLAGS, distiller, layer_map, steps, epochs)
    if algorithm is None:  # plain fine-tuning: one stage, whatever the method flags say
        algorithm, plan = "joint", dataclasses.replace(plan, final_steps=0)
    stages = build_stages(algorithm, plan)
    total_steps = sum(stage.steps for stage in stages)
    epochs = -(-total_steps // steps)
    distiller.compile(
        optimizer=make_optimizer(learning_rate, total_steps, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm),
        jit_compile=FLAGS.jit_compile,
    )
    checkpoints = os.path.join(workdir, "checkpoints")
    checkpoint = TrainingCheckpoint(checkpoints, distiller, steps, every_steps=FLAGS.checkpoint_every_steps,
                                    restore_directory=_chief_path(checkpoints))
    distiller.build_for_restore()
    start_step = checkpoint.restore()
    start_epoch = start_step // steps
    cache_start = time.perf_counter()
    cache = teacher_cache(distiller, train, vocab_path, workdir)
    cache_seconds = time.perf_counter() - cache_start
    extras = cache.extras() if cache else None
    if start_step == 0:
        distiller.prepare_losses(
            make_dataset(train, FLAGS.eval_batch_size, shuffle=False, seed=FLAGS.seed, extras=extras),
            steps_per_epoch(train, FLAGS.eval_batch_size),
        )

    evaluator = Evaluator(task, dev, FLAGS.eval_batch_size, jit_compile=FLAGS.eval_jit_compile)
    model_dir = os.path.join(workdir, "model")

    def save_best(epoch: int, metrics: Dict[str, float]) -> None:
        metadata.extra.update(best_epoch=epoch, dev_metrics=metrics)
        save_model_dir(model_dir, student, vocab_path, metadata)

    dev_eval = DevEvaluation(evaluator, lambda: student, save_best, os.path.join(workdir, "dev_history.json"))
    dev_eval.restore(start_epoch)
    throughput = Throughput(FLAGS.batch_size)
    callbacks = [
        StageScheduler(distiller, stages, initial_step=start_step),
        throughput,
        dev_eval,
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs"), update_freq=FLAGS.tensorboard_update_freq),
        checkpoint,
    ]
    log(f"training {epochs} epochs x {steps} steps from {checkpoint.where(start_step)}; losses: "
        + ", ".join(f"{w:g}*{n}" for n, _, w, _ in loss_specs) + f"; algorithm {algorithm}; stages: "
        + ", ".join(f"{s.name} ({s.steps} steps)" for s in stages))
    start = time.perf_counter()
    with PreemptionSignal() as preemption:
        checkpoint.preemption = preemption
        fit_from(distiller, train, start_step, steps, epochs, callbacks, extras)
        if preemption.requested and checkpoint.step < epochs * steps:  # stopped at an epoch end
            raise TrainingPreempted(f"{preemption.signal_name}: saved checkpoint {checkpoint.manager.latest_checkpoint} "
                                    f"at {checkpoint.where(checkpoint.step)}", preemption.signal_name)
    wall = time.perf_counter() - start
    if dev_eval.best is None:  # resumed after the last epoch: score what was saved
        best_model, _, saved = load_model_dir(model_dir)
        dev_eval.best, dev_eval.best_epoch = evaluator.evaluate(best_model), saved.extra.get("best_epoch")
    last_metrics = dev_eval.history[-1] if dev_eval.history else {}
    results = {
        "task": task.name,
        "primary_metric": primary_metric(task),
        "best_epoch": dev_eval.best_epoch,
        "best_dev": dev_eval.best,
        "last_dev": {k: v for k, v in last_metrics.items() if k != "epoch"},
        "dev_history": dev_eval.history,
        "train_examples_per_second": throughput.examples_per_second(),
        "epoch_seconds": throughput.epoch_seconds,
        "wall_seconds": wall,
        "train_examples": int(len(train.lengths)),
        "padding_efficiency": padding_efficiency(train, FLAGS.batch_size, pad_to_multiple_of=FLAGS.pad_to_multiple_of),
        "teacher_cache": None if cache is None else {
            "directory": cache.directory, "features": sorted(cache.features), "dtype": FLAGS.teacher_cache_dtype,
            "megabytes": cache.nbytes / 2**20, "built": cache.built, "seconds": cache_seconds,
        },
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "student": {"layers": student.num_layers, "hidden_dim": student.hidden_dim, "params": count_params(student)},
        "losses": [{"name": n, "key": k, "weight": w, "args": a} for n, k, w, a in loss_specs],
        "algorithm": algorithm,
        "layer_map": [list(p) for p in layer_map],
        "flags": flag_values(),
        "flag_changes": RunFlags(workdir).changes(),
    }
    write_json(os.path.join(workdir, "results.json"), results)
    return results, evaluator


def teacher_cache(distiller: Distiller, train: TokenizedSplit, vocab_path: str, workdir: str) -> Optional[TeacherCache]:
    """The teacher-output cache this run trains from (`--teacher_cache`), or None when the teacher runs live."""
    if FLAGS.teacher_cache == "off" or distiller.teacher is None:
        return None
    features, blockers = cacheable_features(distiller.loss_layers)
    if features is None:
        log(f"teacher cache: not used, {', '.join(blockers)} read token-level teacher states; the teacher runs every step")
        return None
    if not features:
        return None
    directory = os.path.join(workdir, "teacher_cache") if FLAGS.teacher_cache == "auto" else FLAGS.teacher_cache
    cache = load_or_build(directory, distiller.teacher, vocab_path, train, features, FLAGS.teacher_cache_dtype, FLAGS.eval_batch_size)
    log(f"teacher cache: {'computed' if cache.built else 'loaded'} {', '.join(features)} for {len(train)} examples "
        f"({cache.nbytes / 2**20:.1f} MB {FLAGS.teacher_cache_dtype}) in {directory}; the teacher does not run during training")
    return cache


# MultiWorkerMirroredStrategy: worker k > 0 writes into a scratch copy of the workdir.
_worker = {"index": 0, "workdir": ""}


def _chief_path(path: str) -> str:
    """Where the chief keeps what this worker keeps at `path` (the same path on the chief itself)."""
    if not _worker["index"]:
        return path
    return os.path.join(FLAGS.workdir, os.path.relpath(path, _worker["workdir"]))


def fit_from(
    distiller: Distiller, train: TokenizedSplit, start_step: int, steps: int, epochs: int, callbacks, extras=None
) -> None:
    """Trains from global step `start_step` to the end of epoch `epochs` with Keras `fit`.

    Resumed mid-epoch, a first `fit` runs the rest of that epoch (its dataset
    starts at the next batch of the epoch's plan), so Keras still ends it with
    the epoch's callbacks (dev evaluation, checkpoint); a second `fit` runs the
    remaining whole epochs.
    """
    def fit(first_epoch: int, end_epoch: int, skip: int) -> None:
        ds = make_dataset(train, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed, epochs=end_epoch,
                          start_epoch=first_epoch, start_step=skip, pad_to_multiple_of=FLAGS.pad_to_multiple_of,
                          extras=extras)
        distiller.fit(ds, epochs=end_epoch, initial_epoch=first_epoch, steps_per_epoch=steps - skip,
                      callbacks=callbacks, shuffle=False, verbose=2 if not sys.stdout.isatty() else 1)

    epoch, batch = divmod(start_step, steps)
    if batch:
        log(f"finishing epoch {epoch + 1}: its batches {batch + 1}..{steps}")
        fit(epoch, epoch + 1, batch)
        epoch += 1
        if distiller.stop_training:  # preempted at the epoch's end
            return
    if epoch < epochs:
        fit(epoch, epochs, 0)


def obtain_teacher(task: GlueTask, workdir: str) -> LoadedModel:
    """The fine-tuned teacher: loaded, or fine-tuned first into <workdir>/teacher."""
    loaded = load_teacher(FLAGS.teacher, task.num_labels, workdir)
    if loaded.fine_tuned:
        what = f"the teacher '{FLAGS.teacher}'"
        check_task(loaded.model, loaded.metadata, task, what, FLAGS.allow_task_mismatch)
        matched = match_label_order(loaded.model, loaded.metadata, task, what)
        if matched:
            log(matched)
        return loaded
    teacher_dir = FLAGS.finetuned_teacher_dir or os.path.join(workdir, "teacher")
    previous = read_metadata(os.path.join(teacher_dir, "model"))
    if previous is not None and os.path.exists(os.path.join(teacher_dir, "results.json")):
        if previous.task != task.name or previous.base != loaded.metadata.base:
            raise TfkdError(
                f"{teacher_dir} holds a teacher fine-tuned from '{previous.base}' on '{previous.task}', not from "
                f"'{loaded.metadata.base}' on '{task.name}'. Fix: pass another --finetuned_teacher_dir."
            )
        log(f"reusing the teacher fine-tuned earlier in {teacher_dir}/model")
        return load_teacher(os.path.join(teacher_dir, "model"), task.num_labels, workdir)
    if FLAGS.finetune_teacher_epochs <= 0:
        raise TfkdError(
            f"the teacher '{FLAGS.teacher}' has no trained classification head for {task.name}. Fix: pass "
            "--finetune_teacher_epochs=3 to fine-tune it first, or --teacher=<dir> of a teacher fine-tuned "
            "with `python -m tfkd.train --mode=finetune`."
        )
    log(f"fine-tuning the teacher '{FLAGS.teacher}' on {task.name} for {FLAGS.finetune_teacher_epochs} epochs")
    finetune(task, teacher_dir, loaded, FLAGS.finetune_teacher_epochs, FLAGS.teacher_learning_rate)
    return load_teacher(os.path.join(teacher_dir, "model"), task.num_labels, workdir)


def finetune(task: GlueTask, workdir: str, loaded: LoadedModel, epochs: int, learning_rate: float) -> Dict:
    check_sequence_length(loaded.model, FLAGS.max_seq_length)
    tokenizer = make_tokenizer(loaded.vocab_path, loaded.lowercase)
    train, dev = load_data(task, tokenizer, FLAGS.max_train_examples)
    metadata = ModelMetadata(task=task.name, label_names=list(task.label_names or ()), lowercase=loaded.lowercase,
                             base=loaded.metadata.base, role="teacher", max_seq_length=FLAGS.max_seq_length)
    results, _ = train_model(
        workdir=workdir, task=task, student=loaded.model, teacher=None, loss_specs=[("ce", "ce", 1.0, {})],
        train=train, dev=dev, vocab_path=loaded.vocab_path, metadata=metadata, epochs=epochs, learning_rate=learning_rate,
    )
    return results


def make_student(teacher: LoadedModel, num_classes: int, output_attentions: bool) -> BertModel:
    config = StudentShape(FLAGS.student_layers, FLAGS.student_hidden_dim, FLAGS.student_heads, FLAGS.student_intermediate_dim, FLAGS.dropout)
    layers_from = cli_flags.int_list(FLAGS.student_layers_from)
    student = build_student(config, like=teacher.model, output_attentions=output_attentions)
    if FLAGS.student_init == "random":
        return student
    if FLAGS.student_init == "teacher":
        source = teacher.model
    elif FLAGS.student_init == "pretrained":
        if not teacher.metadata.base:
            raise TfkdError("--student_init=pretrained needs to know the teacher's pretrained source, which its metadata lacks. Fix: pass --student_init=teacher or random.")
        source = load_teacher(teacher.metadata.base, num_classes, FLAGS.workdir).model
    else:
        source = load_init_source(FLAGS.student_init, teacher.vocab_path)
        if source.num_layers == student.num_layers:
            # A student-sized source (e.g. a CoDIR pre-training output) is copied layer for layer.
            if layers_from and layers_from != list(range(1, student.num_layers + 1)):
                log(f"--student_init={FLAGS.student_init} has the student's {student.num_layers} layers: copying them 1:1, ignoring --student_layers_from")
            layers_from = list(range(1, student.num_layers + 1))
    initialize_from(student, source, layers_from)
    return student


def distill(task: GlueTask, workdir: str) -> Dict:
    teacher = obtain_teacher(task, workdir)
    check_sequence_length(teacher.model, FLAGS.max_seq_length)
    tokenizer = make_tokenizer(teacher.vocab_path, teacher.lowercase)
    train, dev = load_data(task, tokenizer, FLAGS.max_train_examples)
    method = methods.method_losses(FLAGS)
    needs_teacher_attn = any("attentions" in LOSSES.get(key).teacher_needs for _, key, _, _ in method)
    needs_student_attn = any("attentions" in LOSSES.get(key).student_needs for _, key, _, _ in method)
    student = make_student(teacher, task.num_labels, needs_student_attn)
    layer_map = parse_layer_map(FLAGS.layer_map, teacher.model.num_layers, student.num_layers)
    teacher_model = teacher.model.with_outputs(needs_teacher_attn)
    metadata = ModelMetadata(task=task.name, label_names=list(task.label_names or ()), lowercase=teacher.lowercase,
                             base=teacher.metadata.base, role="student", max_seq_length=FLAGS.max_seq_length,
                             extra={"method": FLAGS.method, "teacher": FLAGS.teacher})
    results, evaluator = train_model(
        workdir=workdir, task=task, student=student, teacher=teacher_model, loss_specs=method, train=train, dev=dev,
        vocab_path=teacher.vocab_path, metadata=metadata, epochs=FLAGS.epochs, learning_rate=FLAGS.learning_rate,
        algorithm=FLAGS.algorithm, layer_map=layer_map,
    )
    teacher_metrics = evaluator.evaluate(teacher.model)
    best_student, _, _ = load_model_dir(os.path.join(workdir, "model"))
    rows = [
        ("teacher", teacher.model, teacher_metrics),
        ("student (best dev)", best_student, results["best_dev"]),
    ]
    results["teacher"] = {"source": FLAGS.teacher, "layers": teacher.model.num_layers, "params": count_params(teacher.model), "dev": teacher_metrics}
    results["comparison"] = []
    print("\n" + f"{'model':<20}{'layers':>7}{'params':>12}" + "".join(f"{m:>12}" for m in teacher_metrics) + f"{'fwd ex/s':>10}")
    for label, model, metrics in rows:
        speed = evaluator.throughput(model)
        results["comparison"].append({"model": label, "params": count_params(model), "dev": metrics, "forward_examples_per_second": speed})
        print(f"{label:<20}{model.num_layers:>7}{count_params(model):>12,}" + "".join(f"{100 * metrics[m]:>12.2f}" for m in teacher_metrics) + f"{speed:>10.0f}")
    write_json(os.path.join(workdir, "results.json"), results)
    return results


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if not FLAGS.workdir:
        raise TfkdError("--workdir is required. Fix: pass --workdir=<output directory>.")
    check_directory_target(FLAGS.workdir, "--workdir")
    if FLAGS.teacher_cache not in ("auto", "off"):
        check_directory_target(FLAGS.teacher_cache, "--teacher_cache")
    if FLAGS.finetuned_teacher_dir:
        check_directory_target(FLAGS.finetuned_teacher_dir, "--finetuned_teacher_dir")
    configure_cpu_replicas(FLAGS.cpu_replicas)
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs anything else.
    strategy = make_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.cpu_replicas)
    index = worker_index(strategy)
    if (FLAGS.cpu_replicas > 1 or FLAGS.strategy == "multi_worker") and FLAGS.jit_compile:
        log("XLA cannot compile the cross-device reductions of CPU replicas or workers; training without --jit_compile")
        FLAGS.jit_compile = False
    keras.utils.set_random_seed(FLAGS.seed)
    set_precision(FLAGS.mixed_precision)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    task = get_task(FLAGS.task)
    workdir = FLAGS.workdir if index == 0 else os.path.join(FLAGS.workdir, "launch", f"worker-{index}-scratch")
    _worker.update(index=index, workdir=workdir)
    if index:
        log(f"worker {index}: the chief writes {FLAGS.workdir}; this worker's copy goes to {workdir} (removed at the end)")
    with WorkdirLock(workdir), strategy.scope():
        run_flags = {name: value for name, value in flag_values().items() if name not in RUN_INDEPENDENT_FLAGS}
        changes = RunFlags(workdir).check(run_flags, resuming=_has_checkpoints(workdir), allow_changes=FLAGS.allow_changed_flags)
        if changes:
            log("flags changed since this run started (--allow_changed_flags; recorded in results.json): "
                + ", ".join(f"--{c['flag']} {c['old']!r} → {c['new']!r}" for c in changes))
        results = _run(task, workdir)
    if index:
        shutil.rmtree(workdir, ignore_errors=True)
    best = results["best_dev"]
    log(f"done: best dev {primary_metric(task)} {100 * best[primary_metric(task)]:.2f} (epoch {results['best_epoch']}); results in {os.path.join(FLAGS.workdir, 'results.json')}")


def _has_checkpoints(workdir: str) -> bool:
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.startswith("ckpt-") for name in os.listdir(directory))


def _run(task: GlueTask, workdir: str) -> Dict:
    if FLAGS.mode == "finetune":
        loaded = load_teacher(FLAGS.teacher, task.num_labels, workdir)
        if FLAGS.finetune_model == "student":
            loaded.model = make_student(loaded, task.num_labels, output_attentions=False)
        return finetune(task, workdir, loaded, FLAGS.epochs, FLAGS.learning_rate)
    return distill(task, workdir)


def run() -> None:
    """Console entry point: user errors print one clear line and exit 2, without a traceback;
    a run stopped by SIGTERM exits with `EXIT_PREEMPTED` (75), one stopped by Ctrl-C with
    `EXIT_INTERRUPTED` (130), once its checkpoint is saved."""
    try:
        cli_flags.run_cli(main)
    except TrainingPreempted as e:
        what = "interrupted" if e.signal_name == "SIGINT" else "preempted"
        log(f"{what}: {e}; exiting with status {e.exit_status}. Re-run the same command to resume.")
        sys.exit(e.exit_status)


if __name__ == "__main__":
    run()
