import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.pipeline import (
    TokenizedSplit,
    batch_plan,
    bucket_lengths,
    bucket_widths,
    length_percentile,
    longest_first,
    make_dataset,
    padding_efficiency,
    steps_per_epoch,
    tokenize,
)
from tfkd.data.tokenizer import make_tokenizer, vocab_checksum

CLS, SEP = 2, 3
A, B, C, D, E = 5, 6, 7, 8, 9


def split_of(lengths, labels=None, max_seq_length=128) -> TokenizedSplit:
    """A split whose example i is `lengths[i]` copies of the id i + 10 (segment 1 on the second half)."""
    lengths = np.asarray(lengths, np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.repeat(np.arange(len(lengths), dtype=np.int32) + 10, lengths)
    segments = np.concatenate([(np.arange(n) >= n // 2).astype(np.int32) for n in lengths])
    if labels is None:
        labels = np.arange(len(lengths), dtype=np.int32) % 2
    return TokenizedSplit(ids, segments, offsets, lengths, labels, np.arange(len(lengths), dtype=np.int32), 0,
                          max_seq_length)


def bert_truncate(len_a, len_b, budget):
    """The reference loop of BERT's `_truncate_seq_pair`."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


# --- tokenizer -------------------------------------------------------------------------------

def test_tokenizer_lowercases_and_strips_accents(tokenizer):
    assert list(tokenizer(["The Café movies"])) == [[10, 12, 11, 13]]


def test_tokenizer_errors(tmp_path):
    with pytest.raises(TfkdError, match="vocabulary file not found"):
        make_tokenizer(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nb\n")
    with pytest.raises(TfkdError, match=r"lacks \[PAD\], \[UNK\], \[CLS\], \[SEP\], \[MASK\]"):
        make_tokenizer(str(bad))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(TfkdError, match="latin1.txt is not UTF-8 text .*Fix"):
        make_tokenizer(str(latin1))


def test_vocab_checksum_is_sha256(vocab_path):
    import hashlib

    with open(vocab_path, "rb") as f:
        assert vocab_checksum(vocab_path) == hashlib.sha256(f.read()).hexdigest()


# --- tokenize ------------------------------------------------------------------------------

def test_single_sentences_are_packed_with_cls_sep(tokenizer):
    ex = Examples(["a b c", "", "the movie"], None, np.array([1, 0, 1], np.int32), "t")
    split = tokenize(ex, tokenizer, max_seq_length=16)
    assert split.example(0)[0].tolist() == [CLS, A, B, C, SEP]
    assert split.example(1)[0].tolist() == [CLS, SEP]
    assert split.example(2)[0].tolist() == [CLS, 10, 11, SEP]
    assert split.segment_ids.sum() == 0 and split.lengths.tolist() == [5, 2, 4]
    assert split.token_ids.dtype == split.segment_ids.dtype == split.lengths.dtype == np.int32
    assert split.index.tolist() == [0, 1, 2] and split.labels.tolist() == [1, 0, 1] and split.num_truncated == 0


def test_pairs_get_segment_ids(tokenizer):
    ex = Examples(["a b"], ["c d e"], np.array([0], np.int32), "t")
    ids, segments = tokenize(ex, tokenizer, max_seq_length=16).example(0)
    assert ids.tolist() == [CLS, A, B, SEP, C, D, E, SEP]
    assert segments.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_truncation_cuts_the_longer_text_first(tokenizer):
    ex = Examples(["a a a a a a", "a b", "a b c d e"], ["b b", "c", "a b c d e"], np.zeros(3, np.int32), "t")
    split = tokenize(ex, tokenizer, max_seq_length=8)  # 5 tokens for both texts
    assert split.example(0)[0].tolist() == [CLS, A, A, A, SEP, B, B, SEP]
    assert split.example(1)[0].tolist() == [CLS, A, B, SEP, C, SEP]
    assert split.example(2)[0].tolist() == [CLS, A, B, C, SEP, A, B, SEP]  # ties: b loses first
    assert split.num_truncated == 2 and split.lengths.max() == 8


def test_single_sentence_truncation_keeps_the_final_sep(tokenizer):
    split = tokenize(Examples(["a b c d e"], None, np.zeros(1, np.int32), "t"), tokenizer, max_seq_length=4)
    assert split.example(0)[0].tolist() == [CLS, A, B, SEP] and split.num_truncated == 1


def test_longest_first_matches_berts_loop():
    grid = np.array(list(itertools.product(range(12), range(12))))
    for budget in range(1, 20):
        keep_a, keep_b = longest_first(grid[:, 0], grid[:, 1], budget)
        expected = np.array([bert_truncate(a, b, budget) for a, b in grid])
        np.testing.assert_array_equal(np.stack([keep_a, keep_b], 1), expected)


def test_tokenize_keeps_order_across_tokenizer_batches(tokenizer):
    texts = ["a " * (i % 5 + 1) for i in range(1100)]  # more than one 512-text batch
    split = tokenize(Examples(texts, None, np.zeros(1100, np.int32), "t"), tokenizer, max_seq_length=16)
    np.testing.assert_array_equal(split.lengths, [i % 5 + 3 for i in range(1100)])
    np.testing.assert_array_equal(split.index, np.arange(1100))


def test_too_small_max_seq_length(tokenizer):
    with pytest.raises(TfkdError, match="max_seq_length=4 leaves no room"):
        tokenize(Examples(["a"], ["b"], np.zeros(1, np.int32), "t"), tokenizer, max_seq_length=4)


# --- batch_plan ----------------------------------------------------------------------------

LENGTHS = np.random.default_rng(0).integers(3, 60, size=103)


def test_train_batches_are_full_and_cover_every_example_each_epoch():
    for epoch in range(3):
        plan = batch_plan(LENGTHS, 8, shuffle=True, seed=1, epoch=epoch, window_batches=4)
        assert len(plan) == 13 == steps_per_epoch(split_of(LENGTHS), 8)
        assert all(len(b) == 8 for b in plan)
        ids = np.concatenate(plan)
        assert set(ids.tolist()) == set(range(103)) and len(ids) == 104  # one wrapped-around example


def test_batch_size_larger_than_the_data_wraps_around():
    plan = batch_plan(np.array([4, 2, 3]), 8, shuffle=True, seed=0, epoch=0)
    assert len(plan) == 1 and len(plan[0]) == 8 and set(plan[0].tolist()) == {0, 1, 2}


def test_plans_are_deterministic_per_seed_and_epoch():
    def plan(seed, epoch):
        return np.stack(batch_plan(LENGTHS, 8, shuffle=True, seed=seed, epoch=epoch, window_batches=4))

    np.testing.assert_array_equal(plan(1, 2), plan(1, 2))
    assert not np.array_equal(plan(1, 2), plan(1, 3))
    assert not np.array_equal(plan(1, 2), plan(2, 2))


def test_batches_are_sorted_within_windows():
    for window_batches in (1, 3, 50):
        for batch in batch_plan(LENGTHS, 8, shuffle=True, seed=1, epoch=0, window_batches=window_batches):
            assert np.all(np.diff(LENGTHS[batch]) >= 0)
    # One window spanning the epoch: batches hold consecutive runs of the sorted lengths.
    plan = sorted(batch_plan(LENGTHS, 8, shuffle=True, seed=1, epoch=0, window_batches=50),
                  key=lambda b: LENGTHS[b].min())
    for first, second in zip(plan, plan[1:]):
        assert LENGTHS[first].max() <= LENGTHS[second].min()


def test_eval_plan_sorts_everything_and_pads_the_last_batch():
    plan = batch_plan(LENGTHS, 8, shuffle=False, seed=0, epoch=0)
    flat = np.concatenate(plan)
    assert len(plan) == 13 and all(len(b) == 8 for b in plan)
    assert sorted(flat[:103].tolist()) == list(range(103)) and np.all(np.diff(LENGTHS[flat[:103]]) >= 0)
    assert flat[103] == flat[102]  # the filler is a copy of the last (longest) example
    np.testing.assert_array_equal(flat, np.concatenate(batch_plan(LENGTHS, 8, shuffle=False, seed=5, epoch=3)))


# --- efficiency, buckets, percentiles ------------------------------------------------------

def test_padding_efficiency_by_hand():
    split = split_of([3, 5, 8, 9])
    # One window holds both batches: [3, 5] pads to 8, [8, 9] to 12 -> 25 real of 2 * 8 + 2 * 12 = 40.
    assert padding_efficiency(split, 2, pad_to_multiple_of=4) == pytest.approx(25 / 40)
    assert padding_efficiency(split, 2, pad_to_multiple_of=1) == pytest.approx(25 / 28)
    assert bucket_lengths(split, 2, 4) == [8, 12]
    assert bucket_lengths(split, 2, 4, shuffle=False) == [8, 12]
    assert length_percentile(split, 50) == 6.5


def test_bigger_windows_pad_less():
    split = split_of(LENGTHS)
    assert padding_efficiency(split, 8, window_batches=1) < padding_efficiency(split, 8, window_batches=13)


# --- make_dataset --------------------------------------------------------------------------

def test_geometric_buckets_pad_short_batches_finely_and_long_ones_coarsely():
    widths = bucket_widths(300, 0)
    assert widths[0] == 4 and widths[-1] >= 300 and np.all(np.diff(widths) > 0)
    for low, high in zip(widths[:-1], widths[1:]):
        # the padding a batch can get is at most ~1/8 of its length, never under 4 tokens
        assert high - low <= max(4, low // 4), (low, high)
    assert len(bucket_widths(128, 0)) <= len(bucket_widths(128, 8))
    np.testing.assert_array_equal(bucket_widths(30, 8), [8, 16, 24, 32])
    with pytest.raises(ValueError):
        bucket_widths(30, -1)


def test_geometric_buckets_beat_multiples_of_eight_on_short_texts():
    lengths = np.random.default_rng(0).integers(4, 30, 800)  # SST-2-like: mostly short
    split = split_of(lengths)
    assert padding_efficiency(split, 32, 0) > padding_efficiency(split, 32, 8) + 0.03
    widths = set(bucket_widths(int(lengths.max()), 0).tolist())
    for batch in make_dataset(split, 32, shuffle=True, seed=3, epochs=1, pad_to_multiple_of=0):
        width, longest = batch["token_ids"].shape[1], int(batch["padding_mask"].numpy().sum(1).max())
        assert width in widths and longest <= width and not any(longest <= w < width for w in widths)


def test_dataset_shapes_dtypes_and_padding():
    split = split_of(LENGTHS)
    batches = list(make_dataset(split, 8, shuffle=True, seed=1, epochs=1, window_batches=4, pad_to_multiple_of=8))
    assert len(batches) == 13
    for batch in batches:
        ids, mask = batch["token_ids"].numpy(), batch["padding_mask"].numpy()
        width = ids.shape[1]
        lengths = LENGTHS[batch["index"].numpy()]
        assert ids.shape == batch["segment_ids"].shape == mask.shape and ids.shape[0] == 8
        assert width % 8 == 0 and width - 8 < lengths.max() <= width
        assert batch["token_ids"].dtype == batch["segment_ids"].dtype == tf.int32 and mask.dtype == np.int32
        assert batch["labels"].dtype == tf.int32 and batch["index"].dtype == tf.int32
        assert batch["weight"].dtype == tf.float32 and np.all(batch["weight"].numpy() == 1)
        np.testing.assert_array_equal(mask.sum(1), lengths)
        mask = mask.astype(bool)
        assert np.all(ids[~mask] == 0) and np.all(batch["segment_ids"].numpy()[~mask] == 0)
        for row, i in enumerate(batch["index"].numpy()):
            expected_ids, expected_segments = split.example(i)
            np.testing.assert_array_equal(ids[row, :lengths[row]], expected_ids)
            np.testing.assert_array_equal(batch["segment_ids"].numpy()[row, :lengths[row]], expected_segments)
            assert batch["labels"].numpy()[row] == split.labels[i]


def test_eval_dataset_weights_the_filler_zero():
    split = split_of(LENGTHS, labels=np.linspace(0, 5, 103).astype(np.float32))
    batches = list(make_dataset(split, 8, shuffle=False, seed=0))
    weights = np.concatenate([b["weight"].numpy() for b in batches])
    index = np.concatenate([b["index"].numpy() for b in batches])
    assert weights.sum() == 103 and sorted(index[weights > 0].tolist()) == list(range(103))
    assert batches[0]["labels"].dtype == tf.float32


def test_epochs_are_concatenated_and_resume_replays_the_epoch_plan():
    split = split_of(LENGTHS)
    steps = steps_per_epoch(split, 8)
    full = [b["index"].numpy() for b in make_dataset(split, 8, shuffle=True, seed=1, epochs=3, window_batches=4)]
    resumed = [b["index"].numpy() for b in make_dataset(split, 8, shuffle=True, seed=1, epochs=3, start_epoch=2,
                                                         window_batches=4)]
    assert len(full) == 3 * steps and len(resumed) == steps
    np.testing.assert_array_equal(np.stack(full[2 * steps:]), np.stack(resumed))
    expected = batch_plan(LENGTHS, 8, shuffle=True, seed=1, epoch=1, window_batches=4)
    np.testing.assert_array_equal(np.stack(full[steps:2 * steps]), np.stack(expected))
    assert len(list(make_dataset(split, 8, shuffle=True, seed=1, epochs=3, start_epoch=3))) == 0


def test_resume_mid_epoch_starts_at_the_next_batch_of_the_plan():
    split = split_of(LENGTHS)
    steps = steps_per_epoch(split, 8)
    full = list(make_dataset(split, 8, shuffle=True, seed=1, epochs=3, window_batches=4))
    resumed = list(make_dataset(split, 8, shuffle=True, seed=1, epochs=2, start_epoch=1, start_step=3,
                                window_batches=4))
    assert len(resumed) == steps - 3
    for want, got in zip(full[steps + 3:2 * steps], resumed):
        for key in want:
            np.testing.assert_array_equal(want[key].numpy(), got[key].numpy())
    with pytest.raises(ValueError, match=f"start_step must be in 0..{steps - 1}"):
        make_dataset(split, 8, shuffle=True, seed=1, epochs=2, start_step=steps)


def test_padded_length_is_capped_at_the_rounded_max_seq_length(tokenizer):
    ex = Examples(["a " * 30, "b"], None, np.zeros(2, np.int32), "t")
    split = tokenize(ex, tokenizer, max_seq_length=12)
    batch = next(iter(make_dataset(split, 2, shuffle=False, seed=0, pad_to_multiple_of=8)))
    assert batch["token_ids"].shape == (2, 16)
