"""Tiny finished training runs to export, and input helpers for the export tests.

Models are 2-layer BERTs of width 8 (student) and 16 (teacher) over a
28-token vocabulary, with heads scaled up so logits are O(1) and class
predictions vary; data are a few dozen generated GLUE-format rows.
"""

import dataclasses
import os

import numpy as np

import tfkd  # noqa: F401  (selects the TensorFlow backend)
from tfkd.data import get_task, load_split, make_tokenizer, tokenize
from tfkd.models import BertModel, ModelMetadata, save_model_dir
from tfkd.training.results import RESULTS_FILE, LossTerm, RunResult, StudentSummary, TeacherSummary

WORDS = ["good", "bad", "great", "awful", "not", "movie", "the", "was", "very", "dull", "fun", "plot", "cafe",
         "film", "##s", "##ly", ",", "!", "a", "and", "it", "is", "boring"]
# Sentences also use capitals, an accent, an out-of-vocabulary word and suffixes.
EXTRA = ["Café", "GREAT", "zebra", "films", "badly"]
SEQ_LEN = 16
CLASSES = ("negative", "positive")


@dataclasses.dataclass
class TinyRuns:
    root: str
    vocab: str
    glue_dir: str
    sst2: str  # workdir of a distillation run, teacher in <workdir>/teacher/model
    mrpc: str
    stsb: str


def _sentence(rng) -> str:
    words = [w for w in WORDS if not w.startswith("##")] + EXTRA
    return " ".join(rng.choice(words, size=int(rng.integers(2, 12))))


def write_glue(glue_dir: str, rng) -> None:
    layouts = {
        "SST-2": ("sentence\tlabel", lambda: f"{_sentence(rng)}\t{rng.integers(2)}"),
        "MRPC": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                 lambda: f"{rng.integers(2)}\t1\t2\t{_sentence(rng)}\t{_sentence(rng)}"),
        "STS-B": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                  lambda: f"0\tg\tf\t2012\t0\ts\ts\t{_sentence(rng)}\t{_sentence(rng)}\t{rng.uniform(0, 5):.2f}"),
    }
    for folder, (header, row) in layouts.items():
        os.makedirs(os.path.join(glue_dir, folder))
        for split, count in (("train", 60), ("dev", 24)):
            with open(os.path.join(glue_dir, folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
                f.write("\n".join([header] + [row() for _ in range(count)]) + "\n")


def tiny_model(vocab_size: int, num_classes: int, hidden: int, seed: int, centre_on=None) -> BertModel:
    """A random BERT whose logits depend on the input: BERT's 0.02-std initialisation
    would give a [CLS] output that hardly changes with the text.

    `centre_on` (id inputs) shifts the head's bias so these inputs' mean logits
    are 0, so every class gets predicted.
    """
    model = BertModel(vocabulary_size=vocab_size, num_layers=2, num_heads=2, hidden_dim=hidden,
                      intermediate_dim=2 * hidden, num_classes=num_classes, max_sequence_length=32)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.endswith(("kernel", "embeddings")):
            std = 1.5 if weight.path.startswith(("pooled", "logits")) else 0.3
            weight.assign(rng.normal(0.0, std, weight.shape).astype("float32"))
    if centre_on is not None:
        bias = model.logits_dense.bias
        bias.assign(bias - keras_logits(model, centre_on).mean(0))
    return model


def write_run(workdir, vocab, glue_dir, task, label_names, student_dev, teacher_dev=None, teacher=None, seed=0):
    """A workdir as `tfkd.train` leaves it: model/, results.json (and teacher/model when given).

    Without `teacher_dev` the run is a fine-tuning run: its results.json has no teacher to bless against.
    """
    num_classes = max(len(label_names), 1)
    meta = dict(task=task, label_names=list(label_names), lowercase=True, max_seq_length=SEQ_LEN)
    train = id_batch(tokenize(load_split(get_task(task), "train", glue_dir), make_tokenizer(vocab), SEQ_LEN))
    student = tiny_model(_vocab_size(vocab), num_classes, 8, seed, centre_on=train)
    save_model_dir(os.path.join(workdir, "model"), student, vocab,
                   ModelMetadata(role="student", extra={"method": "kd", "teacher": "minilm"}, **meta))
    if teacher:
        save_model_dir(os.path.join(workdir, "teacher", "model"), tiny_model(_vocab_size(vocab), num_classes, 16, seed + 1, centre_on=train),
                       vocab, ModelMetadata(role="teacher", **meta))
    metric = "pearson" if task == "stsb" else "accuracy"
    dev = [{"epoch": 1, metric: student_dev - 0.01}, {"epoch": 2, metric: student_dev}]
    kind = "distill" if teacher_dev is not None else "finetune"
    RunResult(
        kind=kind, task=task, primary_metric=metric, best_epoch=2,
        best_dev={metric: student_dev}, last_dev={metric: student_dev}, dev_history=dev,
        train_examples_per_second=100.0, epoch_seconds=[1.0, 1.0], wall_seconds=2.0, train_examples=60,
        padding_efficiency=0.9, student=StudentSummary(layers=2, hidden_dim=8, params=int(student.count_params())),
        losses=[LossTerm(name="kd", key="kd", weight=1.0)], algorithm="joint",
        teacher=None if teacher_dev is None else TeacherSummary(source="minilm", layers=2, params=1,
                                                                dev={metric: teacher_dev}),
        flags={"glue_dir": glue_dir, "max_seq_length": SEQ_LEN, "finetuned_teacher_dir": "", "teacher": "minilm",
               "mode": kind, "finetune_model": "student", "method": "kd", "workdir": workdir},
    ).write(os.path.join(workdir, RESULTS_FILE))
    return workdir


def _vocab_size(vocab: str) -> int:
    with open(vocab) as f:
        return len(f.read().splitlines())


def id_batch(split, rows=None):
    """`predict_ids` inputs for examples `rows` of a TokenizedSplit, padded to the longest."""
    rows = range(len(split)) if rows is None else rows
    pairs = [split.example(i) for i in rows]
    width = max(len(ids) for ids, _ in pairs)
    batch = {name: np.zeros((len(pairs), width), np.int32) for name in ("input_ids", "segment_ids", "padding_mask")}
    for j, (ids, segments) in enumerate(pairs):
        batch["input_ids"][j, :len(ids)] = ids
        batch["segment_ids"][j, :len(ids)] = segments
        batch["padding_mask"][j, :len(ids)] = 1
    return batch


def keras_logits(model, batch):
    inputs = {"token_ids": batch["input_ids"], "segment_ids": batch["segment_ids"], "padding_mask": batch["padding_mask"]}
    return model(inputs, training=False)["logits"].numpy()
