"""Teacher-labelled data augmentation end to end: tiny distillations on an enlarged training set, the teacher
cache of the augmented rows, resumes, and the command's flags."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest

import tfkd
from tests.helpers import tiny_run_config
from tests.train_flags import parsed_train_flags
from tfkd.cli import flags as cli_flags
from tfkd.data import get_task, make_dataset, make_tokenizer
from tfkd.distill import teacher_cache
from tfkd.distill.distiller import model_inputs
from tfkd.models import load_model_dir, load_teacher
from tfkd.training import build
from tfkd.training.build import augment_training_set, load_data

AUGMENT = tfkd.AugmentConfig(augmenters=("embedding_neighbours", "delete"), factor=2,
                             args={"embedding_neighbours": {"probability": 0.5}, "delete": {"probability": 0.3}})


def config(setup, workdir, method="kd", augment=AUGMENT, **method_args) -> tfkd.RunConfig:
    return tiny_run_config(setup, workdir, method={"name": method, **method_args}, augment=augment)


@pytest.fixture(scope="module")
def kd_run(tiny_setup, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("augment") / "kd"
    return workdir, tfkd.run_distill(config(tiny_setup, workdir))


def test_the_run_trains_on_originals_plus_augmented_rows_and_records_them(kd_run, tiny_setup):
    workdir, result = kd_run
    stats = result.augmentation
    assert stats is not None and stats.augmenters == ["embedding_neighbours", "delete"] and stats.factor == 2
    assert stats.original_examples == 48 and stats.made == 96
    assert stats.kept + sum(stats.duplicates.values()) == stats.made and stats.kept > 20
    assert result.train_examples == 48 + stats.kept
    assert sum(stats.teacher_labels.values()) == stats.kept and set(stats.teacher_labels) == {"negative", "positive"}
    with open(workdir / "results.json") as f:
        recorded = json.load(f)["augmentation"]
    assert recorded["kept"] == stats.kept and recorded["duplicates"] == stats.duplicates
    assert tfkd.read_result(str(workdir)).augmentation == stats
    assert tfkd.RunConfig.from_dict(result.config).augment == AUGMENT


def test_the_command_augments_and_logs_kd_on_original_and_augmented_rows_apart(tiny_setup, tmp_path):
    from tests.cli.test_train import common, run_train
    from tests.training.test_diagnostics import scalar_tags

    workdir = tmp_path / "cli"
    result = run_train(*common(tiny_setup, workdir, "--method=kd", "--epochs=1", "--augment=embedding_neighbours,swap",
                               "--augment_factor=2", "--augment_args=embedding_neighbours.top_k=3",
                               "--tensorboard_update_freq=1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "augmentation (embedding_neighbours, swap; 2 copies per training example, seed 1): made 96, kept" \
        in result.stdout
    [epoch_line] = [line for line in result.stdout.splitlines() if " - loss: " in line]
    assert "kd_original: " in epoch_line and "kd_augmented: " in epoch_line
    tags = scalar_tags(workdir / "logs")
    assert {"epoch_kd_original", "epoch_kd_augmented", "batch_kd_augmented"} <= tags, sorted(tags)
    with open(workdir / "results.json") as f:
        results = json.load(f)
    assert results["augmentation"]["made"] == 96 and results["flags"]["augment"] == ["embedding_neighbours", "swap"]
    assert results["train_examples"] == 48 + results["augmentation"]["kept"]


def inputs(setup, workdir):
    """What `run_distill` hands `augment_training_set`: the run, task, teacher, tokenizer and splits."""
    loaded = load_teacher(str(setup / "teacher"), 2)
    run = config(setup, workdir)
    tokenizer = make_tokenizer(loaded.vocab_path, loaded.lowercase)
    task = get_task("sst2")
    train, dev = load_data(task, tokenizer, run.data)
    return run, task, loaded, tokenizer, train, dev


def rebuild(setup, workdir):
    """The run's teacher, splits and augmented set, built again as `run_distill` builds them."""
    run, task, loaded, tokenizer, train, dev = inputs(setup, workdir)
    return loaded, train, dev, augment_training_set(run.augment, task, run.data, loaded, tokenizer, train, dev, seed=1)


def test_the_report_counts_copies_only_for_augmenters_that_perturb(tiny_setup, tmp_path, capsys):
    lines = tmp_path / "in_domain.txt"
    lines.write_text("the plot was fun\na very dull film\n")
    run, task, loaded, tokenizer, train, dev = inputs(tiny_setup, tmp_path / "kd")
    for augmenters, said in ((("file",), "(file; each example of file once, seed 1)"),
                             (("delete", "file"), "(delete, file; 2 copies per training example; each example of "
                                                  "file once, seed 1)")):
        augment = dataclasses.replace(AUGMENT, augmenters=augmenters, file=str(lines), args={})
        augment_training_set(augment, task, run.data, loaded, tokenizer, train, dev, seed=1)
        assert f"augmentation {said}: made " in capsys.readouterr().out


def test_cached_teacher_outputs_of_augmented_rows_are_the_live_teacher_outputs(kd_run, tiny_setup):
    workdir, result = kd_run
    loaded, train, dev, augmented = rebuild(tiny_setup, workdir)
    assert augmented.fingerprint == result.augmentation.fingerprint  # the same set again, in another process state
    [directory] = glob.glob(str(workdir / "teacher_cache" / f"augmented-{augmented.fingerprint[:12]}"))
    cached = np.load(os.path.join(directory, "logits.npy"))
    assert cached.shape == (result.train_examples, 2)
    live = np.zeros_like(cached)
    rows = np.arange(len(augmented.train), dtype=np.int32)
    for batch in make_dataset(augmented.train, 8, shuffle=False, seed=0, extras={"row": rows}):
        live[batch["row"].numpy()] = loaded.model(model_inputs(batch), training=False)["logits"].numpy()
    np.testing.assert_allclose(cached[48:], live[48:], rtol=1e-5, atol=1e-6)
    # The teacher's labels of the augmented rows are its predictions.
    assert (augmented.train.labels[48:] == live[48:].argmax(-1)).all()
    assert augmented.gold.tolist() == [1.0] * 48 + [0.0] * result.augmentation.kept


def test_the_teacher_passes_over_each_augmented_row_once(tiny_setup, tmp_path, monkeypatch, capsys):
    passed = []
    real_pass = teacher_cache.teacher_pass

    def counting_pass(teacher, split, *args, **kwargs):
        passed.append(len(split))
        return real_pass(teacher, split, *args, **kwargs)

    monkeypatch.setattr(teacher_cache, "teacher_pass", counting_pass)
    monkeypatch.setattr(build, "teacher_pass", counting_pass)
    result = tfkd.run_distill(config(tiny_setup, tmp_path / "kd"))
    kept = result.augmentation.kept
    # The labelling pass over the augmented rows, then the cache pass over the originals only.
    assert passed == [kept, 48]
    assert f"teacher cache: computed (the last {kept} rows reused, not recomputed) logits for {48 + kept}" \
        in capsys.readouterr().out


def test_no_dev_sentence_is_trained_on(kd_run, tiny_setup):
    workdir, result = kd_run
    loaded, train, dev, augmented = rebuild(tiny_setup, workdir)
    dev_rows = {dev.example(i)[0].tobytes() for i in range(len(dev))}
    train_rows = {train.example(i)[0].tobytes() for i in range(len(train))}
    enlarged = augmented.train
    added = [enlarged.example(i)[0].tobytes() for i in range(48, len(enlarged))]
    assert not set(added) & dev_rows and not set(added) & train_rows


def test_the_same_command_resumes_and_changed_augmentation_is_refused(kd_run, tiny_setup):
    workdir, result = kd_run
    again = tfkd.run_distill(config(tiny_setup, workdir))
    assert dataclasses.replace(again.augmentation, seconds=0) == dataclasses.replace(result.augmentation, seconds=0)
    assert again.best_dev == result.best_dev
    changed = config(tiny_setup, workdir, augment=dataclasses.replace(AUGMENT, factor=3))
    with pytest.raises(tfkd.TfkdError, match=r"augment\.factor"):
        tfkd.run_distill(changed)


def test_codir_banks_and_label_aware_negatives_cover_the_augmented_rows(tiny_setup, tmp_path):
    result = tfkd.run_distill(config(tiny_setup, tmp_path / "codir", method="codir",
                                     loss_args={"codir": {"num_negatives": 4}},
                                     augment=dataclasses.replace(AUGMENT, augmenters=("swap", "delete"))))
    assert result.train_examples == 48 + result.augmentation.kept > 48
    assert result.teacher_cache is not None and "augmented-" in result.teacher_cache.directory
    model, _, _ = load_model_dir(str(tmp_path / "codir" / "model"))
    assert model.num_layers == 1


def test_a_token_level_loss_runs_the_live_teacher_on_the_augmented_rows(tiny_setup, tmp_path, capsys):
    result = tfkd.run_distill(config(tiny_setup, tmp_path / "internal", method="internal",
                                     augment=dataclasses.replace(AUGMENT, augmenters=("swap",))))
    out = capsys.readouterr().out
    assert result.teacher_cache is None and result.augmentation.kept > 0
    assert "the teacher runs every step" in out and f"labels the {result.augmentation.kept} augmented" in out


@pytest.mark.parametrize("augment, message", [
    (dataclasses.replace(AUGMENT, augmenters=("neighbours",)),
     "unknown augmenter 'neighbours'. Fix: use one of delete, embedding_neighbours, file, mlm"),
    (dataclasses.replace(AUGMENT, augmenters=("file",), args={}, file="/no/such/text.txt"),
     "AugmentConfig.file: file not found: /no/such/text.txt"),
])
def test_bad_augmentation_is_refused_before_the_teacher_loads(tiny_setup, tmp_path, augment, message):
    run = config(tiny_setup, tmp_path / "bad", augment=augment)
    run = dataclasses.replace(run, teacher=tfkd.TeacherConfig(source=str(tmp_path / "no_teacher")))
    with pytest.raises(tfkd.TfkdError) as error:
        tfkd.run_distill(run)
    assert message in str(error.value) and "Fix:" in str(error.value)


def test_fine_tuning_refuses_augmentation():
    with pytest.raises(tfkd.TfkdError, match="Fix: drop AugmentConfig.augmenters, or pass RunConfig.mode=distill"):
        tfkd.RunConfig(workdir="w", mode="finetune", augment=AUGMENT)


def test_the_command_flags_make_the_augment_config_and_bad_input_is_refused_with_a_fix():
    with parsed_train_flags("--workdir=w", "--augment=embedding_neighbours,delete", "--augment_factor=8",
                            "--augment_args=embedding_neighbours.top_k=10,delete.probability=0.2") as train:
        augment = train.run_config().to_dict()["augment"]
    assert augment == {"augmenters": ["embedding_neighbours", "delete"], "factor": 8, "file": "",
                       "args": {"embedding_neighbours": {"top_k": "10"}, "delete": {"probability": "0.2"}}}
    with pytest.raises(tfkd.TfkdError, match=r"is not name.option=value\. Fix:"):
        cli_flags.augment_args(["top_k=10"])
    # The command prints this TfkdError as one "tfkd: error:" line with status 2 (run_cli, tests/cli/test_train.py).
    with parsed_train_flags("--workdir=w", "--augment=delete", "--augment_factor=-1") as train:
        with pytest.raises(tfkd.TfkdError, match=r"^augment factor -1 is not a whole number >= 0\. Fix:"):
            train.run_config()


def test_old_results_without_augmentation_still_read(kd_run):
    workdir, _ = kd_run
    with open(workdir / "results.json") as f:
        values = json.load(f)
    del values["augmentation"]
    values["config"].pop("augment")
    result = tfkd.RunResult.from_dict(values)
    assert result.augmentation is None and tfkd.RunConfig.from_dict(result.config).augment == tfkd.AugmentConfig()


def test_tinybert_schedule_distils_intermediate_layers_on_the_enlarged_set_then_predictions(tiny_setup, tmp_path,
                                                                                           capsys):
    run = config(tiny_setup, tmp_path / "tinybert", method="internal", algorithm="tinybert", final_stage_epochs=1,
                 augment=dataclasses.replace(AUGMENT, augmenters=("swap",)))
    result = tfkd.run_distill(dataclasses.replace(run, optim=dataclasses.replace(run.optim, epochs=2)))
    out = capsys.readouterr().out
    steps = -(-result.train_examples // 8)
    assert result.algorithm == "tinybert" and result.train_examples > 48 and len(result.dev_history) == 2
    assert f"stages: intermediate ({steps} steps), soft-label ({steps} steps)" in out
    assert f"stage 'soft-label' from step {steps}" in out
