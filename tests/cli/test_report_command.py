"""`python -m tfkd.report`'s flags reach the report and the frontier, which it prints and writes."""

import os

from tests.evaluate.test_frontier import frontier_runs
from tfkd.cli import report


def test_the_frontier_command_writes_the_table_and_the_two_panel_picture(tmp_path, capsys):
    paths, exports = frontier_runs(tmp_path)
    output = str(tmp_path / "out" / "mrpc")
    argv = report.FLAGS(["tfkd.report", "--frontier", f"--output={output}", f"--exports={','.join(exports)}", *paths])
    try:
        report.main(argv)
    finally:
        report.FLAGS.unparse_flags()
    printed = capsys.readouterr().out
    with open(output + "_frontier.md", encoding="utf-8") as f:
        assert f.read().strip() in printed
    assert f"not on the frontier (no export): {paths[-1]}" in printed
    assert os.path.getsize(output + "_frontier.png") > 10_000
