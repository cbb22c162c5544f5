"""Reading the original GLUE TSV files (the `--glue_dir` data source).

Quirks of the real files that this reader handles:

- a UTF-8 byte-order mark (MRPC);
- CoLA's train/dev files have no header (source, label, original-label marker,
  sentence);
- sentences contain `"` characters, some unbalanced, so fields are split on
  tabs only: csv's default quoting would merge lines;
- blank trailing lines (ignored; blank lines inside the file are counted and
  logged);
- QQP's train file has a few broken lines with missing fields: for QQP only,
  rows with a wrong column count are skipped, counted and logged, up to
  `GlueTask.malformed_row_tolerance` of the file. Every other problem raises
  `TfkdError` naming the file, the line and the fix.

Example:
>>> import os
>>> from tfkd.data.tasks import get_task
>>> os.makedirs("glue/MRPC")
>>> with open("glue/MRPC/dev.tsv", "w") as f:
...     _ = f.write("Quality\\t#1 ID\\t#2 ID\\t#1 String\\t#2 String\\n1\\t1\\t2\\tHe left.\\tHe went away.\\n")
>>> ex = load_glue_tsv(get_task("mrpc"), "dev", "glue")
>>> len(ex), ex.source, ex.text_b
(1, 'glue/MRPC/dev.tsv', ['He went away.'])
"""

from __future__ import annotations

import logging
import math
import os
from typing import Iterator, List, Tuple

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.tasks import TASKS, GlueTask

logger = logging.getLogger(__name__)


def _where_fix(task: GlueTask) -> str:
    return (
        f"--glue_dir should point at the folder with {task.tsv_train_file} and {', '.join(task.tsv_dev_files)} "
        f"for {task.name} (e.g. .../glue/{task.tsv_folder}) or at its parent holding {task.tsv_folder}/"
    )


def task_dir(task: GlueTask, glue_dir: str) -> str:
    """The folder holding `task`'s TSV files: `glue_dir` itself or its `tsv_folder` child.

    The child is matched case-insensitively and with or without the hyphen
    (`SST-2`, `sst2`).

    Args:
        task: the task.
        glue_dir: the task folder or the GLUE root folder.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> os.makedirs("glue/sst2")
    >>> task_dir(get_task("sst2"), "glue"), task_dir(get_task("sst2"), "glue/sst2")
    ('glue/sst2', 'glue/sst2')
    """
    if task.tsv_folder is None:
        raise TfkdError(f"task {task.name} has no GLUE TSV files. Fix: leave out --glue_dir for it.")
    if not os.path.isdir(glue_dir):
        raise TfkdError(f"--glue_dir {glue_dir} is not a folder. Fix: {_where_fix(task)}.")
    wanted = task.tsv_folder.lower().replace("-", "")
    for entry in sorted(os.listdir(glue_dir)):
        if entry.lower().replace("-", "") == wanted and os.path.isdir(os.path.join(glue_dir, entry)):
            return os.path.join(glue_dir, entry)
    # A task folder given for the wrong task would otherwise fail later with a
    # confusing header error.
    base = os.path.basename(os.path.normpath(glue_dir)).lower().replace("-", "")
    others = {t.tsv_folder.lower().replace("-", ""): t for t in TASKS.values() if t.tsv_folder and t is not task}
    if base in others:
        raise TfkdError(
            f"--glue_dir {glue_dir} holds the {others[base].tsv_folder} files, but the task is {task.name}. "
            f"Fix: {_where_fix(task)}."
        )
    return glue_dir


def utf8_lines(path: str, fix: str = "use the original GLUE file or re-save it as UTF-8") -> Iterator[Tuple[int, str]]:
    """(1-based line number, text) for each line, split on `\\n` only, without
    the line end or a leading byte-order mark; a byte that is not UTF-8 raises
    a `TfkdError` with the line and `fix`.

    Splitting on `\\n` alone (not Python's universal newlines) keeps a stray
    `\\r` inside a sentence from starting a new row.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TfkdError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start}). Fix: {fix}.") from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            yield lineno, line.rstrip("\n").removesuffix("\r")


def _column_index(task: GlueTask, path: str, header: List[str], column) -> int:
    if isinstance(column, int):
        return column
    if column not in header:
        raise TfkdError(
            f"{path}:1: the header has no column '{column}' (found: {', '.join(header)}). "
            f"Fix: {_where_fix(task)}; this does not look like the original {task.tsv_folder} file."
        )
    return header.index(column)


def _score(task: GlueTask, path: str, lineno: int, value: str) -> float:
    """The regression label `value` of line `lineno`: a finite number inside `task.score_range`."""
    low, high = task.score_range or (-math.inf, math.inf)
    try:
        score = float(value)
    except ValueError:
        score = math.nan
    if not low <= score <= high:  # also false for nan
        within = f" between {low:g} and {high:g}" if task.score_range else ""
        raise TfkdError(
            f"{path}:{lineno}: label {value!r} in column {task.tsv_label_column!r} is not a number{within}. "
            f"Fix: the {task.name} label must be a score{within}; correct the row or use the original GLUE "
            f"{task.tsv_folder} file."
        )
    return score


def read_glue_tsv(task: GlueTask, path: str) -> Examples:
    """Reads one GLUE TSV file of `task` (train or dev; test files have no labels).

    Args:
        task: the task whose layout the file has.
        path: the `.tsv` file.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> with open("dev.tsv", "w") as f:
    ...     _ = f.write("sentence\\tlabel\\na fine film\\t1\\ndull\\t0\\n")
    >>> read_glue_tsv(get_task("sst2"), "dev.tsv").labels
    array([1, 0], dtype=int32)
    >>> with open("dev.tsv", "a") as f:
    ...     _ = f.write("flat\\tnegative\\n")
    >>> read_glue_tsv(get_task("sst2"), "dev.tsv")
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: dev.tsv:4: unknown label 'negative' in column 'label'; valid labels: '0', '1'. ...
    """
    if not os.path.isfile(path):
        raise TfkdError(f"GLUE file not found: {path}. Fix: {_where_fix(task)}.")
    lines = utf8_lines(path)
    header: List[str] = []
    if task.tsv_has_header:
        first = next(lines, None)
        if first is None or not first[1].strip():
            raise TfkdError(f"{path}: the file is empty (no header). Fix: {_where_fix(task)}.")
        header = [name.strip() for name in first[1].split("\t")]
        num_columns = len(header)
    else:
        num_columns = task.tsv_num_columns
    text_idx = [_column_index(task, path, header, c) for c in task.tsv_text_columns]
    label_idx = _column_index(task, path, header, task.tsv_label_column)
    label_ids = None if task.is_regression else {v: i for i, v in enumerate(task.tsv_label_values)}
    expected = f"{num_columns} tab-separated columns" + (f" ({', '.join(header)})" if header else "")

    texts: List[List[str]] = [[] for _ in text_idx]
    labels: list = []
    skipped: List[int] = []
    blank: List[int] = []
    interior_blank = 0
    for lineno, line in lines:
        if not line.strip():
            blank.append(lineno)
            continue
        interior_blank += len(blank)  # blank lines followed by data are not trailing
        blank = []
        fields = line.split("\t")
        if len(fields) != num_columns:
            if task.malformed_row_tolerance > 0:
                skipped.append(lineno)
                continue
            raise TfkdError(
                f"{path}:{lineno}: expected {expected}, got {len(fields)}. Fix: use the original GLUE "
                f"{task.tsv_folder} file; a tab inside a sentence or a broken line splits rows wrongly."
            )
        value = fields[label_idx].strip()
        if task.is_regression:
            labels.append(_score(task, path, lineno, value))
        else:
            if value not in label_ids:
                raise TfkdError(
                    f"{path}:{lineno}: unknown label {value!r} in column {task.tsv_label_column!r}; valid "
                    f"labels: {', '.join(repr(v) for v in task.tsv_label_values)}. Fix: correct the row or "
                    f"use the original GLUE {task.tsv_folder} file (test files have no labels)."
                )
            labels.append(label_ids[value])
        for column, i in zip(texts, text_idx):
            column.append(fields[i])

    total = len(labels) + len(skipped)
    if not labels:
        raise TfkdError(f"{path}: no examples (the file has no data rows). Fix: {_where_fix(task)}.")
    if skipped:
        if len(skipped) > task.malformed_row_tolerance * total:
            raise TfkdError(
                f"{path}: {len(skipped)} of {total} rows do not have {expected} (first at line {skipped[0]}); "
                f"more than the {task.malformed_row_tolerance:.1%} of known-broken rows tfkd skips. "
                f"Fix: use the original GLUE {task.tsv_folder} file."
            )
        lines_shown = ", ".join(map(str, skipped[:10])) + (" ..." if len(skipped) > 10 else "")
        logger.warning(
            "%s: skipped %d of %d rows with a wrong column count (known broken %s rows), lines %s",
            path, len(skipped), total, task.tsv_folder, lines_shown,
        )
    if interior_blank:
        logger.warning("%s: ignored %d blank lines between rows", path, interior_blank)
    dtype = np.float32 if task.is_regression else np.int32
    return Examples(
        text_a=texts[0], text_b=texts[1] if len(texts) == 2 else None, labels=np.asarray(labels, dtype), source=path
    )


def load_glue_tsv(task: GlueTask, split: str, glue_dir: str) -> Examples:
    """Examples of one split of `task` from the GLUE TSV files under `glue_dir`.

    Args:
        task: the task.
        split: `train`, `dev` or a dev split name (`dev_mismatched`, `validation_mismatched`).
        glue_dir: the task folder (with train.tsv, dev.tsv) or its parent.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> os.makedirs("glue/MNLI")
    >>> with open("glue/MNLI/dev_mismatched.tsv", "w") as f:
    ...     _ = f.write("sentence1\\tsentence2\\tgold_label\\nIt rains.\\tIt is dry.\\tcontradiction\\n")
    >>> load_glue_tsv(get_task("mnli"), "dev_mismatched", "glue").labels
    array([2], dtype=int32)
    """
    dev = task.resolve_split(split)
    file = task.tsv_train_file if dev is None else task.tsv_dev_files[dev]
    return read_glue_tsv(task, os.path.join(task_dir(task, glue_dir), file))
