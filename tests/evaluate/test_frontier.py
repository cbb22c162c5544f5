"""The accuracy-cost frontier: the Pareto front against brute force, the frontier's table and picture, the
teacher's point, and students placed by their interleaved speed-up."""

import itertools
import json
import os
import random

import pytest

from tests.evaluate.test_report import fake_export, fake_run
from tfkd.core.errors import TfkdError
from tfkd.evaluate.frontier import frontier_of, frontier_plot, frontier_table, pareto_front
from tfkd.evaluate.report import attach_exports, load_runs


def test_the_pareto_front_is_the_points_no_other_point_beats():
    """Against a brute-force dominance check, on random points with many ties of cost and metric."""
    def beats(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    rng = random.Random(0)
    for _ in range(200):
        points = [(rng.randint(1, 6) / 2, rng.randint(70, 76) / 100) for _ in range(rng.randint(1, 9))]
        expected = {i for i, p in enumerate(points) if not any(beats(q, p) for q in points)}
        front = pareto_front(points)
        assert set(front) == expected and len(front) == len(expected)
        assert [points[i][0] for i in front] == sorted(points[i][0] for i in front)
        # Along the front, a higher cost buys a higher metric.
        for a, b in itertools.pairwise(front):
            assert points[a] == points[b] or (points[a][0] < points[b][0] and points[a][1] < points[b][1])
    assert pareto_front([(2.0, float("nan")), (3.0, 0.5)]) == [1]


def frontier_runs(tmp_path):
    """Four exported runs of MRPC (one 4L/512 and three 3L/384), a fifth without an export, and their exports."""
    runs = {"kd_s1": ("kd", 1, 0.80, 3, 384, 17_000_000, 4.0, 5_000_000), "kd_s2": ("kd", 2, 0.82, 3, 384, 17_000_000, 4.4, 5_000_000),
            "codir_s1": ("codir", 1, 0.81, 3, 384, 17_000_000, 3.8, 5_000_000),
            "big_s1": ("kd", 1, 0.84, 4, 512, 20_000_000, 6.0, 8_000_000)}
    paths, exports = [], []
    for name, (method, seed, f1, layers, hidden, params, ms, size) in runs.items():
        paths.append(fake_run(tmp_path / name, method, seed, f1, params=params, layers=layers, hidden=hidden))
        exports.append(fake_export(tmp_path / "serving" / name / "1", tmp_path / name, ms, teacher_ms=8.0 + seed,
                                   size=size, teacher_size=10_000_000))
    paths.append(fake_run(tmp_path / "unexported", "pkd", 1, 0.9))
    return paths, exports


def test_the_frontier_table_ranks_exported_runs_against_their_teacher(tmp_path):
    paths, exports = frontier_runs(tmp_path)
    runs = load_runs(paths)
    attach_exports(runs, exports)
    text = frontier_table(frontier_of(runs))
    lines = text.splitlines()
    assert lines[0] == ("| run | shape | method | params (M) | TFLite dynamic_int8 MB | p50 ms | speed-up vs teacher | "
                        "dev f1 | % of teacher | latency front | size front |")
    # Fastest first; the teacher's latency is the median of its four timings (9, 9, 10, 9 ms), its f1 0.86.
    assert lines[2:] == [
        "| codir_s1 | 3L/384 | codir | 17.0 | 5.0 | 3.80 | 2.37× | 81.0 | 94.2 | yes | no |",
        "| kd_s1 | 3L/384 | kd | 17.0 | 5.0 | 4.00 | 2.25× | 80.0 | 93.0 | no | no |",
        "| kd_s2 | 3L/384 | kd | 17.0 | 5.0 | 4.40 | 2.05× | 82.0 | 95.3 | yes | yes |",
        "| big_s1 | 4L/512 | kd | 20.0 | 8.0 | 6.00 | 1.50× | 84.0 | 97.7 | yes | yes |",
        "| teacher | 6L | teacher | 22.0 | 10.0 | 9.00 | 1.00× | 86.0 | 100.0 | yes | yes |",
    ]
    float32 = load_runs(paths)
    attach_exports(float32, exports, artefact="TFLite float32")
    assert "| kd_s1 | 3L/384 | kd | 17.0 | 20.0 | 16.00 | 2.25× | 80.0 |" in frontier_table(frontier_of(float32))


def test_a_run_folder_holding_its_export_report_needs_no_exports_flag(tmp_path):
    """A run copied into docs/runs/ with report.json and tfkd_export.json, which names the original workdir."""
    copy = fake_run(tmp_path / "docs" / "runs" / "kd_s1", "kd", 1, 0.8)
    fake_export(tmp_path / "docs" / "runs" / "kd_s1", "/elsewhere/workdirs/kd_s1", 4.0, teacher_ms=9.0)
    runs = load_runs([copy])
    attach_exports(runs, [])
    assert runs[0].export == {"artefact": "TFLite dynamic_int8", "size_bytes": 5_000_000, "latency_ms": 4.0, "speedup": None}
    frontier_plot(frontier_of(runs), str(tmp_path / "frontier.png"), "test")
    assert (tmp_path / "frontier.png").stat().st_size > 10_000
    # An export named on the command line replaces the copied one, teacher row included.
    attach_exports(runs, [fake_export(tmp_path / "serving" / "kd_s1" / "2", copy, 3.0)])
    assert runs[0].export["latency_ms"] == 3.0 and runs[0].teacher_export is None


def test_a_frontier_needs_exports_of_one_task(tmp_path):
    runs = load_runs([fake_run(tmp_path / "kd1", "kd", 1, 0.8)])
    with pytest.raises(TfkdError, match="none of the runs has an export"):
        frontier_of(runs)
    runs[0].export = {"artefact": "TFLite dynamic_int8", "size_bytes": 1, "latency_ms": 1.0}
    other = load_runs([fake_run(tmp_path / "kd2", "kd", 1, 0.8)])[0]
    other.result.task, other.export = "sst2", runs[0].export
    with pytest.raises(TfkdError, match="the frontier compares runs of one task, these are of mrpc, sst2"):
        frontier_of([runs[0], other])


def test_the_frontier_places_students_by_their_interleaved_speedup(tmp_path):
    """A student exported while the machine was busy has a slow p50, but its speed-up against the teacher
    timed in the same rounds puts it where it belongs."""
    paths, exports = frontier_runs(tmp_path)
    report = json.loads(open(os.path.join(exports[0], "report.json")).read())
    report["speedup"] = {"dynamic_int8": {"median": 4.5}}
    open(os.path.join(exports[0], "report.json"), "w").write(json.dumps(report))
    runs = load_runs(paths)
    attach_exports(runs, exports)
    assert runs[0].export["speedup"] == 4.5
    line = next(line for line in frontier_table(frontier_of(runs)).splitlines() if line.startswith("| kd_s1 "))
    assert "| 2.00 | 4.50× |" in line  # the teacher's 9.00 ms / 4.5, not the 4.00 ms p50 of its own export
