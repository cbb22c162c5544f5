"""User-facing errors: each names the problem and the fix.

Messages name options the way a command spells them (`--teacher_cache=<dir>`).
Outside a command (a notebook calling `tfkd.run_distill`, say) there are no
flags, so a `TfkdError` shows each registered `--name` as the configuration
field it sets, `Class.field`, and keeps any `=value` as written; a field that
several classes share (`workdir`) is shown by its name alone, and an option no
configuration holds stays `--name`. The configuration modules register their
fields (`register_option_fields`); the commands run inside `command_context()`,
where messages are exactly as written.

Example:
>>> register_option_fields("RuntimeConfig", {"teacher_cache": "teacher_cache"})
>>> str(TfkdError("--teacher_cache=/tmp/x is a file. Fix: pass --teacher_cache=off or --validate."))
'RuntimeConfig.teacher_cache=/tmp/x is a file. Fix: pass RuntimeConfig.teacher_cache=off or --validate.'
>>> with command_context():
...     str(TfkdError("--teacher_cache=/tmp/x is a file."))
'--teacher_cache=/tmp/x is a file.'
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Dict, Iterator, Mapping, Set

# core is the bottom layer: the modules that own the configuration classes
# register into this table rather than core importing them.
_FIELDS: Dict[str, Set[str]] = {}
_IN_COMMAND: contextvars.ContextVar[bool] = contextvars.ContextVar("tfkd_in_command", default=False)
# Not `--augment.factor`: a dotted name is a setting's path, not a flag.
_OPTION = re.compile(r"(?<![\w-])--(\w+)(?!\w|\.\w)")


def register_option_fields(owner: str, fields: Mapping[str, str]) -> None:
    """Records that option `--name` sets `owner.field`, for each `name: field` of `fields`.

    Example: `register_option_fields("TeacherConfig", {"teacher": "source"})`.
    """
    for name, field in fields.items():
        _FIELDS.setdefault(name, set()).add(f"{owner}.{field}")


@contextlib.contextmanager
def command_context() -> Iterator[None]:
    """While active, `TfkdError` messages keep their `--name` options (a command's user passed flags)."""
    token = _IN_COMMAND.set(True)
    try:
        yield
    finally:
        _IN_COMMAND.reset(token)


def _field_text(match: re.Match) -> str:
    places = _FIELDS.get(match.group(1))
    if not places:
        return match.group(0)
    if len(places) == 1:
        return next(iter(places))
    names = {place.rpartition(".")[2] for place in places}
    return names.pop() if len(names) == 1 else " or ".join(sorted(places))


def in_config_terms(message: str) -> str:
    """`message` with each registered `--name` as its configuration field (see the module docstring)."""
    return _OPTION.sub(_field_text, message)


class TfkdError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints these as one clear message (no traceback) and exits with
    status 2. The message must say what is wrong and how to fix it.

    Example:
    >>> raise TfkdError("unknown task 'sst'. Fix: use one of cola, sst2, ...")
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: unknown task 'sst'. Fix: use one of cola, sst2, ...
    """

    def __str__(self) -> str:
        # Rendered when shown, not when raised: an error raised in a worker
        # thread (no command context there) still prints as the command wrote it.
        text = super().__str__()
        return text if _IN_COMMAND.get() else in_config_terms(text)


# EX_TEMPFAIL from sysexits.h: "try again later", what a scheduler should do
# with a preempted job.
EXIT_PREEMPTED = 75
# 128 + SIGINT, what shells report for Ctrl-C: the user stopped the run, a
# scheduler should not retry it.
EXIT_INTERRUPTED = 130


class TrainingPreempted(Exception):
    """Training stopped on SIGTERM or SIGINT (Ctrl-C) after saving a checkpoint; re-running the same command resumes.

    The CLI prints the message and exits with `exit_status`: `EXIT_PREEMPTED` (75)
    after SIGTERM, `EXIT_INTERRUPTED` (130) after Ctrl-C.

    Example:
    >>> error = TrainingPreempted("SIGINT: saved checkpoint ckpt-120 at step 120", "SIGINT")
    >>> error.exit_status == EXIT_INTERRUPTED, TrainingPreempted("SIGTERM: ...").exit_status
    (True, 75)
    """

    def __init__(self, message: str, signal_name: str = "SIGTERM"):
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_status(self) -> int:
        return EXIT_INTERRUPTED if self.signal_name == "SIGINT" else EXIT_PREEMPTED
