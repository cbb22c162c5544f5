"""User-facing errors: each names the problem and the fix."""


class TfkdError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints these as one clear message (no traceback) and exits with
    status 2. The message must say what is wrong and how to fix it.

    Example:
    >>> raise TfkdError("unknown task 'sst'. Fix: use one of cola, sst2, ...")
    """


# EX_TEMPFAIL from sysexits.h: "try again later", what a scheduler should do
# with a preempted job.
EXIT_PREEMPTED = 75


class TrainingPreempted(Exception):
    """Training stopped on SIGTERM after saving a checkpoint; re-running the same command resumes.

    The CLI prints the message and exits with `EXIT_PREEMPTED` (75).

    Example:
    >>> raise TrainingPreempted("saved checkpoint ckpt-120 at step 120")
    """
