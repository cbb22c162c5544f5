"""`python -m tfkd.report`: collect `results.json` files into a table and a picture.

Runs that differ only in `--seed` are grouped: the table shows mean ± std of
the primary dev metric (best epoch and last epoch) over seeds, the student
size and the training speed. Runs exported with `tfkd.export --validate` and
named in `--exports` add the exported artefact's size and single-example
latency; the PNG then plots the dev metric against that latency (otherwise
against parameter count), one point per run, the teacher marked. Every
results.json schema version reads (see `tfkd.training.results`), the
unversioned ones under docs/runs/ included.

An export belongs to the run whose folder holds its `report.json` (a run copied
into docs/runs/ with its export's report.json and tfkd_export.json, so that a
clone rebuilds the picture from docs/runs alone); an export folder elsewhere
(`--exports`) belongs to the run named by its tfkd_export.json's
`source.workdir`.

`--frontier` adds the accuracy–cost frontier of the exported runs (`frontier_of`):
`<output>_frontier.png`, two panels, the dev metric against the artefact's p50
batch-1 latency and against its file size, one point per run (seeds not
averaged), the teacher as a star and the Pareto front (`pareto_front`) joined by
a line; and `<output>_frontier.md`, the same as a table with the speed-up and
the share of the teacher's metric. The artefact is `--export_artefact`
(`--export_artefact="TFLite float32"` for the float models).

Example:
    python -m tfkd.report workdirs/*_mrpc_s* --output=docs/results_mrpc --title="MRPC dev"
    python -m tfkd.report workdirs/kd_mrpc_s1 --exports=/srv/models/kd_mrpc_s1/1
    python -m tfkd.report workdirs/kd_mrpc_s1 workdirs/codir_mrpc_s1 \
        --exports=/srv/models/kd_mrpc_s1/1,/srv/models/codir_mrpc_s1/1 --frontier --output=/tmp/mrpc
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from absl import flags

from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json
from tfkd.training.results import RESULTS_FILE, RunResult, read_result

# The files `tfkd.export --validate` writes into an export version folder, named here rather than imported
# from tfkd.export, which loads TensorFlow.
REPORT_FILE = "report.json"
EXPORT_METADATA_FILE = "tfkd_export.json"

flags.DEFINE_string("output", None, "Write <output>.md (table) and <output>.png (scatter).")
flags.DEFINE_string("title", "dev metric vs student size", "Title of the picture.")
flags.DEFINE_list("exports", [], "Export version folders (or their report.json) written by `tfkd.export --validate`; each is matched to its run through the workdir it was exported from. A run folder that holds a report.json is its own export without this flag.")
flags.DEFINE_string("export_artefact", "TFLite dynamic_int8", "The artefact of each export report that gives the size and latency columns and the frontier (a report row name without its 'student'/'teacher' prefix, e.g. 'TFLite float32').")
flags.DEFINE_bool("frontier", False, "Also print the accuracy-latency/size frontier of the exported runs as a table and, with --output, write <output>_frontier.md and <output>_frontier.png.")
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
    """`run_label`, with the student's initialisation and vocabulary where they are not the defaults (a
    student of the same size started elsewhere is another experiment, not another seed)."""
    label = run_label(result)
    init = result.setting("student", "init", flag="student_init")
    if result.kind == "distill" and init not in (None, "pretrained"):
        label += f", init {os.path.basename(os.path.normpath(str(init)))}"
    if result.student.vocab:
        label += f", vocab {result.student.vocab['size']:,}"
    return label


def group_runs(runs: Sequence[ReportRun]) -> Dict[tuple, List[ReportRun]]:
    """Runs that differ only in their seed, by (task, label, student shape, parameters, initialisation)."""
    groups: Dict[tuple, List[ReportRun]] = {}
    for run in runs:
        result = run.result
        key = (result.task, group_label(result), result.student.layers, result.student.params)
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


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the `(cost, metric)` points that no other point beats, by increasing cost.

    A point is beaten when another costs no more and scores no less, and is
    better on one of the two; equal points do not beat each other. A NaN metric
    (a diverged run) is never on the front.

    >>> pareto_front([(4.0, 0.80), (2.0, 0.78), (3.0, 0.77), (9.0, 0.86), (2.0, 0.78), (1.0, float("nan"))])
    [1, 4, 0, 3]
    """
    order = sorted((i for i, (_, metric) in enumerate(points) if not math.isnan(metric)),
                   key=lambda i: (points[i][0], -points[i][1]))
    front: List[int] = []
    best: Optional[Tuple[float, float]] = None
    for i in order:
        # Sorted by cost, a point is on the front when it scores more than every cheaper one, or ties the last.
        if best is None or points[i][1] > best[1] or tuple(points[i]) == best:
            front.append(i)
            best = tuple(points[i])
    return front


@dataclasses.dataclass
class FrontierPoint:
    """One model of the frontier.

    Args:
        name: the run folder's name ('teacher' for the teacher).
        shape: layers and hidden width, e.g. '3L/384' (the teacher's hidden width is not recorded: '6L').
        method: what the run trained (`run_label`), 'teacher' for the teacher.
        params: parameter count.
        size_bytes, latency_ms: the exported artefact's file size and p50 batch-1 latency.
        metric: the best epoch's primary dev metric, NaN where undefined.
    """

    name: str
    shape: str
    method: str
    params: int
    size_bytes: int
    latency_ms: float
    metric: float


@dataclasses.dataclass
class Frontier:
    """The exported runs of one task, and their teacher, measured on one artefact.

    Args:
        metric: the primary dev metric's name.
        artefact: the report row (without 'student'/'teacher') that gave size and latency.
        points: one per exported run, in the order given.
        teacher: the teacher, None when no export timed it or no run measured its dev metric.
    """

    metric: str
    artefact: str
    points: List[FrontierPoint]
    teacher: Optional[FrontierPoint]

    @property
    def models(self) -> List[FrontierPoint]:
        """The runs and then the teacher: the fronts are over all of them."""
        return self.points + ([self.teacher] if self.teacher else [])

    def front(self, cost: str) -> Set[int]:
        """Indices into `models` of the Pareto front against `cost`, 'latency_ms' or 'size_bytes'."""
        return set(pareto_front([(getattr(m, cost), m.metric) for m in self.models]))


def frontier_of(runs: Sequence[ReportRun]) -> Frontier:
    """The frontier of the runs that have an export (`attach_exports`); the others are left out.

    The teacher's point takes the median over the exports' teacher rows (each
    export times the teacher again, in its own session) and over the runs'
    measurements of its dev metric. A student whose report has the interleaved
    speed-up (`tfkd.export --validate`) is placed at that teacher latency divided
    by its speed-up, so load that differed between exports does not move it.
    """
    exported = [r for r in runs if r.export]
    if not exported:
        raise TfkdError("none of the runs has an export, so there is no frontier. Fix: pass --exports=<export "
                        "folders written by `python -m tfkd.export --validate`>, or run folders holding their report.json.")
    tasks = sorted({r.result.task for r in exported})
    if len(tasks) > 1:
        raise TfkdError(f"the frontier compares runs of one task, these are of {', '.join(tasks)}. "
                        "Fix: pass the runs of one task.")
    timed = [r.teacher_export for r in runs if r.teacher_export]
    measured = [r for r in runs if r.result.teacher_primary is not None]
    teacher = None
    if timed and measured:
        summary = measured[0].result.teacher
        teacher = FrontierPoint(name="teacher", shape=f"{summary.layers}L", method="teacher", params=summary.params,
                                size_bytes=int(statistics.median(t["size_bytes"] for t in timed)),
                                latency_ms=statistics.median(t["latency_ms"] for t in timed),
                                metric=statistics.median(r.result.teacher_primary for r in measured))

    def latency(export: Dict[str, Any]) -> float:
        # Exports made at different times saw different machine load; the speed-up measured against the
        # teacher in the same rounds does not, so it places each student against one teacher latency.
        if teacher is not None and export.get("speedup"):
            return teacher.latency_ms / export["speedup"]
        return export["latency_ms"]

    points = [FrontierPoint(name=os.path.basename(os.path.normpath(r.path)),
                            shape=f"{r.result.student.layers}L/{r.result.student.hidden_dim}",
                            method=group_label(r.result), params=r.result.student.params,
                            size_bytes=r.export["size_bytes"], latency_ms=latency(r.export),
                            metric=_or_nan(r.result.primary)) for r in exported]
    return Frontier(metric=exported[0].result.primary_metric, artefact=exported[0].export["artefact"],
                    points=points, teacher=teacher)


def frontier_table(frontier: Frontier) -> str:
    """A Markdown table of the frontier, fastest first, with each model's place on the two fronts."""
    header = (f"| run | shape | method | params (M) | {frontier.artefact} MB | p50 ms | speed-up vs teacher | "
              f"dev {frontier.metric} | % of teacher | latency front | size front |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    by_latency, by_size = frontier.front("latency_ms"), frontier.front("size_bytes")
    teacher = frontier.teacher
    models = frontier.models
    for i in sorted(range(len(models)), key=lambda i: models[i].latency_ms):
        m = models[i]
        speed_up = f"{teacher.latency_ms / m.latency_ms:.2f}×" if teacher else "–"
        share = f"{100 * m.metric / teacher.metric:.1f}" if teacher and teacher.metric else "–"
        lines.append(f"| {m.name} | {m.shape} | {m.method} | {m.params / 1e6:.1f} | {m.size_bytes / 1e6:.1f} | "
                     f"{m.latency_ms:.2f} | {speed_up} | {100 * m.metric:.1f} | {share} | "
                     f"{'yes' if i in by_latency else 'no'} | {'yes' if i in by_size else 'no'} |")
    return "\n".join(lines)


def frontier_plot(frontier: Frontier, path: str, title: str) -> None:
    """Two panels: the dev metric against p50 latency and against file size; the fronts joined, the teacher a star.

    An axis whose values span more than tenfold is logarithmic, so that a small
    student is not squeezed against the axis by the teacher.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = frontier.models
    methods = list(dict.fromkeys(m.method for m in frontier.points))
    colours = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    panels = (("latency_ms", 1.0, f"p50 batch-1 latency, {frontier.artefact} (ms)"),
              ("size_bytes", 1e-6, f"file size, {frontier.artefact} (MB)"))
    for ax, (cost, scale, xlabel) in zip(axes, panels):
        xs = [scale * getattr(m, cost) for m in models]
        ys = [100 * m.metric for m in models]
        for m, x, y in zip(models, xs, ys):
            if m is frontier.teacher:
                ax.scatter([x], [y], marker="*", s=220, c="k", zorder=3, label="teacher")
                ax.annotate(m.shape, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=7)
            else:
                ax.scatter([x], [y], marker="o", s=40, c=colours[m.method], zorder=3)
                ax.annotate(f"{m.shape} {m.method}", (x, y), xytext=(5, 3), textcoords="offset points", fontsize=7)
        on_front = sorted(frontier.front(cost), key=lambda i: xs[i])
        ax.plot([xs[i] for i in on_front], [ys[i] for i in on_front], "--", c="0.4", lw=1, zorder=2,
                label="Pareto front")
        if max(xs) > 10 * min(xs):
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel(f"dev {frontier.metric} (best epoch)")
    fig.suptitle(title)
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
    if FLAGS.frontier:
        frontier = frontier_of(runs)
        text = frontier_table(frontier)
        print(f"\n{text}")
        left_out = [r.path for r in runs if not r.export]
        if left_out:
            print(f"not on the frontier (no export): {', '.join(left_out)}")
        if FLAGS.output:
            with open(FLAGS.output + "_frontier.md", "w", encoding="utf-8") as f:
                f.write(text + "\n")
            frontier_plot(frontier, FLAGS.output + "_frontier.png", FLAGS.title)
            print(f"wrote {FLAGS.output}_frontier.md and {FLAGS.output}_frontier.png")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
