"""`--validate`: the report and table for every artefact and the teacher."""

import json
import os

import pytest

from tfkd.export import format_table, validate


@pytest.fixture(scope="module")
def report(sst2_export):
    return validate(sst2_export, latency_examples=5, log=lambda m: None)


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
    assert rows["student SavedModel predict_ids"]["latency_ms"]["examples"] == 5
    assert rows["student TFLite float32"]["latency_ms"]["examples"] == report["dev_examples"]


def test_table_has_a_line_per_row(report):
    table = format_table(report)
    for row in report["rows"]:
        assert row["name"] in table
    assert "speed-up" in table.splitlines()[0] and "1.0x" in table  # the teacher's float32 is the baseline
