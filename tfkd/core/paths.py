"""Paths a run must be able to create as directories (`--workdir`, `--teacher_cache`, `--export_dir`),
checked before any work, so a file in the way fails at once rather than after the work that fills it.

Example:
>>> check_directory_target("runs/a", "--workdir")  # fine: it does not exist yet
>>> with open("notes.txt", "w") as f:
...     _ = f.write("a file, not a directory")
>>> check_directory_target("notes.txt/run", "--workdir")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tfkd.core.errors.TfkdError: workdir=notes.txt/run is inside the file .../notes.txt, not a directory. ...
"""

from __future__ import annotations

import os

from tfkd.core.errors import TfkdError


def check_directory_target(path: str, flag: str) -> None:
    """Raises a `TfkdError` when `path`, or the nearest of its parents that exists, is not a directory."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == os.path.abspath(path) else f"is inside the file {existing}"
        raise TfkdError(f"{flag}={path} {where}, not a directory. Fix: pass a directory (new or existing) for {flag}.")
