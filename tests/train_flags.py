"""`tfkd.cli.train`'s flags in this process, so command-layer tests need no subprocess.

Every command defines its flags on absl's global `FLAGS` when imported, and some
names clash between commands (tfkd.cli.export has its own --workdir), so two
commands cannot be imported into one interpreter side by side. `parsed_train_flags`
sets the other commands' flags aside, imports tfkd.cli.train afresh (its flags,
validators included, defined anew), parses `argv`, and on leaving puts the
global `FLAGS` back as it was: a test in the same worker that imports
tfkd.cli.export or tfkd.cli.report still finds its own flags.
"""

import contextlib
import importlib
import sys
from typing import Iterator

from absl import flags

from tfkd.core.errors import TfkdError, command_context

FLAGS = flags.FLAGS
TRAIN = "tfkd.cli.train"


def _command_flags():
    """(name, defining module, Flag) of every flag not absl's own (absl's, e.g. --verbosity, every command shares)."""
    return [(name, module, flag) for module, defined in FLAGS.flags_by_module_dict().items()
            if not module.startswith("absl.") for flag in defined for name in {flag.name, flag.short_name} if name]


def _remove(entries) -> None:
    for name, _, _ in entries:
        if name in FLAGS:
            delattr(FLAGS, name)


@contextlib.contextmanager
def parsed_train_flags(*argv: str) -> Iterator:
    """tfkd.cli.train with `FLAGS` parsed from `["tfkd.train", *argv]`; `flags.IllegalFlagValueError` as the command
    would raise it. Inside, a TfkdError names options as flags, as the command prints it (`run_cli`)."""
    aside = _command_flags()
    _remove(aside)
    sys.modules.pop(TRAIN, None)
    try:
        train = importlib.import_module(TRAIN)
        with command_context():
            train.FLAGS(["tfkd.train", *argv])
            yield train
    finally:
        FLAGS.unparse_flags()
        _remove(_command_flags())
        sys.modules.pop(TRAIN, None)
        for name, module, flag in aside:
            FLAGS[name] = flag
            if name == flag.name:
                FLAGS.register_flag_by_module(module, flag)


class CommandError(Exception):
    """A TfkdError as the command prints it after "tfkd: error:" (flag names, not configuration fields)."""


def train_main(*argv: str) -> None:
    """`python -m tfkd.train *argv` in this process, as far as the command's `main`: the run records the command's
    flags (results.json, run_flags.json); a user error is raised as `CommandError` with the text the command prints
    (the one line and status 2 are `run_cli`'s, tested in tests/cli/test_train.py)."""
    with parsed_train_flags(*argv) as train:
        try:
            train.main(["tfkd.train"])
        except TfkdError as e:
            # TfkdError words itself when shown; shown after this context it would name configuration fields.
            raise CommandError(str(e)) from e
