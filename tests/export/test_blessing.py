"""The blessing gate: refuse a student too far below its teacher unless forced."""

import json
import os

import pytest
from tiny_runs import CLASSES, write_run

from tfkd.core.errors import TfkdError
from tfkd.export import ExportOptions, bless, export, load_run


def run_with(tmp_path, tiny_runs, student, teacher, task="sst2"):
    labels = () if task == "stsb" else CLASSES
    return write_run(str(tmp_path / "run"), tiny_runs.vocab, tiny_runs.glue_dir, task, labels, student, teacher)


def test_ratio_at_or_above_threshold_is_blessed(tmp_path, tiny_runs):
    blessing = bless(load_run(run_with(tmp_path, tiny_runs, 0.855, 0.90)), 0.95, force=False)
    assert blessing.blessed and not blessing.forced and blessing.ratio == pytest.approx(0.95)


def test_below_threshold_refuses_with_the_numbers_and_the_fix(tmp_path, tiny_runs):
    run = load_run(run_with(tmp_path, tiny_runs, 0.60, 0.90))
    with pytest.raises(TfkdError, match=r"accuracy 0.6000 is 66.7 % of the teacher's 0.9000.*ExportOptions\.force"):
        bless(run, 0.95, force=False)
    forced = bless(run, 0.95, force=True)
    assert not forced.blessed and forced.forced


def test_no_teacher_metrics_needs_force(tmp_path, tiny_runs):
    run = load_run(run_with(tmp_path, tiny_runs, 0.80, None))
    with pytest.raises(TfkdError, match="no teacher dev accuracy") as refused:
        bless(run, 0.95, force=False)
    # "Distil a better student" is no fix for a fine-tuned teacher.
    assert "Fix: pass ExportOptions.force" in str(refused.value)
    assert bless(run, 0.95, force=True).forced


def test_teacher_metric_at_or_below_zero_compares_values(tmp_path, tiny_runs):
    run = load_run(run_with(tmp_path, tiny_runs, -0.05, -0.02, task="stsb"))
    with pytest.raises(TfkdError, match="below the teacher's"):
        bless(run, 0.95, force=False)


def test_export_refuses_before_writing(tmp_path, tiny_runs):
    export_dir = tmp_path / "serving"
    options = ExportOptions(run_with(tmp_path, tiny_runs, 0.50, 0.90), str(export_dir), quantize=(), text_tflite=False)
    with pytest.raises(TfkdError, match="not blessed"):
        export(options, log=lambda m: None)
    assert not export_dir.exists()


def test_forced_export_records_the_override(stsb_export):
    with open(os.path.join(stsb_export.saved_model_dir, "tfkd_export.json")) as f:
        blessing = json.load(f)["blessing"]
    assert blessing == {"metric": "pearson", "student": 0.5, "teacher": 0.62, "ratio": pytest.approx(0.5 / 0.62),
                        "min_ratio": 0.95, "blessed": False, "forced": True}
