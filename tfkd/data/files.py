"""Your own data: CSV, TSV and JSON Lines files as the splits of a task.

Formats (`data_format`, else the file's extension):

- CSV (`.csv`): RFC 4180. A field may be quoted with `"`; a quoted field may
  hold commas, line breaks and quotes written twice (`""`). Text after a
  closing quote (`"a"b`) is refused, not guessed at. The first row is the
  header; no two columns may share a name.
- TSV (`.tsv`): one row per line, fields split at tabs, no quoting, as in
  GLUE: `"` is an ordinary character. The first row is the header, as in CSV.
- JSON Lines (`.jsonl`, `.ndjson`): one JSON object per line (`NaN` and
  `Infinity`, which Python writes but JSON has not, are refused). A label may be
  a string, a number or a boolean and is compared with label names as a
  string: a string without its surrounding spaces, anything else as JSON
  writes it (`1` → `"1"`, `true` → `"true"`, `1.0` → `"1.0"`).

Files are read as UTF-8 (a leading byte-order mark is dropped) one line at a
time, so a file is never in memory whole; `iter_examples` hands out bounded
chunks. Blank lines are not rows: they are counted and logged. Anything
else that is wrong raises one `TfkdError` line naming the file, the line and
the fix; no row is skipped.

Example:
>>> import os, tempfile
>>> from tfkd.data.tasks import TaskSpec
>>> path = os.path.join(tempfile.mkdtemp(), "train.csv")
>>> with open(path, "w", encoding="utf-8") as f:
...     _ = f.write('review,stars\\n"loved it, really",good\\n"so ""meh""\\nand long",bad\\n')
>>> task = TaskSpec(name="reviews", text_fields=("review",), label_names=("bad", "good"), is_regression=False,
...                 metrics=("accuracy",), train_file=path, dev_file=path, label_field="stars")
>>> ex = read_examples(task, "train")
>>> ex.text_a, ex.labels.tolist()
(['loved it, really', 'so "meh"\\nand long'], [1, 0])
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
from typing import Any, Callable, Dict, Generator, Iterator, List, NoReturn, Optional, Sequence, Tuple

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.tasks import TaskSpec

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "jsonl")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Rows per `iter_examples` chunk: large enough that tokenizing a chunk is efficient, small enough
# that a chunk's Python strings stay a few MB.
CHUNK_ROWS = 8192
# `scan_labels` keeps at most this many distinct labels; a classification task needs fewer classes.
MAX_CLASSES = 10_000

UTF8_FIX = "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 old.csv > new.csv)"
CSV_HINTS = {
    "expected after": "text follows a closing quote. Fix: quote the whole field and write a quote inside it "
                      'twice ("say ""hi""").',
    "unexpected end of data": "a quoted field that starts in this row is never closed. Fix: close the quote, or "
                              'write a quote inside a quoted field twice ("").',
    "field larger than field limit": f"a field is longer than {csv.field_size_limit()} characters, most likely "
                                     "because a quote opened in this row is never closed. Fix: close the quote.",
    "new-line character": "a carriage return (\\r) inside an unquoted field. Fix: quote the field or remove it.",
}


def file_format(path: str, data_format: str = "") -> str:
    """`data_format` when given, else the format `path`'s extension says: csv, tsv or jsonl.

    Args:
        path: the file.
        data_format: csv, tsv, jsonl or empty.

    Example:
    >>> file_format("data/train.ndjson"), file_format("train.txt", "tsv")
    ('jsonl', 'tsv')
    """
    if data_format:
        if data_format not in FORMATS:
            raise TfkdError(f"data format '{data_format}' is not one of {', '.join(FORMATS)}. Fix: pass one of those "
                            "as --data_format, or leave it out to go by the file extension.")
        return data_format
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise TfkdError(f"{path}: cannot tell the format from the extension '{extension}'. Fix: name the file "
                        f"{', '.join(EXTENSIONS)}, or pass --data_format={'|'.join(FORMATS)}.")
    return EXTENSIONS[extension]


def _lines(path: str) -> Iterator[str]:
    """The file's lines, split after `\\n` only and with their line ends, UTF-8 decoded; no leading BOM.

    Decoding line by line is exact: no UTF-8 character contains the byte `\\n`.
    """
    if not os.path.isfile(path):
        raise TfkdError(f"data file not found: {path}. Fix: check the path given as --train_file/--dev_file/"
                        "--test_file.")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TfkdError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start + 1} of the line). "
                                f"Fix: {UTF8_FIX}.") from None
            yield line.removeprefix("\ufeff") if lineno == 1 else line


def _csv_rows(path: str) -> Iterator[Tuple[int, List[str]]]:
    """(line the row starts on, fields) of each CSV row; a blank line is a row of no fields."""
    # The row's own lines tell a blank line from a quoted empty field (`""`), which the csv module reads alike.
    row_lines: List[str] = []

    def lines() -> Iterator[str]:
        for line in _lines(path):
            row_lines.append(line)
            yield line

    reader = csv.reader(lines(), strict=True)  # strict: bad quoting fails instead of being guessed at
    start = 1
    while True:
        row_lines.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            hint = next((h for key, h in CSV_HINTS.items() if key in str(e)),
                        f"{e}. Fix: quote fields that contain commas, quotes or line breaks (RFC 4180).")
            raise TfkdError(f"{path}:{start}: not valid CSV: {hint}") from None
        yield start, row if "".join(row_lines).strip() else []
        start = reader.line_num + 1


def _tsv_rows(path: str) -> Iterator[Tuple[int, List[str]]]:
    """(line, fields) of each TSV line; a blank line is a row of no fields."""
    for lineno, line in enumerate(_lines(path), 1):
        yield lineno, line.removesuffix("\n").removesuffix("\r").split("\t") if line.strip() else []


# The record generators return (records, blank lines) when they are done.
Records = Generator[Tuple[int, Dict[str, Any]], None, Tuple[int, int]]


def _table_records(path: str, fmt: str, required: Sequence[str]) -> Records:
    rows = _csv_rows(path) if fmt == "csv" else _tsv_rows(path)
    header_line, header = next(((n, row) for n, row in rows if row), (1, None))
    blank = header_line - 1  # a blank row is one line
    if header is None:
        raise TfkdError(f"{path}:1: the file is empty. Fix: a {fmt.upper()} file needs a header row naming its "
                        f"columns ({', '.join(required) or 'e.g. text, label'}) and one row per example.")
    header = [name.strip() for name in header]
    found = ", ".join(repr(name) for name in header)
    for name in required:
        if header.count(name) != 1:
            problem = "no column" if name not in header else f"{header.count(name)} columns"
            raise TfkdError(
                f"{path}:{header_line}: the header has {problem} named '{name}' (found: {found}). Fix: pass the "
                "column names the file has as --text_fields/--label_field, or rename the column; the first row must "
                "be the header."
            )
    repeated = next((name for name in header if header.count(name) > 1), None)
    if repeated is not None:
        # A record maps each name to one field: a second column of the name would vanish from it.
        raise TfkdError(f"{path}:{header_line}: the header has {header.count(repeated)} columns named '{repeated}' "
                        f"(found: {found}). Fix: give every column a name of its own.")
    separator = "comma" if fmt == "csv" else "tab"
    count = 0
    for lineno, row in rows:
        if not row:
            blank += 1
            continue
        if len(row) != len(header):
            fix = ('quote fields that contain commas, quotes or line breaks ("a, b")' if fmt == "csv" else
                   "TSV has no quoting, so a tab inside a text splits it: remove the tab, or write the file as CSV")
            raise TfkdError(f"{path}:{lineno}: {len(row)} {separator}-separated fields, but the header has "
                            f"{len(header)} ({found}). Fix: {fix}.")
        yield lineno, dict(zip(header, row))
        count += 1
    return count, blank


def _not_json(constant: str) -> NoReturn:
    # Python's json reads NaN and Infinity; JSON has no such values, and a NaN label or score is a silent wrong answer.
    raise ValueError(f"{constant} is not a JSON value")


def _jsonl_records(path: str, required: Sequence[str]) -> Records:
    count = blank = 0
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            blank += 1
            continue
        try:
            record = json.loads(line, parse_constant=_not_json)
        except json.JSONDecodeError as e:
            raise TfkdError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno}). Fix: write one JSON "
                            'object per line, e.g. {"text": "a fine film", "label": "positive"}.') from None
        except ValueError as e:  # NaN or Infinity, or an integer of more digits than Python converts
            raise TfkdError(f"{path}:{lineno}: not valid JSON ({e}). Fix: write null for a missing or undefined "
                            "number (Python's json.dumps(..., allow_nan=False) refuses to write NaN).") from None
        if not isinstance(record, dict):
            raise TfkdError(f"{path}:{lineno}: a JSON {type(record).__name__}, not an object. Fix: write one JSON "
                            'object per line, e.g. {"text": "a fine film", "label": "positive"}.')
        missing = [name for name in required if name not in record]
        if missing:
            raise TfkdError(f"{path}:{lineno}: no key '{missing[0]}' (keys: {', '.join(map(repr, record)) or 'none'}). "
                            "Fix: pass the keys the file has as --text_fields/--label_field, or add the key.")
        yield lineno, record
        count += 1
    if not count and not blank:
        raise TfkdError(f"{path}:1: the file is empty. Fix: write one JSON object per line, e.g. "
                        '{"text": "a fine film", "label": "positive"}.')
    return count, blank


def iter_records(
    path: str, data_format: str = "", required: Sequence[str] = ()
) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """(line, record) for each row of a CSV, TSV or JSON Lines file, streamed.

    A CSV/TSV record maps every header name to its field (a string); a JSON
    Lines record is the line's object. The line is where the row starts.

    Args:
        path: the file.
        data_format: csv, tsv, jsonl or empty (by extension).
        required: names every record must have: checked against the header
            of a CSV/TSV file before its first row, and on each JSON line.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.tsv")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('text\\tlabel\\nsay "hi\\t1\\n')
    >>> list(iter_records(path, required=("text",)))
    [(2, {'text': 'say "hi', 'label': '1'})]
    """
    fmt = file_format(path, data_format)
    records = _jsonl_records(path, required) if fmt == "jsonl" else _table_records(path, fmt, required)
    count, blank = yield from records
    if not count:
        what = "only blank lines" if fmt == "jsonl" else "a header but no data rows"
        raise TfkdError(f"{path}:1: the file has {what}. Fix: add one row per example.")
    if blank:
        logger.info("%s: ignored %d blank lines", path, blank)


def label_key(value: Any) -> str:
    """A label as label names are compared with it: a string without surrounding spaces, any other JSON value
    as JSON writes it.

    Example:
    >>> label_key(" pos "), label_key(1), label_key(True), label_key(2.0)
    ('pos', '1', 'true', '2.0')
    """
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _number(value: Any) -> Optional[float]:
    """`value` as a finite number, None when it is not one (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scalar_label(path: str, lineno: int, field: str, value: Any) -> Any:
    """`value`, refused when it is empty or a JSON null, list or object."""
    if value is None or isinstance(value, (list, dict)) or (isinstance(value, str) and not value.strip()):
        shown = "empty" if isinstance(value, str) else f"a JSON {json.dumps(value)[:40]}"
        raise TfkdError(f"{path}:{lineno}: the label in column '{field}' is {shown}. Fix: give every row a label "
                        "(a class name or a number); tfkd does not skip rows.")
    return value


@dataclasses.dataclass(frozen=True)
class LabelScan:
    """What one pass over a training file's labels found.

    Args:
        labels: the distinct labels as strings (`label_key`), sorted: by value when all are numbers, else
            as strings; at most `MAX_CLASSES + 1` of them.
        all_numeric: every label is a finite number.
        all_whole: every label is a whole number (`2`, `2.0`).
        more: there are more than `MAX_CLASSES` distinct labels, so `labels` is incomplete.
        rows: the labelled rows read.
    """

    labels: Tuple[str, ...]
    all_numeric: bool
    all_whole: bool
    more: bool
    rows: int


def scan_labels(path: str, data_format: str, label_field: str) -> LabelScan:
    """The labels of a training file, in one streamed pass (an unlabelled row is refused).

    Args:
        path: the file.
        data_format: csv, tsv, jsonl or empty (by extension).
        label_field: the label column or key.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "train.jsonl")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('{"t": "a", "y": 10}\\n{"t": "b", "y": 9}\\n{"t": "c", "y": "9"}\\n')
    >>> scan_labels(path, "", "y")
    LabelScan(labels=('9', '10'), all_numeric=True, all_whole=True, more=False, rows=3)
    """
    distinct: Dict[str, Optional[float]] = {}
    all_numeric = all_whole = True
    rows = 0
    for lineno, record in iter_records(path, data_format, required=(label_field,)):
        value = _scalar_label(path, lineno, label_field, record[label_field])
        key = label_key(value)
        number = _number(value)
        all_numeric &= number is not None
        all_whole &= number is not None and number.is_integer()
        if len(distinct) <= MAX_CLASSES:
            distinct.setdefault(key, number)
        rows += 1
    if all_numeric:
        labels = sorted(distinct, key=lambda key: (distinct[key], key))
    else:
        labels = sorted(distinct)
    return LabelScan(tuple(labels), all_numeric, all_whole, len(distinct) > MAX_CLASSES, rows)


def _label_reader(task: TaskSpec, path: str, split: str) -> Callable[[int, Any], Any]:
    """`read(line, value)`: the class id or score of one row's label."""
    field = task.label_field
    if task.is_regression:
        low, high = task.score_range or (-math.inf, math.inf)
        within = f" between {low:g} and {high:g}" if task.score_range else ""

        def read(lineno: int, value: Any) -> float:
            number = _number(_scalar_label(path, lineno, field, value))
            if number is None or not low <= number <= high:
                raise TfkdError(
                    f"{path}:{lineno}: label {value!r} in column '{field}' is not a number{within}, but {task.name} "
                    "is a regression task. Fix: correct the row, or pass --task_type=classification if the labels "
                    "are classes."
                )
            return number

        return read

    ids = {name: i for i, name in enumerate(task.label_names)}
    names = ", ".join(task.label_names)
    if split == "train":
        problem, fix = f"is not one of --label_names ({names})", "correct the row, or add the class to --label_names"
    else:
        problem = f"never occurs in the training file {task.train_file} (its labels: {names})"
        fix = "correct the row, or list every class in --label_names"

    def read(lineno: int, value: Any) -> int:
        key = label_key(_scalar_label(path, lineno, field, value))
        if key not in ids:
            raise TfkdError(f"{path}:{lineno}: label {key!r} in column '{field}' {problem}. Fix: {fix} "
                            "(labels are compared as strings).")
        return ids[key]

    return read


def _text(path: str, lineno: int, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "empty" if isinstance(value, str) else f"a JSON {json.dumps(value)[:40]}, not a string"
        raise TfkdError(f"{path}:{lineno}: the text in column '{field}' is {shown}. Fix: fill it in or remove "
                        "the row; tfkd does not skip rows.")
    return value


def iter_examples(task: TaskSpec, split: str, max_examples: Optional[int] = None,
                  chunk_rows: int = CHUNK_ROWS) -> Iterator[Examples]:
    """The examples of one split of a task of your own files, streamed in chunks of `chunk_rows`.

    Labels become class ids by name (`task.label_names`) or scores. A
    `test` file may have no label column (key) at all: its chunks have
    `has_labels=False`; a dev or training file must have labels.

    Args:
        task: a file task (`task.is_file_task`).
        split: train, dev (or validation) or test.
        max_examples: stop after this many examples.
        chunk_rows: examples per chunk.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "test.jsonl")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('{"text": "a"}\\n{"text": "b"}\\n{"text": "c"}\\n')
    >>> task = TaskSpec(name="t", text_fields=("text",), label_names=("no", "yes"), is_regression=False,
    ...                 metrics=("accuracy",), train_file="train.jsonl", dev_file="dev.jsonl", test_file=path,
    ...                 label_field="label")
    >>> [(chunk.text_a, chunk.has_labels) for chunk in iter_examples(task, "test", chunk_rows=2)]
    [(['a', 'b'], False), (['c'], False)]
    """
    path = task.split_file(split)
    fields, label_field = task.text_fields, task.label_field
    labelled = split != "test"
    read_label = _label_reader(task, path, split)
    dtype = np.float32 if task.is_regression else np.int32
    missing_label = np.nan if task.is_regression else -1
    has_labels: Optional[bool] = True if labelled else None
    texts: List[List[str]] = [[] for _ in fields]
    labels: list = []
    first_line = count = 0

    def chunk() -> Examples:
        values = labels if has_labels else [missing_label] * len(texts[0])
        return Examples(texts[0], texts[1] if len(fields) == 2 else None, np.asarray(values, dtype), path,
                        has_labels=bool(has_labels))

    for lineno, record in iter_records(path, task.data_format, required=fields + ((label_field,) if labelled else ())):
        if has_labels is None:
            has_labels, first_line = label_field in record, lineno
        if has_labels != (label_field in record):  # only JSON lines can differ
            raise TfkdError(f"{path}:{lineno}: {'no' if has_labels else 'a'} key '{label_field}', unlike line "
                            f"{first_line}. Fix: give every line a label, or none (to predict).")
        for column, field in zip(texts, fields):
            column.append(_text(path, lineno, field, record[field]))
        if has_labels:
            labels.append(read_label(lineno, record[label_field]))
        count += 1
        if len(texts[0]) == chunk_rows:
            yield chunk()
            texts, labels = [[] for _ in fields], []
        if count == max_examples:
            break
    if texts[0]:
        yield chunk()


def read_examples(task: TaskSpec, split: str, max_examples: Optional[int] = None) -> Examples:
    """All examples of one split of a task of your own files (see `iter_examples`), in file order.

    Args:
        task: a file task.
        split: train, dev (or validation) or test.
        max_examples: read only the first this many.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev.tsv")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("score\\tleft\\tright\\n4.5\\ta cat\\ta kitten\\n0\\ta car\\ta tree\\n")
    >>> task = TaskSpec(name="sim", text_fields=("left", "right"), label_names=None, is_regression=True,
    ...                 metrics=("pearson",), train_file=path, dev_file=path, label_field="score")
    >>> dev = read_examples(task, "dev")
    >>> dev.text_b, dev.labels.tolist()
    (['a kitten', 'a tree'], [4.5, 0.0])
    """
    return Examples.concatenate(list(iter_examples(task, split, max_examples)))
