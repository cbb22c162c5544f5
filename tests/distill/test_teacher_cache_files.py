"""Where the teacher-output cache goes: a file in the way is refused before the teacher runs,
and a build that fails leaves no staging folder behind."""

import errno
import glob

import keras
import numpy as np
import pytest
from tiny_train import assert_one_clear_error, run, save_teacher, train_command

import tfkd  # noqa: F401
from tests.data.test_pipeline import split_of
from tfkd.core.errors import TfkdError
from tfkd.distill import teacher_cache
from tfkd.distill.teacher_cache import load_or_build
from tfkd.models import BertModel


@pytest.fixture
def setup(tmp_path):
    split = split_of(np.random.default_rng(0).integers(3, 16, 12), max_seq_length=16)
    split.token_ids[:] = split.token_ids % 25 + 1
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"tok{i}" for i in range(30)) + "\n")
    keras.utils.set_random_seed(0)
    teacher = BertModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                        num_classes=2, max_sequence_length=16)
    return split, teacher, str(vocab)


def test_a_file_as_cache_directory_is_refused_before_the_teacher_runs(setup, tmp_path, monkeypatch):
    split, teacher, vocab = setup
    monkeypatch.setattr(teacher_cache, "teacher_pass", lambda *args: pytest.fail("the teacher ran"))
    (tmp_path / "file").write_text("x")
    for directory in (tmp_path / "file", tmp_path / "file" / "cache"):
        with pytest.raises(TfkdError, match=r"RuntimeConfig\.teacher_cache=.*file.* not a directory. Fix: "):
            load_or_build(str(directory), teacher, vocab, split, ("logits",), batch_size=8)


def test_a_failed_write_leaves_no_staging_folder(setup, tmp_path, monkeypatch):
    split, teacher, vocab = setup

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        load_or_build(str(tmp_path / "cache"), teacher, vocab, split, ("logits",), batch_size=8)
    assert glob.glob(str(tmp_path / "*")) == [str(tmp_path / "vocab.txt")]


def test_train_with_a_file_as_teacher_cache_fails_at_once_with_one_line(tmp_path):
    teacher = save_teacher(tmp_path / "teacher")
    (tmp_path / "cache").write_text("not a directory")
    result = run(train_command(teacher, tmp_path / "run", f"--teacher_cache={tmp_path / 'cache'}"))
    assert_one_clear_error(result, f"--teacher_cache={tmp_path / 'cache'} is a file, not a directory")
    assert "teacher cache: computed" not in result.stdout and "train /" not in result.stdout  # before loading data
    assert not glob.glob(str(tmp_path / "cache.partial*"))


def test_known_rows_are_reused_and_the_teacher_runs_over_the_others_only(setup, tmp_path, monkeypatch):
    split, teacher, vocab = setup
    full = load_or_build(str(tmp_path / "full"), teacher, vocab, split, ("logits", "mean_1"), batch_size=8)
    passed = []
    real_pass = teacher_cache.teacher_pass

    def counting_pass(teacher, part, *args, **kwargs):
        passed.append(len(part))
        return real_pass(teacher, part, *args, **kwargs)

    monkeypatch.setattr(teacher_cache, "teacher_pass", counting_pass)
    tail = {key: value[-5:] for key, value in full.features.items()}
    reused = load_or_build(str(tmp_path / "reused"), teacher, vocab, split, ("logits", "mean_1"), batch_size=8,
                           known_tail=tail)
    assert passed == [7] and reused.reused == 5 and reused.built
    for key, value in full.features.items():
        np.testing.assert_allclose(reused.features[key], value, rtol=1e-5, atol=1e-6)
    # Loaded back, it is the same cache: the fingerprint does not depend on how it was computed.
    again = load_or_build(str(tmp_path / "reused"), teacher, vocab, split, ("logits", "mean_1"), batch_size=8)
    assert not again.built and passed == [7]
    # Known logits alone cannot stand in for a pass that must compute the summaries too.
    partial = load_or_build(str(tmp_path / "partial"), teacher, vocab, split, ("logits", "mean_1"), batch_size=8,
                            known_tail={"logits": tail["logits"]})
    assert passed == [7, 12] and partial.reused == 0
