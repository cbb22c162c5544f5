"""`--student_vocab=task` end to end: a tiny distillation whose student keeps only the training text's tokens,
then its export, which must serve with that vocabulary and match the Keras student."""

import dataclasses
import os

import numpy as np
import pytest

import tfkd
from tests.helpers import WORDS, tiny_run_config
from tfkd.data import get_task, load_split, make_tokenizer, tokenize
from tfkd.data.tokenizer import read_vocab
from tfkd.evaluate.evaluator import Evaluator
from tfkd.models import load_model_dir

DEV_ONLY = ("fun", "plot")


def write_sst2(folder, rng):
    """SST-2 files whose dev sentences use two words the training sentences never do."""
    folder.mkdir(parents=True)
    train_words = [w for w in WORDS if w not in DEV_ONLY]
    for split, words, n in (("train", train_words, 48), ("dev", WORDS, 24)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            chosen = list(rng.choice(words, size=rng.integers(2, 7)))
            if split == "dev" and i % 3 == 0:
                chosen.append(DEV_ONLY[i % 2])
            rows.append(" ".join(chosen) + f"\t{int('good' in chosen or 'great' in chosen)}")
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def config(setup, glue, workdir, vocab="task") -> tfkd.RunConfig:
    return tiny_run_config(setup, workdir, glue=glue, student={"vocab": vocab}, method={"name": "kd"})


@pytest.fixture(scope="module")
def runs(tiny_setup, tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab_trim")
    write_sst2(root / "glue" / "SST-2", np.random.default_rng(3))
    trimmed = tfkd.run_distill(config(tiny_setup, root / "glue", root / "trimmed"))
    full = tfkd.run_distill(config(tiny_setup, root / "glue", root / "full", vocab="teacher"))
    return root, trimmed, full


def test_the_student_keeps_only_the_training_tokens_and_is_smaller_by_their_rows(runs, tiny_setup):
    root, trimmed, full = runs
    teacher_vocab = read_vocab(str(tiny_setup / "teacher" / "vocab.txt"))
    student_vocab = read_vocab(str(root / "trimmed" / "model" / "vocab.txt"))
    assert not set(DEV_ONLY) & set(student_vocab) and "good" in student_vocab
    assert student_vocab == [t for t in teacher_vocab if t in set(student_vocab)]  # the teacher's order
    dropped = len(teacher_vocab) - len(student_vocab)
    assert trimmed.student.vocab["size"] == len(student_vocab) and trimmed.student.vocab["teacher_size"] == len(teacher_vocab)
    assert trimmed.student.params == full.student.params - dropped * 16
    assert trimmed.student.vocab["dev_unk_share"] > 0 == trimmed.student.vocab["teacher_dev_unk_share"]
    assert full.student.vocab is None
    assert tfkd.read_result(str(root / "trimmed")).student.vocab == trimmed.student.vocab


def test_the_recorded_dev_metric_is_the_saved_student_on_its_own_tokenization(runs):
    root, trimmed, _ = runs
    model, vocab_path, meta = load_model_dir(str(root / "trimmed" / "model"))
    assert model.vocabulary_size == len(read_vocab(vocab_path)) == trimmed.student.vocab["size"]
    task = get_task("sst2")
    dev = tokenize(load_split(task, "dev", str(root / "glue")), make_tokenizer(vocab_path, meta.lowercase), 16)
    assert Evaluator(task, dev, 8, jit_compile=False).evaluate(model) == pytest.approx(trimmed.best_dev)
    # The teacher was scored on its own vocabulary: dev-only words are no [UNK] for it.
    assert trimmed.teacher.dev == pytest.approx(runs[2].teacher.dev)


def test_a_rerun_resumes_with_the_same_vocabulary(runs, tiny_setup):
    root, trimmed, _ = runs
    again = tfkd.run_distill(config(tiny_setup, root / "glue", root / "trimmed"))
    assert again.student.vocab == trimmed.student.vocab and again.best_dev == trimmed.best_dev


def test_the_export_serves_the_trimmed_vocabulary_and_matches_the_keras_student(runs, tmp_path):
    from tfkd.export import ExportOptions, export
    from tfkd.export.validate import validate

    root, trimmed, _ = runs
    result = export(ExportOptions(workdir=str(root / "trimmed"), export_dir=str(tmp_path), quantize=("float32",),
                                  force=True), log=lambda message: None)
    served = os.path.join(result.saved_model_dir, "assets.extra", "vocab.txt")
    assert read_vocab(served) == read_vocab(str(root / "trimmed" / "model" / "vocab.txt"))
    rows = {row["name"]: row for row in validate(result, latency_examples=4, log=lambda message: None)["rows"]}
    for name in ("student SavedModel serving_default", "student TFLite float32", "student TFLite text_float32"):
        assert rows[name]["max_abs_logit_diff"] < 1e-4, name
    assert rows["student TFLite text_float32"]["token_agreement"] == 1.0
    assert dataclasses.asdict(trimmed)["student"]["vocab"]["size"] < len(read_vocab(str(root / "full" / "model" / "vocab.txt")))


@pytest.mark.parametrize("make, message", [
    (lambda: tfkd.StudentConfig(vocab="small"), "student vocab 'small' is not 'teacher' or 'task'"),
    (lambda: tfkd.StudentConfig(vocab_corpus="corpus.txt"), "add StudentConfig.vocab=task"),
    (lambda: tfkd.RunConfig(workdir="w", mode="finetune", student=tfkd.StudentConfig(vocab="task")),
     "drop StudentConfig.vocab=task, or pass RunConfig.mode=distill"),
    (lambda: tfkd.PretrainConfig(workdir="w", student=tfkd.StudentConfig(vocab="task")),
     "trim when distilling on the task"),
])
def test_vocabulary_settings_that_cannot_work_are_refused(make, message):
    with pytest.raises(tfkd.TfkdError, match="Fix:") as error:
        make()
    assert message in str(error.value)


def test_the_hugging_face_export_carries_the_trimmed_vocabulary(runs, tmp_path):
    from tfkd.export.hf import export_hf
    from tfkd.models.sources import load_teacher

    root, trimmed, _ = runs
    out = export_hf(str(root / "trimmed"), str(tmp_path / "hf"), force=True, log=lambda message: None)
    assert read_vocab(os.path.join(out, "vocab.txt")) == read_vocab(str(root / "trimmed" / "model" / "vocab.txt"))
    loaded = load_teacher(out, num_classes=2)
    assert loaded.model.vocabulary_size == trimmed.student.vocab["size"]
