"""`--validate`: every exported artefact against the Keras student on the dev set, and the teacher's numbers.

For each artefact: max |Δlogit| against the Keras model on the same token
ids, prediction agreement, the task's dev metrics, file size, and median /
p90 single-example latency on this machine. The TFLite models run in LiteRT
with 2 threads, one example at a time at their fixed length; the SavedModel
signatures run in TensorFlow. The TFLite rows compare with the Keras model
fed the same examples truncated to the TFLite length, so |Δlogit| measures
conversion and quantization only. The teacher goes through the same float32
and dynamic-int8 TFLite conversion, so the speed-up is measured, not assumed.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfkd.core.jsonfile import write_json
from tfkd.core.log import log as library_log
from tfkd.data import GlueTask, TokenizedSplit, make_tokenizer, tokenize
from tfkd.evaluate.evaluator import Evaluator
from tfkd.evaluate.metrics import compute_metrics, primary_metric
from tfkd.export.exporter import ExportResult, as_float32, lite_inputs
from tfkd.export.saved_model import ID_INPUTS, IDS_SIGNATURE, SERVING_SIGNATURE
from tfkd.export.tflite import TEXT_VARIANT, LiteModel, convert_ids_models
from tfkd.models.bert import BertModel
from tfkd.models.model_dir import MODEL_FILE, load_model_dir

REPORT_FILE = "report.json"
TEACHER_VARIANTS = ("float32", "dynamic_int8")
BATCH_SIZE = 32


@dataclasses.dataclass
class Row:
    """One line of the report.

    Args:
        name: what was run.
        runtime: the engine (`keras`, `tensorflow`, `litert`).
        seq_length: the tokens per example it saw ("dynamic" when padded per batch).
        size_bytes: its file (or folder) size.
        max_abs_logit_diff: max |Δlogit| against the Keras model (None for a Keras row).
        agreement: fraction of examples with the same predicted class (None for regression).
        metrics: the task's dev metrics.
        latency_ms: median and p90 single-example latency (None when not timed).
        token_agreement: for the text TFLite model, the fraction of examples
            tokenized exactly as in training.
    """

    name: str
    runtime: str
    seq_length: Any
    size_bytes: Optional[int]
    max_abs_logit_diff: Optional[float]
    agreement: Optional[float]
    metrics: Dict[str, float]
    latency_ms: Optional[Dict[str, float]] = None
    token_agreement: Optional[float] = None


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _latency(seconds: Sequence[float]) -> Dict[str, float]:
    ms = 1000.0 * np.asarray(seconds)
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "examples": int(len(ms))}


def _predictions(task: GlueTask, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if task.is_regression else logits.argmax(-1)


def _row(name, runtime, seq_length, size, task, labels, logits, reference, latency=None, **extra) -> Row:
    agreement = None
    if not task.is_regression and reference is not None:
        agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
    return Row(
        name=name,
        runtime=runtime,
        seq_length=seq_length,
        size_bytes=size,
        max_abs_logit_diff=None if reference is None else float(np.max(np.abs(logits - reference))),
        agreement=agreement,
        metrics=compute_metrics(task, labels, _predictions(task, logits)),
        latency_ms=None if latency is None else _latency(latency),
        **extra,
    )


def _keras_logits(model: BertModel, task: GlueTask, split: TokenizedSplit) -> np.ndarray:
    return Evaluator(task, split, BATCH_SIZE, jit_compile=False).predict_logits(model)


def _signature_logits(outputs: Dict[str, tf.Tensor]) -> np.ndarray:
    if "score" in outputs:
        return outputs["score"].numpy()[:, None]
    return outputs["logits"].numpy()


def _id_batch(split: TokenizedSplit, rows: Sequence[int]) -> Dict[str, tf.Tensor]:
    width = max(int(split.lengths[i]) for i in rows)
    arrays = {name: np.zeros((len(rows), width), np.int32) for name in ID_INPUTS}
    for j, i in enumerate(rows):
        ids, segments = split.example(i)
        arrays["input_ids"][j, : len(ids)] = ids
        arrays["segment_ids"][j, : len(ids)] = segments
        arrays["padding_mask"][j, : len(ids)] = 1
    return {name: tf.constant(a) for name, a in arrays.items()}


def _run_saved_model(
    result: ExportResult, texts: List[List[str]], latency_examples: int
) -> Dict[str, tuple]:
    """`{signature: (logits [N, C], per-example seconds)}` for both signatures."""
    signatures = tf.saved_model.load(result.saved_model_dir).signatures
    fields = result.run.task.text_fields
    split = result.dev_split
    count = len(split)

    def text_batch(rows):
        return {f: tf.constant([t[i] for i in rows]) for f, t in zip(fields, texts)}

    calls: Dict[str, Callable] = {
        SERVING_SIGNATURE: lambda rows: signatures[SERVING_SIGNATURE](**text_batch(rows)),
        IDS_SIGNATURE: lambda rows: signatures[IDS_SIGNATURE](**_id_batch(split, rows)),
    }
    out = {}
    for name, call in calls.items():
        logits = np.concatenate(
            [_signature_logits(call(list(range(s, min(s + BATCH_SIZE, count))))) for s in range(0, count, BATCH_SIZE)]
        )
        call([0])  # first call of a batch-1 shape
        seconds = []
        for i in range(min(latency_examples, count)):
            start = time.perf_counter()
            call([i])
            seconds.append(time.perf_counter() - start)
        out[name] = (logits, seconds)
    return out


def _run_lite(lite: LiteModel, feeds: Callable[[int], Dict[str, np.ndarray]], count: int, output: str = "logits"):
    """Runs every example one at a time; returns (outputs stacked, per-example seconds)."""
    for i in range(min(3, count)):  # let XNNPACK pack weights before timing
        lite(**feeds(i))
    results, seconds = [], []
    for i in range(count):
        inputs = feeds(i)
        start = time.perf_counter()
        out = lite(**inputs)
        seconds.append(time.perf_counter() - start)
        results.append(out)
    return results, seconds


def _lite_rows(
    label: str,
    task: GlueTask,
    files: Dict[str, str],
    split: TokenizedSplit,
    seq_length: int,
    reference: np.ndarray,
) -> List[Row]:
    rows = []
    for variant, path in files.items():
        outputs, seconds = _run_lite(LiteModel(path), lambda i: lite_inputs(split, i, seq_length), len(split))
        logits = np.concatenate([o["logits"] for o in outputs])
        rows.append(_row(f"{label} TFLite {variant}", "litert", seq_length, _size(path), task, split.labels,
                         logits, reference, seconds))
    return rows


def _teacher_rows(result: ExportResult, log: Callable[[str], None]) -> List[Row]:
    task, seq_length = result.run.task, result.tflite_seq_length
    teacher, vocab_path, meta = load_model_dir(result.run.teacher_dir)
    teacher = as_float32(teacher)
    tokenizer = make_tokenizer(vocab_path, meta.lowercase)
    full = tokenize(result.dev, tokenizer, meta.max_seq_length)
    rows = [_row("teacher Keras", "keras", meta.max_seq_length, _size(os.path.join(result.run.teacher_dir, MODEL_FILE)),
                 task, full.labels, _keras_logits(teacher, task, full), None)]
    if result.tflite_files:
        log(f"validate: converting the teacher ({teacher.num_layers} layers) to TFLite for its latency")
        split = tokenize(result.dev, tokenizer, seq_length)
        reference = _keras_logits(teacher, task, split)
        with tempfile.TemporaryDirectory() as folder:
            files = {}
            for variant, flatbuffer in convert_ids_models(teacher, seq_length, TEACHER_VARIANTS).items():
                files[variant] = os.path.join(folder, f"teacher_{variant}.tflite")
                with open(files[variant], "wb") as f:
                    f.write(flatbuffer)
            rows += _lite_rows("teacher", task, files, split, seq_length, reference)
    return rows


def validate(result: ExportResult, latency_examples: int = 200, log: Callable[[str], None] = library_log) -> Dict[str, Any]:
    """Runs the dev set through everything `export` wrote; writes `report.json` next to the SavedModel.

    Args:
        result: what `tfkd.export.exporter.export` returned.
        latency_examples: dev examples timed one by one through each SavedModel
            signature (TFLite models time the whole dev set).
        log: where progress lines go.

    Example (needs a finished `tfkd.train` run, so not run here):
    >>> from tfkd.export import ExportOptions, export
    >>> report = validate(export(ExportOptions(workdir="workdirs/kd_sst2", export_dir="/tmp/serving")))  # doctest: +SKIP
    >>> print(format_table(report))  # doctest: +SKIP
    """
    task, model, seq_length = result.run.task, result.model, result.tflite_seq_length
    dev = result.dev
    texts = [dev.text_a] + ([dev.text_b] if dev.is_pair else [])
    labels = result.dev_split.labels
    log(f"validate: {len(dev)} dev examples through the Keras student, the SavedModel and {len(result.tflite_files)} TFLite models")
    keras_logits = _keras_logits(model, task, result.dev_split)
    rows = [_row("student Keras", "keras", result.metadata.max_seq_length,
                 _size(os.path.join(result.run.model_dir, MODEL_FILE)), task, labels, keras_logits, None)]
    size = _size(result.saved_model_dir)
    for name, (logits, seconds) in _run_saved_model(result, texts, latency_examples).items():
        rows.append(_row(f"student SavedModel {name}", "tensorflow", "dynamic", size, task, labels, logits,
                         keras_logits, seconds))
    if result.tflite_files:
        tokenizer = make_tokenizer(result.vocab_path, result.metadata.lowercase)
        split = tokenize(dev, tokenizer, seq_length)
        reference = _keras_logits(model, task, split)
        ids_files = {v: p for v, p in result.tflite_files.items() if v != TEXT_VARIANT}
        rows += _lite_rows("student", task, ids_files, split, seq_length, reference)
        if TEXT_VARIANT in result.tflite_files:
            path = result.tflite_files[TEXT_VARIANT]
            fields = task.text_fields
            outputs, seconds = _run_lite(
                LiteModel(path, custom_ops=True),
                lambda i: {f: np.array([t[i].encode("utf-8")]) for f, t in zip(fields, texts)},
                len(dev),
            )
            same_tokens = [
                np.array_equal(o["token_ids"][0, : split.lengths[i]], split.example(i)[0])
                and not o["token_ids"][0, split.lengths[i]:].any()
                for i, o in enumerate(outputs)
            ]
            rows.append(_row(f"student TFLite {TEXT_VARIANT}", "litert+tftext", seq_length, _size(path), task,
                             split.labels, np.concatenate([o["logits"] for o in outputs]), reference, seconds,
                             token_agreement=float(np.mean(same_tokens))))
    if result.run.teacher_dir:
        rows += _teacher_rows(result, log)
    else:
        log("validate: no teacher model directory found in the run's flags; the report has student rows only")
    report = {
        "model_name": result.model_name,
        "version": result.version,
        "task": task.name,
        "primary_metric": primary_metric(task),
        "dev_examples": len(dev),
        "tflite_seq_length": seq_length,
        "tflite_threads": 2,
        "teacher_dir": result.run.teacher_dir,
        "rows": [dataclasses.asdict(row) for row in rows],
    }
    write_json(os.path.join(result.saved_model_dir, REPORT_FILE), report)
    return report


def format_table(report: Dict[str, Any]) -> str:
    """The report as a fixed-width table.

    Speed-up is the teacher's float32 TFLite median latency over the row's,
    for the LiteRT rows (the same runtime, threads and sequence length).

    Args:
        report: what `validate` returned.
    """
    rows = report["rows"]
    metrics = list(rows[0]["metrics"])
    baseline = next((r["latency_ms"]["median"] for r in rows if r["name"] == "teacher TFLite float32"), None)
    header = (f"{'artefact':<36}{'runtime':>14}{'seq':>8}{'size MB':>9}{'max|Δlogit|':>12}{'agree %':>9}"
              + "".join(f"{m:>10}" for m in metrics) + f"{'p50 ms':>9}{'p90 ms':>9}{'speed-up':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        latency = r["latency_ms"]
        lite = r["runtime"].startswith("litert")
        speedup = f"{baseline / latency['median']:.1f}x" if baseline and latency and lite else "–"
        lines.append(
            f"{r['name']:<36}{r['runtime']:>14}{str(r['seq_length']):>8}"
            f"{(r['size_bytes'] or 0) / 1e6:>9.2f}"
            f"{'–' if r['max_abs_logit_diff'] is None else format(r['max_abs_logit_diff'], '.2e'):>12}"
            f"{'–' if r['agreement'] is None else format(100 * r['agreement'], '.1f'):>9}"
            + "".join(f"{100 * r['metrics'][m]:>10.2f}" for m in metrics)
            + f"{'–' if not latency else format(latency['median'], '.2f'):>9}"
            f"{'–' if not latency else format(latency['p90'], '.2f'):>9}{speedup:>9}"
        )
    for r in rows:
        if r.get("token_agreement") is not None:
            lines.append(f"{r['name']}: {100 * r['token_agreement']:.1f} % of dev examples tokenized exactly as in training")
    return "\n".join(lines)
