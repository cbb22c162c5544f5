"""A run's work directory: owned by one process, and tied to the flags it was started with.

- `WorkdirLock`: `fcntl.flock` on `<workdir>/.lock`, which holds the owner's pid
  and host. A second process is refused, naming the owner; the kernel drops
  the lock when its process dies, however it dies, so a crashed run never
  holds a directory.
- `RunFlags`: the flags that define the run, stored in `<workdir>/run_flags.json`
  at its first start; resuming its checkpoints with other values is refused
  unless overridden, and the overrides are recorded.

Example:
>>> with WorkdirLock("runs/a"):
...     RunFlags("runs/a").check({"learning_rate": 5e-5}, resuming=False, allow_changes=False)
[]
>>> with WorkdirLock("runs/a"):  # resumed with another learning rate, accepted (--allow_changed_flags)
...     RunFlags("runs/a").check({"learning_rate": 1e-4}, resuming=True, allow_changes=True)
[{'flag': 'learning_rate', 'old': 5e-05, 'new': 0.0001}]
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from typing import Any, Dict, List, Mapping, Optional

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import jsonable, read_json, write_json

LOCK_FILE = ".lock"
FLAGS_FILE = "run_flags.json"


class WorkdirLock:
    """Holds `<directory>/.lock` exclusively while active; another holder makes `__enter__` raise a `TfkdError`.

    Args:
        directory: the directory to own (created if missing).
        flag: the flag that named it, for the message.

    Example:
    >>> with WorkdirLock("runs/a"):
    ...     WorkdirLock("runs/a").__enter__()  # a second run of the same workdir  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: workdir=runs/a is in use by process ... on host .... Fix: wait for that run ...
    """

    def __init__(self, directory: str, flag: str = "--workdir"):
        self.directory = directory
        self.flag = flag
        self._file = None

    def __enter__(self) -> "WorkdirLock":
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, LOCK_FILE)
        # Opened without truncating: the owner's line must survive until this process holds the lock.
        handle = open(path, "r+" if os.path.exists(path) else "w+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = handle.read().strip() or "another process"
            handle.close()
            raise TfkdError(
                f"{self.flag}={self.directory} is in use by {owner}. Fix: wait for that run to finish "
                f"(or stop it), or pass another {self.flag}."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on host {socket.gethostname()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


class RunFlags:
    """The flags a run was started with, kept in `<directory>/run_flags.json`.

    The file holds `flags` (the values the checkpoints were last trained
    with) and `changes` (every override accepted: flag, old and new value).

    Args:
        directory: the run's workdir.
    """

    def __init__(self, directory: str):
        self.path = os.path.join(directory, FLAGS_FILE)

    def _read(self) -> Optional[Dict[str, Any]]:
        if not os.path.exists(self.path):
            return None
        damaged = "(the flags this run was started with) is damaged"
        fix = ("restore it, or delete it and pass --allow_changed_flags to resume without checking the flags, "
               "or start a new --workdir")
        stored = read_json(self.path, fix=fix, damaged=damaged)
        if not (isinstance(stored, dict) and isinstance(stored.get("flags"), dict)
                and isinstance(stored.get("changes"), list)):
            raise TfkdError(f"'{self.path}' {damaged} (no 'flags' object and 'changes' list). Fix: {fix}.")
        return stored

    def changes(self) -> List[Dict[str, Any]]:
        """The overrides accepted so far (`flag`, `old`, `new`); empty when none or no flags are stored."""
        stored = self._read()
        return stored["changes"] if stored else []

    def check(self, flags: Mapping[str, Any], resuming: bool, allow_changes: bool) -> List[Dict[str, Any]]:
        """Compares `flags` with the stored ones when `resuming`, records them, and returns every override so far.

        A fresh start (nothing to resume) records `flags` and forgets earlier
        overrides. A resume whose flags differ raises a `TfkdError` naming each
        difference, unless `allow_changes`: then the differences are added to
        the recorded overrides and the new values become the stored ones.

        Args:
            flags: flag name → value, the flags that change what a run computes.
            resuming: whether the workdir holds checkpoints this run continues.
            allow_changes: accept differing flags (`--allow_changed_flags`).
        """
        flags = jsonable(dict(flags))
        stored = self._read() if resuming else None
        changes: List[Dict[str, Any]] = []
        if resuming and stored is None and not allow_changes:
            # Without the record nothing says these checkpoints were trained with these flags.
            raise TfkdError(
                f"{os.path.dirname(self.path)} holds checkpoints but no {FLAGS_FILE}, so this run cannot check that "
                "they were trained with the same flags. Fix: pass a new --workdir, or --allow_changed_flags to "
                "resume them with these flags (recorded from now on)."
            )
        if stored is not None:
            old = stored["flags"]
            differ = [name for name in sorted(set(old) | set(flags)) if old.get(name) != flags.get(name)]
            if differ and not allow_changes:
                # A library run records `section.field` settings, a command its flags.
                listed = ", ".join(f"{name if '.' in name else '--' + name} {old.get(name)!r} → {flags.get(name)!r}"
                                   for name in differ)
                raise TfkdError(
                    f"this run resumes the checkpoints in {os.path.dirname(self.path)} with other flags than they "
                    f"were trained with: {listed}. Fix: re-run with the flags it was started with "
                    f"(in {self.path}), pass a new --workdir, or --allow_changed_flags to continue with the new "
                    "values (results.json records the change)."
                )
            changes = stored["changes"] + [{"flag": name, "old": old.get(name), "new": flags.get(name)} for name in differ]
        write_json(self.path, {"flags": flags, "changes": changes})
        return changes
