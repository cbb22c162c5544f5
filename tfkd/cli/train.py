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
import sys
from typing import Dict

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)
from tfkd.cli import flags as cli_flags
from tfkd.cli import method_flags
from tfkd.core.errors import TfkdError, TrainingPreempted
from tfkd.core.log import log
from tfkd.distill.teacher_cache import DTYPES as CACHE_DTYPES
from tfkd.training import api
from tfkd.training.config import AugmentConfig, DataConfig, RunConfig, TeacherConfig
from tfkd.training.results import RunResult

FLAGS = flags.FLAGS

# --- what to do -----------------------------------------------------------------------------
flags.DEFINE_enum("mode", "distill", ["distill", "finetune"], "distill: train a student from a teacher; finetune: train one model on labels alone.")
flags.DEFINE_enum("finetune_model", "teacher", ["teacher", "student"], "With --mode=finetune: fine-tune the --teacher, or the student built from the --student_* flags (the no-teacher baseline).")
flags.DEFINE_string("workdir", None, "Output directory (model/, checkpoints/, logs/, results.json).")
# --- data -----------------------------------------------------------------------------------
flags.DEFINE_string("task", "sst2", "GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli) or 'synthetic'; with --train_file, the name your task is recorded under (default: the training file's name).")
flags.DEFINE_string("glue_dir", None, "Directory of the original GLUE TSV files (the task folder or its parent). Without it, tensorflow-datasets' glue/<task> is used.")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples (a documented subset).", lower_bound=1)
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.", lower_bound=1)
cli_flags.define_batch_flags()
# --- your own data --------------------------------------------------------------------------
flags.DEFINE_string("train_file", "", "Your own training data instead of a GLUE task: CSV (RFC 4180 quoting), TSV (no quoting) or JSON Lines, with a header row naming the columns (CSV/TSV).")
flags.DEFINE_string("dev_file", "", "Your own dev data (required with --train_file): the metrics and the best epoch are computed on it.")
flags.DEFINE_string("test_file", "", "Your own test data (labels optional), recorded with the task for tfkd.evaluate --split=test.")
flags.DEFINE_enum("data_format", "", ["", "csv", "tsv", "jsonl"], "Format of the --*_file files; empty: by extension (.csv, .tsv, .jsonl/.ndjson).")
flags.DEFINE_list("text_fields", [], "The one or two text columns (keys) of your files, e.g. --text_fields=question,answer.")
flags.DEFINE_string("label_field", "label", "The label column (key) of your files.")
flags.DEFINE_list("label_names", [], "Class names in logit order; default: the sorted labels of the training file (recorded with the model).")
flags.DEFINE_enum("task_type", "", ["", "classification", "regression"], "Default: regression when every label is a number and some are not whole or there are more than 10 distinct values.")
flags.DEFINE_list("metrics", [], "Metrics (accuracy, f1, macro_f1, mcc, pearson, spearman); the first selects the best epoch. Default: by task type (a GLUE task keeps its own).")
flags.DEFINE_string("positive_label", "", "The class binary F1 counts as positive.")
# --- data augmentation ----------------------------------------------------------------------
flags.DEFINE_list("augment", [], "Teacher-labelled data augmentation (distil mode): augmenters making new, perturbed copies of the training inputs, e.g. embedding_neighbours,delete: embedding_neighbours (nearest whole-word tokens in the teacher's input embeddings), mlm (a keras-hub BertMaskedLM's top-k, --augment_args=mlm.preset=<dir>), delete, swap (adjacent words), file (the texts of --augment_file), or one registered with tfkd.register_augmenter. Augmented rows carry no gold label: CE skips them, every distillation term uses them.")
flags.DEFINE_integer("augment_factor", 8, "Perturbed copies per training example (spread round-robin over the --augment perturbers; duplicates of one another, of training and of dev examples are dropped).")
flags.DEFINE_string("augment_file", "", "In-domain text for --augment=file: one example per line (a pair: two texts separated by a tab), or CSV/TSV/JSONL with the task's text columns.")
flags.DEFINE_list("augment_args", [], "Augmenter options as name.option=value, e.g. embedding_neighbours.top_k=10,embedding_neighbours.probability=0.3,delete.probability=0.2,mlm.preset=/path/to/preset.")
# --- models ---------------------------------------------------------------------------------
flags.DEFINE_string("teacher", "minilm", "Teacher: 'minilm' (packaged, offline), a keras-hub preset, a Hugging Face BERT directory, or a tfkd model directory / .keras file.")
flags.DEFINE_integer("finetune_teacher_epochs", 0, "Distil mode with a teacher whose head is untrained: fine-tune it this many epochs first (into <workdir>/teacher; reused on re-runs).")
flags.DEFINE_string("finetuned_teacher_dir", "", "Where the teacher fine-tuned by --finetune_teacher_epochs lives (default <workdir>/teacher); several runs can share one.")
flags.DEFINE_float("teacher_learning_rate", 5e-5, "Peak learning rate of that teacher fine-tuning.")
flags.DEFINE_bool("allow_task_mismatch", False, "Distil from a --teacher whose metadata says it was fine-tuned on another task (its classes must really be this task's).")
flags.DEFINE_string("student_init", "pretrained", "pretrained: copy from the teacher's pretrained source (e.g. MiniLM before fine-tuning); teacher: copy from the (fine-tuned) teacher; random; pruned: slice the (fine-tuned) teacher by unit importance into any narrower shape (heads x 32 = hidden width for MiniLM); or a tfkd model directory (e.g. a CoDIR pre-training output) or a Hugging Face BERT directory (e.g. a compact pretrained BERT) with the teacher's vocabulary.")
cli_flags.define_student_flags()
flags.DEFINE_enum("student_vocab", "teacher", ["teacher", "task"], "teacher: the student keeps the teacher's vocabulary; task: only the special tokens and the WordPiece ids of the training text (plus --student_vocab_corpus), written as the student's own vocab.txt (distil mode).")
flags.DEFINE_string("student_vocab_corpus", "", "With --student_vocab=task: a text file (one text per line, e.g. the domain's unlabelled text) whose WordPiece ids the student keeps too.")
flags.DEFINE_integer("student_vocab_corpus_top", 0, "Keep only the --student_vocab_corpus' this many most frequent ids (0: all of them).", lower_bound=0)
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

method_flags.define_flags()

# Flags that say where outputs go, how fast or how observably a run goes: a
# resume may change them (every other flag must match, see --allow_changed_flags).
RUN_INDEPENDENT_FLAGS = frozenset({
    "workdir", "finetuned_teacher_dir", "teacher_cache", "eval_batch_size", "eval_jit_compile", "jit_compile",
    "deterministic", "strategy", "tpu", "cpu_replicas", "tensorboard_update_freq", "checkpoint_every_steps",
    "allow_changed_flags", "allow_task_mismatch",
})


def flag_values() -> Dict:
    """Every flag of this command and the method flags, by name (what results.json records)."""
    return {f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__])} | method_flags.flag_values(FLAGS)


def run_config() -> RunConfig:
    """The run these flags describe."""
    return RunConfig(
        workdir=FLAGS.workdir,
        mode=FLAGS.mode,
        finetune_model=FLAGS.finetune_model,
        data=DataConfig(task=FLAGS.task, glue_dir=FLAGS.glue_dir, max_train_examples=FLAGS.max_train_examples,
                        max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size,
                        eval_batch_size=FLAGS.eval_batch_size, pad_to_multiple_of=FLAGS.pad_to_multiple_of,
                        train_file=FLAGS.train_file, dev_file=FLAGS.dev_file, test_file=FLAGS.test_file,
                        data_format=FLAGS.data_format, text_fields=tuple(FLAGS.text_fields),
                        label_field=FLAGS.label_field, label_names=tuple(FLAGS.label_names),
                        task_type=FLAGS.task_type, metrics=tuple(FLAGS.metrics), positive_label=FLAGS.positive_label),
        teacher=TeacherConfig(source=FLAGS.teacher, finetune_epochs=FLAGS.finetune_teacher_epochs,
                              finetuned_dir=FLAGS.finetuned_teacher_dir, learning_rate=FLAGS.teacher_learning_rate,
                              allow_task_mismatch=FLAGS.allow_task_mismatch),
        student=dataclasses.replace(cli_flags.student_config(FLAGS), vocab=FLAGS.student_vocab,
                                    vocab_corpus=FLAGS.student_vocab_corpus,
                                    vocab_corpus_top=FLAGS.student_vocab_corpus_top),
        method=method_flags.method_config(FLAGS),
        optim=cli_flags.optim_config(FLAGS),
        runtime=cli_flags.runtime_config(
            FLAGS, eval_jit_compile=FLAGS.eval_jit_compile, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
            deterministic=FLAGS.deterministic, teacher_cache=FLAGS.teacher_cache,
            teacher_cache_dtype=FLAGS.teacher_cache_dtype),
        augment=AugmentConfig(augmenters=tuple(FLAGS.augment), factor=FLAGS.augment_factor, file=FLAGS.augment_file,
                              args=cli_flags.augment_args(FLAGS.augment_args)),
        allow_changed=FLAGS.allow_changed_flags,
    )


def print_comparison(result: RunResult) -> None:
    """The teacher / student table a distillation run ends with."""
    if not result.comparison:
        return
    metrics = list(result.comparison[0].dev)
    print("\n" + f"{'model':<20}{'layers':>7}{'params':>12}" + "".join(f"{m:>12}" for m in metrics) + f"{'fwd ex/s':>10}")
    for row in result.comparison:
        print(f"{row.model:<20}{row.layers:>7}{row.params:>12,}" + "".join(f"{100 * row.dev[m]:>12.2f}" for m in metrics)
              + f"{row.forward_examples_per_second:>10.0f}")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if not FLAGS.workdir:
        raise TfkdError("--workdir is required. Fix: pass --workdir=<output directory>.")
    recorded = flag_values()
    identity = {name: value for name, value in recorded.items() if name not in RUN_INDEPENDENT_FLAGS}
    result = api.run(run_config(), flags=recorded, flag_identity=identity)
    print_comparison(result)
    metric = result.primary_metric
    log(f"done: best dev {metric} {100 * result.best_dev[metric]:.2f} (epoch {result.best_epoch}); results in "
        f"{FLAGS.workdir}/results.json")


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
