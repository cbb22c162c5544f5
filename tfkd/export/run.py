"""What an export starts from: a finished `tfkd.train` workdir.

A workdir holds `model/` (the best-dev model, a tfkd model directory) and
`results.json` (a `RunResult`: task, dev metrics of student and teacher, the
run's configuration). The teacher's model directory is found from the run's
settings, for the teacher-vs-student numbers of `--validate`.

Example:
>>> run = load_run("workdirs/kd_mrpc")  # doctest: +SKIP
>>> run.task.name, run.teacher_dir  # doctest: +SKIP
('mrpc', 'workdirs/teacher_mrpc/model')
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Optional

from tfkd.core.errors import TfkdError
from tfkd.data import GlueTask, get_task
from tfkd.data.tasks import TaskSpec
from tfkd.models.model_dir import MODEL_FILE, is_model_dir
from tfkd.training.results import RESULTS_FILE, RunResult, read_result


@dataclasses.dataclass
class TrainedRun:
    """A finished training run.

    Args:
        workdir: the run's folder.
        model_dir: its best-dev model directory (`<workdir>/model`).
        result: its `results.json`.
        task: the task it was trained on.
        teacher_dir: the teacher's tfkd model directory, if it can be found.
        glue_dir: where the run read GLUE from (None: tensorflow-datasets).
    """

    workdir: str
    model_dir: str
    result: RunResult
    task: GlueTask
    teacher_dir: Optional[str]
    glue_dir: Optional[str]

    @property
    def results(self) -> Dict[str, Any]:
        """`result` as plain values, the way results.json writes them (what the export metadata copies)."""
        return self.result.to_dict()


def find_teacher_dir(workdir: str, result: RunResult) -> Optional[str]:
    """The teacher's model directory: the fine-tuned one, else the run's teacher when it is a tfkd model.

    Looks at `<finetuned teacher dir>/model`, `<workdir>/teacher/model`, then the
    teacher source (a tfkd model directory or `.keras` file).
    """
    candidates = []
    finetuned = result.setting("teacher", "finetuned_dir", flag="finetuned_teacher_dir")
    if finetuned:
        candidates.append(os.path.join(finetuned, "model"))
    candidates.append(os.path.join(workdir, "teacher", "model"))
    teacher = result.setting("teacher", "source", flag="teacher") or ""
    candidates.append(os.path.dirname(teacher) if teacher.endswith(".keras") else teacher)
    own_model = os.path.realpath(os.path.join(workdir, "model"))
    for path in candidates:
        # A fine-tuning run's teacher setting can name its own folder.
        if path and is_model_dir(path) and os.path.realpath(path) != own_model:
            return path
    return None


def load_run(workdir: str, glue_dir: Optional[str] = None) -> TrainedRun:
    """Reads a training workdir, or fails with what is missing and how to get it.

    Args:
        workdir: a `tfkd.train --workdir` folder (distillation, or fine-tuning).
        glue_dir: overrides the GLUE folder the run used.

    Example:
    >>> load_run("workdirs/kd_sst2").result.best_dev  # doctest: +SKIP
    {'accuracy': 0.87}
    """
    if not workdir:
        raise TfkdError("--workdir is required. Fix: pass --workdir=<the folder of a finished tfkd.train run>.")
    if not os.path.isdir(workdir):
        raise TfkdError(f"workdir '{workdir}' does not exist. Fix: pass the --workdir of a finished tfkd.train run.")
    model_dir = os.path.join(workdir, "model")
    if not os.path.exists(os.path.join(model_dir, MODEL_FILE)):
        raise TfkdError(
            f"'{workdir}' holds no trained student ({os.path.join(model_dir, MODEL_FILE)} is missing). "
            "Fix: train one first (python -m tfkd.train --workdir=...), or wait until its first epoch ends: "
            "the best-dev model is saved after each dev evaluation."
        )
    results_path = os.path.join(workdir, RESULTS_FILE)
    if not os.path.exists(results_path):
        raise TfkdError(
            f"'{workdir}' has a model but no {RESULTS_FILE}: the run has not finished (or was interrupted). "
            "Fix: re-run the same tfkd.train command; it resumes from its last checkpoint and writes results.json."
        )
    result = read_result(results_path)
    if result.kind == "pretrain":
        raise TfkdError(
            f"'{workdir}' is a tfkd.pretrain run: its student has no task head to serve. Fix: distil it on a task "
            f"first (python -m tfkd.train --student_init={model_dir} ...) and export that run."
        )
    return TrainedRun(
        workdir=workdir,
        model_dir=model_dir,
        result=result,
        # Your own data's task is known only from what the run recorded; a GLUE task also by name.
        task=TaskSpec.from_dict(result.task_spec) if result.task_spec else get_task(result.task),
        teacher_dir=find_teacher_dir(workdir, result),
        glue_dir=glue_dir or result.setting("data", "glue_dir", flag="glue_dir") or None,
    )
