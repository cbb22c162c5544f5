"""Vocabulary trimming on the data side: which ids are kept, and that the lookup is what the trimmed file tokenizes."""

import numpy as np
import pytest

from tfkd.data.examples import Examples
from tfkd.data.pipeline import make_dataset, tokenize
from tfkd.data.tokenizer import SPECIAL_TOKENS, make_tokenizer, read_vocab
from tfkd.data.vocab import STUDENT_TOKEN_IDS, corpus_token_counts, trim_vocabulary, unk_share

# Whole words and their WordPiece parts, so words can split in more than one way.
TOKENS = list(SPECIAL_TOKENS) + ["the", "play", "##ing", "##ed", "playing", "played", "film", "##s", "films", "good",
                                 "bad", "dull", "plot", "fun", "##ly", "a", "un", "##fun", "##ny", "."]
TRAIN = ["the film was playing", "good films", "playing played", "unfunny plot .", "a dull film"]


@pytest.fixture()
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(TOKENS) + "\n")
    return str(path)


def split_of(texts, tokenizer):
    return tokenize(Examples(list(texts), None, np.zeros(len(texts), np.int32), "t"), tokenizer, 32)


def test_keeps_the_special_tokens_and_every_training_id_in_the_teachers_order(vocab):
    train = split_of(TRAIN, make_tokenizer(vocab))
    trim = trim_vocabulary(vocab, train)
    used = set(train.token_ids.tolist())
    expected = sorted(used | {TOKENS.index(t) for t in SPECIAL_TOKENS})
    assert trim.kept_ids.tolist() == expected
    assert trim.size < trim.teacher_size == len(TOKENS)
    kept_tokens = [TOKENS[i] for i in expected]
    # "unfunny" uses ##fun, never fun; "played" is one token, so ##ed is never used.
    assert "##fun" in kept_tokens and "fun" not in kept_tokens and "##ed" not in kept_tokens and "bad" not in kept_tokens


def test_the_lookup_equals_tokenizing_the_training_text_with_the_trimmed_file(vocab, tmp_path):
    teacher_tokenizer = make_tokenizer(vocab)
    train = split_of(TRAIN, teacher_tokenizer)
    trim = trim_vocabulary(vocab, train)
    student_vocab = str(trim.write(tmp_path / "student" / "vocab.txt"))
    assert read_vocab(student_vocab) == [TOKENS[i] for i in trim.kept_ids]
    again = split_of(TRAIN, make_tokenizer(student_vocab))
    np.testing.assert_array_equal(trim.student_ids(train.token_ids), again.token_ids)


def test_dropped_ids_become_unk_and_batches_carry_both_models_ids(vocab):
    tokenizer = make_tokenizer(vocab)
    trim = trim_vocabulary(vocab, split_of(TRAIN, tokenizer))
    dev = split_of(["bad fun film", "the plot"], tokenizer)
    batch = next(iter(trim.transform(make_dataset(dev, 2, shuffle=False, seed=0))))
    teacher_ids, student_ids = batch["token_ids"].numpy(), batch[STUDENT_TOKEN_IDS].numpy()
    kept = {t: i for i, t in enumerate(TOKENS[k] for k in trim.kept_ids)}
    for row_t, row_s in zip(teacher_ids, student_ids):
        for t, s in zip(row_t, row_s):
            token = TOKENS[t]
            assert s == kept.get(token, kept["[UNK]"])
    assert (student_ids == kept["[UNK]"]).sum() == 2  # "bad" and "fun" never occur in training


def test_an_extra_corpus_adds_its_ids_and_top_keeps_its_most_frequent(vocab):
    tokenizer = make_tokenizer(vocab)
    train = split_of(["the film"], tokenizer)
    counts = corpus_token_counts(["bad bad bad", "fun fun", "dull"], tokenizer, len(TOKENS))
    everything = {TOKENS[i] for i in trim_vocabulary(vocab, train, counts).kept_ids}
    top = {TOKENS[i] for i in trim_vocabulary(vocab, train, counts, corpus_top=2).kept_ids}
    assert {"bad", "fun", "dull"} <= everything
    assert {"bad", "fun"} <= top and "dull" not in top


def test_unk_share_counts_unknown_tokens_among_the_real_ones(vocab):
    split = split_of(["zebra film", "the film"], make_tokenizer(vocab))  # 4 real tokens, one [UNK]
    assert unk_share(split, vocab) == pytest.approx(0.25)
