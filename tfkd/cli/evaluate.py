"""`python -m tfkd.evaluate`: score a saved tfkd model on a task's dev split.

Example:
    python -m tfkd.evaluate --model=workdirs/kd_mrpc/model --task=mrpc --glue_dir=../shared/glue
"""

from __future__ import annotations

from absl import flags

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import to_json
from tfkd.data import load_split, make_tokenizer
from tfkd.data.pipeline import tokenize
from tfkd.data.tasks import get_task
from tfkd.evaluate.evaluator import Evaluator
from tfkd.models import check_sequence_length, check_task, load_model_dir
from tfkd.training.results import EvalResult

flags.DEFINE_string("model", None, "A tfkd model directory (e.g. <workdir>/model) or .keras file.")
flags.DEFINE_string("task", None, "Task (default: the one the model was trained on).")
flags.DEFINE_string("glue_dir", None, "GLUE TSV directory (default: tensorflow-datasets).")
flags.DEFINE_string("split", "dev", "Split to score (dev, or e.g. dev_mismatched for MNLI; test for your own data with labels).")
flags.DEFINE_integer("max_seq_length", None, "Maximum tokens (default: the model's training length).", lower_bound=2)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_string("output", None, "Also write the metrics as JSON here (what it prints, with its schema_version).")
flags.DEFINE_bool("allow_task_mismatch", False, "Score the model on a --task other than the one its metadata records (its classes must really be that task's).")
FLAGS = flags.FLAGS


def main(argv) -> None:
    if not FLAGS.model:
        raise TfkdError("--model is required. Fix: pass --model=<workdir>/model.")
    model, vocab_path, metadata = load_model_dir(FLAGS.model)
    task = get_task(FLAGS.task) if FLAGS.task else metadata.recorded_task()
    if task is None:
        raise TfkdError(f"the model '{FLAGS.model}' does not record the task it was trained on. Fix: pass --task=<task>.")
    check_task(model, metadata, task, f"the model '{FLAGS.model}'", FLAGS.allow_task_mismatch)
    length = FLAGS.max_seq_length or metadata.max_seq_length
    check_sequence_length(model, length)
    tokenizer = make_tokenizer(vocab_path, metadata.lowercase)
    split = tokenize(load_split(task, FLAGS.split, FLAGS.glue_dir), tokenizer, length)
    evaluator = Evaluator(task, split, FLAGS.batch_size)
    metrics = evaluator.evaluate(model)
    speed = evaluator.throughput(model)
    result = EvalResult(model=FLAGS.model, task=task.name, split=FLAGS.split, examples=int(len(split.lengths)),
                        metrics=metrics, forward_examples_per_second=speed)
    print(to_json(result.to_dict()))
    if FLAGS.output:
        result.write(FLAGS.output)


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
