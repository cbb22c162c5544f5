"""`python -m tfkd.report`: collect `results.json` files into a table and a picture.

Runs that differ only in `--seed` are grouped into one row (mean ± std over
seeds); runs exported with `tfkd.export --validate` (named in `--exports`, or
run folders holding their export's report.json) add the artefact's size and
latency, and the picture plots the dev metric against it
(`tfkd.evaluate.report`). `--frontier` adds the accuracy–cost frontier of the
exported runs (`tfkd.evaluate.frontier`): `<output>_frontier.md` and
`<output>_frontier.png`, measured on `--export_artefact`
(`--export_artefact="TFLite float32"` for the float models).

Example:
    python -m tfkd.report workdirs/*_mrpc_s* --output=docs/results_mrpc --title="MRPC dev"
    python -m tfkd.report workdirs/kd_mrpc_s1 --exports=/srv/models/kd_mrpc_s1/1
    python -m tfkd.report workdirs/kd_mrpc_s1 workdirs/codir_mrpc_s1 \\
        --exports=/srv/models/kd_mrpc_s1/1,/srv/models/codir_mrpc_s1/1 --frontier --output=/tmp/mrpc
"""

from __future__ import annotations

from absl import flags

from tfkd.cli import flags as cli_flags
from tfkd.evaluate.frontier import frontier_of, frontier_table, write_frontier
from tfkd.evaluate.report import attach_exports, load_runs, table, write_report

flags.DEFINE_string("output", None, "Write <output>.md (table) and <output>.png (scatter).")
flags.DEFINE_string("title", "dev metric vs student size", "Title of the picture.")
flags.DEFINE_list("exports", [], "Export version folders (or their report.json) written by `tfkd.export --validate`; each is matched to its run through the workdir it was exported from. A run folder that holds a report.json is its own export without this flag.")
flags.DEFINE_string("export_artefact", "TFLite dynamic_int8", "The artefact of each export report that gives the size and latency columns and the frontier (a report row name without its 'student'/'teacher' prefix, e.g. 'TFLite float32').")
flags.DEFINE_bool("frontier", False, "Also print the accuracy-latency/size frontier of the exported runs as a table and, with --output, write <output>_frontier.md and <output>_frontier.png.")
FLAGS = flags.FLAGS


def main(argv) -> None:
    runs = load_runs(argv[1:])
    attach_exports(runs, FLAGS.exports, FLAGS.export_artefact)
    print(table(runs))
    if FLAGS.output:
        write_report(runs, FLAGS.output, FLAGS.title)
        print(f"wrote {FLAGS.output}.md and {FLAGS.output}.png")
    if FLAGS.frontier:
        frontier = frontier_of(runs)
        print(f"\n{frontier_table(frontier)}")
        left_out = [r.path for r in runs if not r.export]
        if left_out:
            print(f"not on the frontier (no export): {', '.join(left_out)}")
        if FLAGS.output:
            write_frontier(frontier, FLAGS.output, FLAGS.title)
            print(f"wrote {FLAGS.output}_frontier.md and {FLAGS.output}_frontier.png")


def run() -> None:
    cli_flags.run_cli(main)


if __name__ == "__main__":
    run()
