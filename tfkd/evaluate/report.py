"""The report of finished runs: their `results.json` files as a table and a picture.

Runs that differ only in their seed are grouped (`group_runs`): the table
shows mean ± std of the primary dev metric (best epoch and last epoch) over
seeds, the student size and the training speed. Runs whose exports are
attached (`attach_exports`) add the exported artefact's size and
single-example latency; the picture then plots the dev metric against that
latency (otherwise against parameter count), one point per run, the teacher
marked. Every results.json schema version reads (see `tfkd.training.results`),
the unversioned ones under docs/runs/ included.

An export belongs to the run whose folder holds its `report.json` (a run copied
into docs/runs/ with its export's report.json and tfkd_export.json, so that a
clone rebuilds the picture from docs/runs alone); an export folder elsewhere
belongs to the run named by its tfkd_export.json's `source.workdir`.

Example:
>>> from tfkd.training.results import RunResult, StudentSummary
>>> for seed, f1 in ((1, 0.80), (2, 0.82)):
...     RunResult(kind="finetune", role="student", task="mrpc", primary_metric="f1", best_epoch=1,
...               best_dev={"f1": f1}, last_dev={"f1": f1 - 0.01}, dev_history=[{"epoch": 1, "f1": f1}],
...               student=StudentSummary(layers=3, hidden_dim=384, params=17_390_594), losses=[],
...               train_examples=3668, train_examples_per_second=37.1, epoch_seconds=[99.2], wall_seconds=99.5,
...               padding_efficiency=0.86, flags={"seed": seed}).write(f"runs/s{seed}/results.json")
>>> print(table(load_runs(["runs/s*"])))
| task | model / method | layers | params (M) | seeds | best-epoch dev | last-epoch dev | train ex/s |
|---|---|---|---|---|---|---|---|
| mrpc | student (labels only) | 3 | 17.4 | 2 | f1 81.0 ± 1.4 | 80.0 ± 1.4 | 37.1 |
"""

from __future__ import annotations

import dataclasses
import glob
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json
from tfkd.losses import LOSSES, hyperparameters
from tfkd.models.layer_map import uniform_layer_map
from tfkd.training.results import RESULTS_FILE, LossTerm, RunResult, read_result

# The files `tfkd.export --validate` writes into an export version folder, named here rather than imported
# from tfkd.export, which loads TensorFlow.
REPORT_FILE = "report.json"
EXPORT_METADATA_FILE = "tfkd_export.json"


@dataclasses.dataclass
class ReportRun:
    """One run of the report.

    Args:
        path: its workdir.
        result: its results.json.
        export: `artefact`, `size_bytes` and `latency_ms` of its exported student (`attach_exports`).
        teacher_export: the same for the teacher exported with it.
    """

    path: str
    result: RunResult
    export: Optional[Dict[str, Any]] = None
    teacher_export: Optional[Dict[str, Any]] = None


def load_runs(paths: Sequence[str]) -> List[ReportRun]:
    """Reads `<path>/results.json` (or a results.json path) for every path given (glob patterns too)."""
    runs = []
    for pattern in paths:
        for path in sorted(glob.glob(pattern)) or [pattern]:
            file = path if path.endswith(".json") else os.path.join(path, RESULTS_FILE)
            if not os.path.exists(file):
                raise TfkdError(f"no results.json at '{file}'. Fix: pass workdirs of finished tfkd.train runs.")
            result = read_result(file)
            if result.kind == "pretrain":
                raise TfkdError(f"'{file}' is the result of a tfkd.pretrain run, which has no dev metric. "
                                "Fix: pass only tfkd.train workdirs.")
            runs.append(ReportRun(os.path.dirname(file), result))
    if not runs:
        raise TfkdError("no runs given. Fix: python -m tfkd.report <workdir> [<workdir> ...]")
    return runs


def attach_exports(runs: Sequence[ReportRun], paths: Sequence[str], artefact: str = "TFLite dynamic_int8") -> None:
    """Sets `run.export` (and `run.teacher_export`) from `tfkd.export --validate` reports.

    A run whose folder holds a `report.json` gets that report. Each of `paths`
    is an export folder (or its report.json): the run folder it is, or else the
    folder whose `tfkd_export.json` names the workdir the student came from,
    which must be one of `runs`. `paths` are read after the runs' own reports,
    so a report named on the command line wins.
    """
    by_folder = {os.path.abspath(run.path): run for run in runs}
    again = "the export with `python -m tfkd.export --validate`"
    own = [run.path for run in runs if os.path.exists(os.path.join(run.path, REPORT_FILE))]
    for path in own + list(paths):
        folder = os.path.dirname(path) if path.endswith(".json") else path
        report_file, metadata_file = os.path.join(folder, REPORT_FILE), os.path.join(folder, EXPORT_METADATA_FILE)
        run = by_folder.get(os.path.abspath(folder))
        # A copied run folder keeps the tfkd_export.json of its export, but that names the original workdir.
        for file in (report_file,) if run else (report_file, metadata_file):
            if not os.path.exists(file):
                raise TfkdError(f"no {os.path.basename(file)} in '{folder}'. Fix: pass an export version folder "
                                "written by `python -m tfkd.export --validate`.")
        try:
            rows = {row["name"]: row for row in read_json(report_file, f"re-create {again}")["rows"]}
            if run is None:
                source = read_json(metadata_file, f"re-create {again}")["source"]["workdir"]
                if source not in by_folder:
                    raise TfkdError(f"the export in '{folder}' was made from '{source}', which is not among the runs "
                                    "given. Fix: pass that workdir as well.")
                run = by_folder[source]
        except (KeyError, TypeError) as e:
            raise TfkdError(f"the export files in '{folder}' lack {e}. Fix: re-create {again}.") from None
        speedups = read_json(report_file, f"re-create {again}").get("speedup", {})
        for role, attribute in (("student", "export"), ("teacher", "teacher_export")):
            row = rows.get(f"{role} {artefact}")
            if row is None and role == "student":
                names = ", ".join(sorted(rows))
                raise TfkdError(f"the report in '{folder}' has no '{role} {artefact}' row (it has: {names}). "
                                "Fix: pick one with --export_artefact.")
            timed = row is not None and row["latency_ms"]
            entry = {"artefact": artefact, "size_bytes": row["size_bytes"], "latency_ms": row["latency_ms"]["median"],
                     "speedup": speedups.get(artefact.removeprefix("TFLite "), {}).get("median")} if timed else None
            setattr(run, attribute, entry)


def run_label(result: RunResult) -> str:
    """What a run trained: its method (internal distillation with its algorithm), or which model it fine-tuned."""
    if result.kind == "finetune":
        return "teacher (fine-tuned)" if result.role == "teacher" else "student (labels only)"
    return f"{result.method} ({result.algorithm})" if result.method == "internal" else result.method


def group_label(result: RunResult) -> str:
    """`run_label`, with the student's initialisation, the teacher layers it copies and its vocabulary where
    they are not the defaults, the augmentation it trained with, and the loss arguments set away from their
    defaults (a student of the same size started elsewhere, an augmented run, or a CKD run with the official
    normaliser, is another experiment, not another seed)."""
    label = run_label(result)
    init = result.setting("student", "init", flag="student_init")
    if result.kind == "distill":
        if init not in (None, "pretrained"):
            label += f", init {_start_name(str(init))}"
        if init != "random":
            label += _copied_layers(result)
    if result.student.vocab:
        label += f", vocab {result.student.vocab['size']:,}"
    label += _augmentation(result)
    return label + "".join(f", {name} {value}" for name, value in sorted(changed_loss_args(result.losses).items()))


def _start_name(init: str) -> str:
    """A start's short name: the mode ("pruned"), or the folder a model directory belongs to
    ("codir_pretrain" for tfkd.pretrain's `workdirs/codir_pretrain/model`, "uncased_L-4_H-256" for a
    Hugging Face directory)."""
    path = os.path.normpath(init)
    if os.path.basename(path) == "model" and os.path.dirname(path):
        path = os.path.dirname(path)
    return os.path.basename(path)


def _augmentation(result: RunResult) -> str:
    """", augmented embedding_neighbours+delete ×8" (the augmenters, the copies per example, an augment file's
    name) for a run trained on teacher-labelled augmented examples; "" otherwise."""
    augmentation = result.augmentation
    if augmentation is None:
        return ""
    perturbs = any(name != "file" for name in augmentation.augmenters)
    label = ", augmented " + "+".join(augmentation.augmenters) + (f" ×{augmentation.factor}" if perturbs else "")
    file = result.setting("augment", "file", flag="augment_file")
    return label + (f" {os.path.basename(str(file))}" if "file" in augmentation.augmenters and file else "")


def _copied_layers(result: RunResult) -> str:
    """", layers 1,2,3" (or ", layers by importance") when the student copies teacher layers other than the
    uniform choice (6 → 3: 2,4,6), which an empty `--student_layers_from` also means; "" otherwise."""
    layers_from = [str(k) for k in result.setting("student", "layers_from", flag="student_layers_from") or ()]
    if layers_from == ["importance"]:
        return ", layers by importance"
    if not layers_from or result.teacher is None:
        return ""
    uniform = [str(t) for _, t in uniform_layer_map(result.teacher.layers, result.student.layers)]
    return "" if layers_from == uniform else ", layers " + ",".join(layers_from)


def changed_loss_args(losses: Sequence[LossTerm]) -> Dict[str, Any]:
    """The loss arguments a run's terms set away from their declared defaults (the seed left out).

    results.json files written before schema version 1 record every argument, later ones only those the run
    set, so two seeds of one method compare equal only once the defaults are taken out. A loss no longer
    registered keeps its arguments as recorded.

    Example:
    >>> changed_loss_args([LossTerm(name="kd", key="kd", weight=0.5, args={"temperature": 2.0}),
    ...     LossTerm(name="ckd_wr_pair", key="ckd_wr_pair", weight=100.0, args={"normalizer": "official", "seed": 1})])
    {'normalizer': 'official'}
    """
    changed: Dict[str, Any] = {}
    for term in losses:
        defaults = {h.name: h.default for h in hyperparameters(term.key)} if term.key in LOSSES else {}
        for name, value in term.args.items():
            if name != "seed" and (name not in defaults or defaults[name] != value):
                changed[name] = value
    return changed


def group_runs(runs: Sequence[ReportRun]) -> Dict[tuple, List[ReportRun]]:
    """Runs that differ only in their seed, by (task, `group_label`, student shape, parameters); where runs
    of one label weigh their terms differently (a CoDIR λ sweep) or train for another number of epochs, the
    label names the weights or the epochs too."""
    by_setting: Dict[tuple, List[ReportRun]] = {}
    for run in runs:
        result = run.result
        weights = tuple((term.key, term.weight) for term in result.losses)
        epochs = result.setting("optim", "epochs", flag="epochs")
        key = (result.task, group_label(result), result.student.layers, result.student.params, weights, epochs)
        by_setting.setdefault(key, []).append(run)
    seen: Dict[tuple, Dict[str, set]] = {}
    for task, label, layers, params, weights, epochs in by_setting:
        variants = seen.setdefault((task, label, layers, params), {"weights": set(), "epochs": set()})
        variants["weights"].add(weights)
        variants["epochs"].add(epochs)
    groups: Dict[tuple, List[ReportRun]] = {}
    for (task, label, layers, params, weights, epochs), group in by_setting.items():
        variants = seen[(task, label, layers, params)]
        if len(variants["weights"]) > 1:
            label += ", weights " + " ".join(f"{key} {weight:g}" for key, weight in weights)
        if len(variants["epochs"]) > 1:
            label += f", {epochs} epoch{'' if epochs == 1 else 's'}"
        groups[(task, label, layers, params)] = group
    return groups


def or_nan(value: Optional[float]) -> float:
    """A dev metric, NaN where it is undefined (null in results.json: a diverged run), so the table shows nan."""
    return float("nan") if value is None else value


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def table(runs: Sequence[ReportRun]) -> str:
    """A Markdown table, one row per (task, method, student) group."""
    exported = [r.export for r in runs if r.export]
    header = "| task | model / method | layers | params (M) | seeds | best-epoch dev | last-epoch dev | train ex/s |"
    if exported:
        header += f" {exported[0]['artefact']} MB | p50 latency ms |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for (task, label, layers, params), group in group_runs(runs).items():
        metric = group[0].result.primary_metric
        best = [or_nan(r.result.primary) for r in group]
        last = [or_nan(r.result.last_dev.get(metric)) for r in group]
        # A results.json rebuilt after a finished run has no speed (null).
        speeds = [r.result.train_examples_per_second for r in group if r.result.train_examples_per_second is not None]
        speed = f"{statistics.mean(speeds):.1f}" if speeds else "–"
        line = (f"| {task} | {label} | {layers} | {params / 1e6:.1f} | {len(group)} | {metric} {_mean_std(best)} | "
                f"{_mean_std(last)} | {speed} |")
        if exported:
            exports = [r.export for r in group if r.export]
            line += (f" {statistics.mean(e['size_bytes'] for e in exports) / 1e6:.1f} | "
                     f"{statistics.mean(e['latency_ms'] for e in exports):.2f} |" if exports else " – | – |")
        lines.append(line)
    return "\n".join(lines)


def scatter(runs: Sequence[ReportRun], path: str, title: str) -> None:
    """Dev metric against exported latency (when every run has one) or parameter count; the teacher as a star.

    Groups of the same size are spread sideways a little so that methods with
    equal students stay readable; the axis label says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_latency = all(r.export for r in runs)
    groups = group_runs(runs)
    per_size: Dict[float, int] = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (task, label, layers, params), group in groups.items():
        ys = [100 * or_nan(r.result.primary) for r in group]
        if by_latency:
            xs = [r.export["latency_ms"] for r in group]
        else:
            slot = per_size.setdefault(params, 0)
            per_size[params] += 1
            xs = [params / 1e6 + 0.08 * slot] * len(ys)
        if label.startswith("teacher"):
            ax.scatter(xs, ys, marker="*", s=200, c="k", label=label)
        else:
            ax.scatter(xs, ys, marker="o", s=40, label=label)
    # The distilled runs' own teacher, unless its fine-tuning run is plotted already.
    has_teacher_run = any(label.startswith("teacher") for _, label, _, _ in groups)
    teacher = None if has_teacher_run else next(
        (r for r in runs if r.result.teacher_primary is not None and (not by_latency or r.teacher_export)), None)
    if teacher is not None:
        x = teacher.teacher_export["latency_ms"] if by_latency else teacher.result.teacher.params / 1e6
        ax.scatter([x], [100 * teacher.result.teacher_primary], marker="*", s=200, c="k", label="teacher")
    if by_latency:
        ax.set_xlabel(f"p50 single-example latency, {runs[0].export['artefact']} (ms)")
    else:
        ax.set_xlabel("parameters (millions; equal sizes spread sideways)")
    ax.set_ylabel(f"dev {runs[0].result.primary_metric} (best epoch)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(runs: Sequence[ReportRun], output: str, title: str) -> None:
    """Writes `<output>.md` (the `table`) and `<output>.png` (the `scatter`), making `output`'s folder."""
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output + ".md", "w", encoding="utf-8") as f:
        f.write(table(runs) + "\n")
    scatter(runs, output + ".png", title)
