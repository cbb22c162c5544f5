"""`python -m tfkd.report`: collect `results.json` files into a table and a picture.

Runs that differ only in `--seed` are grouped: the table shows mean ± std of
the primary dev metric (best epoch and last epoch) over seeds, the student
size and the training speed. Runs exported with `tfkd.export --validate` and
named in `--exports` add the exported artefact's size and single-example
latency; the PNG then plots the dev metric against that latency (otherwise
against parameter count), one point per run, the teacher marked.

Example:
    python -m tfkd.report workdirs/*_mrpc_s* --output=docs/results_mrpc --title="MRPC dev"
    python -m tfkd.report workdirs/kd_mrpc_s1 --exports=/srv/models/kd_mrpc_s1/1
"""

from __future__ import annotations

import glob
import json
import os
import statistics
from typing import Dict, List, Sequence

from absl import flags

from tfkd.cli import flags as cli_flags
from tfkd.core.errors import TfkdError

flags.DEFINE_string("output", None, "Write <output>.md (table) and <output>.png (scatter).")
flags.DEFINE_string("title", "dev metric vs student size", "Title of the picture.")
flags.DEFINE_list("exports", [], "Export version folders (or their report.json) written by `tfkd.export --validate`; each is matched to its run through the workdir it was exported from.")
flags.DEFINE_string("export_artefact", "TFLite dynamic_int8", "The artefact of each export report that gives the size and latency columns (a report row name without its 'student'/'teacher' prefix).")
FLAGS = flags.FLAGS


# What a `tfkd.train` results.json holds that the table and the picture read.
RUN_KEYS = ("task", "primary_metric", "best_dev", "last_dev", "student", "train_examples_per_second")


def _read_json(file: str, what: str) -> Dict:
    try:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise TfkdError(f"'{file}' is not valid JSON ({e}). Fix: re-create {what}.") from None


def load_runs(paths: Sequence[str]) -> List[Dict]:
    """Reads `<path>/results.json` (or a results.json path) for every path given."""
    runs = []
    for pattern in paths:
        for path in sorted(glob.glob(pattern)) or [pattern]:
            file = path if path.endswith(".json") else os.path.join(path, "results.json")
            if not os.path.exists(file):
                raise TfkdError(f"no results.json at '{file}'. Fix: pass workdirs of finished tfkd.train runs.")
            run = _read_json(file, "it by re-running the tfkd.train command of that workdir")
            missing = [key for key in RUN_KEYS if key not in run]
            if missing:
                raise TfkdError(
                    f"'{file}' lacks {', '.join(missing)}: it is not the results of a `python -m tfkd.train` run "
                    "(a tfkd.pretrain run has no dev metric). Fix: pass only tfkd.train workdirs."
                )
            run["_path"] = os.path.dirname(file)
            runs.append(run)
    if not runs:
        raise TfkdError("no runs given. Fix: python -m tfkd.report <workdir> [<workdir> ...]")
    return runs


def attach_exports(runs: Sequence[Dict], paths: Sequence[str], artefact: str = "TFLite dynamic_int8") -> None:
    """Adds `run["export"]` (and `run["teacher_export"]`) from `tfkd.export --validate` reports.

    Each report sits next to the `tfkd_export.json` that names the workdir the
    student came from; that workdir must be one of `runs`.
    """
    by_workdir = {os.path.abspath(run["_path"]): run for run in runs}
    for path in paths:
        folder = os.path.dirname(path) if path.endswith(".json") else path
        report_file, metadata_file = os.path.join(folder, "report.json"), os.path.join(folder, "tfkd_export.json")
        for file in (report_file, metadata_file):
            if not os.path.exists(file):
                raise TfkdError(f"no {os.path.basename(file)} in '{folder}'. Fix: pass an export version folder "
                                "written by `python -m tfkd.export --validate`.")
        again = "the export with `python -m tfkd.export --validate`"
        try:
            rows = {row["name"]: row for row in _read_json(report_file, again)["rows"]}
            source = _read_json(metadata_file, again)["source"]["workdir"]
        except (KeyError, TypeError) as e:
            raise TfkdError(f"the export files in '{folder}' lack {e}. Fix: re-create {again}.") from None
        if source not in by_workdir:
            raise TfkdError(f"the export in '{folder}' was made from '{source}', which is not among the runs given. "
                            "Fix: pass that workdir as well.")
        for role, key in (("student", "export"), ("teacher", "teacher_export")):
            row = rows.get(f"{role} {artefact}")
            if row is None and role == "student":
                names = ", ".join(sorted(rows))
                raise TfkdError(f"the report in '{folder}' has no '{role} {artefact}' row (it has: {names}). "
                                "Fix: pick one with --export_artefact.")
            if row is not None and row["latency_ms"]:
                by_workdir[source][key] = {"artefact": artefact, "size_bytes": row["size_bytes"],
                                           "latency_ms": row["latency_ms"]["median"]}


def run_label(run: Dict) -> str:
    flags_ = run.get("flags", {})
    if flags_.get("mode") == "finetune":
        return "teacher (fine-tuned)" if flags_.get("finetune_model") == "teacher" else "student (labels only)"
    label = flags_.get("method", "?")
    if label == "internal":
        label += f" ({flags_.get('algorithm')})"
    return label


def group_runs(runs: Sequence[Dict]) -> Dict[tuple, List[Dict]]:
    groups: Dict[tuple, List[Dict]] = {}
    for run in runs:
        key = (run["task"], run_label(run), run["student"]["layers"], run["student"]["params"])
        groups.setdefault(key, []).append(run)
    return groups


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def table(runs: Sequence[Dict]) -> str:
    """A Markdown table, one row per (task, method, student) group."""
    exported = [r["export"] for r in runs if "export" in r]
    header = "| task | model / method | layers | params (M) | seeds | best-epoch dev | last-epoch dev | train ex/s |"
    if exported:
        header += f" {exported[0]['artefact']} MB | p50 latency ms |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for (task, label, layers, params), group in group_runs(runs).items():
        metric = group[0]["primary_metric"]
        best = [r["best_dev"][metric] for r in group]
        last = [r["last_dev"].get(metric, float("nan")) for r in group]
        # A results.json rebuilt after a finished run has no speed (null).
        speeds = [r["train_examples_per_second"] for r in group if r["train_examples_per_second"] is not None]
        speed = f"{statistics.mean(speeds):.1f}" if speeds else "–"
        line = (f"| {task} | {label} | {layers} | {params / 1e6:.1f} | {len(group)} | {metric} {_mean_std(best)} | "
                f"{_mean_std(last)} | {speed} |")
        if exported:
            exports = [r["export"] for r in group if "export" in r]
            line += (f" {statistics.mean(e['size_bytes'] for e in exports) / 1e6:.1f} | "
                     f"{statistics.mean(e['latency_ms'] for e in exports):.2f} |" if exports else " – | – |")
        lines.append(line)
    return "\n".join(lines)


def scatter(runs: Sequence[Dict], path: str, title: str) -> None:
    """Dev metric against exported latency (when every run has one) or parameter count; the teacher as a star.

    Groups of the same size are spread sideways a little so that methods with
    equal students stay readable; the axis label says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_latency = all("export" in r for r in runs)
    groups = group_runs(runs)
    per_size: Dict[float, int] = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (task, label, layers, params), group in groups.items():
        metric = group[0]["primary_metric"]
        ys = [100 * r["best_dev"][metric] for r in group]
        if by_latency:
            xs = [r["export"]["latency_ms"] for r in group]
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
        (r for r in runs if "teacher" in r and (not by_latency or "teacher_export" in r)), None)
    if teacher is not None:
        x = teacher["teacher_export"]["latency_ms"] if by_latency else teacher["teacher"]["params"] / 1e6
        ax.scatter([x], [100 * teacher["teacher"]["dev"][teacher["primary_metric"]]], marker="*", s=200, c="k",
                   label="teacher")
    if by_latency:
        ax.set_xlabel(f"p50 single-example latency, {runs[0]['export']['artefact']} (ms)")
    else:
        ax.set_xlabel("parameters (millions; equal sizes spread sideways)")
    ax.set_ylabel(f"dev {runs[0]['primary_metric']} (best epoch)")
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
