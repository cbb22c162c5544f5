"""`python -m tfkd.report`: collect `results.json` files into a table and a picture.

Runs that differ only in `--seed` are grouped: the table shows mean ± std of
the primary dev metric (best epoch and last epoch) over seeds, the student
size and the training speed; the PNG plots the dev metric against parameter
count (or forward examples/s), one point per run, the teacher marked.

Example:
    python -m tfkd.report workdirs/*_mrpc_s* --output=docs/results_mrpc --title="MRPC dev"
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import sys
from typing import Dict, List, Sequence

from absl import app, flags

from tfkd.errors import TfkdError

flags.DEFINE_string("output", None, "Write <output>.md (table) and <output>.png (scatter).")
flags.DEFINE_string("title", "dev metric vs student size", "Title of the picture.")
FLAGS = flags.FLAGS


def load_runs(paths: Sequence[str]) -> List[Dict]:
    """Reads `<path>/results.json` (or a results.json path) for every path given."""
    runs = []
    for pattern in paths:
        for path in sorted(glob.glob(pattern)) or [pattern]:
            file = path if path.endswith(".json") else os.path.join(path, "results.json")
            if not os.path.exists(file):
                raise TfkdError(f"no results.json at '{file}'. Fix: pass workdirs of finished tfkd.train runs.")
            with open(file, encoding="utf-8") as f:
                run = json.load(f)
            run["_path"] = os.path.dirname(file)
            runs.append(run)
    if not runs:
        raise TfkdError("no runs given. Fix: python -m tfkd.report <workdir> [<workdir> ...]")
    return runs


def run_label(run: Dict) -> str:
    flags_ = run.get("flags", {})
    if flags_.get("mode") == "finetune":
        return f"{'teacher' if flags_.get('finetune_model') == 'teacher' else 'student'} (labels only)"
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
    lines = [
        "| task | model / method | layers | params (M) | seeds | best-epoch dev | last-epoch dev | train ex/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, label, layers, params), group in group_runs(runs).items():
        metric = group[0]["primary_metric"]
        best = [r["best_dev"][metric] for r in group]
        last = [r["last_dev"].get(metric, float("nan")) for r in group]
        speed = statistics.mean(r["train_examples_per_second"] for r in group)
        lines.append(
            f"| {task} | {label} | {layers} | {params / 1e6:.1f} | {len(group)} | {metric} {_mean_std(best)} | "
            f"{_mean_std(last)} | {speed:.1f} |"
        )
    return "\n".join(lines)


def scatter(runs: Sequence[Dict], path: str, title: str) -> None:
    """dev metric against parameter count, one point per run; the teacher as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (task, label, layers, params), group in group_runs(runs).items():
        metric = group[0]["primary_metric"]
        ys = [100 * r["best_dev"][metric] for r in group]
        is_teacher = label.startswith("teacher")
        ax.scatter([params / 1e6] * len(ys), ys, marker="*" if is_teacher else "o", s=160 if is_teacher else 40, label=f"{label}")
    teacher_runs = [r for r in runs if "teacher" in r]
    for run in teacher_runs[:1]:
        metric = run["primary_metric"]
        ax.scatter([run["teacher"]["params"] / 1e6], [100 * run["teacher"]["dev"][metric]], marker="*", s=200, c="k", label="teacher")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel(f"dev {runs[0]['primary_metric']} (best epoch)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv) -> None:
    runs = load_runs(argv[1:])
    text = table(runs)
    print(text)
    if FLAGS.output:
        os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
        with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        scatter(runs, FLAGS.output + ".png", FLAGS.title)
        print(f"wrote {FLAGS.output}.md and {FLAGS.output}.png")


def run() -> None:
    try:
        app.run(main)
    except TfkdError as e:
        print(f"tfkd: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
