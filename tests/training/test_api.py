"""The library API in-process: `tfkd.run_finetune`, `tfkd.run_distill` and `tfkd.run_pretrain` on tiny models.

No subprocess and no flag: a notebook user's path. The same tiny teacher and
SST-2-shaped TSV files as the command tests (`tests/cli/test_train.py`).
"""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
from absl import flags

import tfkd
from tests.helpers import tiny_run_config
from tfkd.data import pipeline
from tfkd.distill import teacher_cache
from tfkd.evaluate import evaluator
from tfkd.training import trainer


def tiny_config(setup, workdir, epochs=1, **method) -> tfkd.RunConfig:
    return tiny_run_config(setup, workdir, epochs=epochs, method=method)


def test_distill_from_python_returns_the_result_it_writes_and_resumes(tiny_setup, tmp_path, capsys):
    config = tiny_config(tiny_setup, tmp_path / "kd", epochs=2, name="kd")
    result = tfkd.run_distill(config)
    assert isinstance(result, tfkd.RunResult)
    assert result.kind == "distill" and result.task == "sst2" and result.primary_metric == "accuracy"
    assert len(result.dev_history) == 2 and result.best_epoch in (1, 2)
    assert result.flags is None  # started from Python: no command flags
    assert tfkd.RunConfig.from_dict(result.config) == config
    assert tfkd.read_result(str(tmp_path / "kd")) == result
    assert os.path.exists(tmp_path / "kd" / "model" / "model.keras")
    assert "[tfkd] epoch 2 dev: accuracy" in capsys.readouterr().out
    # The same call again resumes after the last epoch: nothing is retrained, the result is the same.
    again = tfkd.run_distill(config)
    assert again.best_dev == result.best_dev and again.dev_history == result.dev_history
    assert "resumed from" in capsys.readouterr().out


def test_a_changed_setting_is_refused_on_resume_unless_allowed(tiny_setup, tmp_path):
    config = tiny_config(tiny_setup, tmp_path / "run", name="kd")
    tfkd.run_distill(config)
    changed = dataclasses.replace(config, optim=dataclasses.replace(config.optim, learning_rate=5e-4))
    with pytest.raises(tfkd.TfkdError, match="optim.learning_rate"):
        tfkd.run_distill(changed)
    result = tfkd.run_distill(dataclasses.replace(changed, allow_changed=True))
    assert [c["flag"] for c in result.flag_changes] == ["optim.learning_rate"]


def test_finetune_the_student_alone_and_the_api_never_touches_absl_flags(tiny_setup, tmp_path):
    before = sorted(flags.FLAGS)
    result = tfkd.run_finetune(dataclasses.replace(tiny_config(tiny_setup, tmp_path / "ft"), finetune_model="student"))
    assert result.kind == "finetune" and [loss.key for loss in result.losses] == ["ce"]
    assert result.student.layers == 1
    assert sorted(flags.FLAGS) == before


def test_a_custom_objective_and_loss_arguments(tiny_setup, tmp_path):
    result = tfkd.run_distill(tiny_config(tiny_setup, tmp_path / "custom", name="custom",
                                          losses=(("ce", 0.5), ("kd", 0.5), ("pkd", 10.0)),
                                          loss_args={"kd": {"temperature": 4.0}}))
    terms = {loss.key: loss for loss in result.losses}
    assert terms["pkd"].weight == 10.0 and terms["kd"].args["temperature"] == 4.0
    with pytest.raises(tfkd.TfkdError, match="loss 'kd' has no argument 'temprature'"):
        tfkd.run_distill(tiny_config(tiny_setup, tmp_path / "bad", loss_args={"kd": {"temprature": 4.0}}))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"data": {"task": "sts"}}, "unknown task 'sts'"),
        ({"method": {"layer_map": (1, 2, 3)}}, "MethodConfig.layer_map has 3 entries but the student has 1"),
        ({"teacher": {"source": "/no/such/teacher"}}, "does not exist"),
        ({"data": {"glue_dir": "/no/such/glue"}}, "/no/such/glue"),
        ({"method": {"name": "custom", "losses": (("ce", 0.5), ("nosuchloss", 1.0))}}, "unknown loss 'nosuchloss'"),
        ({"student": {"hidden_dim": 12}}, "hidden_dim: student 12 vs source 16"),
        ({"method": {"loss_args": {"kd": {"temprature": 0.1}}}}, "loss 'kd' has no argument 'temprature'"),
        ({"method": {"loss_args": {"kd": {"temperature": "warm"}}}}, "temperature"),
        ({"data": {"max_seq_length": 64}}, "DataConfig.max_seq_length=64 exceeds the 32 positions"),
        ({"data": {"task": "mrpc"}}, "was fine-tuned on sst2 (classes negative, positive), not on mrpc (classes "
                                     "not_equivalent, equivalent): its outputs mean other things. Fix: "),
    ],
)
def test_bad_settings_give_one_clear_error(tiny_setup, tmp_path, change, message):
    config = tiny_config(tiny_setup, tmp_path / "bad")
    config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **fields)
                                            for section, fields in change.items()})
    with pytest.raises(tfkd.TfkdError) as error:
        tfkd.run_distill(config)
    assert message in str(error.value) and "Fix:" in str(error.value)


def test_a_teacher_of_another_task_is_used_only_when_allowed(tiny_setup, tmp_path):
    config = tiny_config(tiny_setup, tmp_path / "run")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, task="mrpc"),
                                 teacher=dataclasses.replace(config.teacher, allow_task_mismatch=True))
    with pytest.raises(tfkd.TfkdError, match="GLUE file not found"):  # past the teacher check: no MRPC files here
        tfkd.run_distill(config)


def test_a_checkpoint_of_another_shape_is_refused(tiny_setup, tmp_path):
    config = tiny_config(tiny_setup, tmp_path / "run", name="kd")
    tfkd.run_distill(config)
    wider = dataclasses.replace(config, student=dataclasses.replace(config.student, intermediate_dim=48, init="random"),
                                optim=dataclasses.replace(config.optim, epochs=2), allow_changed=True)
    with pytest.raises(tfkd.TfkdError, match="does not fit this run"):  # past the settings check, to the checkpoint's
        tfkd.run_distill(wider)


def test_every_pass_of_a_run_batches_to_the_same_widths(tiny_setup, tmp_path, monkeypatch):
    """Training, dev evaluation, the teacher cache and the loss-preparation (bank) pass all pad to the run's
    widths, so together they compile no shape that training alone would not."""
    widths = {}

    def recording(module, name):
        make = module.make_dataset

        def make_dataset(split, batch_size, *args, **kwargs):
            dataset = make(split, batch_size, *args, **kwargs)
            widths.setdefault(name, set()).update(int(b["token_ids"].shape[1]) for b in dataset)
            return dataset

        monkeypatch.setattr(module, "make_dataset", make_dataset)

    recording(trainer, "trainer (training and bank pass)")
    recording(evaluator, "dev evaluation")
    recording(teacher_cache, "teacher cache")
    config = tiny_config(tiny_setup, tmp_path / "codir", name="codir", loss_args={"codir": {"num_negatives": 4}})
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, pad_to_multiple_of=6))
    tfkd.run_distill(config)
    assert set(widths) == {"trainer (training and bank pass)", "dev evaluation", "teacher cache"}
    allowed = set(pipeline.bucket_widths(16, 6).tolist())
    for name, seen in widths.items():
        assert seen <= allowed, (name, seen)


def pretrain_config(tiny_setup, tmp_path, student):
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    corpus.write_text("\n".join(" ".join(rng.choice(["good", "bad", "movie", "the", "plot"], 5)) for _ in range(24)))
    return tfkd.PretrainConfig(
        workdir=str(tmp_path / "pre"), text_file=str(corpus),
        data=tfkd.DataConfig(task="", max_seq_length=16, batch_size=8, eval_batch_size=8),
        teacher=tfkd.TeacherConfig(source=str(tiny_setup / "teacher")),
        student=student,
        method=dataclasses.replace(tfkd.PretrainConfig(workdir="").method,
                                   loss_args={"codir": {"negatives": "uniform", "num_negatives": 4}}),
        optim=tfkd.OptimConfig(epochs=1, learning_rate=1e-3),
        runtime=tfkd.RuntimeConfig(jit_compile=False),
    )


def test_pretrain_from_python(tiny_setup, tmp_path):
    config = pretrain_config(tiny_setup, tmp_path, tfkd.StudentConfig(num_layers=1, hidden_dim=16, num_heads=2,
                                                                      intermediate_dim=32, init="teacher"))
    result = tfkd.run_pretrain(config)
    assert result.kind == "pretrain" and [loss.key for loss in result.losses] == ["mlm", "codir"]
    assert set(result.pretrain.final_losses) == {"mlm", "codir", "total"}
    with open(tmp_path / "pre" / "results.json") as f:
        assert json.load(f)["schema_version"] >= 1
    assert os.path.exists(tmp_path / "pre" / "model" / "model.keras")


def test_pretrain_starts_a_narrower_student_pruned_from_the_teacher(tiny_setup, tmp_path):
    """Pre-training a student half the teacher's width starts it as a pruned copy, its units scored on the corpus."""
    config = pretrain_config(tiny_setup, tmp_path, tfkd.StudentConfig(num_layers=1, hidden_dim=8, num_heads=1,
                                                                      intermediate_dim=16, init="pruned",
                                                                      layers_from=(2,)))
    # A learning rate that leaves the start visible in the saved student.
    tfkd.run_pretrain(dataclasses.replace(config, optim=tfkd.OptimConfig(epochs=1, learning_rate=1e-9)))
    student, _, _ = tfkd.models.load_model_dir(str(tmp_path / "pre" / "model"))
    teacher, _, _ = tfkd.models.load_model_dir(str(tiny_setup / "teacher"))
    assert (student.hidden_dim, student.num_heads, student.intermediate_dim) == (8, 1, 16)
    kept = student.get_layer("token_embedding").embeddings.numpy()
    full = teacher.get_layer("token_embedding").embeddings.numpy()
    # Each kept hidden channel is one of the teacher's, not a fresh random column.
    distance = np.abs(kept[:, :, None] - full[:, None, :]).max(axis=0).min(axis=1)
    assert distance.max() < 1e-6, distance


def test_your_own_csv_trains_exactly_like_the_same_rows_as_a_glue_task(tiny_setup, tmp_path):
    """SST-2's rows rewritten as CSV with other column names and string labels give the run `task='sst2'` gives."""
    for split in ("train", "dev"):
        rows = [line.split("\t") for line in (tiny_setup / "glue" / "SST-2" / f"{split}.tsv").read_text().splitlines()[1:]]
        with open(tmp_path / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "review", "sentiment"])
            writer.writerows([i, text, ("negative", "positive")[int(label)]] for i, (text, label) in enumerate(rows))
    glue = tfkd.run_distill(tiny_config(tiny_setup, tmp_path / "glue", name="kd"))
    config = tiny_config(tiny_setup, tmp_path / "csv", name="kd")
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, train_file=str(tmp_path / "train.csv"), dev_file=str(tmp_path / "dev.csv"),
                                 text_fields=("review",), label_field="sentiment", task="reviews"),
        teacher=dataclasses.replace(config.teacher, allow_task_mismatch=True))
    own = tfkd.run_distill(config)
    assert own.task == "reviews" and own.task_spec["label_names"] == ["negative", "positive"]
    assert own.dev_history == glue.dev_history and own.best_dev == glue.best_dev
    _, _, metadata = tfkd.models.load_model_dir(str(tmp_path / "csv" / "model"))
    assert metadata.recorded_task().text_fields == ("review",)


def test_a_narrower_student_starts_pruned_from_the_teacher(tiny_setup, tmp_path):
    config = tiny_config(tiny_setup, tmp_path / "pruned", name="kd")
    config = dataclasses.replace(config, student=tfkd.StudentConfig(num_layers=1, hidden_dim=8, num_heads=1,
                                                                    intermediate_dim=16, init="pruned"))
    result = tfkd.run_distill(config)
    assert result.student.hidden_dim == 8 and result.student.params < result.teacher.params / 2
