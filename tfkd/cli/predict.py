"""`python -m tfkd.predict`: a trained model's predictions for the rows of a CSV, TSV or JSON Lines file.

The input needs the model's text fields (the columns or keys of the data it
was trained on, recorded in its tfkd_model.json); the output is the input's
rows, in the input's format, plus `predicted_label` and one
`probability_<class>` per class, or `score` for a regression model. A
progress bar shows on standard output; with `--output=-` the predictions
take standard output and progress goes to standard error as log lines.

Example:
    python -m tfkd.predict --model=workdirs/kd_reviews/model --input=unlabelled.csv --output=predicted.csv
    python -m tfkd.predict --model=workdirs/kd_reviews/model --input=unlabelled.jsonl --output=- | head
"""

from __future__ import annotations

import logging
import sys
import time

import keras
from absl import flags

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError
from tfkd.core.log import LOGGER, log
from tfkd.data.files import file_format, iter_records
from tfkd.evaluate.predict import Predictor

flags.DEFINE_string("model", None, "A tfkd model directory (e.g. <workdir>/model) that records its task.")
flags.DEFINE_string("input", None, "The rows to predict: a CSV, TSV or JSON Lines file with the model's text fields.")
flags.DEFINE_string("output", None, "Where to write the rows with their predictions (in the input's format); "
                    "- for standard output.")
flags.DEFINE_string("data_format", "", "csv, tsv or jsonl; default: by the input's extension.")
flags.DEFINE_integer("batch_size", 64, "Examples per forward pass.", lower_bound=1)
flags.DEFINE_integer("max_seq_length", None, "Maximum tokens (default: the model's training length).", lower_bound=2)
flags.DEFINE_bool("jit_compile", False, "Compile the forward pass with XLA (one compile per padded length; pays "
                  "off for large inputs on a GPU or TPU).")
FLAGS = flags.FLAGS


def _log_to_stderr() -> None:
    """Sends tfkd's log lines to standard error, which standard output, holding the predictions, must not get."""
    for handler in list(LOGGER.handlers):
        LOGGER.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[tfkd] %(message)s"))
    LOGGER.addHandler(handler)


class _StderrProgress:
    """A log line of the rows predicted so far, at most one every `seconds`."""

    def __init__(self, seconds: float = 10.0):
        self.seconds = seconds
        self.rows = 0
        self.start = self.last = time.perf_counter()

    def __call__(self, rows: int) -> None:
        self.rows += rows
        now = time.perf_counter()
        if now - self.last >= self.seconds:
            log(f"{self.rows} rows predicted ({self.rows / (now - self.start):.1f} rows/s)")
            self.last = now


def main(argv) -> None:
    for name in ("model", "input", "output"):
        if not FLAGS[name].value:
            raise TfkdError(f"--{name} is required. Fix: python -m tfkd.predict --model=<workdir>/model "
                            "--input=<file> --output=<file, or - for standard output>.")
    to_stdout = FLAGS.output == "-"
    if to_stdout:
        _log_to_stderr()
    fmt = file_format(FLAGS.input, FLAGS.data_format)
    predictor = Predictor(FLAGS.model, FLAGS.batch_size, FLAGS.jit_compile, FLAGS.max_seq_length)
    task = predictor.task
    classes = "a score" if task.is_regression else f"classes {', '.join(predictor.label_names)}"
    log(f"model {FLAGS.model}: {task.name} ({classes}), text fields {', '.join(predictor.text_fields)}, "
        f"{predictor.max_seq_length} tokens")
    if to_stdout:
        progress = _StderrProgress()
    else:
        # One streamed pass to count the rows gives the bar its end (and checks the file before any work).
        total = sum(1 for _ in iter_records(FLAGS.input, fmt))
        log(f"{FLAGS.input}: {total} rows")
        bar = keras.utils.Progbar(total, unit_name="row")
        progress = bar.add
    start = time.perf_counter()
    rows = predictor.predict_file(FLAGS.input, FLAGS.output, fmt, progress=progress)
    speed = rows / (time.perf_counter() - start)
    log(f"wrote {rows} rows with predictions to {'standard output' if to_stdout else FLAGS.output} "
        f"({speed:.1f} rows/s)")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
