"""The accuracy–cost frontier of exported runs: which models no other one beats on dev metric and cost.

`frontier_of` takes the runs with an attached export (`tfkd.evaluate.report.attach_exports`),
one point per run (seeds not averaged) and their teacher; `frontier_table` lists
them with the speed-up and the share of the teacher's metric, and `frontier_plot`
draws two panels, the dev metric against the artefact's p50 batch-1 latency and
against its file size, the teacher as a star and the Pareto front
(`pareto_front`) joined by a line.

Example:
>>> pareto_front([(4.0, 0.80), (2.0, 0.78), (3.0, 0.77)])  # (latency, f1): the 3.0 ms model is beaten
[1, 0]
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from tfkd.core.errors import TfkdError
from tfkd.evaluate.report import ReportRun, group_label, or_nan


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
                            metric=or_nan(r.result.primary)) for r in exported]
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


def write_frontier(frontier: Frontier, output: str, title: str) -> None:
    """Writes `<output>_frontier.md` (the `frontier_table`) and `<output>_frontier.png` (the `frontier_plot`)."""
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output + "_frontier.md", "w", encoding="utf-8") as f:
        f.write(frontier_table(frontier) + "\n")
    frontier_plot(frontier, output + "_frontier.png", title)
