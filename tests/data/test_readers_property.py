"""Property tests of the text-file readers (GLUE TSV files, the pre-training corpus, your own CSV, TSV and
JSON Lines files).

Files are generated from rows of arbitrary text — tabs, quotes, commas,
carriage returns, newlines, byte-order marks, any Unicode — with LF or CRLF
line ends, with or without a BOM, sometimes with bytes that are not UTF-8.
A reader must then return exactly the rows that were written, or raise a
`TfkdError` that names the file and the line; never another exception, never
a row whose columns moved.
"""

import csv
import io
import json
import math
import os
import re
import tempfile
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tfkd.core.errors import TfkdError
from tfkd.data.files import iter_records
from tfkd.data.glue_tsv import read_glue_tsv
from tfkd.data.load import load_unlabeled_text
from tfkd.data.tasks import GlueTask, get_task

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that break naive TSV/CSV handling, mixed with any other Unicode character.
TRICKY = st.sampled_from(["\t", "\n", "\r", '"', "'", ",", "\ufeff", " ", "\\", "\x00", "\x85", "\u2028"])
TEXT = st.text(st.one_of(TRICKY, st.characters(codec="utf-8")), max_size=10)
NOT_UTF8 = st.sampled_from([b"\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80"])

# task -> (header, text column positions, label column position)
LAYOUTS = {
    "sst2": ("sentence\tlabel", (0,), 1),
    "mrpc": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", (3, 4), 0),
    "stsb": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore", (7, 8), 9),
}


def valid_label(task: GlueTask):
    if task.is_regression:
        return st.floats(0.0, 5.0).map(lambda x: f"{x:.3f}")
    return st.sampled_from(task.tsv_label_values)


@st.composite
def tsv_files(draw, arbitrary: bool):
    """`(task, rows, data)`: rows of fields and the file's bytes. With `arbitrary`, labels are any text too."""
    task = get_task(draw(st.sampled_from(sorted(LAYOUTS))))
    header, text_columns, label_column = LAYOUTS[task.name]
    num_columns = header.count("\t") + 1
    rows = []
    for _ in range(draw(st.integers(1, 5))):
        fields = [draw(TEXT) if i in text_columns else "x" for i in range(num_columns)]
        fields[label_column] = draw(st.one_of(valid_label(task), TEXT) if arbitrary else valid_label(task))
        rows.append(fields)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join([header] + ["\t".join(row) for row in rows]) + draw(st.sampled_from(["", newline, newline * 3]))
    data = ("\ufeff" if draw(st.booleans()) else "").encode() + text.encode("utf-8")
    return task, rows, data


def clean(rows: List[List[str]], task: GlueTask) -> bool:
    """Whether the fields hold no separator, so the file must read back exactly."""
    num_columns = len(rows[0])
    # A last field ending in "\r" is indistinguishable from a CRLF line end.
    return not any("\t" in f or "\n" in f or (i == num_columns - 1 and f.endswith("\r"))
                   for row in rows for i, f in enumerate(row))


def write(data: bytes, directory: str, name: str = "dev.tsv") -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def file_lines(data: bytes) -> List[Tuple[int, List[str]]]:
    """The format tfkd documents, written out plainly: lines end at "\\n" (one "\\r" before it is dropped),
    a BOM may open the file, fields are split at tabs, blank lines are skipped."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    return [(n, line.split("\t")) for n, line in enumerate(lines, 1) if line.strip()]


def read_back(task: GlueTask, data: bytes):
    """`(examples or the message of the TfkdError, the file's path)` for `data` written as a
    TSV file (any other exception fails the test); the file is gone once it returns."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(data, directory)
        try:
            return read_glue_tsv(task, path), path
        except TfkdError as e:
            return str(e), path


def assert_names_file_and_line(message: str, path: str, line: Optional[int] = None) -> None:
    pattern = re.escape(path) + (f":{line}:" if line else r":\d+:")
    assert re.match(pattern, message), message


def examples_as_rows(examples, task: GlueTask) -> List[Tuple]:
    texts = [examples.text_a] + ([examples.text_b] if examples.text_b is not None else [])
    return list(zip(*texts, examples.labels.tolist()))


def expected_rows(rows: List[List[str]], task: GlueTask) -> List[Tuple]:
    _, text_columns, label_column = LAYOUTS[task.name]
    labels = [row[label_column].strip() for row in rows]
    values = ([float(np.float32(float(v))) for v in labels] if task.is_regression
              else [task.tsv_label_values.index(v) for v in labels])
    return [tuple(row[i] for i in text_columns) + (value,) for row, value in zip(rows, values)]


@SETTINGS
@given(tsv_files(arbitrary=False))
@example((get_task("sst2"), [['say "hi", "no', "1"]], 'sentence\tlabel\r\nsay "hi", "no\t1\r\n'.encode()))
def test_tsv_without_separators_in_fields_reads_back_exactly(case):
    task, rows, data = case
    result, path = read_back(task, data)
    if clean(rows, task):
        assert not isinstance(result, str), result
        assert examples_as_rows(result, task) == expected_rows(rows, task)
    elif isinstance(result, str):
        assert_names_file_and_line(result, path)


@SETTINGS
@given(tsv_files(arbitrary=True))
def test_any_tsv_reads_as_its_lines_split_at_tabs_or_fails_naming_file_and_line(case):
    task, _, data = case
    result, path = read_back(task, data)
    if isinstance(result, str):
        if "no examples" not in result:  # the one error about the whole file
            assert_names_file_and_line(result, path)
        return
    header, *rows = [fields for _, fields in file_lines(data)]
    assert all(len(fields) == len(header) for fields in rows)
    assert examples_as_rows(result, task) == expected_rows(rows, task)


@SETTINGS
@given(tsv_files(arbitrary=False), st.data())
def test_bytes_that_are_not_utf8_name_their_line(case, data):
    task, rows, content = case
    assume(clean(rows, task))  # otherwise a column error on an earlier line may come first
    position = data.draw(st.integers(0, len(content)))
    content = content[:position] + data.draw(NOT_UTF8) + content[position:]
    line = content[:position].count(b"\n") + 1
    result, path = read_back(task, content)
    assert isinstance(result, str)
    assert_names_file_and_line(result, path, line)
    assert "not valid UTF-8" in result


@SETTINGS
@given(st.lists(TEXT.filter(lambda s: "\n" not in s), min_size=1, max_size=6), st.booleans(),
       st.sampled_from(["\n", "\r\n"]), st.one_of(st.none(), st.tuples(st.integers(0, 10**4), NOT_UTF8)))
def test_corpus_reads_back_its_stripped_lines_or_fails_naming_file_and_line(sentences, bom, newline, damage):
    content = ("\ufeff" if bom else "").encode() + "".join(s + newline for s in sentences).encode("utf-8")
    line = None
    if damage is not None:
        position, bad = damage[0] % (len(content) + 1), damage[1]
        content, line = content[:position] + bad + content[position:], content[:position].count(b"\n") + 1
    with tempfile.TemporaryDirectory() as directory:
        path = write(content, directory, "corpus.txt")
        try:
            result = load_unlabeled_text(path)
        except TfkdError as e:
            if line is not None:
                assert_names_file_and_line(str(e), path, line)
            else:
                assert not any(s.strip() for s in sentences) and "no sentences" in str(e)
            return
        assert line is None, "a file with a byte that is not UTF-8 was read"
        first = sentences[0] if bom else sentences[0].removeprefix("\ufeff")
        assert result == [s.strip() for s in [first] + sentences[1:] if s.strip()]


@pytest.mark.parametrize("task_name", sorted(LAYOUTS))
def test_layouts_match_the_tasks(task_name):
    task = get_task(task_name)
    header, text_columns, label_column = LAYOUTS[task_name]
    names = header.split("\t")
    assert tuple(names[i] for i in text_columns) == task.tsv_text_columns and names[label_column] == task.tsv_label_column


# --- your own files (tfkd.data.files) ------------------------------------------------------------

# Header names: any text that says something (the reader strips them), not opening with the BOM it drops.
NAME = TEXT.filter(lambda s: s.strip() and not s.startswith("\ufeff"))


class Table(NamedTuple):
    """A generated CSV or TSV file: what was written, the line each row starts on, and whether the reader must
    give back exactly `rows` (else it may refuse the file, naming file and line)."""

    names: List[str]
    rows: List[List[str]]
    data: bytes
    starts: List[int]
    exact: bool


@st.composite
def table_files(draw, fmt: str) -> Table:
    """A CSV file as a spreadsheet writes it (csv.writer, minimal or full quoting) or a TSV file (fields joined
    by tabs), with LF or CRLF line ends, a BOM or none, and a last line end or none."""
    names = draw(st.lists(NAME, min_size=1, max_size=4))
    rows = draw(st.lists(st.lists(TEXT, min_size=len(names), max_size=len(names)), min_size=1, max_size=5))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    fields = [f for row in [names] + rows for f in row]
    if fmt == "csv":
        quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        lines = []
        for row in [names] + rows:
            out = io.StringIO()
            csv.writer(out, lineterminator=newline, quoting=quoting).writerow(row)
            lines.append(out.getvalue())
        # csv.writer quotes a carriage return only when the line end holds one; unquoted, it is not CSV.
        exact = not (quoting == csv.QUOTE_MINIMAL and newline == "\n" and any("\r" in f for f in fields))
    else:
        lines = ["\t".join(row) + newline for row in [names] + rows]
        # A last field ending in "\r" is indistinguishable from a CRLF line end.
        exact = not any("\t" in f or "\n" in f for f in fields) and not any(row[-1].endswith("\r") for row in [names] + rows)
    exact &= all(line.strip() for line in lines)  # a line of spaces is a blank line, not a row
    text = "".join(lines)
    if draw(st.booleans()):
        text = text.removesuffix(newline)
    starts = [1 + "".join(lines[:i]).count("\n") for i in range(1, len(lines))]
    data = ("\ufeff" if draw(st.booleans()) else "").encode() + text.encode("utf-8")
    return Table(names, rows, data, starts, exact)


TABLES = st.sampled_from(["csv", "tsv"]).flatmap(lambda fmt: st.tuples(st.just(fmt), table_files(fmt)))


def read_records(data: bytes, fmt: str):
    """`(records or the message of the TfkdError, the file's path)` for `data` written as a file of format `fmt`
    (any other exception fails the test); the file is gone once it returns."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(data, directory, f"data.{fmt}")
        try:
            return list(iter_records(path)), path
        except TfkdError as e:
            return str(e), path


@SETTINGS
@given(TABLES)
@example(("csv", Table(["text"], [[""], [" "], ["fun"]], b'text\n""\n" "\nfun\n', [2, 3, 4], True)))
@example(("csv", Table(["a", "b"], [['say "hi", x', "line\r\nbreak"]],
                       b'a,b\r\n"say ""hi"", x","line\r\nbreak"\r\n', [2], True)))
@example(("tsv", Table(["text", "note", "note "], [["fun", "a", "b"]], b"text\tnote\tnote \nfun\ta\tb\n", [2], True)))
def test_own_csv_and_tsv_rows_read_back_exactly_with_their_lines_or_fail_naming_file_and_line(case):
    fmt, table = case
    result, path = read_records(table.data, fmt)
    keys = [name.strip() for name in table.names]
    if table.exact and len(set(keys)) < len(keys):  # a record would keep one of two same-named columns
        assert isinstance(result, str) and re.match(rf"{re.escape(path)}:1: the header has \d columns named ", result)
    elif table.exact:
        assert result == [(start, dict(zip(keys, row))) for start, row in zip(table.starts, table.rows)]
    elif isinstance(result, str):
        assert_names_file_and_line(result, path)
    else:  # read otherwise than written, but never a row with more or fewer columns than the header
        assert len({tuple(record) for _, record in result}) <= 1


@SETTINGS
@given(TABLES, st.data())
def test_own_files_with_bytes_that_are_not_utf8_name_their_line(case, data):
    fmt, table = case
    assume(table.exact and len({name.strip() for name in table.names}) == len(table.names))
    position = data.draw(st.integers(0, len(table.data)))
    content = table.data[:position] + data.draw(NOT_UTF8) + table.data[position:]
    result, path = read_records(content, fmt)
    assert isinstance(result, str)
    assert_names_file_and_line(result, path, content[:position].count(b"\n") + 1)
    assert "not valid UTF-8" in result


# Any JSON value, floats included: NaN and infinities too, which JSON has no words for.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)


def has_nonfinite(value) -> bool:
    if isinstance(value, dict):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_nonfinite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value)


@SETTINGS
@given(st.lists(st.dictionaries(TEXT, JSON_VALUES, min_size=1, max_size=4), min_size=1, max_size=5),
       st.booleans(), st.booleans(), st.sampled_from(["\n", "\r\n"]))
@example([{"text": "fun", "score": float("nan")}], False, True, "\n")
def test_own_jsonl_records_read_back_exactly_and_nan_is_refused_naming_its_line(records, ascii_only, bom, newline):
    text = "".join(json.dumps(r, ensure_ascii=ascii_only) + newline for r in records)
    result, path = read_records(("\ufeff" if bom else "").encode() + text.encode("utf-8"), "jsonl")
    bad = next((i for i, r in enumerate(records, 1) if has_nonfinite(r)), None)
    if bad is None:
        assert result == list(enumerate(records, 1))
    else:
        assert isinstance(result, str)
        assert_names_file_and_line(result, path, bad)
        assert "not valid JSON" in result and "Fix: " in result
