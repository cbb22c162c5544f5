"""Property tests of the text-file readers (GLUE TSV files, the pre-training corpus).

Files are generated from rows of arbitrary text — tabs, quotes, commas,
carriage returns, newlines, byte-order marks, any Unicode — with LF or CRLF
line ends, with or without a BOM, sometimes with bytes that are not UTF-8.
A reader must then return exactly the rows that were written, or raise a
`TfkdError` that names the file and the line; never another exception, never
a row whose columns moved.
"""

import os
import re
import tempfile
from typing import List, Optional, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tfkd.core.errors import TfkdError
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
