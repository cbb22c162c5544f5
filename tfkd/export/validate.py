"""`--validate`: every exported artefact against the Keras student on the dev set, and the teacher's numbers.

For each artefact: max |Δlogit| against the Keras model on the same token
ids, prediction agreement and the task's dev metrics (all from every dev
example), file size, and median / p90 single-example latency on this
machine. The TFLite models run in LiteRT (`num_threads` threads), one
example at a time at their fixed length; the SavedModel signatures run in
TensorFlow. The TFLite rows compare with the Keras model fed the same
examples truncated to the TFLite length, so |Δlogit| measures conversion
and quantization only.

The teacher goes through the same float32 and dynamic-int8 TFLite
conversion, so the speed-up is measured, not assumed. For each variant the
student also has, the two are timed interleaved: one example through the
student, the same example through the teacher (each tokenized with its own
vocabulary at the TFLite length), and so on, after a warm-up of both, in
`repeats` rounds over the first `latency_examples` dev examples. Load that
comes and goes on the machine then slows both alike; timing one model over
the dev set and the other afterwards let it skew the ratio (beside a
training run a 3-layer student once measured 4.6x faster than its 6-layer
teacher, 2.1x on an idle machine). Each round gives the teacher's median
latency over the student's; the report keeps their median, min and max over
rounds. Models without a counterpart (the other variants, the text model,
every model of a run without a teacher) are timed alone over the dev set.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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
WARMUP_CALLS = 3  # XNNPACK packs the weights on the first calls


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


@dataclasses.dataclass
class _Lite:
    """An id-input TFLite model, the dev split in its own vocabulary and its Keras logits on that split."""

    name: str
    model: LiteModel
    size: int
    split: TokenizedSplit
    seq_length: int
    reference: np.ndarray

    def inputs(self, i: int) -> Dict[str, np.ndarray]:
        return lite_inputs(self.split, i, self.seq_length)


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
    for i in range(min(WARMUP_CALLS, count)):
        lite(**feeds(i))
    results, seconds = [], []
    for i in range(count):
        inputs = feeds(i)
        start = time.perf_counter()
        out = lite(**inputs)
        seconds.append(time.perf_counter() - start)
        results.append(out)
    return results, seconds


def _seconds(lite: LiteModel, inputs: Dict[str, np.ndarray]) -> float:
    start = time.perf_counter()
    lite(**inputs)
    return time.perf_counter() - start


def _interleaved(student: _Lite, teacher: _Lite, examples: int, repeats: int) -> Tuple[List[List[float]], List[List[float]]]:
    """Per-round seconds of the student and of the teacher, called in turn on each of the first `examples` examples."""
    # Tokenized beforehand, so the timed loop holds nothing but the two models.
    feeds = [(student.inputs(i), teacher.inputs(i)) for i in range(examples)]
    for student_inputs, teacher_inputs in feeds[:WARMUP_CALLS]:
        student.model(**student_inputs)
        teacher.model(**teacher_inputs)
    student_rounds, teacher_rounds = [], []
    for _ in range(repeats):
        pairs = [(_seconds(student.model, s), _seconds(teacher.model, t)) for s, t in feeds]
        student_rounds.append([s for s, _ in pairs])
        teacher_rounds.append([t for _, t in pairs])
    return student_rounds, teacher_rounds


def _speedup(student_rounds: List[List[float]], teacher_rounds: List[List[float]]) -> Dict[str, Any]:
    """Teacher over student median latency per round, and its median and range over rounds."""
    per_repeat = []
    for student, teacher in zip(student_rounds, teacher_rounds):
        student_ms, teacher_ms = _latency(student)["median"], _latency(teacher)["median"]
        per_repeat.append({"student_p50_ms": student_ms, "teacher_p50_ms": teacher_ms, "ratio": teacher_ms / student_ms})
    ratios = [r["ratio"] for r in per_repeat]
    return {
        "median": float(np.median(ratios)),
        "min": min(ratios),
        "max": max(ratios),
        "repeats": len(ratios),
        "examples_per_repeat": len(student_rounds[0]),
        "student_p50_ms": _latency(sum(student_rounds, []))["median"],
        "teacher_p50_ms": _latency(sum(teacher_rounds, []))["median"],
        "per_repeat": per_repeat,
    }


def _time_pairs(
    students: Dict[str, _Lite], teachers: Dict[str, _Lite], examples: int, repeats: int, log: Callable[[str], None]
) -> Tuple[Dict[str, List[float]], Dict[str, Dict[str, Any]]]:
    """Interleaved timing of every variant both have: (row name → all its seconds, variant → speed-up)."""
    seconds, speedup = {}, {}
    for variant in [v for v in students if v in teachers]:
        log(f"validate: timing the student's and the teacher's {variant} TFLite models in turn, "
            f"{repeats} rounds of {examples} examples")
        student_rounds, teacher_rounds = _interleaved(students[variant], teachers[variant], examples, repeats)
        seconds[students[variant].name] = sum(student_rounds, [])
        seconds[teachers[variant].name] = sum(teacher_rounds, [])
        speedup[variant] = _speedup(student_rounds, teacher_rounds)
    return seconds, speedup


def _lite_row(lite: _Lite, task: GlueTask, seconds: Optional[List[float]]) -> Row:
    """Logits of every dev example; latency from `seconds` (interleaved timing), or else from this pass alone."""
    outputs, alone = _run_lite(lite.model, lite.inputs, len(lite.split))
    logits = np.concatenate([o["logits"] for o in outputs])
    return _row(lite.name, "litert", lite.seq_length, lite.size, task, lite.split.labels, logits, lite.reference,
                alone if seconds is None else seconds)


def _student_lites(result: ExportResult, split: TokenizedSplit, reference: np.ndarray, num_threads: int) -> Dict[str, _Lite]:
    return {
        variant: _Lite(f"student TFLite {variant}", LiteModel(path, num_threads=num_threads), _size(path), split,
                       result.tflite_seq_length, reference)
        for variant, path in result.tflite_files.items() if variant != TEXT_VARIANT
    }


def _text_row(result: ExportResult, texts: List[List[str]], split: TokenizedSplit, reference: np.ndarray,
              num_threads: int) -> Row:
    path = result.tflite_files[TEXT_VARIANT]
    fields = result.run.task.text_fields
    outputs, seconds = _run_lite(
        LiteModel(path, custom_ops=True, num_threads=num_threads),
        lambda i: {f: np.array([t[i].encode("utf-8")]) for f, t in zip(fields, texts)},
        len(result.dev),
    )
    same_tokens = [
        np.array_equal(o["token_ids"][0, : split.lengths[i]], split.example(i)[0])
        and not o["token_ids"][0, split.lengths[i]:].any()
        for i, o in enumerate(outputs)
    ]
    return _row(f"student TFLite {TEXT_VARIANT}", "litert+tftext", result.tflite_seq_length, _size(path),
                result.run.task, split.labels, np.concatenate([o["logits"] for o in outputs]), reference, seconds,
                token_agreement=float(np.mean(same_tokens)))


def _teacher(result: ExportResult, num_threads: int, log: Callable[[str], None]) -> Tuple[Row, Dict[str, _Lite]]:
    """The teacher's Keras row, and its TFLite models when the student has TFLite files to compare with."""
    task, seq_length = result.run.task, result.tflite_seq_length
    teacher, vocab_path, meta = load_model_dir(result.run.teacher_dir)
    teacher = as_float32(teacher)
    # The teacher's own vocabulary: a student's may be a trimmed one.
    tokenizer = make_tokenizer(vocab_path, meta.lowercase)
    full = tokenize(result.dev, tokenizer, meta.max_seq_length)
    keras_row = _row("teacher Keras", "keras", meta.max_seq_length,
                     _size(os.path.join(result.run.teacher_dir, MODEL_FILE)), task, full.labels,
                     _keras_logits(teacher, task, full), None)
    if not result.tflite_files:
        return keras_row, {}
    log(f"validate: converting the teacher ({teacher.num_layers} layers) to TFLite for its latency")
    split = tokenize(result.dev, tokenizer, seq_length)
    reference = _keras_logits(teacher, task, split)
    lites = {
        variant: _Lite(f"teacher TFLite {variant}", LiteModel(flatbuffer, num_threads=num_threads), len(flatbuffer),
                       split, seq_length, reference)
        for variant, flatbuffer in convert_ids_models(teacher, seq_length, TEACHER_VARIANTS).items()
    }
    return keras_row, lites


def validate(
    result: ExportResult,
    latency_examples: int = 200,
    repeats: int = 5,
    num_threads: int = 2,
    log: Callable[[str], None] = library_log,
) -> Dict[str, Any]:
    """Runs the dev set through everything `export` wrote; writes `report.json` next to the SavedModel.

    Args:
        result: what `tfkd.export.exporter.export` returned.
        latency_examples: dev examples timed one by one through each SavedModel
            signature, and per round through the student and teacher TFLite
            models timed in turn (other TFLite models time the whole dev set).
        repeats: rounds of that interleaved student/teacher timing.
        num_threads: LiteRT interpreter threads of every TFLite model.
        log: where progress lines go.

    Returns:
        The report: `rows` (one `Row` each), `tflite_threads`, `timing`
        ("interleaved" when student and teacher TFLite models were timed in
        turn, "alone" otherwise) and, when interleaved, `speedup`: per
        variant the teacher/student ratio of median latencies (`median`,
        `min`, `max` over `repeats` rounds, and `per_repeat`).

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
    students: Dict[str, _Lite] = {}
    if result.tflite_files:
        split = tokenize(dev, make_tokenizer(result.vocab_path, result.metadata.lowercase), seq_length)
        reference = _keras_logits(model, task, split)
        students = _student_lites(result, split, reference, num_threads)
    teacher_rows, teachers = [], {}
    if result.run.teacher_dir:
        teacher_keras, teachers = _teacher(result, num_threads, log)
        teacher_rows.append(teacher_keras)
    else:
        log("validate: no teacher model directory found in the run's flags; the report has student rows only")
    seconds, speedup = _time_pairs(students, teachers, min(latency_examples, len(dev)), repeats, log)
    rows += [_lite_row(lite, task, seconds.get(lite.name)) for lite in students.values()]
    if TEXT_VARIANT in result.tflite_files:
        rows.append(_text_row(result, texts, split, reference, num_threads))
    rows += teacher_rows + [_lite_row(lite, task, seconds.get(lite.name)) for lite in teachers.values()]
    report = {
        "model_name": result.model_name,
        "version": result.version,
        "task": task.name,
        "primary_metric": primary_metric(task),
        "dev_examples": len(dev),
        "tflite_seq_length": seq_length,
        "tflite_threads": num_threads,
        "teacher_dir": result.run.teacher_dir,
        "timing": "interleaved" if speedup else "alone",
        **({"speedup": speedup} if speedup else {}),
        "rows": [dataclasses.asdict(row) for row in rows],
    }
    write_json(os.path.join(result.saved_model_dir, REPORT_FILE), report)
    return report


def _speedup_cell(row: Dict[str, Any], speedup: Dict[str, Dict[str, Any]]) -> str:
    prefix = "student TFLite "
    entry = speedup.get(row["name"][len(prefix):]) if row["name"].startswith(prefix) else None
    return "–" if entry is None else f"{entry['median']:.1f}x ({entry['min']:.1f}–{entry['max']:.1f})"


def format_table(report: Dict[str, Any]) -> str:
    """The report as a fixed-width table.

    Speed-up, on the student's TFLite rows that have a teacher counterpart:
    the teacher's median latency over the student's in the same variant,
    timed in turn; median (min–max) over the rounds.

    Args:
        report: what `validate` returned.
    """
    rows, speedup = report["rows"], report.get("speedup", {})
    metrics = list(rows[0]["metrics"])
    header = (f"{'artefact':<36}{'runtime':>14}{'seq':>8}{'size MB':>9}{'max|Δlogit|':>12}{'agree %':>9}"
              + "".join(f"{m:>10}" for m in metrics) + f"{'p50 ms':>9}{'p90 ms':>9}{'speed-up':>19}")
    lines = [header, "-" * len(header)]
    for r in rows:
        latency = r["latency_ms"]
        lines.append(
            f"{r['name']:<36}{r['runtime']:>14}{str(r['seq_length']):>8}"
            f"{(r['size_bytes'] or 0) / 1e6:>9.2f}"
            f"{'–' if r['max_abs_logit_diff'] is None else format(r['max_abs_logit_diff'], '.2e'):>12}"
            f"{'–' if r['agreement'] is None else format(100 * r['agreement'], '.1f'):>9}"
            + "".join(f"{100 * r['metrics'][m]:>10.2f}" for m in metrics)
            + f"{'–' if not latency else format(latency['median'], '.2f'):>9}"
            f"{'–' if not latency else format(latency['p90'], '.2f'):>9}{_speedup_cell(r, speedup):>19}"
        )
    for r in rows:
        if r.get("token_agreement") is not None:
            lines.append(f"{r['name']}: {100 * r['token_agreement']:.1f} % of dev examples tokenized exactly as in training")
    if any(r["runtime"].startswith("litert") for r in rows):
        lines.append(f"TFLite: LiteRT with {report['tflite_threads']} threads, one example at a time")
    if speedup:
        entry = next(iter(speedup.values()))
        lines.append(f"speed-up: teacher p50 / student p50 in the same TFLite variant, the two called in turn on the "
                     f"same {entry['examples_per_repeat']} dev examples; median (min–max) over {entry['repeats']} rounds")
    return "\n".join(lines)
