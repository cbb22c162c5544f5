"""Predictions of a saved tfkd model for rows of text: a predicted label and class probabilities, or a score.

The model says what it needs: `tfkd_model.json` records the task its head
was trained on (text fields, classes in logit order, classification or
regression) and its sequence length, so a row only needs the model's text
fields. Rows are predicted `chunk_rows` at a time: a chunk is tokenized,
batched by length (`make_dataset`, in order) and run through one forward
pass, compiled once per padded length, and its predictions are handed out
(or, by `predict_file`, written) before the next chunk is read. A file of
millions of rows thus needs the memory of one chunk.

Example:
>>> import os, tempfile
>>> from tfkd.data.tasks import get_task
>>> from tfkd.models import BertModel, ModelMetadata, save_model_dir
>>> folder = tempfile.mkdtemp()
>>> with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
...     _ = f.write("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
>>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> save_model_dir(os.path.join(folder, "model"), model, os.path.join(folder, "vocab.txt"),
...                ModelMetadata(task="sst2", label_names=["negative", "positive"], max_seq_length=16,
...                              task_spec=get_task("sst2").to_dict()))
>>> [prediction] = predict(os.path.join(folder, "model"), [{"sentence": "a fine film"}])
>>> list(prediction), prediction["predicted_label"] in ("negative", "positive")
(['predicted_label', 'probability_negative', 'probability_positive'], True)
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import jsonable
from tfkd.data.examples import Examples
from tfkd.data.files import CHUNK_ROWS, EXTENSIONS, file_format, iter_records
from tfkd.data.pipeline import DEFAULT_PAD_TO_MULTIPLE_OF, make_dataset, tokenize_chunks
from tfkd.data.tokenizer import make_tokenizer
from tfkd.evaluate.evaluator import _forward_fn
from tfkd.models.bert import INPUT_NAMES, check_sequence_length
from tfkd.models.model_dir import check_task, load_model_dir

LABEL_FIELD = "predicted_label"
SCORE_FIELD = "score"
PROBABILITY_PREFIX = "probability_"
# Significant digits of the probabilities and scores a file gets: float32 logits carry about 7.
DIGITS = 6

# `(where, record)`: a record and the place it came from in words ("data.csv:12", "row 3"), for errors.
Located = Tuple[str, Mapping[str, Any]]


def output_fields(label_names: Sequence[str], is_regression: bool) -> Tuple[str, ...]:
    """The fields a prediction adds to its row: the label and one probability per class, or the score.

    Args:
        label_names: the classes in logit order.
        is_regression: the model predicts one score.

    Example:
    >>> output_fields(["negative", "positive"], False)
    ('predicted_label', 'probability_negative', 'probability_positive')
    >>> output_fields([], True)
    ('score',)
    """
    if is_regression:
        return (SCORE_FIELD,)
    return (LABEL_FIELD,) + tuple(PROBABILITY_PREFIX + name for name in label_names)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of `[N, C]` logits, computed in float64 so that no row overflows.

    Example:
    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(3).tolist()
    [[0.25, 0.75]]
    """
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Predictor:
    """A saved tfkd model ready to predict rows; load it once, predict many inputs.

    Args:
        model_dir: a tfkd model directory (or `.keras` file with `vocab.txt` and
            `tfkd_model.json` next to it) whose metadata records its task.
        batch_size: examples per forward pass.
        jit_compile: compile the forward pass with XLA (one compile per padded
            length; pays off for large inputs on an accelerator).
        max_seq_length: tokens per example; default: the model's training length.
        pad_to_multiple_of: bucketing of the batches (0: geometric buckets).

    Example:
    >>> predictor = Predictor("runs/kd_sst2/model")  # doctest: +SKIP
    >>> predictor.text_fields, predictor.output_fields  # doctest: +SKIP
    (('sentence',), ('predicted_label', 'probability_negative', 'probability_positive'))
    """

    def __init__(self, model_dir: str, batch_size: int = 64, jit_compile: bool = False,
                 max_seq_length: Optional[int] = None, pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF):
        if batch_size < 1:
            raise TfkdError(f"batch_size={batch_size}. Fix: pass a positive batch size.")
        self.model, vocab_path, self.metadata = load_model_dir(model_dir)
        what = f"the model '{model_dir}'"
        task = self.metadata.recorded_task()
        if task is None:
            raise TfkdError(f"{what} records no task in its tfkd_model.json, so its text fields and classes are "
                            "unknown. Fix: predict with a model written by python -m tfkd.train, which records them.")
        check_task(self.model, self.metadata, task, what, allow_other_task=False)
        self.task = task
        self.label_names: Tuple[str, ...] = () if task.is_regression else tuple(
            self.metadata.label_names or task.label_names)
        self.max_seq_length = max_seq_length or self.metadata.max_seq_length
        check_sequence_length(self.model, self.max_seq_length)
        self.tokenizer = make_tokenizer(vocab_path, self.metadata.lowercase)
        self.batch_size = batch_size
        self.pad_to_multiple_of = pad_to_multiple_of
        self._forward = _forward_fn(self.model, jit_compile)

    @property
    def text_fields(self) -> Tuple[str, ...]:
        """The fields each row must have: the model's one text, or its two (a sentence pair)."""
        return self.task.text_fields

    @property
    def output_fields(self) -> Tuple[str, ...]:
        """The fields each prediction has (see `output_fields`)."""
        return output_fields(self.label_names, self.task.is_regression)

    def _text(self, where: str, record: Mapping[str, Any], field: str) -> str:
        if field not in record:
            keys = ", ".join(repr(key) for key in record) or "none"
            raise TfkdError(f"{where}: no field '{field}' (fields: {keys}), but the model reads "
                            f"{', '.join(self.text_fields)}. Fix: give every row the field '{field}', the text the "
                            "model was trained on.")
        value = record[field]
        if not isinstance(value, str) or not value.strip():
            shown = "empty" if isinstance(value, str) else f"{json.dumps(value, default=repr)[:40]}, not a string"
            raise TfkdError(f"{where}: the text in field '{field}' is {shown}. Fix: fill it in or remove the row; "
                            "tfkd does not skip rows.")
        return value

    def _logits(self, chunk: Sequence[Located], progress: Optional[Callable[[int], None]]) -> np.ndarray:
        """`[len(chunk), C]` logits of one chunk, in its order."""
        texts = [[self._text(where, record, field) for where, record in chunk] for field in self.text_fields]
        examples = Examples(texts[0], texts[1] if len(texts) == 2 else None, np.zeros(len(chunk), np.int32),
                            chunk[0][0], has_labels=False)
        split = tokenize_chunks([examples], self.tokenizer, self.max_seq_length)
        logits = np.zeros((len(chunk), self.model.num_classes), np.float32)
        dataset = make_dataset(split, self.batch_size, shuffle=False, seed=0,
                               pad_to_multiple_of=self.pad_to_multiple_of)
        for batch in dataset:
            out = self._forward(*(batch[name] for name in INPUT_NAMES)).numpy()
            keep = batch["weight"].numpy() > 0  # the filler copies of the last batch
            logits[batch["index"].numpy()[keep]] = out[keep]
            if progress is not None:
                progress(int(keep.sum()))
        return logits

    def _outputs(self, logits: np.ndarray) -> List[Dict[str, Any]]:
        if self.task.is_regression:
            return [{SCORE_FIELD: float(score)} for score in logits[:, 0]]
        probabilities = softmax(logits)
        fields = self.output_fields[1:]
        return [{LABEL_FIELD: self.label_names[int(np.argmax(row))], **dict(zip(fields, map(float, row)))}
                for row in probabilities]

    def predict_located(self, records: Iterable[Located], chunk_rows: int = CHUNK_ROWS,
                        progress: Optional[Callable[[int], None]] = None) -> Iterator[Tuple[Mapping[str, Any],
                                                                                            Dict[str, Any]]]:
        """`(record, prediction)` for each located record, in order, `chunk_rows` records at a time.

        Args:
            records: `(where, record)` pairs; `where` names the record in an error ("data.csv:12").
            chunk_rows: records tokenized and predicted together.
            progress: called with the number of rows each batch predicted.
        """
        if chunk_rows < 1:
            raise TfkdError(f"chunk_rows={chunk_rows}. Fix: pass a positive number of rows.")
        records = iter(records)
        while True:
            chunk = list(itertools.islice(records, chunk_rows))
            if not chunk:
                return
            for (_, record), prediction in zip(chunk, self._outputs(self._logits(chunk, progress))):
                yield record, prediction

    def predict(self, rows: Iterable[Mapping[str, Any]], chunk_rows: int = CHUNK_ROWS) -> Iterator[Dict[str, Any]]:
        """The prediction of each row (a mapping with the model's text fields), in order.

        A classifier's prediction is `{"predicted_label": <class>, "probability_<class>": p, ...}`,
        one probability per class in logit order; a regressor's is `{"score": s}`.

        Args:
            rows: the rows; streamed, `chunk_rows` at a time.
            chunk_rows: rows tokenized and predicted together.
        """
        located = ((f"row {i}", row) for i, row in enumerate(rows, 1))
        for _, prediction in self.predict_located(located, chunk_rows):
            yield prediction

    def predict_file(self, input_path: str, output: str, data_format: str = "", chunk_rows: int = CHUNK_ROWS,
                     progress: Optional[Callable[[int], None]] = None) -> int:
        """Writes every row of a CSV, TSV or JSON Lines file with its prediction fields added, in the same format.

        CSV rows keep their columns (quoted as needed, RFC 4180), TSV rows
        theirs, JSON lines their keys; the prediction fields come after them
        (see `output_fields`), probabilities and scores with 6 significant
        digits. A file output is written to `<output>.partial` and renamed
        when complete, so a failure never leaves half a file.

        Args:
            input_path: the rows to predict, with the model's text fields.
            output: the file to write, or `-` for standard output.
            data_format: csv, tsv, jsonl or empty (by the input's extension).
            chunk_rows: rows read, predicted and written together.
            progress: called with the number of rows each batch predicted.

        Returns:
            The number of rows written.
        """
        fmt = file_format(input_path, data_format)
        _check_output(input_path, output, fmt)
        if output == "-":
            return self._write(input_path, fmt, sys.stdout, chunk_rows, progress)
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
        partial = f"{output}.partial"
        try:
            with open(partial, "w", encoding="utf-8", newline="") as f:
                rows = self._write(input_path, fmt, f, chunk_rows, progress)
            os.replace(partial, output)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
        return rows

    def _write(self, path: str, fmt: str, stream: IO[str], chunk_rows: int,
               progress: Optional[Callable[[int], None]]) -> int:
        records = ((f"{path}:{lineno}", record) for lineno, record in iter_records(path, fmt))
        write_row: Optional[Callable[[Mapping[str, Any]], None]] = None
        rows = 0
        for record, prediction in self.predict_located(self._checked(path, fmt, records), chunk_rows, progress):
            if write_row is None:
                write_row = _row_writer(fmt, stream, list(record) + list(prediction))
            write_row({**record, **{key: _rounded(value) for key, value in prediction.items()}})
            rows += 1
        stream.flush()
        return rows

    def _checked(self, path: str, fmt: str, records: Iterator[Located]) -> Iterator[Located]:
        """`records`, refused when one lacks a text field or already has a prediction field; a CSV/TSV
        file is checked once, at its header."""
        fields = ", ".join(self.text_fields)
        for i, (where, record) in enumerate(records):
            if fmt == "jsonl" or i == 0:
                kind, place = ("key", where) if fmt == "jsonl" else ("column", f"{path}: the header")
                found = ", ".join(repr(key) for key in record) or "none"
                for field in self.text_fields:
                    if field not in record:
                        raise TfkdError(
                            f"{place} has no {kind} '{field}' (found: {found}), but the model reads the text "
                            f"{kind}{'s' if len(self.text_fields) > 1 else ''} {fields}, as in the data it was "
                            f"trained on. Fix: name the {kind} '{field}' in the input.")
                taken = [field for field in self.output_fields if field in record]
                if taken:
                    raise TfkdError(f"{place} has a {kind} '{taken[0]}', which the predictions would overwrite. "
                                    f"Fix: rename or drop that {kind} (predictions add {', '.join(self.output_fields)}).")
            yield where, record


def predict(model_dir: str, rows: Iterable[Mapping[str, Any]], batch_size: int = 64, jit_compile: bool = False,
            chunk_rows: int = CHUNK_ROWS) -> Iterator[Dict[str, Any]]:
    """The prediction of each row by the model in `model_dir` (see `Predictor.predict`), streamed.

    Args:
        model_dir: a tfkd model directory that records its task.
        rows: mappings with the model's text fields.
        batch_size: examples per forward pass.
        jit_compile: compile the forward pass with XLA.
        chunk_rows: rows tokenized and predicted together.

    Example:
    >>> next(predict("runs/kd_sst2/model", [{"sentence": "a fine film"}]))  # doctest: +SKIP
    {'predicted_label': 'positive', 'probability_negative': 0.0312, 'probability_positive': 0.9688}
    """
    return Predictor(model_dir, batch_size, jit_compile).predict(rows, chunk_rows)


def predict_file(model_dir: str, input_path: str, output: str, data_format: str = "", batch_size: int = 64,
                 jit_compile: bool = False, chunk_rows: int = CHUNK_ROWS) -> int:
    """Writes the rows of `input_path` with the predictions of the model in `model_dir` (see
    `Predictor.predict_file`); returns the number of rows.

    Example:
    >>> predict_file("runs/kd_sst2/model", "unlabelled.csv", "predicted.csv")  # doctest: +SKIP
    872
    """
    return Predictor(model_dir, batch_size, jit_compile).predict_file(input_path, output, data_format, chunk_rows)


def _rounded(value: Any) -> Any:
    return float(f"{value:.{DIGITS}g}") if isinstance(value, float) else value


def _check_output(input_path: str, output: str, fmt: str) -> None:
    if not output:
        raise TfkdError("no output given. Fix: pass --output=<file>, or --output=- for standard output.")
    if output == "-":
        return
    if os.path.exists(output) and os.path.exists(input_path) and os.path.samefile(input_path, output):
        raise TfkdError(f"the output {output} is the input file. Fix: write the predictions to another file.")
    extension = os.path.splitext(output)[1].lower()
    if EXTENSIONS.get(extension, fmt) != fmt:
        raise TfkdError(f"the output {output} is named as {EXTENSIONS[extension]}, but predictions are written in the "
                        f"input's format, {fmt}. Fix: name the output {os.path.splitext(output)[0]}.{fmt}.")


def _row_writer(fmt: str, stream: IO[str], fields: List[str]) -> Callable[[Mapping[str, Any]], None]:
    """A function writing one row of `fields`; a CSV/TSV header goes out first."""
    if fmt == "jsonl":
        # Strict JSON (a NaN score of a diverged model is null, not NaN); ensure_ascii=False: texts stay
        # readable UTF-8, as they came in.
        return lambda row: stream.write(json.dumps(jsonable(row), ensure_ascii=False, allow_nan=False) + "\n")
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(fields)
        return lambda row: writer.writerow([row[field] for field in fields])
    # TSV has no quoting: its fields hold no tab or line break, since it was read by splitting at them.
    stream.write("\t".join(fields) + "\n")
    return lambda row: stream.write("\t".join(str(row[field]) for field in fields) + "\n")
