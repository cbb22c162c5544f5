"""`--validate`: the report and table for every artefact and the teacher."""

import copy
import dataclasses
import importlib
import json
import os
import shutil

import numpy as np
import pytest

from tfkd.export import format_table, validate
from tfkd.export.tflite import LiteModel

# `tfkd.export.validate` is also the name of the function the package exports
validate_module = importlib.import_module("tfkd.export.validate")

EXAMPLES, REPEATS, THREADS = 5, 3, 1


class _Calls:
    """What a recording LiteModel saw: its construction threads, and every call in order."""

    def __init__(self, student_files):
        self.student_files = set(student_files)
        self.threads = []
        self.calls = []  # (model kind, id of the model, its inputs)

    def lite_model(self):
        calls = self

        class Recording(LiteModel):
            def __init__(self, model, custom_ops=False, num_threads=2):
                super().__init__(model, custom_ops=custom_ops, num_threads=num_threads)
                self.kind = "student" if model in calls.student_files else "teacher"
                calls.threads.append(num_threads)

            def __call__(self, **inputs):
                calls.calls.append((self.kind, id(self), inputs))
                return super().__call__(**inputs)

        return Recording


@pytest.fixture(scope="module")
def recorded(sst2_export):
    calls = _Calls(sst2_export.tflite_files.values())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validate_module, "LiteModel", calls.lite_model())
        report = validate(sst2_export, latency_examples=EXAMPLES, repeats=REPEATS, num_threads=THREADS,
                          log=lambda m: None)
    return report, calls


@pytest.fixture(scope="module")
def report(recorded):
    return recorded[0]


def test_report_covers_every_artefact_and_the_teacher(report, sst2_export):
    names = [row["name"] for row in report["rows"]]
    assert names == [
        "student Keras", "student SavedModel serving_default", "student SavedModel predict_ids",
        "student TFLite float32", "student TFLite float16", "student TFLite dynamic_int8", "student TFLite full_int8",
        "student TFLite text_float32", "teacher Keras", "teacher TFLite float32", "teacher TFLite dynamic_int8"]
    with open(os.path.join(sst2_export.saved_model_dir, "report.json")) as f:
        assert json.load(f) == report


def test_report_numbers(report):
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["student SavedModel serving_default"]["max_abs_logit_diff"] < 1e-5
    assert rows["student TFLite float32"]["max_abs_logit_diff"] < 1e-5
    assert rows["student TFLite text_float32"]["token_agreement"] == 1.0
    for name, row in rows.items():
        assert 0.0 <= row["metrics"]["accuracy"] <= 1.0
        if row["runtime"] != "keras":
            assert row["latency_ms"]["median"] > 0 and row["latency_ms"]["p90"] >= row["latency_ms"]["median"]
            assert row["size_bytes"] > 0 and row["agreement"] >= 0.75, name
    assert rows["student SavedModel predict_ids"]["latency_ms"]["examples"] == EXAMPLES
    # timed in turn with the teacher: every round's examples; timed alone: the dev set
    assert rows["student TFLite float32"]["latency_ms"]["examples"] == REPEATS * EXAMPLES
    assert rows["teacher TFLite dynamic_int8"]["latency_ms"]["examples"] == REPEATS * EXAMPLES
    assert rows["student TFLite float16"]["latency_ms"]["examples"] == report["dev_examples"]


def test_speedup_is_per_round_ratio_of_medians(report):
    rows = {row["name"]: row for row in report["rows"]}
    assert report["timing"] == "interleaved" and report["tflite_threads"] == THREADS
    assert set(report["speedup"]) == {"float32", "dynamic_int8"}
    for variant, speedup in report["speedup"].items():
        assert speedup["repeats"] == REPEATS == len(speedup["per_repeat"])
        assert speedup["examples_per_repeat"] == EXAMPLES
        ratios = []
        for repeat in speedup["per_repeat"]:
            assert repeat["ratio"] == pytest.approx(repeat["teacher_p50_ms"] / repeat["student_p50_ms"])
            ratios.append(repeat["ratio"])
        assert speedup["median"] == pytest.approx(np.median(ratios))
        assert (speedup["min"], speedup["max"]) == (min(ratios), max(ratios))
        assert speedup["min"] <= speedup["median"] <= speedup["max"]
        assert speedup["student_p50_ms"] == rows[f"student TFLite {variant}"]["latency_ms"]["median"]
        assert speedup["teacher_p50_ms"] == rows[f"teacher TFLite {variant}"]["latency_ms"]["median"]


def _longest_alternations(calls):
    """By (student model, teacher model): the longest run of calls going back and forth between the two."""
    longest, start = {}, 0
    for k in range(1, len(calls)):
        if calls[k][0] == calls[k - 1][0]:
            start = k
            continue
        if k - start >= 2 and calls[k][1] != calls[k - 2][1]:
            start = k - 1
        student, teacher = sorted(calls[k - 1:k + 1], key=lambda call: call[0])
        pair = (student[1], teacher[1])
        longest[pair] = max(longest.get(pair, 0), k - start + 1)
    return longest


def test_student_and_teacher_calls_alternate_on_the_same_inputs(recorded):
    _, calls = recorded
    assert calls.threads and set(calls.threads) == {THREADS}
    longest = _longest_alternations(calls.calls)
    timed = {pair for pair, count in longest.items() if count >= 2 * REPEATS * EXAMPLES}
    # one pair per variant both have, a different model on each side
    assert len(timed) == 2
    assert len({s for s, _ in timed}) == len({t for _, t in timed}) == 2
    turns = [(s, t) for s, t in zip(calls.calls, calls.calls[1:])
             if s[0] == "student" and t[0] == "teacher" and (s[1], t[1]) in timed]
    assert len(turns) >= 2 * REPEATS * EXAMPLES
    # the tiny runs share a vocabulary, so in each turn both models get the same arrays
    for (_, _, student_inputs), (_, _, teacher_inputs) in turns:
        assert student_inputs.keys() == teacher_inputs.keys()
        for name, array in student_inputs.items():
            np.testing.assert_array_equal(array, teacher_inputs[name])


def test_without_a_teacher_the_student_is_timed_alone(sst2_export, tmp_path):
    run = dataclasses.replace(sst2_export.run, teacher_dir=None)
    saved_model_dir = str(tmp_path / "1")
    shutil.copytree(sst2_export.saved_model_dir, saved_model_dir)
    result = dataclasses.replace(sst2_export, run=run, saved_model_dir=saved_model_dir,
                                 tflite_files={"float32": sst2_export.tflite_files["float32"]})
    report = validate(result, latency_examples=2, repeats=REPEATS, log=lambda m: None)
    assert report["timing"] == "alone" and "speedup" not in report and report["tflite_threads"] == 2
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows)[-1] == "student TFLite float32"
    assert rows["student TFLite float32"]["latency_ms"]["examples"] == report["dev_examples"]
    assert "speed-up:" not in format_table(report)


def test_table_has_a_line_per_row(report):
    table = format_table(report)
    for row in report["rows"]:
        assert row["name"] in table
    assert "speed-up" in table.splitlines()[0]
    speedup = report["speedup"]["dynamic_int8"]
    line = next(line for line in table.splitlines() if line.startswith("student TFLite dynamic_int8"))
    assert line.endswith(f"{speedup['median']:.1f}x ({speedup['min']:.1f}–{speedup['max']:.1f})")
    assert f"LiteRT with {THREADS} threads" in table
    assert f"over {REPEATS} rounds" in table


def test_a_two_digit_speedup_stays_apart_from_the_latency_column(report):
    wide = copy.deepcopy(report)
    wide["speedup"]["float32"].update(median=10.6, min=10.2, max=10.7)
    for row in wide["rows"]:
        if row["latency_ms"]:
            row["latency_ms"].update(median=0.34, p90=0.39)
    line = next(line for line in format_table(wide).splitlines() if line.startswith("student TFLite float32"))
    assert line.split()[-4:] == ["0.34", "0.39", "10.6x", "(10.2–10.7)"]
