"""The report of finished runs: seeds grouped into one table row, exports matched to their runs, every
results.json version read, and bad input refused with a fix."""

import json
import os

import pytest

from tfkd.core.errors import TfkdError
from tfkd.evaluate.report import attach_exports, load_runs, scatter, table
from tfkd.training.results import (
    RESULTS_FILE,
    AugmentationSummary,
    LossTerm,
    PretrainSummary,
    RunResult,
    StudentSummary,
    TeacherSummary,
)

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "runs")


def fake_run(path, method, seed, f1, params=17_000_000, speed=25.0, kind="distill", role=None, layers=3, hidden=384,
             losses=(), config=None, augmentation=None):
    """A finished run's workdir (results.json only); `kind="finetune"` trains the `role` model on labels alone;
    `losses` holds (key, weight, args) terms; `config` is the run's configuration (`RunConfig.to_dict()`);
    `augmentation` an `AugmentationSummary`."""
    path.mkdir(parents=True)
    distill = kind == "distill"
    RunResult(
        kind=kind, role=role, method=method if distill else None, task="mrpc", primary_metric="f1",
        best_dev={"f1": f1, "accuracy": 0.7}, last_dev={"f1": f1 - 0.01}, dev_history=[{"epoch": 1, "f1": f1}],
        train_examples_per_second=speed, epoch_seconds=[1.0], wall_seconds=1.0, train_examples=3668,
        padding_efficiency=0.9, student=StudentSummary(layers=layers, hidden_dim=hidden, params=params),
        losses=[LossTerm(name=key, key=key, weight=weight, args=args) for key, weight, args in losses],
        algorithm="joint", flags={"seed": seed}, config=config, augmentation=augmentation,
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


def test_runs_of_one_size_started_differently_are_not_taken_for_seeds(tmp_path):
    paths = [fake_run(tmp_path / "pre", "kd", 1, 0.80), fake_run(tmp_path / "pruned", "kd", 2, 0.84)]
    result = json.loads((tmp_path / "pruned" / RESULTS_FILE).read_text())
    result["flags"]["student_init"] = "pruned"
    result["student"]["vocab"] = {"size": 11575, "teacher_size": 30522}
    (tmp_path / "pruned" / RESULTS_FILE).write_text(json.dumps(result))
    text = table(load_runs(paths))
    assert "| kd | 3 | 17.0 | 1 | f1 80.0 |" in text and "| kd, init pruned, vocab 11,575 | 3 | 17.0 | 1 | f1 84.0 |" in text


CKD_TERMS = (("ce", 0.5, {}), ("kd", 0.5, {}), ("ckd_wr_pair", 100.0, {}), ("ckd_ltr_pair", 100.0, {}))


def test_runs_of_one_seed_with_other_loss_arguments_or_weights_are_not_taken_for_seeds(tmp_path):
    official = tuple((key, weight, {"normalizer": "official"} if key.startswith("ckd") else args)
                     for key, weight, args in CKD_TERMS)
    paths = [fake_run(tmp_path / "ckd", "ckd", 1, 0.80, losses=CKD_TERMS),
             fake_run(tmp_path / "ckd_official", "ckd", 1, 0.84, losses=official),
             fake_run(tmp_path / "codir_l0.1", "codir", 1, 0.81, losses=(("ce", 0.5, {}), ("codir", 0.1, {"seed": 1}))),
             fake_run(tmp_path / "codir_l2", "codir", 1, 0.83, losses=(("ce", 0.5, {}), ("codir", 2.0, {"seed": 1})))]
    text = table(load_runs(paths))
    assert "| ckd | 3 | 17.0 | 1 | f1 80.0 |" in text
    assert "| ckd, normalizer official | 3 | 17.0 | 1 | f1 84.0 |" in text
    assert "| codir, weights ce 0.5 codir 0.1 | 3 | 17.0 | 1 | f1 81.0 |" in text
    assert "| codir, weights ce 0.5 codir 2 | 3 | 17.0 | 1 | f1 83.0 |" in text


def test_students_copying_other_teacher_layers_are_not_taken_for_seeds(tmp_path):
    """The start comparison of issue 16: pretrained layers 2,4,6 (uniform, also what an empty list means),
    1,2,3 and by importance are three experiments; a random start copies nothing, whatever the flag says; a
    tfkd.pretrain output is named by its run folder, not by its `model` subfolder."""
    def start(name, seed, f1, layers_from, init="pretrained"):
        return fake_run(tmp_path / name, "kd", seed, f1, config={"student": {"init": init, "layers_from": layers_from}})
    paths = [start("u1", 1, 0.80, [2, 4, 6]), start("u2", 2, 0.82, []), start("first", 1, 0.70, [1, 2, 3]),
             start("imp", 1, 0.75, ["importance"]), start("r1", 1, 0.60, [1, 2, 3], init="random"),
             start("r2", 2, 0.62, [2, 4, 6], init="random")]
    paths.append(start("pre", 1, 0.77, [], init="workdirs/codir_pretrain/model"))
    text = table(load_runs(paths))
    assert "| kd | 3 | 17.0 | 2 | f1 81.0 ± 1.4 |" in text
    assert "| kd, init codir_pretrain | 3 | 17.0 | 1 | f1 77.0 |" in text
    assert "| kd, layers 1,2,3 | 3 | 17.0 | 1 | f1 70.0 |" in text
    assert "| kd, layers by importance | 3 | 17.0 | 1 | f1 75.0 |" in text
    assert "| kd, init random | 3 | 17.0 | 2 | f1 61.0 ± 1.4 |" in text


def test_runs_of_one_seed_trained_for_other_epochs_are_not_taken_for_seeds(tmp_path):
    """The frontier's 3L/256 student trained for one and for two epochs are two points, not two seeds."""
    def run(name, seed, f1, epochs):
        return fake_run(tmp_path / name, "kd", seed, f1, config={"optim": {"epochs": epochs}})
    text = table(load_runs([run("e1", 1, 0.80, 1), run("e2", 1, 0.84, 2), run("e2s2", 2, 0.86, 2)]))
    assert "| kd, 1 epoch | 3 | 17.0 | 1 | f1 80.0 |" in text
    assert "| kd, 2 epochs | 3 | 17.0 | 2 | f1 85.0 ± 1.4 |" in text
    assert "| kd | 3 | 17.0 | 2 | f1 81.0 ± 1.4 |" in table(load_runs([run("a", 1, 0.80, 3), run("b", 2, 0.82, 3)]))


def test_runs_trained_with_augmentation_are_rows_of_their_own_not_seeds(tmp_path):
    """kd with and without 8 perturbed copies, and with an augment file, are three experiments."""
    def augmented(augmenters, factor=8):
        return AugmentationSummary(augmenters=augmenters, factor=factor, original_examples=3668, made=100, kept=90,
                                   duplicates={"dev": 0, "train": 10, "augmented": 0}, mean_length=50.0,
                                   fingerprint="f", teacher_labels=None, seconds=1.0)
    paths = [fake_run(tmp_path / "plain", "kd", 1, 0.80),
             fake_run(tmp_path / "aug_s1", "kd", 1, 0.82, augmentation=augmented(["embedding_neighbours", "delete"])),
             fake_run(tmp_path / "aug_s2", "kd", 2, 0.84, augmentation=augmented(["embedding_neighbours", "delete"])),
             fake_run(tmp_path / "file", "kd", 1, 0.86, augmentation=augmented(["file"]),
                      config={"augment": {"augmenters": ["file"], "factor": 8, "file": "data/unlabelled.txt"}})]
    text = table(load_runs(paths))
    assert "| kd | 3 | 17.0 | 1 | f1 80.0 |" in text
    assert "| kd, augmented embedding_neighbours+delete ×8 | 3 | 17.0 | 2 | f1 83.0 ± 1.4 |" in text
    assert "| kd, augmented file unlabelled.txt | 3 | 17.0 | 1 | f1 86.0 |" in text


def test_seeds_recorded_with_every_argument_and_with_changed_arguments_only_are_one_group(tmp_path):
    """Before schema version 1 results.json listed every loss argument and the seed; later only those set."""
    full = (("ce", 0.5, {}), ("kd", 0.5, {"temperature": 2.0}), ("ckd_wr_pair", 100.0, {"alignment": "mapped", "normalizer": "valid"}),
            ("ckd_ltr_pair", 100.0, {"alignment": "mapped", "normalizer": "valid", "seed": 1}))
    paths = [fake_run(tmp_path / "s1", "ckd", 1, 0.80, losses=full), fake_run(tmp_path / "s2", "ckd", 2, 0.82, losses=CKD_TERMS)]
    assert "| ckd | 3 | 17.0 | 2 | f1 81.0 ± 1.4 |" in table(load_runs(paths))
    published = table(load_runs([os.path.join(RUNS, "kd_sst2_e2*"), os.path.join(RUNS, "codir_sst2_e2*")]))
    assert "| sst2 | kd | 3 | 17.4 | 2 | accuracy 87.7 ± 0.2 |" in published
    assert "| sst2 | codir | 3 | 17.4 | 2 | accuracy 87.3 ± 0.3 |" in published
