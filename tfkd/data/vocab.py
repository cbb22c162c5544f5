"""A student vocabulary trimmed to the WordPiece ids a task uses (TextPruner's vocabulary pruning).

The 30,522-row token embedding is half of a 384-wide student's weights, and a
task's training text touches a fraction of it. `trim_vocabulary` keeps the
special tokens, every id of the training split (and optionally of an extra
corpus), in the teacher's id order, so the student's `vocab.txt` is the
teacher's with lines removed. The teacher keeps its vocabulary: the training
split is tokenized once, with the teacher's tokenizer, and `VocabularyTrim.
transform` adds the student's ids (`student_token_ids`) to every batch through
a lookup table.

On the training text that lookup equals tokenizing with the student's own
`vocab.txt`: WordPiece takes the longest piece in the vocabulary at each step,
and every piece the teacher's vocabulary chose there is kept, so the longest
match cannot change. Unseen text may tokenize differently (a word whose
pieces were dropped falls back to other pieces or `[UNK]`), which is why dev
evaluation and export tokenize with the student's file, as serving will, and
`unk_share` reports what the trimming costs there.

Example:
>>> import pathlib
>>> from tfkd.data.examples import Examples
>>> from tfkd.data.pipeline import tokenize
>>> from tfkd.data.tokenizer import make_tokenizer
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\ngood\\nbad\\n")
>>> train = tokenize(Examples(["the film was good"], None, np.array([1], np.int32), "demo"),
...                  make_tokenizer("vocab.txt"), 16)
>>> trim = trim_vocabulary("vocab.txt", train)
>>> trim.kept_ids.tolist(), trim.size, trim.teacher_size  # "bad" never occurs in training
([0, 1, 2, 3, 4, 5, 6, 7, 8], 9, 10)
>>> trim.student_ids(np.array([2, 5, 9, 3])).tolist()  # [CLS] the bad [SEP]: the dropped id becomes [UNK]
[2, 5, 1, 3]
>>> trim.write("student_vocab.txt").read_text().split()[-2:]
['was', 'good']
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.pipeline import TokenizedSplit, tokenize
from tfkd.data.tokenizer import SPECIAL_TOKENS, read_vocab

STUDENT_TOKEN_IDS = "student_token_ids"
UNK_TOKEN = "[UNK]"
# Long enough that no corpus line is cut, so every id of the corpus counts.
_UNTRUNCATED = 1 << 20


@dataclasses.dataclass(frozen=True)
class VocabularyTrim:
    """The teacher ids a student keeps, and how teacher ids become student ids.

    Args:
        tokens: the teacher's vocabulary, in id order.
        kept_ids: the teacher ids the student keeps, ascending; student id `i` is teacher id `kept_ids[i]`.
    """

    tokens: Sequence[str]
    kept_ids: np.ndarray

    @property
    def size(self) -> int:
        return int(len(self.kept_ids))

    @property
    def teacher_size(self) -> int:
        return len(self.tokens)

    @property
    def token_map(self) -> np.ndarray:
        """int32 `[teacher vocabulary]`: each teacher id's student id, `[UNK]`'s for the dropped ones."""
        unk = int(np.searchsorted(self.kept_ids, self.tokens.index(UNK_TOKEN)))
        mapping = np.full(self.teacher_size, unk, np.int32)
        mapping[self.kept_ids] = np.arange(self.size, dtype=np.int32)
        return mapping

    def student_ids(self, teacher_ids: np.ndarray) -> np.ndarray:
        """`teacher_ids` (any shape) as student ids."""
        return self.token_map[teacher_ids]

    def write(self, path: str) -> pathlib.Path:
        """Writes the student's `vocab.txt` (the kept tokens in the student's id order)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(self.tokens[i] + "\n" for i in self.kept_ids), encoding="utf-8")
        return path

    def transform(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Adds `student_token_ids` to every batch of `dataset` (batches of `make_dataset`)."""
        table = tf.constant(self.token_map)

        def add_student_ids(batch):
            return dict(batch, **{STUDENT_TOKEN_IDS: tf.gather(table, batch["token_ids"])})

        return dataset.map(add_student_ids, num_parallel_calls=tf.data.AUTOTUNE)

    def summary(self) -> dict:
        """What results.json records of the trimming."""
        return {"size": self.size, "teacher_size": self.teacher_size}


def token_counts(split: TokenizedSplit, vocabulary_size: int) -> np.ndarray:
    """Occurrences of every id in `split`, int64 `[vocabulary_size]`."""
    return np.bincount(split.token_ids, minlength=vocabulary_size)


def corpus_token_counts(texts: Sequence[str], tokenizer, vocabulary_size: int) -> np.ndarray:
    """Occurrences of every id when `tokenizer` (the teacher's) splits `texts` (untruncated), int64
    `[vocabulary_size]`."""
    examples = Examples(list(texts), None, np.zeros(len(texts), np.int32), "vocabulary corpus")
    return token_counts(tokenize(examples, tokenizer, _UNTRUNCATED), vocabulary_size)


def trim_vocabulary(
    vocab_path: str,
    train: TokenizedSplit,
    corpus_counts: Optional[np.ndarray] = None,
    corpus_top: int = 0,
) -> VocabularyTrim:
    """The special tokens, every id of `train`, and the ids of an extra corpus.

    Args:
        vocab_path: the teacher's `vocab.txt`.
        train: the training split, tokenized with the teacher's tokenizer.
        corpus_counts: `corpus_token_counts` of an extra corpus (e.g. the domain's unlabelled text), whose
            ids are kept too.
        corpus_top: keep only the corpus' this many most frequent ids (0: all it uses).
    """
    tokens = read_vocab(vocab_path)
    counts = token_counts(train, len(tokens))
    if len(counts) > len(tokens):
        raise TfkdError(f"the training split has token id {len(counts) - 1}, beyond the {len(tokens)} lines of "
                        f"{vocab_path}. Fix: tokenize it with that vocabulary's tokenizer.")
    special = [tokens.index(t) for t in SPECIAL_TOKENS]
    keep = counts > 0
    keep[special] = True
    if corpus_counts is not None:
        corpus_counts = corpus_counts.copy()
        corpus_counts[special] = 0  # kept anyway; they must not take places among the top ids
        used = np.flatnonzero(corpus_counts)
        if corpus_top:
            used = used[np.argsort(-corpus_counts[used], kind="stable")[:corpus_top]]
        keep[used] = True
    return VocabularyTrim(tokens, np.flatnonzero(keep).astype(np.int32))


def unk_share(split: TokenizedSplit, vocab_path: str) -> float:
    """The share of `split`'s tokens (special tokens aside) that are `[UNK]` under `vocab_path`'s ids."""
    tokens = read_vocab(vocab_path)
    special = np.array([tokens.index(t) for t in SPECIAL_TOKENS])
    ids = split.token_ids[~np.isin(split.token_ids, special[special != tokens.index(UNK_TOKEN)])]
    return float(np.mean(ids == tokens.index(UNK_TOKEN))) if len(ids) else 0.0
