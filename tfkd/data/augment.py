"""Teacher-labelled data augmentation: perturbed copies of the training inputs (TinyBERT's remedy for small tasks).

An augmenter makes new, unlabelled training inputs; the teacher labels them
and every distillation term trains on them (see `tfkd.training.build.augment_training_set`).
Augmenters are looked up by name in `AUGMENTERS`, so `--augment=` can name
one registered from your own code:

- `embedding_neighbours`: replaces words by their nearest neighbours (cosine)
  in the teacher's input token embeddings;
- `mlm`: replaces words by a masked LM's top-k predictions;
- `delete`, `swap`: deletes words, swaps adjacent words (the cheap baseline);
- `file`: adds the in-domain texts of a file (not a perturbation).

Augmenters work in the teacher's WordPiece ids, on the packed training rows
with their `[CLS]`/`[SEP]` removed: an input is a tuple of one or two *sides*
(a sentence pair is perturbed side by side and stays a pair). A *word* is a
WordPiece that starts a word with the `##` pieces that continue it. Special
tokens (`[UNK]`, `[MASK]`, `[unusedN]`, anything in brackets) are never
replaced, deleted or moved; substitutes are *whole-word tokens*: a word that
is a single WordPiece of letters or digits, never a `##` piece or a special
token.

`materialise` makes `factor` copies of every training example (copy `j` by
the `j % k`-th of the `k` perturbing augmenters), adds the examples of
source augmenters (`file`), and drops every new example that repeats another
one, a training example, or a dev example (for pairs: that shares either
text with a dev example), so no dev sentence reaches training. Copy `j` of
example `i` draws from its own generator, seeded by `(seed, augmenter, i, j)`:
the same seed gives the same set, whatever the batching.

Example:
>>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "great", "dull", "."]
>>> train = pack([(ids(vocab, "the film was good ."),), (ids(vocab, "the film was dull ."),)], vocab, 16)
>>> dev = pack([(ids(vocab, "the was film dull ."),)], vocab, 16)
>>> made = materialise(train, dev, ["delete", "swap"], factor=4, seed=1, context=AugmentContext(vocab, 16),
...                    options={"delete": {"probability": 0.3}})
>>> sorted(decode(made.split.example(i)[0], vocab) for i in range(len(made.split)))  # doctest: +NORMALIZE_WHITESPACE
['[CLS] film good . [SEP]', '[CLS] film the was good . [SEP]', '[CLS] the film . [SEP]',
 '[CLS] the film dull [SEP]', '[CLS] the film dull was . [SEP]']
>>> made.made, made.duplicates  # 8 copies; a swap made the dev sentence, a deletion deleted nothing
(8, {'dev': 1, 'train': 1, 'augmented': 1})
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import zlib
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.core.registry import Registry
from tfkd.data.examples import Examples
from tfkd.data.files import iter_records
from tfkd.data.glue_tsv import utf8_lines
from tfkd.data.pipeline import TokenizedSplit, longest_first, tokenize
from tfkd.data.tasks import TaskSpec

# One or two texts of an example, as WordPiece ids without [CLS]/[SEP].
Sides = Tuple[np.ndarray, ...]

AUGMENTERS: Registry = Registry("augmenter")
register_augmenter = AUGMENTERS.register

# Extensions of an augment file in the training data's layout; any other file has one example per line.
TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")
# Why an augmented example was dropped, in the order it is checked.
DUPLICATE_KINDS = ("dev", "train", "augmented")
# Neighbours are scored for this many query tokens at a time (a [chunk, candidates] float32 matrix).
NEIGHBOUR_CHUNK = 1024


def is_special(token: str) -> bool:
    """Whether a vocabulary entry is a special token: `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, `[unusedN]`.

    Example:
    >>> is_special("[unused7]"), is_special("[UNK]"), is_special("[")
    (True, True, False)
    """
    return len(token) > 2 and token.startswith("[") and token.endswith("]")


def ids(vocabulary: Sequence[str], text: str) -> np.ndarray:
    """The ids of the whitespace-separated tokens of `text` (each must be in `vocabulary`), for examples and tests.

    Example:
    >>> ids(["[PAD]", "the", "film", "##s"], "the film ##s").tolist()
    [1, 2, 3]
    """
    position = {token: i for i, token in enumerate(vocabulary)}
    return np.array([position[token] for token in text.split()], np.int32)


def decode(token_ids: Sequence[int], vocabulary: Sequence[str]) -> str:
    """WordPiece ids as text: tokens separated by spaces, `##` pieces joined to the word they continue.

    Example:
    >>> decode([2, 5, 11, 3], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "film"] + ["x"] * 5 + ["##s"])
    '[CLS] films [SEP]'
    """
    text = ""
    for i in token_ids:
        token = vocabulary[int(i)]
        text += token[2:] if token.startswith("##") and text else (" " if text else "") + token
    return text


@dataclasses.dataclass
class AugmentContext:
    """What augmenters draw on.

    Args:
        vocabulary: the teacher's WordPiece tokens by id; inputs and outputs are in these ids.
        max_seq_length: the run's length limit (new examples are cut to it like the training data).
        embeddings: the teacher's input token-embedding matrix `[V, d]` (`embedding_neighbours`).
        tokenizer: the teacher's tokenizer, for texts that are not ids yet (`file`).
        task: the task: its text fields name the columns of a CSV/TSV/JSONL augment file, and say whether
            examples are pairs.
        file: the augment file (`file`).
        batch_size: batch size of model passes (`mlm`).
        load_masked_lm: `(preset, vocabulary) -> masked LM` for `mlm`; keras-hub presets by default, and
            `tfkd.models.masked_lm.load_masked_lm` (what tfkd.train passes) also takes a tfkd.pretrain output.
    """

    vocabulary: Sequence[str]
    max_seq_length: int
    embeddings: Optional[np.ndarray] = None
    tokenizer: Any = None
    task: Optional[TaskSpec] = None
    file: str = ""
    batch_size: int = 64
    load_masked_lm: Callable[[str, Sequence[str]], Any] = dataclasses.field(
        default_factory=lambda: load_keras_hub_masked_lm)

    @functools.cached_property
    def special(self) -> np.ndarray:
        """Per id: whether it is a special token."""
        return np.array([is_special(token) for token in self.vocabulary])

    @functools.cached_property
    def continuation(self) -> np.ndarray:
        """Per id: whether it continues a word (`##` pieces)."""
        return np.array([token.startswith("##") for token in self.vocabulary])

    @functools.cached_property
    def whole_word(self) -> np.ndarray:
        """Per id: whether it is a whole-word token: not special, not `##`, with a letter or digit."""
        has_alnum = np.array([any(c.isalnum() for c in token) for token in self.vocabulary])
        return has_alnum & ~self.special & ~self.continuation

    def token_id(self, token: str) -> int:
        """The id of `token`, or a `TfkdError` when the vocabulary lacks it."""
        try:
            return list(self.vocabulary).index(token)
        except ValueError:
            raise TfkdError(f"the vocabulary has no {token} token. Fix: use a BERT WordPiece vocabulary.") from None


class Augmenter:
    """Base class of an augmenter; a perturbing one implements `augment`, a source of examples `examples`.

    Class attributes a subclass sets:
        options: the constructor's options and their defaults (`--augment_args=<name>.<option>=<value>`);
            text values are converted to the default's type.
        perturbs: True: `augment` perturbs training inputs (the `factor` copies are spread over these);
            False: the augmenter adds the `examples` it has once.

    Args:
        context: an `AugmentContext`.
        **options: values of `options`.
    """

    options: ClassVar[Mapping[str, Any]] = {}
    perturbs: ClassVar[bool] = True

    def __init__(self, context: AugmentContext, **options):
        self.context = context

    def augment(self, inputs: Sequence[Sides], rngs: Sequence[np.random.Generator]) -> List[Sides]:
        """One perturbed copy of each input, drawing only from its own generator."""
        raise NotImplementedError(f"{type(self).__name__} perturbs no inputs")

    def examples(self) -> List[Sides]:
        """The new inputs a source augmenter adds (none for a perturbing one)."""
        return []


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise TfkdError(f"augmenter '{name}': probability={value} is not in [0, 1]. "
                        f"Fix: pass e.g. --augment_args={name}.probability=0.1.")
    return float(value)


def _top_k(name: str, value: int) -> int:
    if value < 1:
        raise TfkdError(f"augmenter '{name}': top_k={value} is below 1. Fix: pass e.g. --augment_args={name}.top_k=15.")
    return int(value)


def split_words(token_ids: np.ndarray, continuation: np.ndarray) -> List[np.ndarray]:
    """A side's ids as words: each a WordPiece with the `##` pieces after it.

    Example:
    >>> [w.tolist() for w in split_words(np.array([5, 9, 9, 6]), np.array([False] * 9 + [True]))]
    [[5, 9, 9], [6]]
    """
    starts = [i for i in range(1, len(token_ids)) if not continuation[token_ids[i]]]
    return np.split(np.asarray(token_ids, np.int32), starts) if len(token_ids) else []


class WordAugmenter(Augmenter):
    """An augmenter that perturbs each side of an input as a list of words; subclasses implement `perturb`."""

    def augment(self, inputs: Sequence[Sides], rngs: Sequence[np.random.Generator]) -> List[Sides]:
        self.prepare(inputs)
        continuation = self.context.continuation
        out = []
        for sides, rng in zip(inputs, rngs):
            perturbed = [self.perturb(split_words(side, continuation), rng) for side in sides]
            out.append(tuple(np.concatenate(words) if words else np.zeros(0, np.int32) for words in perturbed))
        return out

    def prepare(self, inputs: Sequence[Sides]) -> None:
        """Called once with all inputs of a call before they are perturbed. Default: nothing."""

    def perturb(self, words: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        """The perturbed words of one side."""
        raise NotImplementedError

    def is_whole_word(self, word: np.ndarray) -> bool:
        return len(word) == 1 and bool(self.context.whole_word[word[0]])

    def is_special_word(self, word: np.ndarray) -> bool:
        return bool(self.context.special[word[0]])


@register_augmenter("embedding_neighbours")
class EmbeddingNeighbours(WordAugmenter):
    """Replaces each whole word, with probability `probability`, by one of its `top_k` nearest whole-word tokens
    by cosine similarity of the teacher's input token embeddings (drawn uniformly); multi-piece words stay.

    Example: "good" and "great" are neighbours in these embeddings, as are "film" and "movie"; "films" is two
    pieces and stays, as does the special token [UNK].
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "movie", "good", "great", "##s"]
    >>> embeddings = np.array([[0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1],
    ...                        [1, 0, 0, 0], [.9, .1, 0, 0], [0, 1, 0, 0], [.1, .9, 0, 0], [0, 0, 1, 0]], np.float32)
    >>> neighbours = EmbeddingNeighbours(AugmentContext(vocab, 16, embeddings), probability=1.0, top_k=1)
    >>> [out] = neighbours.augment([(ids(vocab, "good film ##s [UNK] movie"),)], [np.random.default_rng(0)])
    >>> decode(out[0], vocab)
    'great films [UNK] film'
    """

    options = {"probability": 0.4, "top_k": 15}

    def __init__(self, context: AugmentContext, probability: float = 0.4, top_k: int = 15, **kwargs):
        super().__init__(context, **kwargs)
        if context.embeddings is None:
            raise TfkdError("augmenter 'embedding_neighbours' needs the teacher's token embeddings. "
                            "Fix: pass AugmentContext(embeddings=<[vocabulary, width] matrix>).")
        if len(context.embeddings) != len(context.vocabulary):
            raise TfkdError(f"augmenter 'embedding_neighbours': {len(context.embeddings)} embedding rows for a "
                            f"vocabulary of {len(context.vocabulary)}. Fix: pass the teacher's own embeddings.")
        self.probability = _probability("embedding_neighbours", probability)
        self.top_k = _top_k("embedding_neighbours", top_k)
        self.candidates = np.flatnonzero(context.whole_word)
        vectors = np.asarray(context.embeddings, np.float32)[self.candidates]
        self.unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.neighbours: Dict[int, np.ndarray] = {}

    def prepare(self, inputs: Sequence[Sides]) -> None:
        # Only the tokens the inputs use are scored: a handful of thousands, not the whole vocabulary.
        used = np.unique(np.concatenate([side for sides in inputs for side in sides] or [np.zeros(0, np.int32)]))
        queries = [int(i) for i in used if self.context.whole_word[i] and int(i) not in self.neighbours]
        row = {int(c): r for r, c in enumerate(self.candidates)}
        k = min(self.top_k, len(self.candidates) - 1)
        for start in range(0, len(queries), NEIGHBOUR_CHUNK):
            chunk = queries[start:start + NEIGHBOUR_CHUNK]
            scores = self.unit[[row[q] for q in chunk]] @ self.unit.T
            scores[np.arange(len(chunk)), [row[q] for q in chunk]] = -np.inf  # a token is not its own neighbour
            best = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else np.zeros((len(chunk), 0), np.int64)
            for q, score, top in zip(chunk, scores, best):
                # Highest similarity first, ties by id, so the list does not depend on the partition's order.
                self.neighbours[q] = self.candidates[top[np.lexsort((self.candidates[top], -score[top]))]]

    def perturb(self, words: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        out = []
        for word in words:
            if self.is_whole_word(word) and rng.random() < self.probability and len(self.neighbours[int(word[0])]):
                options = self.neighbours[int(word[0])]
                word = options[rng.integers(len(options))][None]
            out.append(word)
        return out


@register_augmenter("delete")
class RandomDeletion(WordAugmenter):
    """Deletes each word (all its pieces) with probability `probability`; special tokens stay, and a side
    keeps at least one word.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "##s"]
    >>> [out] = RandomDeletion(AugmentContext(vocab, 16), probability=0.5).augment(
    ...     [(ids(vocab, "the film ##s was good"),)], [np.random.default_rng(1)])
    >>> decode(out[0], vocab)
    'the films good'
    """

    options = {"probability": 0.1}

    def __init__(self, context: AugmentContext, probability: float = 0.1, **kwargs):
        super().__init__(context, **kwargs)
        self.probability = _probability("delete", probability)

    def perturb(self, words: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        kept = [w for w in words if self.is_special_word(w) or rng.random() >= self.probability]
        if words and not any(not self.is_special_word(w) for w in kept):
            deletable = [w for w in words if not self.is_special_word(w)]
            if deletable:  # everything was deleted: keep one word, as it stood
                keep = deletable[rng.integers(len(deletable))]
                kept = [w for w in words if self.is_special_word(w) or w is keep]
        return kept


@register_augmenter("swap")
class AdjacentSwap(WordAugmenter):
    """Swaps two adjacent words `max(1, round(probability * words))` times; a word next to a special token is
    swapped only with the word on its other side.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "##s"]
    >>> [out] = AdjacentSwap(AugmentContext(vocab, 16)).augment([(ids(vocab, "the film ##s was good"),)],
    ...                                                        [np.random.default_rng(0)])
    >>> decode(out[0], vocab)
    'the films good was'
    """

    options = {"probability": 0.1}

    def __init__(self, context: AugmentContext, probability: float = 0.1, **kwargs):
        super().__init__(context, **kwargs)
        self.probability = _probability("swap", probability)

    def perturb(self, words: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        words = list(words)
        for _ in range(max(1, round(self.probability * len(words)))):
            pairs = [i for i in range(len(words) - 1)
                     if not self.is_special_word(words[i]) and not self.is_special_word(words[i + 1])]
            if not pairs:
                break
            i = pairs[rng.integers(len(pairs))]
            words[i], words[i + 1] = words[i + 1], words[i]
        return words


@register_augmenter("mlm")
class MaskedLMSubstitution(Augmenter):
    """Masks each whole word with probability `probability` (the words of a copy at once) and replaces it by a
    whole-word token sampled from a masked LM's `top_k` predictions (softmax over those k, the original word
    excluded); multi-piece words and special tokens stay.

    The masked LM (`preset`) is loaded by `context.load_masked_lm`: by default a keras-hub `BertMaskedLM`
    preset (a Kaggle handle or a local directory) that has a trained masked-LM head (`task.json` of a
    `BertMaskedLM` and `task.weights.h5`: e.g. one saved with `save_to_preset` after MLM training);
    keras-hub's BERT backbones alone have no such head, and a random one is refused, never used. tfkd.train
    also accepts a `tfkd.pretrain` output (`tfkd.models.masked_lm`). Its vocabulary must be the teacher's.

    Example: with a random tiny masked LM saved as a preset, every word of "the film was good" is replaced.
    >>> import keras_hub, tempfile
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "great", "movie"]
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=1,
    ...                                          hidden_dim=4, intermediate_dim=8, max_sequence_length=16)
    >>> preset = tempfile.mkdtemp()
    >>> keras_hub.models.BertMaskedLM(backbone, keras_hub.models.BertMaskedLMPreprocessor(tokenizer)).save_to_preset(preset)
    >>> mlm = MaskedLMSubstitution(AugmentContext(vocab, 16), probability=1.0, top_k=2, preset=preset)
    >>> [out] = mlm.augment([(ids(vocab, "the film was good"),)], [np.random.default_rng(0)])
    >>> [a != b for a, b in zip(decode(out[0], vocab).split(), ["the", "film", "was", "good"])]
    [True, True, True, True]
    """

    options = {"probability": 0.15, "top_k": 15, "preset": ""}

    def __init__(self, context: AugmentContext, probability: float = 0.15, top_k: int = 15, preset: str = "",
                 **kwargs):
        super().__init__(context, **kwargs)
        self.probability = _probability("mlm", probability)
        self.top_k = _top_k("mlm", top_k)
        self.model = context.load_masked_lm(preset, context.vocabulary)
        self.mask_id = context.token_id("[MASK]")
        self.cls_id, self.sep_id = context.token_id("[CLS]"), context.token_id("[SEP]")

    def augment(self, inputs: Sequence[Sides], rngs: Sequence[np.random.Generator]) -> List[Sides]:
        whole_word, continuation = self.context.whole_word, self.context.continuation
        rows, chosen = [], []
        for sides, rng in zip(inputs, rngs):
            row = pack_row(sides, self.cls_id, self.sep_id, self.context.max_seq_length)
            # A masked position is a whole word: a whole-word token not followed by a ## piece.
            following = np.append(continuation[row[0][1:]], False)
            candidates = np.flatnonzero(whole_word[row[0]] & ~following)
            chosen.append(candidates[rng.random(len(candidates)) < self.probability])
            rows.append(row)
        allowed = np.where(whole_word, 0.0, -np.inf).astype(np.float32)
        replaced = [token_ids.copy() for token_ids, _ in rows]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        for start in range(0, len(order), self.context.batch_size):
            batch = [i for i in order[start:start + self.context.batch_size] if len(chosen[i])]
            if not batch:
                continue
            width, masks = max(len(rows[i][0]) for i in batch), max(len(chosen[i]) for i in batch)
            token_ids = np.zeros((len(batch), width), np.int32)
            segment_ids = np.zeros_like(token_ids)
            padding_mask = np.zeros_like(token_ids)
            positions = np.zeros((len(batch), masks), np.int32)
            for b, i in enumerate(batch):
                n = len(rows[i][0])
                token_ids[b, :n] = rows[i][0]
                token_ids[b, chosen[i]] = self.mask_id
                segment_ids[b, :n], padding_mask[b, :n] = rows[i][1], 1
                positions[b, :len(chosen[i])] = chosen[i]
            logits = self.model({"token_ids": tf.constant(token_ids), "segment_ids": tf.constant(segment_ids),
                                 "padding_mask": tf.constant(padding_mask), "mask_positions": tf.constant(positions)},
                                training=False)
            logits = np.asarray(logits, np.float32) + allowed
            for b, i in enumerate(batch):
                for p, position in enumerate(chosen[i]):
                    scores = logits[b, p].copy()
                    scores[rows[i][0][position]] = -np.inf
                    top = np.argpartition(-scores, min(self.top_k, len(scores)) - 1)[:self.top_k]
                    top = top[np.lexsort((top, -scores[top]))]
                    top = top[np.isfinite(scores[top])]
                    if len(top):
                        weights = np.exp(scores[top] - scores[top].max())
                        replaced[i][position] = top[rngs[i].choice(len(top), p=weights / weights.sum())]
        return [unpack_row(token_ids, segment_ids) for token_ids, (_, segment_ids) in zip(replaced, rows)]


def masked_lm_fix() -> str:
    """The fix every `mlm` loading error ends with."""
    return ("Fix: pass --augment_args=mlm.preset=<a masked LM with the teacher's vocabulary: the model/ of a "
            "python -m tfkd.pretrain run, a keras-hub BertMaskedLM preset with a trained masked-LM head (a local "
            "directory written by BertMaskedLM.save_to_preset, or a Kaggle handle with network access)>, or use "
            "--augment=embedding_neighbours")


def load_keras_hub_masked_lm(preset: str, vocabulary: Sequence[str]):
    """The keras-hub `BertMaskedLM` of `preset`, checked to have a trained masked-LM head and `vocabulary`;
    any failure is a one-line `TfkdError` naming the problem and the fix."""
    import keras_hub
    from keras_hub.src.utils.preset_utils import TASK_CONFIG_FILE, TASK_WEIGHTS_FILE, check_file_exists, load_json

    fix = masked_lm_fix()
    if not preset:
        raise TfkdError(f"augmenter 'mlm' needs a masked LM, and no preset was given. {fix}.")
    try:
        has_head = (check_file_exists(preset, TASK_CONFIG_FILE) and check_file_exists(preset, TASK_WEIGHTS_FILE)
                    and load_json(preset, TASK_CONFIG_FILE).get("class_name") == "BertMaskedLM")
        if not has_head:
            raise TfkdError(f"augmenter 'mlm': the keras-hub preset '{preset}' has no trained BertMaskedLM head "
                            f"({TASK_CONFIG_FILE} of a BertMaskedLM and {TASK_WEIGHTS_FILE}); keras-hub would add "
                            f"a random one. {fix}.")
        model = keras_hub.models.BertMaskedLM.from_preset(preset)
    except TfkdError:
        raise
    except Exception as e:  # no network, an unknown handle, a damaged directory: all say the same to the user
        reason = (str(e).strip().splitlines() or [""])[0]
        reason = reason if len(reason) <= 160 else reason[:160] + "…"
        raise TfkdError(f"augmenter 'mlm': cannot load the keras-hub masked LM '{preset}' ({type(e).__name__}: "
                        f"{reason}); offline, only a local preset directory loads. {fix}.") from None
    check_masked_lm_vocabulary(preset, model.preprocessor.tokenizer.get_vocabulary()
                               if model.preprocessor is not None else None, vocabulary)
    return model


def check_masked_lm_vocabulary(preset: str, own: Optional[Sequence[str]], vocabulary: Sequence[str]) -> None:
    """Refuses a masked LM whose vocabulary (`own`, None when it has no tokenizer) is not the teacher's."""
    if own is None or list(own) != list(vocabulary):
        raise TfkdError(f"augmenter 'mlm': the masked LM '{preset}' has "
                        f"{'no tokenizer' if own is None else f'another vocabulary ({len(own)} tokens)'}, not the "
                        f"teacher's ({len(vocabulary)} tokens); its ids would mean other words. {masked_lm_fix()}.")


@register_augmenter("file")
class FileExamples(Augmenter):
    """Adds the texts of an unlabelled in-domain file (`--augment_file`) as new examples, each once.

    A `.csv`, `.tsv` or `.jsonl` file has the training data's layout: a column (key) per text field of the
    task, any label ignored. Any other file holds one example per line; a sentence pair is its two texts
    separated by a tab. Texts are tokenized with the teacher's tokenizer and cut to the run's length.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "dull"]
    >>> _ = pathlib.Path("vocab.txt").write_text("\\n".join(vocab))
    >>> _ = pathlib.Path("in_domain.txt").write_text("the film was dull\\n\\ngood film\\n")
    >>> context = AugmentContext(vocab, 16, tokenizer=make_tokenizer("vocab.txt"), file="in_domain.txt")
    >>> [decode(sides[0], vocab) for sides in FileExamples(context).examples()]
    ['the film was dull', 'good film']
    """

    perturbs = False

    def __init__(self, context: AugmentContext, **kwargs):
        super().__init__(context, **kwargs)
        check_file(context.file)
        if context.tokenizer is None:
            raise TfkdError("augmenter 'file' tokenizes its texts, and no tokenizer was given. "
                            "Fix: pass AugmentContext(tokenizer=<the teacher's tokenizer>).")

    def examples(self) -> List[Sides]:
        path, task = self.context.file, self.context.task
        pair = task is not None and task.is_pair
        texts: List[List[str]] = [[], []] if pair else [[]]
        if path.lower().endswith(TABLE_EXTENSIONS):
            if task is None:
                raise TfkdError(f"{path}: the columns of a table augment file are the task's text fields, and no "
                                "task was given. Fix: pass AugmentContext(task=...).")
            for _, record in iter_records(path, required=task.text_fields):
                for column, field in zip(texts, task.text_fields):
                    column.append(str(record[field]))
        else:
            for lineno, line in utf8_lines(path, fix="re-save the file as UTF-8"):
                if not line.strip():
                    continue
                fields = line.split("\t") if pair else [line]
                if len(fields) != len(texts):
                    raise TfkdError(f"{path}:{lineno}: {len(fields)} tab-separated texts, but the task's examples "
                                    f"are pairs. Fix: write each pair as <first text><tab><second text>.")
                for column, text in zip(texts, fields):
                    column.append(text.strip())
        if not texts[0]:
            raise TfkdError(f"{path}: no texts (the file is empty or blank). Fix: one example per line.")
        examples = Examples(texts[0], texts[1] if pair else None, np.zeros(len(texts[0]), np.int32), path,
                            has_labels=False)
        split = tokenize(examples, self.context.tokenizer, self.context.max_seq_length)
        return [split_sides(split, i) for i in range(len(split))]


def check_file(path: str) -> None:
    """Refuses a missing augment file in one line."""
    if not path:
        raise TfkdError("augmenter 'file' adds the texts of --augment_file, and none was given. "
                        "Fix: pass --augment_file=<in-domain text, one example per line, or CSV/TSV/JSONL>.")
    if not os.path.isfile(path):
        raise TfkdError(f"--augment_file: file not found: {path}. Fix: check the path.")


def augmenter_options(name: str, given: Mapping[str, Any]) -> Dict[str, Any]:
    """`given` options of augmenter `name`, checked against its declared ones; text is converted to the
    default's type ("10" → 10).

    Example:
    >>> augmenter_options("embedding_neighbours", {"top_k": "10"})
    {'top_k': 10}
    >>> augmenter_options("delete", {"top_k": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: augmenter 'delete' has no option 'top_k'. Fix: use one of probability ...
    """
    declared = AUGMENTERS.get(name).options
    checked = {}
    for key, value in given.items():
        if key not in declared:
            raise TfkdError(f"augmenter '{name}' has no option '{key}'. Fix: use one of "
                            f"{', '.join(declared) or '(none: it takes no options)'} in --augment_args.")
        kind = type(declared[key])
        if isinstance(value, str) and kind is not str:
            try:
                value = value.strip().lower() in ("true", "1", "yes") if kind is bool else kind(value)
            except ValueError:
                raise TfkdError(f"augmenter '{name}' rejects {key}={value!r}: not {kind.__name__}. "
                                f"Fix: pass a {kind.__name__} (default {declared[key]!r}).") from None
        checked[key] = value
    return checked


def check_settings(augmenters: Sequence[str], factor: int, file: str,
                   options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuses augmentation settings that cannot work, before anything is loaded: unknown names (listing the
    known ones), a negative factor, options an augmenter lacks, a file without `file` or `file` without a file."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 0:
        raise TfkdError(f"augment factor {factor!r} is not a whole number >= 0. Fix: pass --augment_factor=8 "
                        "(copies per training example; 0: none).")
    for name in augmenters:
        AUGMENTERS.get(name)
    # Options of augmenters this run leaves out are checked too (a flagfile may set them): a typo never passes.
    for name, given in options.items():
        augmenter_options(name, given)
    if "file" in augmenters:
        check_file(file)
    elif file:
        raise TfkdError("--augment_file is read by the 'file' augmenter, which --augment does not name. "
                        "Fix: add file to --augment, or drop --augment_file.")


def split_sides(split: TokenizedSplit, i: int) -> Sides:
    """Example `i` of a packed split as its one or two texts' ids, `[CLS]`/`[SEP]` removed.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    >>> [side.tolist() for side in split_sides(pack([(ids(vocab, "a b"), ids(vocab, "c"))], vocab, 16), 0)]
    [[5, 6], [7]]
    """
    return unpack_row(*split.example(i))


def pack_row(sides: Sides, cls_id: int, sep_id: int, max_seq_length: int) -> Tuple[np.ndarray, np.ndarray]:
    """`[CLS] a [SEP] (b [SEP])` ids and segment ids, cut to `max_seq_length` by BERT's rule (`longest_first`)."""
    if len(sides) == 1:
        a = sides[0][:max_seq_length - 2]
        return np.concatenate([[cls_id], a, [sep_id]]).astype(np.int32), np.zeros(len(a) + 2, np.int32)
    keep_a, keep_b = longest_first(np.array([len(sides[0])]), np.array([len(sides[1])]), max_seq_length - 3)
    a, b = sides[0][:int(keep_a[0])], sides[1][:int(keep_b[0])]
    token_ids = np.concatenate([[cls_id], a, [sep_id], b, [sep_id]]).astype(np.int32)
    return token_ids, np.concatenate([np.zeros(len(a) + 2, np.int32), np.ones(len(b) + 1, np.int32)])


def unpack_row(token_ids: np.ndarray, segment_ids: np.ndarray) -> Sides:
    """The sides of a packed row (the inverse of `pack_row` for a row that was not cut)."""
    if segment_ids[-1] == 1:  # a pair: its closing [SEP] is in segment 1
        b_start = int(np.argmax(segment_ids))
        return token_ids[1:b_start - 1].copy(), token_ids[b_start:-1].copy()
    return (token_ids[1:-1].copy(),)


def pack(examples: Sequence[Sides], vocabulary: Sequence[str], max_seq_length: int,
         labels: Optional[np.ndarray] = None) -> TokenizedSplit:
    """A `TokenizedSplit` of `examples` (sides), cut to `max_seq_length`; without `labels`, unlabelled
    (placeholder labels -1).

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    >>> split = pack([(ids(vocab, "a b"),), (ids(vocab, "b"),)], vocab, 16)
    >>> split.lengths.tolist(), split.has_labels
    ([4, 3], False)
    """
    context = AugmentContext(vocabulary, max_seq_length)
    cls_id, sep_id = context.token_id("[CLS]"), context.token_id("[SEP]")
    rows = [pack_row(sides, cls_id, sep_id, max_seq_length) for sides in examples]
    lengths = np.array([len(r[0]) for r in rows], np.int32)
    uncut = np.array([sum(len(side) for side in sides) + 1 + len(sides) for sides in examples], np.int64)
    return TokenizedSplit(
        token_ids=np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32),
        segment_ids=np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int32),
        offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        lengths=lengths,
        labels=np.full(len(rows), -1, np.int32) if labels is None else np.asarray(labels),
        index=np.arange(len(rows), dtype=np.int32),
        num_truncated=int(np.sum(lengths < uncut)),
        max_seq_length=max_seq_length,
        has_labels=labels is not None,
    )


@dataclasses.dataclass
class Augmentation:
    """The new examples `materialise` kept.

    Args:
        split: the kept examples, unlabelled (placeholder labels -1), in the order they were made.
        origin: per kept example, the training example it perturbs; -1 for an example a source added.
        made: how many examples the augmenters made.
        duplicates: how many were dropped because they repeat a `dev` example (for pairs: either text of
            one), a `train` example, or an `augmented` one made before them.
        fingerprint: a digest of the kept examples (the teacher cache of the enlarged set is keyed on it).
    """

    split: TokenizedSplit
    origin: np.ndarray
    made: int
    duplicates: Dict[str, int]
    fingerprint: str

    @property
    def kept(self) -> int:
        return len(self.split)

    @property
    def mean_length(self) -> float:
        """Mean tokens per kept example, [CLS]/[SEP] included (0 when none was kept)."""
        return float(self.split.lengths.mean()) if self.kept else 0.0


def _seed(seed: int, name: str, example: int, copy: int) -> np.random.Generator:
    # crc32, not hash(): Python salts string hashes per process.
    return np.random.default_rng([seed, zlib.crc32(name.encode()), example, copy])


def materialise(
    train: TokenizedSplit,
    dev: Optional[TokenizedSplit],
    augmenters: Sequence[str],
    factor: int,
    seed: int,
    context: AugmentContext,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Augmentation:
    """The deduplicated new examples of `augmenters` for `train`.

    Args:
        train: the tokenized training split (the teacher's ids).
        dev: the dev split in the teacher's ids; none of its texts may reach training.
        augmenters: registered augmenter names.
        factor: copies per training example, copy `j` by the `j % k`-th of the `k` perturbing augmenters.
        seed: the seed (the same seed gives the same set).
        context: vocabulary, embeddings, tokenizer, file, ... (`AugmentContext`).
        options: options by augmenter name (see `augmenter_options`).

    Returns:
        An `Augmentation`: kept examples, their origins and the counts.
    """
    options = dict(options or {})
    check_settings(augmenters, factor, context.file, options)
    instances = [(name, AUGMENTERS.get(name)(context, **augmenter_options(name, options.get(name, {}))))
                 for name in augmenters]
    perturbing = [(name, a) for name, a in instances if a.perturbs]
    originals = [split_sides(train, i) for i in range(len(train))]
    made: List[Sides] = []
    origin: List[int] = []
    for k, (name, augmenter) in enumerate(perturbing):
        copies = range(k, factor, len(perturbing))
        jobs = [(i, j) for j in copies for i in range(len(originals))]
        made += augmenter.augment([originals[i] for i, _ in jobs], [_seed(seed, name, i, j) for i, j in jobs])
        origin += [i for i, _ in jobs]
    for _, augmenter in instances:
        if not augmenter.perturbs:
            added = augmenter.examples()
            made += added
            origin += [-1] * len(added)

    def key(sides: Sides) -> Tuple[bytes, ...]:
        return tuple(np.asarray(side, np.int32).tobytes() for side in sides)

    cut = pack(made, context.vocabulary, context.max_seq_length) if made else None
    dev_texts = {text for i in range(len(dev)) for text in key(split_sides(dev, i))} if dev is not None else set()
    seen = {"train": {key(sides) for sides in originals}, "augmented": set()}
    duplicates = dict.fromkeys(DUPLICATE_KINDS, 0)
    kept: List[Sides] = []
    kept_origin: List[int] = []
    for i in range(len(made)):
        sides = split_sides(cut, i)  # as training will see it: cut to the length limit
        row = key(sides)
        kind = ("dev" if any(text in dev_texts for text in row) else "train" if row in seen["train"]
                else "augmented" if row in seen["augmented"] else None)
        if kind:
            duplicates[kind] += 1
            continue
        seen["augmented"].add(row)
        kept.append(sides)
        kept_origin.append(origin[i])
    split = pack(kept, context.vocabulary, context.max_seq_length)
    digest = hashlib.sha256()
    for array in (split.token_ids, split.segment_ids, split.offsets):
        digest.update(np.ascontiguousarray(array).tobytes())
    return Augmentation(split, np.array(kept_origin, np.int32), len(made), duplicates, digest.hexdigest())


def enlarge(train: TokenizedSplit, augmented: TokenizedSplit, labels: np.ndarray) -> Tuple[TokenizedSplit, np.ndarray]:
    """The training split followed by the augmented examples with `labels` (the teacher's), and the gold mask
    (float32 `[N + M]`: 1 for the training examples, whose labels are gold, 0 for the augmented ones).

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    >>> train = pack([(ids(vocab, "a"),)], vocab, 8, labels=np.array([1], np.int32))
    >>> split, gold = enlarge(train, pack([(ids(vocab, "b"),)], vocab, 8), np.array([0], np.int32))
    >>> split.labels.tolist(), split.index.tolist(), gold.tolist()
    ([1, 0], [0, 1], [1.0, 0.0])
    """
    n, m = len(train), len(augmented)
    split = TokenizedSplit(
        token_ids=np.concatenate([train.token_ids, augmented.token_ids]),
        segment_ids=np.concatenate([train.segment_ids, augmented.segment_ids]),
        offsets=np.concatenate([train.offsets[:-1], train.offsets[-1] + augmented.offsets]),
        lengths=np.concatenate([train.lengths, augmented.lengths]),
        labels=np.concatenate([train.labels, np.asarray(labels, train.labels.dtype)]),
        index=np.arange(n + m, dtype=np.int32),
        num_truncated=train.num_truncated + augmented.num_truncated,
        max_seq_length=train.max_seq_length,
        has_labels=train.has_labels,
    )
    return split, np.concatenate([np.ones(n, np.float32), np.zeros(m, np.float32)])
