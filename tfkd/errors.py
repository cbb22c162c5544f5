"""User-facing errors: each names the problem and the fix."""


class TfkdError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints these as one clear message (no traceback) and exits with
    status 2. The message must say what is wrong and how to fix it.

    Example:
    >>> raise TfkdError("unknown task 'sst'. Fix: use one of cola, sst2, ...")
    """
