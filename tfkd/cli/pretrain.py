"""`python -m tfkd.pretrain`: CoDIR's pre-training stage (CoDIR-Pre, METHODS.md §4).

On unlabelled text, the student is trained with its masked-LM loss plus
CoDIR's contrastive loss against a memory bank of teacher summary vectors:

    L = w_mlm · MLM(student) + λ · L_codir(student, teacher)

The result, `<workdir>/model/`, is a tfkd model directory that the
fine-tuning stage (CoDIR-Fine) starts from:

    python -m tfkd.pretrain --flagfile=configs/codir_pretrain.flags --glue_dir=../shared/glue
    python -m tfkd.train --flagfile=configs/codir.flags --glue_dir=../shared/glue \\
        --student_init=workdirs/codir_pretrain/model --student_layers_from=

(`--student_layers_from=` clears the 2,4,6 of the shared student flags: the
pre-trained student already has 3 layers, copied 1:1.) A run also writes
`checkpoints/` (one per epoch; a re-run resumes from the latest), `logs/`
(TensorBoard) and `results.json` (per-epoch MLM and CoDIR losses, examples/s).

Corpus: `--text_file` (one sentence per line) or `--task` (with `--glue_dir`):
that task's training texts, labels dropped; pair tasks keep both texts.
Masking is BERT's, by keras-hub's `MaskedLMMaskGenerator` (15% of the real
tokens other than [CLS]/[SEP], of which 80% [MASK], 10% random, 10% kept),
drawn afresh for every batch. Negatives are uniform over the memory bank
(default, as METHODS.md prescribes for pre-training; no labels exist) or the
other examples of the batch (`--codir_negatives=in_batch`).

What differs from the paper and from the official code (intersun/CoDIR):
- No KD on MLM logits. The paper's CoDIR-Pre adds it and the released
  pre-training script distils only that (`(1−β)·MLM-CE + β·T²·KD`, no
  contrastive term), but it needs a teacher MLM head: tfkd's teachers have
  none, and the packaged MiniLM (a sentence-transformers export) ships no
  `cls.predictions` weights. The run says so in its log and results.json.
- The contrastive term is implemented from the paper's description (the
  released code has none in pre-training), with tfkd's CoDIR loss: masked-mean
  summaries of the mapped layers, InfoNCE, τ=0.07, K=100, μ=0.5, d_c=128, the
  teacher with dropout off. λ defaults to 0.1, tfkd's fine-tuning default
  (a mean-reduced loss; neither the paper nor the code gives a pre-training
  value); MLM weight 1.
- The teacher sees the same masked batch as the student (so the positive is
  the teacher's vector of the masked text), and the memory bank is filled by
  one teacher pass over a masked copy of the corpus, so bank rows and fresh
  teacher vectors come from the same kind of input and the teacher head
  cannot tell them apart by the masking alone.
- The student's MLM head (keras-hub's `MaskedLMHead`, output matrix tied to
  the student's token embedding) starts untrained: the teacher has none to
  copy. It lives in the `mlm` loss layer and is not exported. The pooler and
  the classification head get no gradient in this stage (Keras warns about
  it once); they leave it as they came in, and fine-tuning replaces the head.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Tuple

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)

import keras

from tfkd.cli import flags as cli_flags
from tfkd.training.callbacks import Throughput, TrainingCheckpoint, write_json
from tfkd.cli.flags import log
from tfkd.data import make_tokenizer
from tfkd.data.pipeline import TokenizedSplit, make_dataset, padding_efficiency, steps_per_epoch, tokenize
from tfkd.data.pretrain import MaskingConfig, load_pretraining_texts, mask_batches
from tfkd.distill import Distiller, make_optimizer
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import (
    BertModel,
    LoadedModel,
    ModelMetadata,
    StudentShape,
    build_student,
    check_sequence_length,
    count_params,
    initialize_from,
    load_teacher,
    parse_layer_map,
    save_model_dir,
)
from tfkd.models.sources import source_kind
from tfkd.runtime.precision import set_precision
from tfkd.runtime.strategy import configure_cpu_replicas, make_strategy

FLAGS = flags.FLAGS

STAGE = "codir_pretrain"
NO_MLM_KD = (
    "KD on MLM logits: skipped. It needs a teacher MLM head, and tfkd teachers have none (the packaged "
    "MiniLM is a sentence-transformers export without cls.predictions weights); the objective is "
    "mlm_weight*MLM + codir_weight*CoDIR."
)

flags.DEFINE_string("workdir", None, "Output directory (model/, checkpoints/, logs/, results.json).")
# --- corpus ---------------------------------------------------------------------------------
flags.DEFINE_string("text_file", "", "Unlabelled corpus: a UTF-8 file with one sentence per line.")
flags.DEFINE_string("task", "", "Or a GLUE task whose training texts (labels dropped) are the corpus.")
flags.DEFINE_string("glue_dir", None, "GLUE TSV directory for --task (without it, tensorflow-datasets).")
flags.DEFINE_integer("max_train_examples", None, "Use only the first N texts.", lower_bound=1)
cli_flags.define_batch_flags()
# --- masked LM ------------------------------------------------------------------------------
flags.DEFINE_float("mlm_weight", 1.0, "Weight of the student's MLM loss.")
flags.DEFINE_float("mlm_probability", 0.15, "Fraction of the real tokens (not [CLS]/[SEP]) predicted per example.")
flags.DEFINE_float("mask_token_rate", 0.8, "Fraction of the predicted tokens replaced by [MASK].")
flags.DEFINE_float("random_token_rate", 0.1, "Fraction replaced by a random token (the rest are kept).")
# --- models ---------------------------------------------------------------------------------
flags.DEFINE_string("teacher", "minilm", "Teacher: 'minilm' (packaged), a Hugging Face BERT directory, a tfkd model directory or a keras-hub preset.")
flags.DEFINE_enum("student_init", "pretrained", ["pretrained", "teacher", "random"], "pretrained: copy from the teacher's pretrained source (the teacher itself when it is not fine-tuned); teacher: copy from the teacher; random.")
cli_flags.define_student_flags()
flags.DEFINE_float("dropout", 0.1, "Dropout of the student.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("layer_map", "", "Teacher layer for each student layer (CoDIR's mapped layers), e.g. 2,4,6. Empty: uniform.")
# --- CoDIR ----------------------------------------------------------------------------------
flags.DEFINE_float("codir_weight", 0.1, "λ of the contrastive loss (mean reduction; 0: MLM only, no teacher pass).")
flags.DEFINE_float("codir_temperature", 0.07, "τ of the InfoNCE.")
flags.DEFINE_integer("codir_num_negatives", 100, "K bank negatives per example (uniform negatives).")
flags.DEFINE_float("codir_momentum", 0.5, "μ of the memory-bank update.")
flags.DEFINE_integer("codir_projection_dim", 128, "d_c of the projection heads.")
flags.DEFINE_enum("codir_pooling", "mean", ["mean", "cls"], "Summary pooling: masked mean (paper) or [CLS] (official code).")
flags.DEFINE_enum("codir_layers", "mapped", ["mapped", "all"], "Layers concatenated into the summary vector.")
flags.DEFINE_string("codir_teacher_layers", None, "Explicit teacher layers for the teacher summary (e.g. 1,3,5).")
flags.DEFINE_enum("codir_negatives", "uniform", ["uniform", "in_batch"], "Uniform over the memory bank, or the other examples of the batch.")
flags.DEFINE_enum("codir_bank_init", "teacher", ["teacher", "random"], "Fill the bank by one teacher pass, or randomly.")
# --- optimisation ---------------------------------------------------------------------------
flags.DEFINE_integer("epochs", 3, "Training epochs over the corpus.")
cli_flags.define_optimization_flags(learning_rate=1e-4)
flags.DEFINE_integer("seed", 1, "Random seed (data order, masks, initialisation, negatives).")
cli_flags.define_runtime_flags()


def _load(spec: str) -> LoadedModel:
    # The classification head plays no part here: a saved tfkd model keeps its
    # own (0 skips the class-count check), other sources get a 2-way placeholder.
    return load_teacher(spec, 0 if source_kind(spec) == "tfkd_model" else 2, FLAGS.workdir)


def make_student(teacher: LoadedModel) -> BertModel:
    """The student from the --student_* flags, initialised as --student_init says.

    Args:
        teacher: the loaded teacher (vocabulary, positions, GELU; the weight
            source for `teacher`, and for `pretrained` when it is not fine-tuned).

    Example:
    >>> student = make_student(_load("minilm"))  # doctest: +SKIP
    """
    config = StudentShape(FLAGS.student_layers, FLAGS.student_hidden_dim, FLAGS.student_heads,
                           FLAGS.student_intermediate_dim, FLAGS.dropout)
    student = build_student(config, like=teacher.model)
    if FLAGS.student_init == "random":
        return student
    source = teacher.model
    if FLAGS.student_init == "pretrained" and teacher.fine_tuned:
        if not teacher.metadata.base:
            raise TfkdError(
                "--student_init=pretrained needs the teacher's pretrained source, which its metadata lacks. "
                "Fix: pass --student_init=teacher or random."
            )
        source = _load(teacher.metadata.base).model
    initialize_from(student, source, cli_flags.int_list(FLAGS.student_layers_from))
    return student


def load_corpus(tokenizer) -> Tuple[TokenizedSplit, str]:
    """The tokenized corpus and a description of where it came from."""
    examples = load_pretraining_texts(FLAGS.text_file, FLAGS.task, FLAGS.glue_dir, FLAGS.max_train_examples)
    corpus = tokenize(examples, tokenizer, FLAGS.max_seq_length)
    efficiency = padding_efficiency(corpus, FLAGS.batch_size, pad_to_multiple_of=FLAGS.pad_to_multiple_of)
    log(
        f"corpus {examples.source}: {len(corpus)} texts, mean length {corpus.lengths.mean():.1f} tokens, "
        f"{corpus.num_truncated} truncated to {FLAGS.max_seq_length}; padding efficiency {efficiency:.3f}"
    )
    return corpus, examples.source


def loss_specs(context: DistillContext, student: BertModel) -> List[Tuple[str, object, float]]:
    """The distiller's `(name, loss layer, weight)` terms: MLM, and CoDIR when λ > 0."""
    terms = [("mlm", LOSSES.get("mlm")(context, token_embedding=student.get_layer("token_embedding"), name="mlm"),
              FLAGS.mlm_weight)]
    if FLAGS.codir_weight > 0:
        codir = LOSSES.get("codir")(
            context,
            name="codir",
            temperature=FLAGS.codir_temperature,
            num_negatives=FLAGS.codir_num_negatives,
            projection_dim=FLAGS.codir_projection_dim,
            momentum=FLAGS.codir_momentum,
            pooling=FLAGS.codir_pooling,
            layers=FLAGS.codir_layers,
            teacher_layers=FLAGS.codir_teacher_layers,
            negatives=FLAGS.codir_negatives,
            bank_init=FLAGS.codir_bank_init,
            seed=FLAGS.seed,
        )
        terms.append(("codir", codir, FLAGS.codir_weight))
    return terms


def pretrain(workdir: str) -> Dict:
    """Runs the pre-training stage into `workdir`; returns the results (also in results.json).

    Args:
        workdir: the output directory.

    Example:
    >>> results = pretrain("workdirs/codir_pretrain")  # doctest: +SKIP
    >>> results["losses"]["mlm"]  # doctest: +SKIP
    2.71
    """
    results_path = os.path.join(workdir, "results.json")
    model_dir = os.path.join(workdir, "model")
    teacher = _load(FLAGS.teacher)
    tokenizer = make_tokenizer(teacher.vocab_path, teacher.lowercase)
    corpus, source = load_corpus(tokenizer)
    check_sequence_length(teacher.model, FLAGS.max_seq_length)
    student = make_student(teacher)
    layer_map = parse_layer_map(FLAGS.layer_map, teacher.model.num_layers, student.num_layers)
    context = DistillContext(
        teacher=ModelSpec(teacher.model.num_layers, teacher.model.hidden_dim, teacher.model.num_heads),
        student=ModelSpec(student.num_layers, student.hidden_dim, student.num_heads),
        layer_map=tuple(layer_map),
        num_classes=student.num_classes,
        num_train_examples=len(corpus),
    )
    terms = loss_specs(context, student)
    log(NO_MLM_KD)
    uses_teacher = FLAGS.codir_weight > 0
    distiller = Distiller(student, teacher.model if uses_teacher else None, terms, num_pairs=max(len(layer_map), 1))

    steps = steps_per_epoch(corpus, FLAGS.batch_size)
    total_steps = FLAGS.epochs * steps
    distiller.compile(
        optimizer=make_optimizer(FLAGS.learning_rate, total_steps, FLAGS.warmup_ratio, FLAGS.weight_decay, FLAGS.clipnorm),
        jit_compile=FLAGS.jit_compile,
    )
    # Epoch-end checkpoints only: masks follow the order of the batches from where
    # iteration starts (see mask_batches), so a mid-epoch position would not replay.
    checkpoint = TrainingCheckpoint(os.path.join(workdir, "checkpoints"), distiller, steps)
    distiller.build_for_restore()
    start_epoch = checkpoint.restore() // steps
    if start_epoch >= FLAGS.epochs and os.path.exists(results_path):
        log(f"already trained for {FLAGS.epochs} epochs; the model is in {model_dir}")
        with open(results_path, encoding="utf-8") as f:
            return json.load(f)

    masking = MaskingConfig.for_tokenizer(tokenizer, FLAGS.max_seq_length, FLAGS.mlm_probability,
                                          FLAGS.mask_token_rate, FLAGS.random_token_rate)
    if start_epoch == 0:
        # Masked like the training batches (own seed): the bank must hold the
        # same kind of teacher vectors as the positives it is contrasted with.
        bank_pass = make_dataset(corpus, FLAGS.batch_size, shuffle=False, seed=FLAGS.seed, pad_to_multiple_of=FLAGS.pad_to_multiple_of)
        distiller.prepare_losses(mask_batches(bank_pass, masking, seed=FLAGS.seed + 1), steps)
    train_ds = mask_batches(
        make_dataset(corpus, FLAGS.batch_size, shuffle=True, seed=FLAGS.seed, epochs=FLAGS.epochs,
                     start_epoch=start_epoch, pad_to_multiple_of=FLAGS.pad_to_multiple_of),
        masking,
        seed=FLAGS.seed,
    )
    throughput = Throughput(FLAGS.batch_size)
    callbacks = [
        throughput,
        keras.callbacks.TensorBoard(os.path.join(workdir, "logs"), update_freq=FLAGS.tensorboard_update_freq),
        checkpoint,
    ]
    log(f"pre-training {FLAGS.epochs} epochs x {steps} steps from epoch {start_epoch + 1}; losses: "
        + ", ".join(f"{w:g}*{n}" for n, _, w in terms) + f"; {masking.max_predictions} predictions per example at most")
    start = time.perf_counter()
    history: Dict[str, List[float]] = {}
    if start_epoch < FLAGS.epochs:
        fit = distiller.fit(train_ds, epochs=FLAGS.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                            callbacks=callbacks, shuffle=False, verbose=2 if not sys.stdout.isatty() else 1)
        history = fit.history
    wall = time.perf_counter() - start

    metadata = ModelMetadata(
        task="", lowercase=teacher.lowercase, base=teacher.metadata.base, role="student",
        max_seq_length=FLAGS.max_seq_length,
        extra={"stage": STAGE, "teacher": FLAGS.teacher, "corpus": source, "epochs": FLAGS.epochs,
               "losses": {name: weight for name, _, weight in terms}, "mlm_logit_kd": False},
    )
    save_model_dir(model_dir, student, teacher.vocab_path, metadata)
    epochs_run = len(history.get("loss", []))
    loss_history = [
        {"epoch": start_epoch + i + 1, **{name: float(history[f"loss_{name}"][i]) for name, _, _ in terms},
         "total": float(history["loss"][i])}
        for i in range(epochs_run)
    ]
    results = {
        "stage": STAGE,
        "corpus": source,
        "train_examples": int(len(corpus)),
        "losses": {k: v for k, v in loss_history[-1].items() if k != "epoch"} if loss_history else {},
        "mlm_loss": loss_history[-1]["mlm"] if loss_history else None,
        "codir_loss": loss_history[-1].get("codir") if loss_history else None,
        "loss_history": loss_history,
        "mlm_logit_kd": NO_MLM_KD,
        "train_examples_per_second": throughput.examples_per_second(),
        "epoch_seconds": throughput.epoch_seconds,
        "wall_seconds": wall,
        "padding_efficiency": padding_efficiency(corpus, FLAGS.batch_size, pad_to_multiple_of=FLAGS.pad_to_multiple_of),
        "max_predictions_per_example": masking.max_predictions,
        "teacher": {"source": FLAGS.teacher, "layers": teacher.model.num_layers, "params": count_params(teacher.model)},
        "student": {"layers": student.num_layers, "hidden_dim": student.hidden_dim, "params": count_params(student)},
        "layer_map": [list(p) for p in layer_map],
        "model_dir": model_dir,
        "flags": {f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__])},
    }
    write_json(results_path, results)
    return results


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if not FLAGS.workdir:
        raise TfkdError("--workdir is required. Fix: pass --workdir=<output directory>.")
    configure_cpu_replicas(FLAGS.cpu_replicas)
    keras.utils.set_random_seed(FLAGS.seed)
    set_precision(FLAGS.mixed_precision)
    os.makedirs(FLAGS.workdir, exist_ok=True)
    with make_strategy(FLAGS.strategy, FLAGS.tpu, FLAGS.cpu_replicas).scope():
        results = pretrain(FLAGS.workdir)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in results["losses"].items())
    log(f"done: {losses}; {results['train_examples_per_second']:.1f} examples/s; student in {results['model_dir']} "
        f"(fine-tune it with python -m tfkd.train --student_init={results['model_dir']})")


def run() -> None:
    """Console entry point: user errors print one clear line and exit 2, without a traceback."""
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
