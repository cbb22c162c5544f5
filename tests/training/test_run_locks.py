"""The locks a run takes before its work: its workdir's before any data is read, a shared fine-tuned teacher
directory's while the teacher is fine-tuned into it (`tfkd.training.api`)."""

import os
import socket

import pytest

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.core.errors import TfkdError
from tfkd.data.tasks import get_task
from tfkd.models import LoadedModel, ModelMetadata
from tfkd.training import api
from tfkd.training.config import DataConfig, RunConfig, RuntimeConfig, TeacherConfig
from tfkd.training.workdir import WorkdirLock


def test_a_second_run_into_a_busy_workdir_is_refused_before_its_train_file_is_read(tmp_path):
    train = tmp_path / "train.csv"
    train.write_bytes(b"text,label\nfun,pos\nbad \xff,neg\n")  # reading it fails at line 3
    workdir = str(tmp_path / "run")
    config = RunConfig(workdir=workdir, data=DataConfig(task="mine", train_file=str(train), dev_file=str(train),
                                                        text_fields=("text",)))
    with WorkdirLock(workdir):
        with pytest.raises(TfkdError, match=rf"^workdir={workdir} is in use by process {os.getpid()} "):
            api.run_distill(config)
    with pytest.raises(TfkdError, match=rf"^{train}:3: not valid UTF-8"):  # what reading the file says
        api.run_distill(config)


@pytest.fixture
def untrained_teacher(monkeypatch, tmp_path):
    """`(context, config, fine-tunings)`: a run whose teacher has no trained head and a shared
    `teacher.finetuned_dir`; fine-tuning only records the directory and whether it was locked meanwhile."""
    monkeypatch.setattr(api, "load_teacher", lambda *_: LoadedModel(None, "vocab.txt", True, False,
                                                                    ModelMetadata(base="minilm")))
    fine_tunings = []

    def finetune(context, config, task, directory, *_):
        try:
            with WorkdirLock(directory):
                state = "free"
        except TfkdError:
            state = "locked"
        fine_tunings.append((directory, state))

    monkeypatch.setattr(api, "_finetune", finetune)
    workdir = str(tmp_path / "run")
    config = RunConfig(workdir=workdir, teacher=TeacherConfig(source="minilm", finetune_epochs=1,
                                                              finetuned_dir=str(tmp_path / "shared")))
    return api.RunContext(workdir, workdir, RuntimeConfig(), None, []), config, fine_tunings


def test_a_shared_teacher_directory_is_locked_while_the_teacher_is_fine_tuned_into_it(untrained_teacher):
    context, config, fine_tunings = untrained_teacher
    api._obtain_teacher(context, config, get_task("sst2"))
    assert fine_tunings == [(config.teacher.finetuned_dir, "locked")]
    with WorkdirLock(config.teacher.finetuned_dir):  # free again
        pass


def test_a_run_needing_a_teacher_another_run_fine_tunes_is_refused_naming_that_run(untrained_teacher):
    context, config, fine_tunings = untrained_teacher
    directory = config.teacher.finetuned_dir
    with WorkdirLock(directory):  # the other run, fine-tuning
        with pytest.raises(TfkdError) as error:
            api._obtain_teacher(context, config, get_task("sst2"))
    assert str(error.value).startswith(f"TeacherConfig.finetuned_dir={directory} is in use by process {os.getpid()} on "
                                       f"host {socket.gethostname()}")
    assert "\n" not in str(error.value) and "Fix: " in str(error.value)
    assert fine_tunings == []
