"""Tokenization inside the exported graphs: raw text in, packed BERT inputs out.

Two builds of the same packing (`[CLS] a [SEP] (b [SEP])`, BERT's
longest-first truncation, exactly as `tfkd.data.pipeline.tokenize` packs
training data):

- `serving_preprocessor`: for the TF Serving SavedModel. It reuses the
  training tokenizer (`tfkd.data.make_tokenizer`, keras-hub's
  `BertTokenizer`), so served text is tokenized exactly as in training, for
  a batch of any size, padded to its longest row.
- `lite_preprocessor`: for the text-input TFLite model. LiteRT has kernels
  for tensorflow-text's `FastBertNormalize` and `FastWordpieceTokenize` ops
  only, so it uses `tensorflow_text.FastBertTokenizer` (same vocabulary,
  lowercasing and accent stripping as BERT's reference tokenizer) and packs
  one example into a fixed length with builtin ops. keras-hub case-folds a
  few rare characters differently, so on rare inputs the two can disagree;
  `tfkd.export.validate` measures how often.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import tensorflow as tf
import tensorflow_text

from tfkd.data import make_tokenizer
from tfkd.data.tokenizer import read_vocab

Packed = Tuple[tf.Tensor, tf.Tensor, tf.Tensor]


def longest_first(len_a: tf.Tensor, len_b: tf.Tensor, budget: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """Kept lengths of a pair under BERT's truncation; the graph twin of `tfkd.data.pipeline.longest_first`.

    Args:
        len_a: lengths of the first texts (scalar or vector, int32).
        len_b: lengths of the second texts.
        budget: tokens available to both texts (max length - 3).

    Example:
    >>> longest_first(tf.constant([10, 2]), tf.constant([10, 10]), 7)
    (<tf.Tensor: ... numpy=array([4, 2], dtype=int32)>, <tf.Tensor: ... numpy=array([3, 5], dtype=int32)>)
    """
    over = len_a + len_b > budget
    keep_a = tf.where(over, tf.minimum(len_a, tf.maximum((budget + 1) // 2, budget - len_b)), len_a)
    keep_b = tf.where(over, tf.minimum(len_b, budget - keep_a), len_b)
    return keep_a, keep_b


def _kept_lengths(lengths: Sequence[tf.Tensor], max_seq_length: int) -> List[tf.Tensor]:
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], max_seq_length - 2)]
    return list(longest_first(lengths[0], lengths[1], max_seq_length - 3))


def pack(
    pieces: Sequence[tf.Tensor],
    lengths: Sequence[tf.Tensor],
    max_seq_length: int,
    cls_id: int,
    sep_id: int,
    width=None,
) -> Packed:
    """`[CLS] a [SEP] (b [SEP])` from padded word-piece ids, in dense ops (builtin ops in TFLite).

    Args:
        pieces: per text, word-piece ids int32 `[B, L]`, padded.
        lengths: per text, the real lengths int32 `[B]`.
        max_seq_length: the most tokens per packed example.
        cls_id: the id of [CLS].
        sep_id: the id of [SEP].
        width: the packed width (default: the longest packed example).

    Returns:
        `(token_ids, segment_ids, padding_mask)`, int32 `[B, width]`.
    """
    keep = _kept_lengths(lengths, max_seq_length)
    total = 1 + sum(k + 1 for k in keep)
    if width is None:
        width = tf.reduce_max(total)
    position = tf.range(width)[None, :]
    blank = tf.zeros_like(total)[:, None] + tf.zeros_like(position)  # [B, width]
    token_ids = tf.where(position == 0, cls_id, blank)
    segment_ids = blank
    start = tf.ones_like(total)
    for segment, (ids, kept) in enumerate(zip(pieces, keep)):
        ids = tf.pad(ids, [[0, 0], [0, 1]])  # a column to gather from when every text is empty
        offset = position - start[:, None]
        inside = (offset >= 0) & (offset < kept[:, None])
        gathered = tf.gather(ids, tf.clip_by_value(offset, 0, tf.shape(ids)[1] - 1), batch_dims=1)
        token_ids = tf.where(inside, gathered, token_ids)
        is_sep = offset == kept[:, None]
        token_ids = tf.where(is_sep, sep_id, token_ids)
        segment_ids = tf.where(inside | is_sep, segment, segment_ids)
        start = start + kept + 1
    padding_mask = tf.cast(position < total[:, None], tf.int32)
    return token_ids, segment_ids, padding_mask


def serving_preprocessor(vocab_path: str, lowercase: bool, max_seq_length: int):
    """`(tokenizer, fn)`: `fn(*texts) -> (token_ids, segment_ids, padding_mask)` int32 `[B, n]`.

    `n` is the longest packed row of the batch (at most `max_seq_length`).
    The tokenizer is returned so the SavedModel can track its resources.

    Args:
        vocab_path: the model's `vocab.txt`.
        lowercase: whether the vocabulary is uncased.
        max_seq_length: the most tokens per example, [CLS]/[SEP] included.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> _, preprocess = serving_preprocessor("vocab.txt", True, 128)
    >>> # Traced, as in the SavedModel: called eagerly, a keras-hub tokenizer returns Python lists.
    >>> ids, segments, mask = tf.function(preprocess)(tf.constant(["a fine film", "A film"]))
    >>> ids.numpy().tolist(), mask.numpy().tolist()  # n = 5, the longest row
    ([[2, 5, 6, 7, 3], [2, 5, 7, 3, 0]], [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    """
    tokenizer = make_tokenizer(vocab_path, lowercase)

    def preprocess(*texts: tf.Tensor) -> Packed:
        pieces = [tf.cast(tokenizer(text), tf.int32) for text in texts]
        lengths = [tf.cast(p.row_lengths(), tf.int32) for p in pieces]
        return pack([p.to_tensor() for p in pieces], lengths, max_seq_length,
                    tokenizer.cls_token_id, tokenizer.sep_token_id)

    return tokenizer, preprocess


def lite_preprocessor(vocab_path: str, lowercase: bool, seq_length: int):
    """`(tokenizer, fn)`: `fn(*texts) -> (token_ids, segment_ids, padding_mask)` int32 `[1, seq_length]`.

    One example per call (each text a `[1]` string tensor); truncation and
    padding use builtin TFLite ops only, the tokenizer tensorflow-text's
    LiteRT custom ops.

    Args:
        vocab_path: the model's `vocab.txt`.
        lowercase: lowercase, NFD-normalize and strip accents (uncased vocabularies).
        seq_length: the fixed packed length.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> _, preprocess = lite_preprocessor("vocab.txt", True, 8)
    >>> ids, segments, mask = preprocess(tf.constant(["a fine film"]))
    >>> ids.numpy().tolist(), mask.numpy().tolist()
    ([[2, 5, 6, 7, 3, 0, 0, 0]], [[1, 1, 1, 1, 1, 0, 0, 0]])
    """
    vocab = read_vocab(vocab_path)
    tokenizer = tensorflow_text.FastBertTokenizer(
        vocab=vocab, token_out_type=tf.int32, lower_case_nfd_strip_accents=lowercase
    )

    def preprocess(*texts: tf.Tensor) -> Packed:
        # One example: its word pieces are the flat values, with no padding.
        pieces = [tokenizer.tokenize(text).flat_values[None, :] for text in texts]
        lengths = [tf.shape(p)[1:] for p in pieces]
        packed = pack(pieces, lengths, seq_length, vocab.index("[CLS]"), vocab.index("[SEP]"), width=seq_length)
        return tuple(tf.reshape(t, [1, seq_length]) for t in packed)

    return tokenizer, preprocess
