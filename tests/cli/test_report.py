import itertools
import json
import os
import random

import pytest

from tfkd.cli import report
from tfkd.cli.report import (
    attach_exports,
    frontier_of,
    frontier_plot,
    frontier_table,
    load_runs,
    pareto_front,
    scatter,
    table,
)
from tfkd.core.errors import TfkdError
from tfkd.training.results import RESULTS_FILE, PretrainSummary, RunResult, StudentSummary, TeacherSummary

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "runs")


def fake_run(path, method, seed, f1, params=17_000_000, speed=25.0, kind="distill", role=None, layers=3, hidden=384):
    """A finished run's workdir (results.json only); `kind="finetune"` trains the `role` model on labels alone."""
    path.mkdir(parents=True)
    distill = kind == "distill"
    RunResult(
        kind=kind, role=role, method=method if distill else None, task="mrpc", primary_metric="f1",
        best_dev={"f1": f1, "accuracy": 0.7}, last_dev={"f1": f1 - 0.01}, dev_history=[{"epoch": 1, "f1": f1}],
        train_examples_per_second=speed, epoch_seconds=[1.0], wall_seconds=1.0, train_examples=3668,
        padding_efficiency=0.9, student=StudentSummary(layers=layers, hidden_dim=hidden, params=params), losses=[],
        algorithm="joint", flags={"seed": seed},
        teacher=TeacherSummary(source="minilm", layers=6, params=22_000_000, dev={"f1": 0.86}) if distill else None,
    ).write(str(path / RESULTS_FILE))
    return str(path)


def test_seeds_are_grouped_with_mean_and_std(tmp_path):
    paths = [fake_run(tmp_path / f"kd{s}", "kd", s, f) for s, f in ((1, 0.80), (2, 0.82))]
    paths.append(fake_run(tmp_path / "codir1", "codir", 1, 0.84))
    text = table(load_runs(paths))
    kd_row = next(line for line in text.splitlines() if "| kd |" in line)
    assert "| 2 |" in kd_row and "f1 81.0 ± 1.4" in kd_row
    assert "| codir | 3 | 17.0 | 1 | f1 84.0 |" in text
    scatter(load_runs(paths), str(tmp_path / "plot.png"), "test")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_a_run_without_a_speed_is_tabled_with_a_dash(tmp_path):
    """results.json rebuilt after its run finished records the speed as null (strict JSON)."""
    text = table(load_runs([fake_run(tmp_path / "kd1", "kd", 1, 0.8, speed=None)]))
    assert "| kd | 3 | 17.0 | 1 | f1 80.0 | 79.0 | – |" in text


def fake_export(folder, workdir, student_ms, teacher_ms=None, size=5_000_000, teacher_size=None):
    """An export version folder as `tfkd.export --validate` leaves it; the float32 rows take 4× the int8 ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"name": "student Keras", "size_bytes": 1, "latency_ms": None}]
    for variant, factor in (("dynamic_int8", 1), ("float32", 4)):
        rows.append({"name": f"student TFLite {variant}", "size_bytes": factor * size,
                     "latency_ms": {"median": factor * student_ms, "p90": 1.0, "examples": 200}})
        if teacher_ms is not None:
            rows.append({"name": f"teacher TFLite {variant}", "size_bytes": factor * (teacher_size or 2 * size),
                         "latency_ms": {"median": factor * teacher_ms, "p90": 1.0, "examples": 200}})
    (folder / "report.json").write_text(json.dumps({"rows": rows}))
    (folder / "tfkd_export.json").write_text(json.dumps({"source": {"workdir": str(workdir)}}))
    return str(folder)


def test_exports_add_size_and_latency_columns_and_the_latency_axis(tmp_path):
    paths = [fake_run(tmp_path / f"kd{s}", "kd", s, f) for s, f in ((1, 0.80), (2, 0.82))]
    runs = load_runs(paths)
    exports = [fake_export(tmp_path / "serving" / "kd1" / "1", tmp_path / "kd1", 4.0, teacher_ms=9.0),
               fake_export(tmp_path / "serving" / "kd2" / "1", tmp_path / "kd2", 6.0, size=7_000_000)]
    attach_exports(runs, exports)
    assert runs[0].export == {"artefact": "TFLite dynamic_int8", "size_bytes": 5_000_000, "latency_ms": 4.0, "speedup": None}
    assert runs[0].teacher_export["latency_ms"] == 9.0 and runs[1].teacher_export is None
    text = table(runs)
    assert "TFLite dynamic_int8 MB | p50 latency ms |" in text
    assert text.splitlines()[2].endswith("| 6.0 | 5.00 |")
    scatter(runs, str(tmp_path / "plot.png"), "test")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_exports_of_other_runs_or_missing_artefacts_are_refused(tmp_path):
    runs = load_runs([fake_run(tmp_path / "kd1", "kd", 1, 0.8)])
    stranger = fake_export(tmp_path / "serving" / "other" / "1", tmp_path / "other", 4.0)
    with pytest.raises(TfkdError, match="not among the runs given"):
        attach_exports(runs, [stranger])
    own = fake_export(tmp_path / "serving" / "kd1" / "1", tmp_path / "kd1", 4.0)
    with pytest.raises(TfkdError, match="has no 'student TFLite full_int8' row"):
        attach_exports(runs, [own], artefact="TFLite full_int8")
    with pytest.raises(TfkdError, match="no report.json"):
        attach_exports(runs, [str(tmp_path / "kd1")])


def test_teacher_and_label_only_runs_are_named_by_what_they_trained(tmp_path):
    teacher = fake_run(tmp_path / "teacher", None, 1, 0.86, params=22_000_000, kind="finetune", role="teacher")
    student = fake_run(tmp_path / "student", None, 1, 0.81, kind="finetune", role="student")
    text = table(load_runs([teacher, student]))
    assert "| teacher (fine-tuned) | 3 | 22.0 |" in text and "| student (labels only) | 3 | 17.0 |" in text


def test_the_unversioned_runs_of_docs_runs_rebuild_the_published_table():
    """docs/results_mrpc.md's kd row, from results.json files written before the schema had a version."""
    text = table(load_runs([os.path.join(RUNS, "kd_mrpc_s*"), os.path.join(RUNS, "teacher_mrpc")]))
    assert "| mrpc | kd | 3 | 17.4 | 2 | f1 82.0 ± 0.0 | 81.8 ± 0.3 | 45.5 |" in text
    assert "| mrpc | teacher (fine-tuned) | 6 | 22.7 | 1 | f1 85.4 | 85.3 | 17.5 |" in text


def test_pretraining_runs_and_damaged_json_are_refused_with_a_fix(tmp_path):
    pretrain = tmp_path / "pretrain"
    RunResult(kind="pretrain", train_examples=64, train_examples_per_second=10.0, epoch_seconds=[1.0],
              wall_seconds=1.0, padding_efficiency=0.8, student=StudentSummary(layers=3, hidden_dim=384, params=1),
              losses=[], pretrain=PretrainSummary(corpus="sst2", loss_history=[], max_predictions_per_example=20,
                                                  model_dir=str(pretrain / "model"))).write(str(pretrain / RESULTS_FILE))
    with pytest.raises(TfkdError, match="is the result of a tfkd.pretrain run, which has no dev metric. Fix: "):
        load_runs([str(pretrain)])
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "results.json").write_text('{"task": "mrpc", ')
    with pytest.raises(TfkdError, match="is not valid JSON"):
        load_runs([str(damaged)])
    (damaged / "results.json").write_text(json.dumps({"task": "mrpc", "best_dev": {"f1": 0.8}}))
    with pytest.raises(TfkdError, match=r"damaged/results.json' lacks train_examples_per_second, .*, losses. Fix: re-run the command"):
        load_runs([str(damaged)])
    runs = load_runs([fake_run(tmp_path / "kd1", "kd", 1, 0.8)])
    export = fake_export(tmp_path / "serving" / "kd1" / "1", tmp_path / "kd1", 4.0)
    (tmp_path / "serving" / "kd1" / "1" / "tfkd_export.json").write_text(json.dumps({"source": {}}))
    with pytest.raises(TfkdError, match="lack 'workdir'"):
        attach_exports(runs, [export])


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


def test_runs_of_one_size_started_differently_are_not_taken_for_seeds(tmp_path):
    paths = [fake_run(tmp_path / "pre", "kd", 1, 0.80), fake_run(tmp_path / "pruned", "kd", 2, 0.84)]
    result = json.loads((tmp_path / "pruned" / RESULTS_FILE).read_text())
    result["flags"]["student_init"] = "pruned"
    result["student"]["vocab"] = {"size": 11575, "teacher_size": 30522}
    (tmp_path / "pruned" / RESULTS_FILE).write_text(json.dumps(result))
    text = table(load_runs(paths))
    assert "| kd | 3 | 17.0 | 1 | f1 80.0 |" in text and "| kd, init pruned, vocab 11,575 | 3 | 17.0 | 1 | f1 84.0 |" in text


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
