"""Augmenters (`tfkd.data.augment`): deterministic, never touching special tokens, pairs stay pairs, no dev text
reaches the augmented set, and bad settings are one clear line."""

import numpy as np
import pytest

import tfkd
from tfkd.data.augment import (
    AUGMENTERS,
    AugmentContext,
    WordAugmenter,
    check_settings,
    materialise,
    pack,
    register_augmenter,
    split_sides,
    split_words,
)
from tfkd.data.examples import Examples
from tfkd.data.pipeline import tokenize
from tfkd.data.tasks import get_task

WORDS = ["the", "a", "film", "movie", "plot", "story", "was", "is", "good", "great", "fine", "bad", "awful", "dull",
         "very", "not", "fun", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"] + WORDS + ["##s", "##ly"]
SPECIAL = {i for i, token in enumerate(VOCAB) if token.startswith("[")}
PERTURBERS = ("embedding_neighbours", "delete", "swap")


def ids(text):
    return np.array([VOCAB.index(token) for token in text.split()], np.int32)


def embeddings(seed=0):
    return np.random.default_rng(seed).normal(size=(len(VOCAB), 8)).astype(np.float32)


def context(**kwargs):
    return AugmentContext(VOCAB, 32, embeddings=embeddings(), **kwargs)


def random_texts(rng, n, specials=True):
    texts = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(3, 9)))
        if specials and rng.random() < 0.5:
            words.insert(int(rng.integers(len(words) + 1)), "[UNK]")
        if rng.random() < 0.3:
            words.insert(int(rng.integers(1, len(words) + 1)), "##s")
        texts.append(" ".join(words))
    return texts


@pytest.fixture(scope="module")
def singles():
    rng = np.random.default_rng(0)
    return pack([(ids(t),) for t in random_texts(rng, 40)], VOCAB, 32), pack(
        [(ids(t),) for t in random_texts(rng, 10)], VOCAB, 32)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(1)
    make = lambda n: pack([(ids(a), ids(b)) for a, b in zip(random_texts(rng, n), random_texts(rng, n))], VOCAB, 32)
    return make(30), make(8)


def rows(augmentation):
    split = augmentation.split
    return [tuple(s.tobytes() for s in split_sides(split, i)) for i in range(len(split))]


@pytest.mark.parametrize("names", [PERTURBERS, ("embedding_neighbours",), ("delete",), ("swap",)])
def test_the_same_seed_gives_the_same_set_and_another_seed_another(singles, names):
    train, dev = singles
    first = materialise(train, dev, names, 4, seed=1, context=context())
    again = materialise(train, dev, names, 4, seed=1, context=context())
    other = materialise(train, dev, names, 4, seed=2, context=context())
    assert first.kept > 0 and rows(first) == rows(again) and first.fingerprint == again.fingerprint
    assert rows(first) != rows(other) and first.fingerprint != other.fingerprint


def test_special_tokens_are_never_replaced_deleted_or_moved(singles, pairs):
    for train, dev in (singles, pairs):
        made = materialise(train, dev, PERTURBERS, 6, seed=3, context=context(),
                           options={"embedding_neighbours": {"probability": 1.0}, "delete": {"probability": 0.9},
                                    "swap": {"probability": 1.0}})
        assert made.kept > 0
        for i in range(made.kept):
            original = split_sides(train, int(made.origin[i]))
            for new, old in zip(split_sides(made.split, i), original):
                # Each side keeps its special tokens, in order, and gains none.
                assert [t for t in new if t in SPECIAL] == [t for t in old if t in SPECIAL]
            token_ids, segment_ids = made.split.example(i)
            assert token_ids[0] == VOCAB.index("[CLS]") and token_ids[-1] == VOCAB.index("[SEP]")


def test_embedding_neighbours_substitute_whole_words_only():
    made = AUGMENTERS.get("embedding_neighbours")(context(), probability=1.0, top_k=3)
    text = ids("the film ##s was very dull ##ly [UNK] .")
    [out] = made.augment([(text,)], [np.random.default_rng(0)])
    out = out[0]
    assert len(out) == len(text)
    for new, old, nxt in zip(out, text, list(text[1:]) + [None]):
        multi_piece = VOCAB[old].startswith("##") or (nxt is not None and VOCAB[nxt].startswith("##"))
        if multi_piece or old in SPECIAL or VOCAB[old] == ".":
            assert new == old, (VOCAB[old], VOCAB[new])
        else:
            assert new != old and not VOCAB[new].startswith(("##", "[")) and VOCAB[new] != "."


def test_pairs_stay_pairs_and_each_side_is_perturbed(pairs):
    train, dev = pairs
    made = materialise(train, dev, ("embedding_neighbours",), 3, seed=1, context=context(),
                       options={"embedding_neighbours": {"probability": 0.5}})
    changed = [0, 0]
    for i in range(made.kept):
        sides = split_sides(made.split, i)
        original = split_sides(train, int(made.origin[i]))
        assert len(sides) == 2 and [len(s) for s in sides] == [len(s) for s in original]
        _, segment_ids = made.split.example(i)
        assert segment_ids.tolist() == [0] * (len(sides[0]) + 2) + [1] * (len(sides[1]) + 1)
        for k in (0, 1):
            changed[k] += not np.array_equal(sides[k], original[k])
    assert min(changed) > made.kept // 3


def test_no_dev_text_and_no_training_example_reaches_the_augmented_set(singles, pairs):
    for train, dev in (singles, pairs):
        # Dev sentences that the augmenters are sure to make: swaps of the training sentences.
        swapped = materialise(train, None, ("swap",), 2, seed=5, context=context())
        dev = pack([split_sides(swapped.split, i) for i in range(0, swapped.kept, 2)], VOCAB, 32)
        made = materialise(train, dev, ("swap", "delete"), 4, seed=5, context=context())
        dev_texts = {s.tobytes() for i in range(len(dev)) for s in split_sides(dev, i)}
        train_rows = {tuple(s.tobytes() for s in split_sides(train, i)) for i in range(len(train))}
        kept = rows(made)
        assert made.duplicates["dev"] > 0
        assert not {text for row in kept for text in row} & dev_texts
        assert not set(kept) & train_rows and len(set(kept)) == len(kept)
        assert made.made == made.kept + sum(made.duplicates.values())


def test_a_file_adds_its_texts_once_deduplicated_against_dev(tmp_path, tokenizer, vocab_path):
    from tests.data.conftest import VOCAB as FILE_VOCAB

    path = tmp_path / "in_domain.txt"
    path.write_text("the movie\n\na cafe\nthe movie\nb c\n")
    examples = Examples(["the movies"], None, np.zeros(1, np.int32), "train")
    train = tokenize(examples, tokenizer, 16)
    dev = tokenize(Examples(["b c"], None, np.zeros(1, np.int32), "dev"), tokenizer, 16)
    made = materialise(train, dev, ("file",), 8, seed=1,
                       context=AugmentContext(FILE_VOCAB, 16, tokenizer=tokenizer, task=get_task("sst2"),
                                              file=str(path)))
    assert made.made == 4 and made.kept == 2 and made.duplicates == {"dev": 1, "train": 0, "augmented": 1}
    assert made.origin.tolist() == [-1, -1]


def test_a_csv_file_for_a_pair_task_reads_the_task_columns(tmp_path, tokenizer):
    from tests.data.conftest import VOCAB as FILE_VOCAB

    path = tmp_path / "more.csv"
    path.write_text("sentence1,sentence2,label\nthe movie,a cafe,\nb,c d,1\n")
    task = get_task("mrpc")
    made = AUGMENTERS.get("file")(AugmentContext(FILE_VOCAB, 16, tokenizer=tokenizer, task=task, file=str(path)))
    examples = made.examples()
    assert [len(sides) for sides in examples] == [2, 2]
    assert examples[1][1].tolist() == [FILE_VOCAB.index("c"), FILE_VOCAB.index("d")]


def test_a_registered_augmenter_is_used_by_name(singles):
    @register_augmenter("reverse_for_test", override=True)
    class Reverse(WordAugmenter):
        def perturb(self, words, rng):
            return words[::-1]

    train, dev = singles
    made = materialise(train, dev, ("reverse_for_test",), 1, seed=1, context=context())
    assert made.kept > 0
    for i in range(made.kept):
        words = split_words(split_sides(train, int(made.origin[i]))[0], context().continuation)
        assert split_sides(made.split, i)[0].tolist() == np.concatenate(words[::-1]).tolist()


@pytest.mark.parametrize("names, factor, file, options, message", [
    (("neighbours",), 8, "", {}, "unknown augmenter 'neighbours'. Fix: use one of delete, embedding_neighbours, "
                                 "file, mlm"),
    (("delete",), -1, "", {}, "augment factor -1 is not a whole number >= 0"),
    (("file",), 8, "/no/such/file.txt", {}, "AugmentConfig.file: file not found: /no/such/file.txt"),
    (("file",), 8, "", {}, "augmenter 'file' adds the texts of AugmentConfig.file, and none was given"),
    (("delete",), 8, "x.txt", {}, "add file to AugmentConfig.augmenters, or drop AugmentConfig.file"),
    (("delete",), 8, "", {"delete": {"top_k": "3"}}, "augmenter 'delete' has no option 'top_k'"),
    (("delete",), 8, "", {"swapp": {"probability": "0.3"}}, "unknown augmenter 'swapp'"),
    (("swap",), 8, "", {"swap": {"probability": "often"}}, "augmenter 'swap' rejects probability='often'"),
])
def test_bad_settings_are_one_clear_line(names, factor, file, options, message):
    with pytest.raises(tfkd.TfkdError) as error:
        check_settings(names, factor, file, options)
    assert message in str(error.value) and "Fix:" in str(error.value) and "\n" not in str(error.value)


def test_a_probability_out_of_range_is_refused():
    with pytest.raises(tfkd.TfkdError, match=r"probability=1.5 is not in \[0, 1\]. Fix:"):
        AUGMENTERS.get("delete")(context(), probability=1.5)


def test_the_config_refuses_a_negative_factor():
    with pytest.raises(tfkd.TfkdError, match="augment factor -2 .* Fix: pass AugmentConfig\.factor=8"):
        tfkd.AugmentConfig(augmenters=("delete",), factor=-2)


@pytest.fixture(scope="module")
def mlm_preset(tmp_path_factory):
    """A tiny random BertMaskedLM with the test vocabulary, saved as a local keras-hub preset."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=32)
    preset = str(tmp_path_factory.mktemp("mlm_preset"))
    keras_hub.models.BertMaskedLM(backbone, keras_hub.models.BertMaskedLMPreprocessor(tokenizer)).save_to_preset(preset)
    return preset


def test_mlm_substitutes_whole_words_deterministically_from_a_local_preset(singles, pairs, mlm_preset):
    for train, dev in (singles, pairs):
        options = {"mlm": {"preset": mlm_preset, "probability": "0.5", "top_k": "4"}}
        made = materialise(train, dev, ("mlm",), 2, seed=1, context=context(batch_size=7), options=options)
        again = materialise(train, dev, ("mlm",), 2, seed=1, context=context(batch_size=16), options=options)
        assert made.kept > 0 and rows(made) == rows(again)  # whatever the batching
        for i in range(made.kept):
            for new, old in zip(split_sides(made.split, i), split_sides(train, int(made.origin[i]))):
                assert len(new) == len(old)
                for a, b in zip(new, old):
                    assert a == b or (b not in SPECIAL and a not in SPECIAL and not VOCAB[a].startswith("##"))


def test_mlm_without_a_usable_masked_lm_is_one_clear_line(tmp_path, mlm_preset):
    import keras_hub

    backbone_only = str(tmp_path / "backbone")
    keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=1, num_heads=2, hidden_dim=8,
                                  intermediate_dim=16).save_to_preset(backbone_only)
    other_vocab = AugmentContext(VOCAB[:-1] + ["##ing"], 32)
    for ctx, preset, message in [
        (context(), "", "augmenter 'mlm' needs a masked LM, and no preset was given"),
        # Offline it cannot be fetched; with network it has no masked-LM head: one line either way.
        (context(), "bert_tiny_en_uncased", ("cannot load the keras-hub masked LM 'bert_tiny_en_uncased'",
                                             "'bert_tiny_en_uncased' has no trained BertMaskedLM head")),
        (context(), backbone_only, "has no trained BertMaskedLM head"),
        (other_vocab, mlm_preset, "has another vocabulary (26 tokens), not the teacher's (26 tokens)"),
    ]:
        with pytest.raises(tfkd.TfkdError) as error:
            AUGMENTERS.get("mlm")(ctx, preset=preset)
        text = str(error.value)
        assert any(m in text for m in ((message,) if isinstance(message, str) else message)) and "Fix: pass AugmentConfig.args=mlm.preset=" in text and "\n" not in text
