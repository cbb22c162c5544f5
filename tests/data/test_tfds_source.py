import os
import time

import pytest

from tfkd.core.errors import TfkdError
from tfkd.data import tfds_source
from tfkd.data.load import load_split
from tfkd.data.tasks import get_task


def test_offline_fails_fast_with_the_glue_dir_fix_and_leaves_nothing(tmp_path, monkeypatch):
    data_dir = tmp_path / "tfds"
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    monkeypatch.setattr(tfds_source, "reachable", lambda host, port: False)
    start = time.perf_counter()
    with pytest.raises(TfkdError) as e:
        load_split(get_task("sst2"), "dev", None)
    assert time.perf_counter() - start < 15
    message = str(e.value)
    assert "no prepared glue/sst2" in message and "cannot be reached" in message
    assert "DataConfig.glue_dir=<folder>" in message and "SST-2/train.tsv" in message
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_failed_download_removes_the_folders_it_created(tmp_path, monkeypatch):
    data_dir = tmp_path / "tfds"
    (data_dir / "other").mkdir(parents=True)  # someone else's data stays

    def fake_load(task, split, data_dir, download):
        if not download:
            raise AssertionError("not prepared")
        os.makedirs(os.path.join(data_dir, "glue", "mrpc", "2.0.0"))
        os.makedirs(os.path.join(data_dir, "downloads", "partial"))
        raise ConnectionError("connection reset")

    monkeypatch.setattr(tfds_source, "reachable", lambda host, port: True)
    monkeypatch.setattr(tfds_source, "_load", fake_load)
    with pytest.raises(TfkdError, match=r"downloading it failed .*connection reset.*DataConfig\.glue_dir"):
        tfds_source.load_tfds_split(get_task("mrpc"), "train", data_dir=str(data_dir))
    assert sorted(os.listdir(data_dir)) == ["other"]


def test_prepared_dataset_is_read_with_split_and_label_mapping(monkeypatch):
    rows = [{"premise": b"p", "hypothesis": b"h", "label": 2, "idx": 0}]
    seen = {}

    def fake_load(task, split, data_dir, download):
        seen.update(split=split, download=download)
        return rows

    monkeypatch.setattr(tfds_source, "_load", fake_load)
    ex = tfds_source.load_tfds_split(get_task("mnli"), "dev_mismatched", data_dir="/unused", max_examples=5)
    assert seen == {"split": "validation_mismatched[:5]", "download": False}
    assert (ex.text_a, ex.text_b, ex.labels.tolist(), ex.source) == (["p"], ["h"], [2], "tfds:glue/mnli")


def test_task_without_tfds():
    with pytest.raises(TfkdError, match="not in tensorflow-datasets"):
        tfds_source.load_tfds_split(get_task("synthetic"), "train")
