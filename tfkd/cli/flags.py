"""Flags shared by the training commands (`tfkd.train`, `tfkd.pretrain`, `tfkd.bench`), their
mapping onto the run configuration (`tfkd.training.config`), and the entry-point
wrapper (`run_cli`) that turns a user error into one line instead of a traceback.

Each command calls the `define_*` groups it needs, so a flag means the same
thing, with the same default and help, wherever it appears. absl attributes
each flag to the command that called the group (this module disclaims them),
so the command's `--help` and `FLAGS.get_flags_for_module` (what
`results.json` records) list them with its own flags.

Out-of-range numbers are refused while the flags are parsed, before
TensorFlow does any work: absl prints the flag, the bound and the value.

Example:
    from tfkd.cli import flags as cli_flags
    cli_flags.define_student_flags()
    cli_flags.define_optimization_flags(learning_rate=1e-4)
    cli_flags.run_cli(main)
"""

from __future__ import annotations

import errno
import signal
import sys
from typing import Callable, Dict, List, Optional, Sequence

from absl import app, flags

from tfkd.core.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, TfkdError, command_context
from tfkd.core.log import log  # noqa: F401  (the commands' progress line is the library's)
from tfkd.runtime.precision import PRECISIONS
from tfkd.runtime.strategy import STRATEGIES
from tfkd.training.config import OptimConfig, RuntimeConfig, StudentConfig

# Flags defined by the functions below count as the calling command's own.
flags.disclaim_key_flags()


def define_batch_flags() -> None:
    """--max_seq_length, --batch_size, --pad_to_multiple_of."""
    flags.DEFINE_integer("max_seq_length", 128, "Maximum tokens per example, [CLS]/[SEP] included.", lower_bound=2)
    flags.DEFINE_integer("batch_size", 32, "Training batch size (global).", lower_bound=1)
    flags.DEFINE_integer(
        "pad_to_multiple_of", 0, "Pad each batch to a multiple of this many tokens; 0: geometric buckets "
        "(4, 8, .., 32, 40, .., 64, 80, ..), least padding for about as many XLA shapes as 8.", lower_bound=0)


def define_student_flags() -> None:
    """The student's shape and which source layers initialise it."""
    flags.DEFINE_integer("student_layers", 3, "Student transformer layers.", lower_bound=1)
    flags.DEFINE_integer("student_hidden_dim", 384, "Student hidden width.", lower_bound=1)
    flags.DEFINE_integer("student_heads", 12, "Student attention heads.", lower_bound=1)
    flags.DEFINE_integer("student_intermediate_dim", 1536, "Student feed-forward width.", lower_bound=1)
    flags.DEFINE_list("student_layers_from", [], "1-based source layers copied into the student (default: "
                      "uniform, 6→3: 2,4,6), or 'importance': the source layers that change their input most on "
                      "training batches (ShortGPT's block influence), in their original order.")
    flags.register_validator(
        "student_layers_from",
        lambda values: values == ["importance"] or all(_is_int(v) and int(v) >= 1 for v in values),
        message="--student_layers_from takes comma-separated integers >= 1, e.g. --student_layers_from=2,4,6, "
                "or importance")


def layers_from(values: Sequence[str]) -> tuple[int | str, ...]:
    """`--student_layers_from` (validated at parse time) as `StudentConfig.layers_from`."""
    return ("importance",) if list(values) == ["importance"] else tuple(int_list(values))


def define_optimization_flags(learning_rate: float) -> None:
    """AdamW with linear warm-up and decay; `learning_rate` is the command's default peak."""
    flags.DEFINE_float("learning_rate", learning_rate, "Peak AdamW learning rate.", lower_bound=0.0)
    flags.DEFINE_float("warmup_ratio", 0.1, "Fraction of steps with linear warm-up.", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on biases and LayerNorm).", lower_bound=0.0)
    flags.DEFINE_float("clipnorm", 1.0, "Global gradient-norm clip (0: off).", lower_bound=0.0)


def define_runtime_flags() -> None:
    """XLA, precision, tf.distribute strategy and TensorBoard cadence."""
    flags.DEFINE_bool("jit_compile", True, "Compile the train step with XLA (one compile per padded length).")
    flags.DEFINE_enum(
        "mixed_precision", "float32", list(PRECISIONS), "float32, bfloat16 or float16 (16-bit compute, float32 "
        "weights and losses; float16 adds dynamic loss scaling). mixed_bfloat16/mixed_float16 are aliases.")
    flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy (auto: mirrored when >1 GPU).")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
    flags.DEFINE_integer("cpu_replicas", 0, "Split the CPU into N logical devices (multi-replica runs on CPU).", lower_bound=0)
    flags.DEFINE_integer("tensorboard_update_freq", 50, "Write per-step TensorBoard scalars every N steps.", lower_bound=1)


def define_int_list(name: str, default: Sequence[int], help: str, lower_bound: int) -> None:
    """A comma-separated list of integers (`--name=2,4,6`), each at least `lower_bound`."""
    flags.DEFINE_list(name, [str(x) for x in default], help)
    flags.register_validator(
        name, lambda values: all(_is_int(v) and int(v) >= lower_bound for v in values),
        message=f"--{name} takes comma-separated integers >= {lower_bound}, e.g. --{name}=2,4,6")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def int_list(values: Sequence[str]) -> List[int]:
    """The integers of a list flag defined with `define_int_list` (validated at parse time)."""
    return [int(v) for v in values]


def augment_args(entries: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """`--augment_args` entries `name.option=value` → augmenter name → option → text value.

    Example:
    >>> augment_args(["embedding_neighbours.top_k=10", "delete.probability=0.2"])
    {'embedding_neighbours': {'top_k': '10'}, 'delete': {'probability': '0.2'}}
    """
    args: Dict[str, Dict[str, str]] = {}
    for entry in entries:
        name, dot, rest = entry.partition(".")
        option, equals, value = rest.partition("=")
        if not (dot and equals and name and option):
            raise TfkdError(f"--augment_args entry '{entry}' is not name.option=value. "
                            "Fix: e.g. --augment_args=embedding_neighbours.top_k=10")
        args.setdefault(name.strip(), {})[option.strip()] = value.strip()
    return args


class _Terminated(BaseException):
    """SIGTERM outside the training loop (inside it `PreemptionSignal` takes the signal and checkpoints).

    A BaseException, like `KeyboardInterrupt`, so that no `except Exception` swallows it and every
    `finally` on the way out runs (the teacher cache's staging folder is removed, the workdir lock let go).
    """


def _raise_terminated(signum, frame):
    raise _Terminated


def run_cli(main: Callable[[List[str]], None]) -> None:
    """Runs an absl `main`: a `TfkdError` prints `tfkd: error: <what and fix>` and
    exits with status 2, without a traceback; so does a full disk. Ctrl-C that
    the command does not handle itself prints one line and exits with 130; so
    does SIGTERM, with 75 (`EXIT_PREEMPTED`: a scheduler may retry), where the
    default action would end the process without a word, mid-way through a
    teacher pass or an export.
    Inside it, messages name options as flags (`--teacher_cache`), not as
    configuration fields (`tfkd.core.errors.command_context`)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with command_context():
            try:
                app.run(main)
            except TfkdError as e:
                print(f"tfkd: error: {e}", file=sys.stderr)
                sys.exit(2)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                print(f"tfkd: error: no space left to write {e.filename or 'a file'} ({e.strerror}). Fix: free space on that "
                      "filesystem or write somewhere else, then re-run the same command.", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print("tfkd: interrupted (Ctrl-C)", file=sys.stderr)
                sys.exit(EXIT_INTERRUPTED)
            except _Terminated:
                print("tfkd: terminated (SIGTERM) outside the training loop, where there is no step to checkpoint; re-run the "
                      "same command to start again (a training run resumes from its last checkpoint).",
                      file=sys.stderr)
                sys.exit(EXIT_PREEMPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def student_config(values) -> StudentConfig:
    """The student flags (`define_student_flags`, `--dropout`, `--student_init`) as a `StudentConfig`."""
    return StudentConfig(
        num_layers=values.student_layers, hidden_dim=values.student_hidden_dim, num_heads=values.student_heads,
        intermediate_dim=values.student_intermediate_dim, dropout=values.dropout, init=values.student_init,
        layers_from=layers_from(values.student_layers_from),
    )


def optim_config(values, epochs: Optional[int] = None) -> OptimConfig:
    """The optimisation flags (`define_optimization_flags`, `--seed`, and `--epochs` unless given) as an `OptimConfig`."""
    return OptimConfig(epochs=values.epochs if epochs is None else epochs, learning_rate=values.learning_rate,
                       warmup_ratio=values.warmup_ratio, weight_decay=values.weight_decay, clipnorm=values.clipnorm,
                       seed=values.seed)


def runtime_config(values, **command_specific) -> RuntimeConfig:
    """The runtime flags (`define_runtime_flags`) as a `RuntimeConfig`; a command adds the ones only it has."""
    return RuntimeConfig(
        jit_compile=values.jit_compile, mixed_precision=values.mixed_precision, strategy=values.strategy,
        tpu=values.tpu, cpu_replicas=values.cpu_replicas, tensorboard_update_freq=values.tensorboard_update_freq,
        **command_specific,
    )
