"""User-facing errors: each names the problem and the fix."""


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
