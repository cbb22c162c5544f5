import re
from collections import defaultdict

import numpy as np
import pytest

from tfkd.core.errors import TfkdError
from tfkd.data import synthetic
from tfkd.data.load import load_split
from tfkd.data.synthetic import make_synthetic
from tfkd.data.tasks import get_task

POS = "|".join(synthetic.POSITIVE)
NEG = "|".join(synthetic.NEGATIVE)
SUBJ = "|".join(synthetic.SUBJECTS)
INT = "|".join(synthetic.INTENSIFIERS)
FLIP = "|".join(synthetic.FLIP_WRAPPERS)


@pytest.fixture(scope="module")
def data():
    train, dev = make_synthetic("train"), make_synthetic("dev")
    return list(zip(train.text_a + dev.text_a, np.concatenate([train.labels, dev.labels]).tolist()))


def test_default_sizes_balanced_and_disjoint():
    train, dev = make_synthetic("train"), load_split(get_task("synthetic"), "dev", None)
    assert (len(train), len(dev)) == (2000, 400) and dev.text_b is None and dev.source == "synthetic"
    assert train.labels.dtype == np.int32 and train.labels.mean() == dev.labels.mean() == 0.5
    assert len(set(train.text_a)) == 2000 and not set(train.text_a) & set(dev.text_a)


def test_deterministic_per_seed():
    assert make_synthetic("dev", seed=3).text_a == make_synthetic("dev", seed=3).text_a
    assert make_synthetic("dev", seed=3).text_a != make_synthetic("dev", seed=4).text_a
    assert make_synthetic("train", max_examples=5).text_a == make_synthetic("train").text_a[:5]


def test_sentences_fit_a_32_token_model(data):
    assert max(len(text.split()) for text, _ in data) <= synthetic.MAX_WORDS


@pytest.mark.parametrize("pattern, label", [
    (rf"^(?:{SUBJ}) (?:was|is) (?:{POS})$", 1),
    (rf"^(?:{SUBJ}) (?:was|is) not (?:{NEG})$", 1),  # negation flips
    (rf"^(?:{SUBJ}) (?:did not seem|did not feel|never seemed) (?:{INT} )?(?:{POS})$", 0),
    (rf"^(?:{SUBJ}) (?:was|is|seemed|felt) (?:{INT}) (?:{NEG})$", 0),  # intensifiers keep it
    (rf"^i expected it to be (?:{POS}) but it was (?:{NEG})$", 0),  # the second clause decides
    (rf"^i expected it to be (?:{NEG}) but it was (?:{POS})$", 1),
    (rf"^(?:{SUBJ}) (?:was|is) (?:{POS}) , even though .*$", 1),  # the main clause decides
    (rf"^although .* , (?:{SUBJ}) (?:was|is) (?:{NEG})$", 0),
    (rf"^.* but (?:{SUBJ}) (?:was|is) (?:{POS})$", 1),
    (rf"^(?:{FLIP}) (?:{SUBJ}) (?:was|is) (?:not|never|hardly) (?:{POS})$", 1),  # double negation
    (rf"^(?:{FLIP}) (?:{SUBJ}) (?:was|is) (?:not|never|hardly) (?:{NEG})$", 0),
    (rf"^(?:{FLIP}) i (?:loved|enjoyed|liked|adored) (?:it|every minute|the whole thing|this film|the movie)$", 0),
])
def test_labels_follow_the_composition(data, pattern, label):
    matches = [(text, y) for text, y in data if re.match(pattern, text)]
    assert matches, f"no sentence matches {pattern}"
    assert all(y == label for _, y in matches), [m for m in matches if m[1] != label][:3]


def test_word_order_matters(data):
    # Same words, different labels: a bag-of-words model cannot reach 100%.
    labels_by_bag = defaultdict(set)
    for text, y in data:
        labels_by_bag[tuple(sorted(text.split()))].add(y)
    assert sum(len(labels) > 1 for labels in labels_by_bag.values()) > 0


def test_every_construction_occurs(data):
    texts = " | ".join(text for text, _ in data)
    for marker in (" but ", "although ", ", even though ", "i expected it to be", "at first ", " and ",
                   "it is not true that", "i did not ", "anything but", "far from", "hardly"):
        assert marker in texts, marker


def test_unknown_split():
    with pytest.raises(TfkdError, match="unknown split 'test' for task synthetic"):
        make_synthetic("test")
