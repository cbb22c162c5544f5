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

The library call is `tfkd.run_pretrain(tfkd.PretrainConfig(...))`; this command maps
its flags onto that configuration. What differs from the paper and from the
official code (intersun/CoDIR):
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

import sys

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)
from tfkd.cli import flags as cli_flags
from tfkd.cli import method_flags
from tfkd.core.errors import TfkdError
from tfkd.core.log import log
from tfkd.training import api
from tfkd.training.config import DataConfig, MethodConfig, MLMConfig, PretrainConfig, TeacherConfig

FLAGS = flags.FLAGS

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
flags.DEFINE_enum("student_init", "pretrained", ["pretrained", "teacher", "pruned", "random"], "pretrained: copy from the teacher's pretrained source (the teacher itself when it is not fine-tuned); teacher: copy from the teacher; pruned: a pruned copy of the teacher for any narrower shape, its units scored on the corpus; random.")
cli_flags.define_student_flags()
flags.DEFINE_float("dropout", 0.1, "Dropout of the student.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("layer_map", "", "Teacher layer for each student layer (CoDIR's mapped layers), e.g. 2,4,6. Empty: uniform.")
# --- CoDIR ----------------------------------------------------------------------------------
flags.DEFINE_float("codir_weight", 0.1, "λ of the contrastive loss (mean reduction; 0: MLM only, no teacher pass).")
method_flags.define_loss_flags(["codir"], defaults={"codir_negatives": "uniform"},
                               choices={"codir_negatives": ["uniform", "in_batch"]})
# --- optimisation ---------------------------------------------------------------------------
flags.DEFINE_integer("epochs", 3, "Training epochs over the corpus.")
cli_flags.define_optimization_flags(learning_rate=1e-4)
flags.DEFINE_integer("seed", 1, "Random seed (data order, masks, initialisation, negatives).")
cli_flags.define_runtime_flags()
flags.DEFINE_bool("allow_changed_flags", False, "Resume the checkpoints in --workdir although flags that change the run differ from the ones it started with.")

# Flags that say where outputs go or how fast a run goes: a resume may change them.
RUN_INDEPENDENT_FLAGS = frozenset({"workdir", "jit_compile", "strategy", "tpu", "cpu_replicas",
                                   "tensorboard_update_freq", "allow_changed_flags"})


def pretrain_config() -> PretrainConfig:
    """The pre-training run these flags describe."""
    return PretrainConfig(
        workdir=FLAGS.workdir,
        text_file=FLAGS.text_file,
        data=DataConfig(task=FLAGS.task, glue_dir=FLAGS.glue_dir, max_train_examples=FLAGS.max_train_examples,
                        max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size,
                        pad_to_multiple_of=FLAGS.pad_to_multiple_of),
        teacher=TeacherConfig(source=FLAGS.teacher),
        student=cli_flags.student_config(FLAGS),
        mlm=MLMConfig(probability=FLAGS.mlm_probability, mask_token_rate=FLAGS.mask_token_rate,
                      random_token_rate=FLAGS.random_token_rate),
        method=MethodConfig(name="custom", losses=(("mlm", FLAGS.mlm_weight), ("codir", FLAGS.codir_weight)),
                            loss_args=method_flags.loss_args_from_flags(FLAGS, ["codir"]),
                            layer_map=method_flags.layer_map(FLAGS.layer_map)),
        optim=cli_flags.optim_config(FLAGS),
        runtime=cli_flags.runtime_config(FLAGS),
        allow_changed=FLAGS.allow_changed_flags,
    )


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if not FLAGS.workdir:
        raise TfkdError("--workdir is required. Fix: pass --workdir=<output directory>.")
    recorded = {f.name: f.value for f in FLAGS.get_flags_for_module(sys.modules[__name__])}
    identity = {name: value for name, value in recorded.items() if name not in RUN_INDEPENDENT_FLAGS}
    result = api.run_pretrain(pretrain_config(), flags=recorded, flag_identity=identity)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.pretrain.final_losses.items())
    model_dir = result.pretrain.model_dir
    log(f"done: {losses}; {result.train_examples_per_second:.1f} examples/s; student in {model_dir} "
        f"(fine-tune it with python -m tfkd.train --student_init={model_dir})")


def run() -> None:
    """Console entry point: user errors print one clear line and exit 2, without a traceback."""
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
