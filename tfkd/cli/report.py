"""`python -m tfkd.report`: collect `results.json` files into a table and a picture.

Runs that differ only in `--seed` are grouped: the table shows mean ± std of
the primary dev metric (best epoch and last epoch) over seeds, the student
size and the training speed. Runs exported with `tfkd.export --validate` and
named in `--exports` add the exported artefact's size and single-example
latency; the PNG then plots the dev metric against that latency (otherwise
against parameter count), one point per run, the teacher marked. Every
results.json schema version reads (see `tfkd.training.results`), the
unversioned ones under docs/runs/ included.

Example:
    python -m tfkd.report workdirs/*_mrpc_s* --output=docs/results_mrpc --title="MRPC dev"
    python -m tfkd.report workdirs/kd_mrpc_s1 --exports=/srv/models/kd_mrpc_s1/1
"""

from __future__ import annotations

import dataclasses
import glob
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence

from absl import flags

from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json
from tfkd.training.results import RESULTS_FILE, RunResult, read_result

flags.DEFINE_string("output", None, "Write <output>.md (table) and <output>.png (scatter).")
flags.DEFINE_string("title", "dev metric vs student size", "Title of the picture.")
flags.DEFINE_list("exports", [], "Export version folders (or their report.json) written by `tfkd.export --validate`; each is matched to its run through the workdir it was exported from.")
flags.DEFINE_string("export_artefact", "TFLite dynamic_int8", "The artefact of each export report that gives the size and latency columns (a report row name without its 'student'/'teacher' prefix).")
FLAGS = flags.FLAGS


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

    Each report sits next to the `tfkd_export.json` that names the workdir the
    student came from; that workdir must be one of `runs`.
    """
    by_workdir = {os.path.abspath(run.path): run for run in runs}
    for path in paths:
        folder = os.path.dirname(path) if path.endswith(".json") else path
        report_file, metadata_file = os.path.join(folder, "report.json"), os.path.join(folder, "tfkd_export.json")
        for file in (report_file, metadata_file):
            if not os.path.exists(file):
                raise TfkdError(f"no {os.path.basename(file)} in '{folder}'. Fix: pass an export version folder "
                                "written by `python -m tfkd.export --validate`.")
        again = "the export with `python -m tfkd.export --validate`"
        try:
            rows = {row["name"]: row for row in read_json(report_file, f"re-create {again}")["rows"]}
            source = read_json(metadata_file, f"re-create {again}")["source"]["workdir"]
        except (KeyError, TypeError) as e:
            raise TfkdError(f"the export files in '{folder}' lack {e}. Fix: re-create {again}.") from None
        if source not in by_workdir:
            raise TfkdError(f"the export in '{folder}' was made from '{source}', which is not among the runs given. "
                            "Fix: pass that workdir as well.")
        for role, attribute in (("student", "export"), ("teacher", "teacher_export")):
            row = rows.get(f"{role} {artefact}")
            if row is None and role == "student":
                names = ", ".join(sorted(rows))
                raise TfkdError(f"the report in '{folder}' has no '{role} {artefact}' row (it has: {names}). "
                                "Fix: pick one with --export_artefact.")
            if row is not None and row["latency_ms"]:
                setattr(by_workdir[source], attribute, {"artefact": artefact, "size_bytes": row["size_bytes"],
                                                        "latency_ms": row["latency_ms"]["median"]})


def run_label(result: RunResult) -> str:
    """What a run trained: its method (internal distillation with its algorithm), or which model it fine-tuned."""
    if result.kind == "finetune":
        return "teacher (fine-tuned)" if result.role == "teacher" else "student (labels only)"
    return f"{result.method} ({result.algorithm})" if result.method == "internal" else result.method


def group_runs(runs: Sequence[ReportRun]) -> Dict[tuple, List[ReportRun]]:
    """Runs that differ only in their seed, by (task, label, student layers, student parameters)."""
    groups: Dict[tuple, List[ReportRun]] = {}
    for run in runs:
        result = run.result
        key = (result.task, run_label(result), result.student.layers, result.student.params)
        groups.setdefault(key, []).append(run)
    return groups


def _or_nan(value: Optional[float]) -> float:
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
        best = [_or_nan(r.result.primary) for r in group]
        last = [_or_nan(r.result.last_dev.get(metric)) for r in group]
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
        ys = [100 * _or_nan(r.result.primary) for r in group]
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


def main(argv) -> None:
    runs = load_runs(argv[1:])
    attach_exports(runs, FLAGS.exports, FLAGS.export_artefact)
    text = table(runs)
    print(text)
    if FLAGS.output:
        os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
        with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        scatter(runs, FLAGS.output + ".png", FLAGS.title)
        print(f"wrote {FLAGS.output}.md and {FLAGS.output}.png")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
