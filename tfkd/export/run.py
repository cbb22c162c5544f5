"""What an export starts from: a finished `tfkd.train` workdir.

A workdir holds `model/` (the best-dev model, a tfkd model directory) and
`results.json` (task, dev metrics of student and teacher, the run's flags).
The teacher's model directory is found from the run's flags, for the
teacher-vs-student numbers of `--validate`.

Example:
>>> run = load_run("workdirs/kd_mrpc")
>>> run.task.name, run.teacher_dir
('mrpc', 'workdirs/teacher_mrpc/model')
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from tfkd.data import GlueTask, get_task
from tfkd.core.errors import TfkdError
from tfkd.models.model_dir import MODEL_FILE, is_model_dir

RESULTS_FILE = "results.json"


@dataclasses.dataclass
class TrainedRun:
    """A finished training run.

    Args:
        workdir: the run's folder.
        model_dir: its best-dev model directory (`<workdir>/model`).
        results: the parsed `results.json`.
        task: the task it was trained on.
        teacher_dir: the teacher's tfkd model directory, if it can be found.
        glue_dir: where the run read GLUE from (None: tensorflow-datasets).
    """

    workdir: str
    model_dir: str
    results: Dict[str, Any]
    task: GlueTask
    teacher_dir: Optional[str]
    glue_dir: Optional[str]

    @property
    def flags(self) -> Dict[str, Any]:
        return self.results.get("flags", {})


def find_teacher_dir(workdir: str, flags: Dict[str, Any]) -> Optional[str]:
    """The teacher's model directory: the fine-tuned one, else `--teacher` when it is a tfkd model.

    Looks at `<finetuned_teacher_dir>/model`, `<workdir>/teacher/model`, then the
    `teacher` flag (a tfkd model directory or `.keras` file).
    """
    candidates = []
    if flags.get("finetuned_teacher_dir"):
        candidates.append(os.path.join(flags["finetuned_teacher_dir"], "model"))
    candidates.append(os.path.join(workdir, "teacher", "model"))
    teacher = flags.get("teacher") or ""
    candidates.append(os.path.dirname(teacher) if teacher.endswith(".keras") else teacher)
    own_model = os.path.realpath(os.path.join(workdir, "model"))
    for path in candidates:
        # A fine-tuning run's flags can name its own folder.
        if path and is_model_dir(path) and os.path.realpath(path) != own_model:
            return path
    return None


def load_run(workdir: str, glue_dir: Optional[str] = None) -> TrainedRun:
    """Reads a training workdir, or fails with what is missing and how to get it.

    Args:
        workdir: a `tfkd.train --workdir` folder (distillation, or fine-tuning).
        glue_dir: overrides the GLUE folder the run used.

    Example:
    >>> load_run("workdirs/kd_sst2").results["best_dev"]
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
    try:
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    except json.JSONDecodeError as e:
        raise TfkdError(f"{results_path} is not valid JSON ({e}). Fix: re-run the tfkd.train command that wrote it.") from None
    for key in ("task", "best_dev"):
        if key not in results:
            raise TfkdError(f"{results_path} lacks '{key}'. Fix: re-run the tfkd.train command that wrote it.")
    flags = results.get("flags", {})
    return TrainedRun(
        workdir=workdir,
        model_dir=model_dir,
        results=results,
        task=get_task(results["task"]),
        teacher_dir=find_teacher_dir(workdir, flags),
        glue_dir=glue_dir or flags.get("glue_dir") or None,
    )
