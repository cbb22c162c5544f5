"""`python -m tfkd.bench`: what one training step of each method costs, next to the floor and keras.distillation.

The rows and what they time are described in `tfkd.training.bench`; this
command maps its flags (the model, method and batch flags of `tfkd.train`,
plus the `--bench_*` ones) onto `tfkd.training.bench.benchmark`, prints the
table and writes it as JSON.

Example:
    python -m tfkd.bench --bench_json=docs/bench_cpu.json
    python -m tfkd.bench --bench_lengths=64 --bench_methods=kd,codir --bench_steps=3
"""

from __future__ import annotations

import sys

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend before keras is imported)
from tfkd.cli import flags as cli_flags
from tfkd.cli import method_flags
from tfkd.core.jsonfile import write_json
from tfkd.training.bench import BenchOptions, benchmark, format_table
from tfkd.training.config import DataConfig, RunConfig, StudentConfig, TeacherConfig

FLAGS = flags.FLAGS

flags.DEFINE_string("teacher", "minilm", "Teacher: 'minilm' (packaged, offline), a keras-hub preset, a Hugging Face BERT directory, or a tfkd model directory.")
flags.DEFINE_string("workdir", None, "Where a downloaded teacher is kept (optional).")
flags.DEFINE_integer("seed", 1, "Random seed (weights of the loss heads, batches).")
cli_flags.define_batch_flags()
cli_flags.define_student_flags()
cli_flags.define_optimization_flags(learning_rate=5e-5)
cli_flags.define_runtime_flags()
method_flags.define_flags()
cli_flags.define_int_list("bench_lengths", [64, 128], "Sequence lengths to time (every batch is full: no padding).", lower_bound=2)
flags.DEFINE_list("bench_methods", list(BenchOptions.methods), "Methods to time (pkd_all_tokens: pkd with --pkd_variant=all_tokens).")
flags.DEFINE_integer("bench_steps", 3, "Timed steps per row (the median is reported).", lower_bound=1)
flags.DEFINE_integer("bench_warmup", 1, "Untimed steps per row before timing; the first one compiles.", lower_bound=1)
flags.DEFINE_integer("bench_bank_rows", 1024, "Memory-bank rows (training-set size) for codir and ackd.", lower_bound=1)
flags.DEFINE_bool("bench_peer", True, "Also time keras.distillation.Distiller.")
flags.DEFINE_bool("bench_cached", True, "Also time kd and codir fed from cached teacher outputs.")
flags.DEFINE_string("bench_json", "", "Write the table here as JSON.")


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    config = RunConfig(
        workdir=FLAGS.workdir or "",
        data=DataConfig(max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size),
        teacher=TeacherConfig(source=FLAGS.teacher),
        student=StudentConfig(num_layers=FLAGS.student_layers, hidden_dim=FLAGS.student_hidden_dim,
                              num_heads=FLAGS.student_heads, intermediate_dim=FLAGS.student_intermediate_dim,
                              layers_from=cli_flags.layers_from(FLAGS.student_layers_from)),
        method=method_flags.method_config(FLAGS),
        optim=cli_flags.optim_config(FLAGS, epochs=1),
        runtime=cli_flags.runtime_config(FLAGS),
    )
    options = BenchOptions(lengths=tuple(cli_flags.int_list(FLAGS.bench_lengths)), methods=tuple(FLAGS.bench_methods),
                           steps=FLAGS.bench_steps, warmup=FLAGS.bench_warmup, bank_rows=FLAGS.bench_bank_rows,
                           peer=FLAGS.bench_peer, cached=FLAGS.bench_cached)
    report = {"command": " ".join(["python -m tfkd.bench"] + sys.argv[1:]), **benchmark(config, options)}
    print("\n" + format_table(report["rows"]))
    print(f"\ntotal {report['seconds']:.0f} s")
    if FLAGS.bench_json:
        write_json(FLAGS.bench_json, report)
        print(f"wrote {FLAGS.bench_json}")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
