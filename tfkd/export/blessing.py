"""The blessing gate: export only a student that keeps enough of its teacher's dev metric.

Like TFX's Evaluator blessing a model before the Pusher may push it: the
student's primary dev metric must reach `min_ratio` × the teacher's (both as
`tfkd.train` measured them on the full dev set). `--force` exports anyway and
records that the gate was overridden.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from tfkd.core.errors import TfkdError
from tfkd.export.run import TrainedRun


@dataclasses.dataclass
class Blessing:
    """The gate's decision.

    Args:
        metric: the primary dev metric compared.
        student: the student's value.
        teacher: the teacher's value (None when the run has no teacher).
        ratio: student / teacher (None without a teacher).
        min_ratio: the threshold.
        blessed: whether the student passed.
        forced: whether it was exported although it did not pass.
    """

    metric: str
    student: float
    teacher: Optional[float]
    ratio: Optional[float]
    min_ratio: float
    blessed: bool
    forced: bool

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def bless(run: TrainedRun, min_ratio: float, force: bool) -> Blessing:
    """Decides whether `run`'s student may be exported; raises `TfkdError` if not (unless `force`).

    Args:
        run: the trained run (its `RunResult` has the dev metrics).
        min_ratio: the least student/teacher ratio of the primary dev metric.
        force: export even if the gate refuses (recorded as `forced`).

    Example:
    >>> bless(load_run("workdirs/kd_sst2"), 0.95, force=False).ratio  # doctest: +SKIP
    0.981
    """
    result = run.result
    metric, student, teacher = result.primary_metric, result.primary, result.teacher_primary
    if student is None:
        raise TfkdError(f"results.json of '{run.workdir}' has no dev {metric} for the student. Fix: re-run tfkd.train.")
    if teacher is None:
        blessing = Blessing(metric, student, None, None, min_ratio, blessed=False, forced=force)
        reason = (f"results.json of '{run.workdir}' has no teacher dev {metric} to compare with "
                  "(a fine-tuning run, not a distillation run)")
        fix = "pass --force to export a fine-tuned model, which has no teacher to keep up with"
    else:
        # A ratio is meaningless when the teacher scores <= 0 (MCC or correlation): compare differences then.
        ratio = student / teacher if teacher > 0 else None
        passed = ratio >= min_ratio if ratio is not None else student >= teacher
        blessing = Blessing(metric, student, teacher, ratio, min_ratio, blessed=passed, forced=force and not passed)
        if ratio is not None:
            reason = (f"the student's dev {metric} {student:.4f} is {100 * ratio:.1f} % of the teacher's "
                      f"{teacher:.4f}, below --bless_min_ratio={min_ratio:g}")
        else:
            reason = f"the student's dev {metric} {student:.4f} is below the teacher's {teacher:.4f}"
        fix = "distil a better student, lower --bless_min_ratio, or pass --force to export it anyway"
    if not blessing.blessed and not force:
        raise TfkdError(f"not blessed: {reason}. Fix: {fix} (the metadata records that it was forced).")
    return blessing
