"""`python -m tfkd.export`: a distilled student → TF Serving SavedModel + TFLite models, optionally validated,
or (`--format=hf`) a Hugging Face `BertForSequenceClassification` directory.

Examples:
    python -m tfkd.export --workdir=workdirs/kd_mrpc --export_dir=/srv/models --validate
    python -m tfkd.export --workdir=workdirs/kd_mrpc --format=hf --export_dir=/tmp/kd_mrpc_hf

Exit status 2 with one `tfkd: error: ...` line for user errors (no trained
student, not blessed, bad flags), as `tfkd.train` does.
"""

from __future__ import annotations

from absl import app, flags

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError
from tfkd.export.exporter import ExportOptions, export
from tfkd.export.hf import export_hf
from tfkd.export.tflite import VARIANTS
from tfkd.export.validate import format_table, validate

flags.DEFINE_enum("format", "serving", ["serving", "hf"], "serving: TF Serving SavedModel + TFLite under --export_dir; hf: --export_dir becomes a Hugging Face BertForSequenceClassification directory (config.json, model.safetensors, vocab.txt, tokenizer files).")
flags.DEFINE_string("workdir", None, "A finished tfkd.train run (holds model/ and results.json).")
flags.DEFINE_string("export_dir", None, "Serving root: writes <export_dir>/<model_name>/<version>/ and <export_dir>/tflite/<model_name>/<version>/.")
flags.DEFINE_string("model_name", None, "Served model name (default: the workdir's folder name).")
flags.DEFINE_integer("version", None, "Version number (default: the next free one).", lower_bound=1)
flags.DEFINE_list("quantize", list(VARIANTS), f"Id-input TFLite variants, some of {', '.join(VARIANTS)}; empty for none.")
flags.DEFINE_bool("text_tflite", True, "Also write the text-input TFLite model (tensorflow-text custom ops).")
flags.DEFINE_integer("tflite_seq_length", None, "TFLite sequence length (default: 99th percentile of the training lengths).", lower_bound=2)
flags.DEFINE_integer("calibration_examples", 200, "Training examples that calibrate full_int8.", lower_bound=1)
flags.DEFINE_bool("validate", False, "Run the dev set through every artefact and the teacher; write report.json and print a table.")
flags.DEFINE_integer("latency_examples", 200, "With --validate: dev examples timed one by one through each SavedModel signature, and per round through the student and teacher TFLite models timed in turn.", lower_bound=1)
flags.DEFINE_integer("validate_repeats", 5, "With --validate: rounds of the interleaved student/teacher TFLite timing; the speed-up is their median (min–max).", lower_bound=1)
flags.DEFINE_integer("tflite_threads", 2, "With --validate: LiteRT interpreter threads of every TFLite model (recorded in report.json).", lower_bound=1)
flags.DEFINE_float("bless_min_ratio", 0.95, "Refuse a student whose primary dev metric is below this fraction of the teacher's.")
flags.DEFINE_bool("force", False, "Export even if the student is not blessed (recorded in the metadata).")
flags.DEFINE_string("glue_dir", None, "GLUE TSV folder (default: the one the run used).")
FLAGS = flags.FLAGS


def options_from_flags() -> ExportOptions:
    """The `ExportOptions` the parsed command-line flags ask for."""
    return ExportOptions(
        workdir=FLAGS.workdir,
        export_dir=FLAGS.export_dir,
        model_name=FLAGS.model_name,
        version=FLAGS.version,
        quantize=[v.strip() for v in FLAGS.quantize if v.strip()],
        text_tflite=FLAGS.text_tflite,
        tflite_seq_length=FLAGS.tflite_seq_length,
        calibration_examples=FLAGS.calibration_examples,
        bless_min_ratio=FLAGS.bless_min_ratio,
        force=FLAGS.force,
        glue_dir=FLAGS.glue_dir,
    )


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if FLAGS.format == "hf":
        if FLAGS.validate:
            raise TfkdError("--validate checks the SavedModel and TFLite files, which --format=hf does not write. Fix: drop --validate, or export with --format=serving.")
        export_hf(FLAGS.workdir, FLAGS.export_dir, FLAGS.bless_min_ratio, FLAGS.force)
        return
    result = export(options_from_flags())
    if FLAGS.validate:
        report = validate(result, latency_examples=FLAGS.latency_examples, repeats=FLAGS.validate_repeats,
                          num_threads=FLAGS.tflite_threads)
        print("\n" + format_table(report))
        print(f"\nreport: {result.saved_model_dir}/report.json")


def run() -> None:
    """Console entry point (`tfkd-export`): user errors print one clear line and exit 2."""
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
