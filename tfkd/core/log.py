"""The library's one logger: progress lines `[tfkd] ...` on standard output.

Everything below the commands reports through `log` (never `print`), so a
notebook or a launcher can silence tfkd, or route it, with the standard
`logging` module:

>>> import logging
>>> from tfkd.core.log import LOGGER, log
>>> log("reading data")
[tfkd] reading data
>>> LOGGER.setLevel(logging.WARNING)  # quiet from here on
>>> log("reading data")
>>> LOGGER.setLevel(logging.INFO)
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("tfkd")


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time of the record, so output
    redirected after import (pytest's capture, a notebook's cell) still arrives."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure() -> None:
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter("[tfkd] %(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    # The root logger (absl's, a notebook's) would print every line twice.
    LOGGER.propagate = False


_configure()


def log(message: str) -> None:
    """One progress line."""
    LOGGER.info(message)
