"""Flags shared by the training commands (`tfkd.train`, `tfkd.pretrain`), and
the progress line (`log`) every tfkd command prints.

Each command calls the `define_*` groups it needs, so a flag means the same
thing, with the same default and help, wherever it appears. absl attributes
each flag to the command that called the group (this module disclaims them),
so the command's `--help` and `FLAGS.get_flags_for_module` (what
`results.json` records) list them with its own flags.

Example:
    from tfkd import cli_flags
    cli_flags.define_student_flags()
    cli_flags.define_optimization_flags(learning_rate=1e-4)
"""

from __future__ import annotations

from absl import flags

from tfkd.precision import PRECISIONS
from tfkd.strategy import STRATEGIES

# Flags defined by the functions below count as the calling command's own.
flags.disclaim_key_flags()


def define_batch_flags() -> None:
    """--max_seq_length, --batch_size, --pad_to_multiple_of."""
    flags.DEFINE_integer("max_seq_length", 128, "Maximum tokens per example, [CLS]/[SEP] included.")
    flags.DEFINE_integer("batch_size", 32, "Training batch size (global).")
    flags.DEFINE_integer(
        "pad_to_multiple_of", 0, "Pad each batch to a multiple of this many tokens; 0: geometric buckets "
        "(4, 8, .., 32, 40, .., 64, 80, ..), least padding for about as many XLA shapes as 8.")


def define_student_flags() -> None:
    """The student's shape and which source layers initialise it."""
    flags.DEFINE_integer("student_layers", 3, "Student transformer layers.")
    flags.DEFINE_integer("student_hidden_dim", 384, "Student hidden width.")
    flags.DEFINE_integer("student_heads", 12, "Student attention heads.")
    flags.DEFINE_integer("student_intermediate_dim", 1536, "Student feed-forward width.")
    flags.DEFINE_list("student_layers_from", [], "1-based source layers copied into the student "
                      "(default: uniform, 6→3: 2,4,6).")


def define_optimization_flags(learning_rate: float) -> None:
    """AdamW with linear warm-up and decay; `learning_rate` is the command's default peak."""
    flags.DEFINE_float("learning_rate", learning_rate, "Peak AdamW learning rate.")
    flags.DEFINE_float("warmup_ratio", 0.1, "Fraction of steps with linear warm-up.")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on biases and LayerNorm).")
    flags.DEFINE_float("clipnorm", 1.0, "Global gradient-norm clip (0: off).")


def define_runtime_flags() -> None:
    """XLA, precision, tf.distribute strategy and TensorBoard cadence."""
    flags.DEFINE_bool("jit_compile", True, "Compile the train step with XLA (one compile per padded length).")
    flags.DEFINE_enum(
        "mixed_precision", "float32", list(PRECISIONS), "float32, bfloat16 or float16 (16-bit compute, float32 "
        "weights and losses; float16 adds dynamic loss scaling). mixed_bfloat16/mixed_float16 are aliases.")
    flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy (auto: mirrored when >1 GPU).")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
    flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into N logical devices (multi-replica runs on CPU).")
    flags.DEFINE_integer("tensorboard_update_freq", 50, "Write per-step TensorBoard scalars every N steps.")


def log(message: str) -> None:
    """One progress line of a tfkd command."""
    print(f"[tfkd] {message}", flush=True)
