"""The pre-training corpus and BERT's masked-LM masking of the batches (`tfkd.data.pretrain`)."""

import math

import numpy as np
import pytest

from tests.data.conftest import VOCAB
from tfkd.core.errors import TfkdError
from tfkd.data.pipeline import make_dataset, tokenize
from tfkd.data.pretrain import MaskingConfig, load_pretraining_texts, mask_batches

WORDS = VOCAB[5:]
MASK, SPECIAL = VOCAB.index("[MASK]"), {VOCAB.index(t) for t in ("[PAD]", "[CLS]", "[SEP]")}
MAX_LEN = 32


@pytest.fixture
def corpus(tmp_path, tokenizer):
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(1, 40))) for _ in range(300)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokenize(load_pretraining_texts(text_file=str(path)), tokenizer, MAX_LEN)


def _batches(split, config, seed, epochs=1, batch_size=16):
    ds = mask_batches(make_dataset(split, batch_size, shuffle=True, seed=3, epochs=epochs), config, seed=seed)
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds]


def test_corpus_from_a_text_file_or_a_glue_task_without_labels(tmp_path, write_tsv):
    text = tmp_path / "c.txt"
    text.write_text("a b\n\nthe movie\nc d\n", encoding="utf-8")
    from_file = load_pretraining_texts(text_file=str(text), max_examples=2)
    assert from_file.text_a == ["a b", "the movie"] and not from_file.is_pair and not from_file.labels.any()
    write_tsv(tmp_path / "glue" / "MRPC" / "train.tsv", [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\ta b\tc d", "0\t3\t4\tthe movie\ta cafe"])
    from_task = load_pretraining_texts(task="mrpc", glue_dir=str(tmp_path / "glue"))
    assert from_task.text_b == ["c d", "a cafe"] and not from_task.labels.any()
    for kwargs in ({}, {"text_file": str(text), "task": "mrpc"}):
        with pytest.raises(TfkdError, match="exactly one corpus"):
            load_pretraining_texts(**kwargs)


def test_masking_follows_bert_and_touches_only_real_tokens(corpus, tokenizer):
    config = MaskingConfig.for_tokenizer(tokenizer, MAX_LEN)
    assert config.max_predictions == math.ceil(0.15 * MAX_LEN) and config.mask_token_id == MASK
    as_mask = as_random = kept = 0
    for batch in _batches(corpus, config, seed=1, epochs=3):
        for row in range(len(batch["index"])):
            original, _ = corpus.example(batch["index"][row])
            length = len(original)
            assert batch["padding_mask"][row].sum() == length
            tokens, weights = batch["token_ids"][row], batch["mask_weights"][row]
            positions = batch["mask_positions"][row][weights > 0]
            selectable = sum(t not in SPECIAL for t in original)
            assert len(positions) == min(math.ceil(0.15 * selectable), config.max_predictions)
            # Only real, non-special tokens are selected; padding stays padding.
            assert all(0 < p < length - 1 for p in positions) and len(set(positions)) == len(positions)
            assert not tokens[length:].any()
            np.testing.assert_array_equal(batch["mask_ids"][row][weights > 0], original[positions])
            # Everything not selected is the original example (the index is stable).
            unselected = np.setdiff1d(np.arange(length), positions)
            np.testing.assert_array_equal(tokens[unselected], original[unselected])
            replaced = tokens[positions]
            as_mask += int(np.sum(replaced == MASK))
            kept += int(np.sum(replaced == original[positions]))
            as_random += int(np.sum((replaced != MASK) & (replaced != original[positions])))
    total = as_mask + as_random + kept
    assert total > 2000
    # 80% [MASK], 10% random (which hits the original token 1 time in |V|), 10% unchanged.
    assert abs(as_mask / total - 0.8) < 0.04
    assert abs(as_random / total - 0.1 * (1 - 1 / len(VOCAB))) < 0.03
    assert abs(kept / total - (0.1 + 0.1 / len(VOCAB))) < 0.03


def test_masks_are_deterministic_per_seed_and_fresh_per_batch(corpus, tokenizer):
    config = MaskingConfig.for_tokenizer(tokenizer, MAX_LEN)
    first, again, other = (_batches(corpus, config, seed) for seed in (7, 7, 8))
    for a, b in zip(first, again):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a["mask_positions"], c["mask_positions"]) for a, c in zip(first, other))
    # Two batches holding the same examples (epoch 1 and 2) are masked differently.
    two_epochs = _batches(corpus, config, seed=7, epochs=2)
    half = len(two_epochs) // 2
    assert not all(np.array_equal(a["token_ids"], b["token_ids"]) for a, b in zip(two_epochs[:half], two_epochs[half:]))


def test_the_prediction_cap_and_bad_rates(corpus, tokenizer):
    config = MaskingConfig.for_tokenizer(tokenizer, MAX_LEN, selection_rate=0.5)
    capped = MaskingConfig(**{**config.__dict__, "max_predictions": 2})
    for batch in _batches(corpus, capped, seed=1):
        lengths = batch["padding_mask"].sum(1)
        np.testing.assert_array_equal(batch["mask_weights"].sum(1), np.minimum(np.ceil(0.5 * (lengths - 2)), 2))
    with pytest.raises(TfkdError, match="sum to at most 1"):
        MaskingConfig.for_tokenizer(tokenizer, MAX_LEN, mask_token_rate=0.95, random_token_rate=0.1)
    with pytest.raises(TfkdError, match="not in \\(0, 1\\]"):
        MaskingConfig.for_tokenizer(tokenizer, MAX_LEN, selection_rate=0.0)
