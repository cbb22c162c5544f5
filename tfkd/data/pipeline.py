"""From texts to padded batches: tokenize once, then batch by length inside tf.data.

Tokenization runs once per split (in tf.data, 512 texts at a time, streamed
from chunks of examples by `tokenize_chunks`) and is kept as ragged numpy
arrays in a `TokenizedSplit`. Each epoch is then a
*batch plan*: lists of example ids, sorted by length within windows of
`window_batches` batches so a batch pads little, yet shuffled so batches
still mix. Every batch has exactly `batch_size` examples: with XLA every new
shape compiles anew, so only the padded length may vary, and it is rounded
up to a multiple of `pad_to_multiple_of`.

Example:
>>> import pathlib
>>> from tfkd.data.tokenizer import make_tokenizer
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\nbad\\n")
>>> texts = ["the film was good", "bad", "not good", "the film was not bad", "good", "the film"]
>>> examples = Examples(texts, None, np.array([1, 0, 0, 1, 1, 0], np.int32), "demo")
>>> split = tokenize(examples, make_tokenizer("vocab.txt"), max_seq_length=128)
>>> ds = make_dataset(split, 2, shuffle=True, seed=1, epochs=3)
>>> steps = steps_per_epoch(split, 2)  # model.fit(ds, epochs=3, steps_per_epoch=steps) sees every batch once
>>> steps, [batch["token_ids"].shape.as_list() for batch in ds.take(steps)]
(3, [[2, 4], [2, 4], [2, 8]])
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples

if TYPE_CHECKING:
    from keras_hub.models import BertTokenizer

TOKENIZE_BATCH = 512
# Every pass of a run (training, dev evaluation, teacher cache, loss preparation) batches with the
# run's value; this default is the commands' (geometric buckets, see `bucket_widths`).
DEFAULT_PAD_TO_MULTIPLE_OF = 0


@dataclasses.dataclass
class TokenizedSplit:
    """A tokenized split in ragged numpy storage; example `i` is `token_ids[offsets[i]:offsets[i + 1]]`.

    Args:
        token_ids: all examples' packed ids (`[CLS] a [SEP] (b [SEP])`), concatenated, int32.
        segment_ids: the segment id (0 or 1) of each of those tokens, int32.
        offsets: row starts, int64 `[N + 1]`.
        lengths: tokens per example, int32 `[N]`.
        labels: class ids (int32) or scores (float32), `[N]`.
        index: the example's position in the source, int32 `[N]`; fixed before any
            shuffling, so predictions can be put back in order.
        num_truncated: how many examples were cut to `max_seq_length`.
        max_seq_length: the length limit used.
        has_labels: False when the source had no labels (`labels` are placeholders).

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\ngood\\n")
    >>> examples = Examples(["the film", "was good"], ["good", "the film"], np.array([1, 0], np.int32), "demo")
    >>> split = tokenize(examples, make_tokenizer("vocab.txt"), max_seq_length=16)
    >>> split.token_ids[split.offsets[1]:split.offsets[2]], split.example(1)[1]  # [CLS] was good [SEP] the film [SEP]
    (array([2, 7, 8, 3, 5, 6, 3], dtype=int32), array([0, 0, 0, 0, 1, 1, 1], dtype=int32))
    """

    token_ids: np.ndarray
    segment_ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    num_truncated: int
    max_seq_length: int
    has_labels: bool = True

    def __len__(self) -> int:
        return len(self.lengths)

    def example(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """Token ids and segment ids of example `i`."""
        row = slice(self.offsets[i], self.offsets[i + 1])
        return self.token_ids[row], self.segment_ids[row]

    def head(self, n: int) -> "TokenizedSplit":
        """The first `n` examples (views of this split's arrays, not copies); `num_truncated` stays the whole
        split's, since which examples were cut is not recorded.

        >>> split = TokenizedSplit(np.arange(5, dtype=np.int32), np.zeros(5, np.int32), np.array([0, 2, 5]),
        ...                        np.array([2, 3], np.int32), np.array([1, 0], np.int32), np.array([0, 1], np.int32),
        ...                        num_truncated=0, max_seq_length=8)
        >>> len(split.head(1)), split.head(1).example(0)[0].tolist()
        (1, [0, 1])
        """
        end = int(self.offsets[n])
        return dataclasses.replace(self, token_ids=self.token_ids[:end], segment_ids=self.segment_ids[:end],
                                   offsets=self.offsets[:n + 1], lengths=self.lengths[:n], labels=self.labels[:n],
                                   index=self.index[:n])


class _Int32Stream:
    """int32 values appended piece by piece, returned as one array while holding about one copy of them.

    Pieces are gathered in 64 MB segments, allocations large enough that the
    C library always maps them separately, so a freed segment goes back to
    the operating system; `array` moves the segments into the result (whose
    pages are only allocated as they are written) one at a time.
    """

    SEGMENT = 1 << 24

    def __init__(self) -> None:
        self.segments: List[np.ndarray] = []
        self.used = self.SEGMENT  # values in the last segment; full: the next value opens a segment

    def extend(self, values: np.ndarray) -> None:
        while len(values):
            if self.used == self.SEGMENT:
                self.segments.append(np.empty(self.SEGMENT, np.int32))
                self.used = 0
            n = min(len(values), self.SEGMENT - self.used)
            self.segments[-1][self.used:self.used + n] = values[:n]
            self.used, values = self.used + n, values[n:]

    def array(self) -> np.ndarray:
        total = (len(self.segments) - 1) * self.SEGMENT + self.used if self.segments else 0
        out = np.empty(total, np.int32)
        for start in range(0, total, self.SEGMENT):
            segment = self.segments.pop(0)
            out[start:start + self.SEGMENT] = segment[:total - start]
            del segment
        return out


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`concatenate([arange(s, s + c) for s, c in zip(starts, counts)])` without the Python loop."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1] if len(ends) else 0)


def longest_first(len_a: np.ndarray, len_b: np.ndarray, budget: int) -> Tuple[np.ndarray, np.ndarray]:
    """Kept lengths under BERT's pair truncation: drop the last token of the longer text, of b on ties.

    Closed form of the reference loop, vectorised: when the pair is too long,
    a keeps `max(ceil(budget / 2), budget - len_b)` tokens at most and b the rest.

    Args:
        len_a: lengths of the first texts.
        len_b: lengths of the second texts.
        budget: tokens available for both (max_seq_length - 3).

    Example:
    >>> longest_first(np.array([10, 2]), np.array([10, 10]), 7)
    (array([4, 2]), array([3, 5]))
    """
    over = len_a + len_b > budget
    keep_a = np.where(over, np.minimum(len_a, np.maximum((budget + 1) // 2, budget - len_b)), len_a)
    keep_b = np.where(over, np.minimum(len_b, budget - keep_a), len_b)
    return keep_a, keep_b


def _pack(texts: Tuple[tf.RaggedTensor, ...], budget: int, cls_id: int, sep_id: int):
    """One tokenizer batch packed: (token ids, segment ids, lengths, truncated examples)."""
    flat_a, len_a = texts[0].flat_values.numpy().astype(np.int32), texts[0].row_lengths().numpy()
    starts_a = np.cumsum(len_a) - len_a
    if len(texts) == 2:
        flat_b, len_b = texts[1].flat_values.numpy().astype(np.int32), texts[1].row_lengths().numpy()
        starts_b = np.cumsum(len_b) - len_b
        keep_a, keep_b = longest_first(len_a, len_b, budget)
    else:
        len_b = keep_b = np.zeros_like(len_a)
        keep_a = np.minimum(len_a, budget)

    lengths = keep_a + keep_b + 1 + len(texts)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = offsets[:-1]
    token_ids = np.empty(offsets[-1], np.int32)
    segment_ids = np.zeros(offsets[-1], np.int32)
    token_ids[starts] = cls_id
    token_ids[_ranges(starts + 1, keep_a)] = flat_a[_ranges(starts_a, keep_a)]
    token_ids[starts + 1 + keep_a] = sep_id
    if len(texts) == 2:
        positions_b = _ranges(starts + 2 + keep_a, keep_b)
        token_ids[positions_b] = flat_b[_ranges(starts_b, keep_b)]
        token_ids[offsets[1:] - 1] = sep_id
        segment_ids[positions_b] = 1
        segment_ids[offsets[1:] - 1] = 1
    return token_ids, segment_ids, lengths.astype(np.int32), int(np.sum((keep_a < len_a) | (keep_b < len_b)))


def tokenize(examples: Examples, tokenizer: "BertTokenizer", max_seq_length: int) -> TokenizedSplit:
    """Tokenizes and packs `examples` as `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`.

    Texts longer than `max_seq_length` lose tokens from their end; for pairs
    the longer text is cut first (BERT's rule).

    Args:
        examples: the split's texts and labels.
        tokenizer: a keras-hub `BertTokenizer` (see `make_tokenizer`).
        max_seq_length: the most tokens per example, [CLS] and [SEP]s included.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> examples = Examples(["the film was not good", "good"], None, np.array([0, 1], np.int32), "demo")
    >>> split = tokenize(examples, make_tokenizer("vocab.txt"), max_seq_length=5)
    >>> split.lengths.tolist(), split.num_truncated  # [CLS] the film was [SEP]: cut to 5 tokens
    ([5, 3], 1)
    """
    return tokenize_chunks([examples], tokenizer, max_seq_length)


def tokenize_chunks(chunks: Iterable[Examples], tokenizer: "BertTokenizer", max_seq_length: int) -> TokenizedSplit:
    """`tokenize` of the chunks of one split, one after the other, as they arrive.

    Only a chunk's texts are held at a time, and the token arrays are built
    in place (see `_Int32Stream`), so a split of millions of rows streamed
    from a file (`tfkd.data.load.stream_split`) needs little memory besides
    its token arrays. One tf.data pipeline tokenizes every chunk: tracing the
    tokenizer costs more than tokenizing a small split.

    Args:
        chunks: `Examples` of one source, all single texts or all pairs.
        tokenizer: a keras-hub `BertTokenizer` (see `make_tokenizer`).
        max_seq_length: the most tokens per example, [CLS] and [SEP]s included.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\ngood\\n")
    >>> chunks = (Examples([text], None, np.zeros(1, np.int32), "demo") for text in ["the film", "was good", "good"])
    >>> split = tokenize_chunks(chunks, make_tokenizer("vocab.txt"), 128)  # e.g. chunks of `stream_split`
    >>> split.lengths.tolist(), split.index.tolist()
    ([4, 4, 3], [0, 1, 2])
    """
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        raise TfkdError("no examples to tokenize. Fix: check the data source.")
    num_special = 3 if first.is_pair else 2
    if max_seq_length < num_special + (2 if first.is_pair else 1):
        raise TfkdError(
            f"max_seq_length={max_seq_length} leaves no room for text after [CLS]/[SEP]. "
            "Fix: pass a larger --max_seq_length (e.g. 128)."
        )
    labels: List[np.ndarray] = []
    failures: List[Exception] = []

    def text_batches():
        try:
            for chunk in itertools.chain([first], chunks):
                if chunk.is_pair != first.is_pair or chunk.has_labels != first.has_labels:
                    raise ValueError(f"{chunk.source}: chunks differ in being pairs or having labels")
                labels.append(chunk.labels)
                for start in range(0, len(chunk), TOKENIZE_BATCH):
                    batch = slice(start, start + TOKENIZE_BATCH)
                    yield chunk.text_a[batch]
                    if chunk.is_pair:
                        yield chunk.text_b[batch]
        except Exception as e:  # tf.data would re-raise it as an error without the original type and message
            failures.append(e)

    # A pair's two texts are consecutive elements, so each tokenizer call can run in parallel.
    dataset = iter(tf.data.Dataset.from_generator(text_batches, output_signature=tf.TensorSpec([None], tf.string))
                   .map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE))
    token_ids, segment_ids = _Int32Stream(), _Int32Stream()
    lengths: List[np.ndarray] = []
    num_truncated = 0
    for texts in zip(*[dataset] * (2 if first.is_pair else 1)):
        batch_ids, batch_segments, batch_lengths, truncated = _pack(
            texts, max_seq_length - num_special, tokenizer.cls_token_id, tokenizer.sep_token_id)
        token_ids.extend(batch_ids)
        segment_ids.extend(batch_segments)
        lengths.append(batch_lengths)
        num_truncated += truncated
    if failures:
        raise failures[0]
    if not lengths:
        raise TfkdError(f"{first.source}: no examples to tokenize. Fix: check the data source.")
    lengths = np.concatenate(lengths)
    return TokenizedSplit(
        token_ids=token_ids.array(),
        segment_ids=segment_ids.array(),
        offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        lengths=lengths,
        labels=np.concatenate(labels),
        index=np.arange(len(lengths), dtype=np.int32),
        num_truncated=num_truncated,
        max_seq_length=max_seq_length,
        has_labels=first.has_labels,
    )


def _round_up(n, multiple: int):
    return -(-n // multiple) * multiple


def bucket_widths(max_length: int, pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF) -> np.ndarray:
    """The padded lengths a batch can get, ascending, the last one ≥ `max_length`.

    `pad_to_multiple_of > 0`: its multiples. `0` ("geometric"): multiples of
    `max(4, 2^⌈log2 n⌉ / 8)`, i.e. 4, 8, …, 32, 40, 48, …, 64, 80, 96, …: four
    shapes per octave, so padding stays under ~1/8 of a long batch and short
    batches (SST-2's 13 tokens) are not padded to twice their length, for
    about as many compiled shapes as multiples of 8.

    Example:
    >>> bucket_widths(40, 0).tolist()
    [4, 8, 12, 16, 20, 24, 28, 32, 40]
    """
    if pad_to_multiple_of < 0:
        raise ValueError(f"pad_to_multiple_of must be >= 0, got {pad_to_multiple_of}")
    if pad_to_multiple_of:
        return np.arange(1, -(-max(max_length, 1) // pad_to_multiple_of) + 1) * pad_to_multiple_of
    widths, width = [], 0
    while width < max_length:
        octave = 1 << max(width, 1).bit_length()  # the power of two above `width`
        width += max(4, octave // 8)
        widths.append(width)
    return np.asarray(widths or [4], np.int64)


def _padded_width(max_length, widths: np.ndarray):
    return widths[np.searchsorted(widths, max_length)]


def steps_per_epoch(split: TokenizedSplit, batch_size: int) -> int:
    """Batches per epoch: every example once, the last batch filled up.

    Args:
        split: the tokenized split.
        batch_size: examples per batch.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\ngood\\n")
    >>> split = tokenize(Examples(["good"] * 5, None, np.zeros(5, np.int32), "demo"), make_tokenizer("vocab.txt"), 8)
    >>> steps_per_epoch(split, 2)  # 5 examples
    3
    """
    return -(-len(split) // batch_size)


def batch_plan(
    lengths: np.ndarray, batch_size: int, *, shuffle: bool, seed: int, epoch: int, window_batches: int = 50
) -> List[np.ndarray]:
    """The example ids of each batch of one epoch; every batch has `batch_size` of them.

    Training (`shuffle=True`): a permutation seeded by `(seed, epoch)`,
    extended to a whole number of batches by wrapping around to its start (so
    every example is seen each epoch and shapes stay fixed), cut into windows
    of `batch_size * window_batches` examples, each sorted by length and cut
    into batches, and the batch order shuffled.

    Evaluation (`shuffle=False`): all examples sorted by length (stable); the
    last batch is filled with copies of its longest example, which
    `make_dataset` gives weight 0: positions from `len(lengths)` on in the
    flattened plan are padding.

    Args:
        lengths: tokens per example.
        batch_size: examples per batch.
        shuffle: training order (True) or evaluation order (False).
        seed: the run's seed.
        epoch: the epoch number (0-based); each epoch has its own order.
        window_batches: batches per sorting window; larger pads less but
            mixes lengths less.

    Example:
    >>> [b.tolist() for b in batch_plan(np.array([5, 3, 9]), 2, shuffle=False, seed=0, epoch=0)]
    [[1, 0], [2, 2]]
    """
    num_examples = len(lengths)
    if num_examples == 0 or batch_size < 1 or window_batches < 1:
        raise ValueError(f"need examples, batch_size >= 1 and window_batches >= 1; got {num_examples}, "
                         f"{batch_size}, {window_batches}")
    total = _round_up(num_examples, batch_size)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        order = np.concatenate([order, np.full(total - num_examples, order[-1])])
        return list(order.reshape(-1, batch_size))
    rng = np.random.default_rng([seed, epoch])
    order = np.resize(rng.permutation(num_examples), total)  # np.resize repeats cyclically
    window = batch_size * window_batches
    batches: List[np.ndarray] = []
    for start in range(0, total, window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk.reshape(-1, batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _padded_lengths(split: TokenizedSplit, plan: List[np.ndarray], pad_to_multiple_of: int) -> np.ndarray:
    widths = bucket_widths(int(split.lengths.max(initial=1)), pad_to_multiple_of)
    return np.array([_padded_width(int(split.lengths[b].max()), widths) for b in plan], np.int64)


def padding_efficiency(
    split: TokenizedSplit, batch_size: int, pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF, *, seed: int = 0, window_batches: int = 50
) -> float:
    """Real tokens / padded tokens over the epoch-0 training plan (1.0: no padding).

    Args:
        split: the tokenized training split.
        batch_size: examples per batch.
        pad_to_multiple_of: the padded-length granularity (0: geometric buckets, see `bucket_widths`).
        seed: the plan's seed.
        window_batches: batches per sorting window.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> texts = ["the film was not good", "good", "the film was good", "not good"]
    >>> split = tokenize(Examples(texts, None, np.zeros(4, np.int32), "demo"), make_tokenizer("vocab.txt"), 16)
    >>> round(padding_efficiency(split, 2), 3), round(padding_efficiency(split, 2, pad_to_multiple_of=8), 3)
    (0.833, 0.625)
    """
    plan = batch_plan(split.lengths, batch_size, shuffle=True, seed=seed, epoch=0, window_batches=window_batches)
    real = sum(int(split.lengths[b].sum()) for b in plan)
    return real / float(batch_size * _padded_lengths(split, plan, pad_to_multiple_of).sum())


def bucket_lengths(
    split: TokenizedSplit,
    batch_size: int,
    pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epochs: int = 1,
    window_batches: int = 50,
) -> List[int]:
    """The distinct padded lengths of the plans of `epochs` epochs: the shapes a run compiles.

    Args:
        split: the tokenized split.
        batch_size: examples per batch.
        pad_to_multiple_of: the padded-length granularity (0: geometric buckets, see `bucket_widths`).
        shuffle: training plans (True) or the evaluation plan (False).
        seed: the plans' seed.
        epochs: how many epochs' plans to look at.
        window_batches: batches per sorting window.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> texts = ["the film was not good", "good", "the film was good", "not good"]
    >>> split = tokenize(Examples(texts, None, np.zeros(4, np.int32), "demo"), make_tokenizer("vocab.txt"), 16)
    >>> split.lengths.tolist()
    [7, 3, 6, 4]
    >>> bucket_lengths(split, 2), bucket_lengths(split, 2, pad_to_multiple_of=8)
    ([4, 8], [8])
    """
    lengths = set()
    for epoch in range(epochs if shuffle else 1):
        plan = batch_plan(split.lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                          window_batches=window_batches)
        lengths.update(int(n) for n in _padded_lengths(split, plan, pad_to_multiple_of))
    return sorted(lengths)


def length_percentile(split: TokenizedSplit, q: float) -> float:
    """The `q`-th percentile (0-100) of the example lengths, in tokens.

    Args:
        split: the tokenized split.
        q: the percentile.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> texts = ["the film was not good", "good", "the film was good", "not good"]
    >>> split = tokenize(Examples(texts, None, np.zeros(4, np.int32), "demo"), make_tokenizer("vocab.txt"), 16)
    >>> length_percentile(split, 50), length_percentile(split, 100)  # lengths 7, 3, 6, 4
    (5.0, 7.0)
    """
    return float(np.percentile(split.lengths, q))


def make_dataset(
    split: TokenizedSplit,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epochs: int = 1,
    start_epoch: int = 0,
    start_step: int = 0,
    pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF,
    window_batches: int = 50,
    extras: Optional[Mapping[str, np.ndarray]] = None,
) -> tf.data.Dataset:
    """Padded batches for epochs `start_epoch .. epochs - 1`, one after the other.

    Each element is a dict: `token_ids`, `segment_ids` (int32 `[B, n]`),
    `padding_mask` (int32 `[B, n]`, 1 = real token; not bool, which Keras cannot
    reduce across replicas when it builds a distributed model), `labels` (int32, or float32 for
    regression, `[B]`), `index` (int32 `[B]`, the example's position in the
    source) and `weight` (float32 `[B]`: 0 for the filler copies of an
    evaluation plan's last batch), plus one entry per `extras` array. `n` is
    the batch's longest example rounded up to `pad_to_multiple_of`. Gathering
    and padding run inside tf.data.

    One dataset serves a whole `fit(ds, epochs=epochs, initial_epoch=start_epoch,
    steps_per_epoch=steps_per_epoch(split, batch_size))`, and resuming at an
    epoch replays that epoch's plan; `start_step` skips the first batches of
    `start_epoch` in the plan itself (no batch is gathered to be dropped), so a
    run resumed mid-epoch sees exactly the batches it had not trained on.

    Args:
        split: the tokenized split.
        batch_size: examples per batch.
        shuffle: training plans (True) or the evaluation order (False).
        seed: the run's seed (training plans depend on seed and epoch).
        epochs: the epoch to stop before.
        start_epoch: the first epoch (0-based).
        start_step: batches of `start_epoch` already trained on (resuming mid-epoch).
        pad_to_multiple_of: the padded-length granularity (0: geometric buckets, see `bucket_widths`).
        window_batches: batches per sorting window (see `batch_plan`).
        extras: per-example arrays `[N, ...]` in the split's row order (e.g.
            cached teacher outputs), gathered into each batch under their key.

    Example:
    >>> import pathlib
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> texts = ["the film was not good", "good", "the film was good"]
    >>> split = tokenize(Examples(texts, None, np.array([0, 1, 1], np.int32), "demo"), make_tokenizer("vocab.txt"), 16)
    >>> for batch in make_dataset(split, 2, shuffle=False, seed=0):  # evaluation order: shortest first
    ...     print(batch["token_ids"].numpy().tolist(), batch["index"].numpy().tolist(), batch["weight"].numpy().tolist())
    [[2, 9, 3, 0, 0, 0, 0, 0], [2, 5, 6, 7, 9, 3, 0, 0]] [1, 2] [1.0, 1.0]
    [[2, 5, 6, 7, 8, 9, 3, 0], [2, 5, 6, 7, 8, 9, 3, 0]] [0, 0] [1.0, 0.0]
    """
    steps = steps_per_epoch(split, batch_size)
    if not 0 <= start_step < steps:
        raise ValueError(f"start_step must be in 0..{steps - 1} (batches per epoch), got {start_step}")
    plans = [
        np.stack(batch_plan(split.lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                            window_batches=window_batches))
        for epoch in range(start_epoch, epochs)
    ]
    plan = np.concatenate(plans) if plans else np.zeros((0, batch_size), np.int64)
    real = np.arange(steps * batch_size) < (steps * batch_size if shuffle else len(split))
    weights = np.tile(real.reshape(steps, batch_size), (len(plans), 1)).astype(np.float32)
    plan, weights = plan[start_step:], weights[start_step:]

    token_ids = tf.RaggedTensor.from_row_splits(split.token_ids, split.offsets, validate=False)
    segment_ids = tf.RaggedTensor.from_row_splits(split.segment_ids, split.offsets, validate=False)
    lengths = tf.constant(split.lengths)
    labels = tf.constant(split.labels)
    index = tf.constant(split.index)

    widths = tf.constant(bucket_widths(int(split.lengths.max(initial=1)), pad_to_multiple_of), tf.int32)
    extras = {key: tf.constant(value) for key, value in (extras or {}).items()}
    for key, value in extras.items():
        if value.shape[0] != len(split):
            raise ValueError(f"extras['{key}'] has {value.shape[0]} rows for a split of {len(split)} examples")

    def gather(batch, weight):
        batch_lengths = tf.gather(lengths, batch)
        width = tf.gather(widths, tf.searchsorted(widths, tf.cast(tf.reduce_max(batch_lengths), tf.int32)[None]))[0]
        shape = tf.stack([batch_size, width])
        return {
            "token_ids": tf.ensure_shape(tf.gather(token_ids, batch).to_tensor(0, shape=shape), [batch_size, None]),
            "segment_ids": tf.ensure_shape(tf.gather(segment_ids, batch).to_tensor(0, shape=shape),
                                           [batch_size, None]),
            "padding_mask": tf.sequence_mask(batch_lengths, width, dtype=tf.int32),
            "labels": tf.gather(labels, batch),
            "index": tf.gather(index, batch),
            "weight": weight,
        } | {key: tf.gather(value, batch) for key, value in extras.items()}

    # Each element is a global batch: under MultiWorkerMirroredStrategy every
    # worker builds the same plan and takes its replicas' rows of each batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.from_tensor_slices((plan.astype(np.int32), weights))
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
