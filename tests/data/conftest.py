"""Shared helpers for the data tests: small TSV files and a tiny WordPiece vocabulary."""

import os
from typing import List

import pytest

import tfkd  # noqa: F401  (selects the TensorFlow backend)

# ids are positions: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 a=5 b=6 ...
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "the", "movie", "cafe", "##s", "."]


def _write_tsv(path, lines: List[str], bom: bool = False, newline: str = "\n") -> str:
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + "".join(line + newline for line in lines).encode("utf-8"))
    return str(path)


@pytest.fixture
def write_tsv():
    """`write_tsv(path, lines, bom=False, newline="\\n") -> str`: writes tab-separated `lines` as UTF-8."""
    return _write_tsv


@pytest.fixture
def vocab_path(tmp_path) -> str:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture
def tokenizer(vocab_path):
    from tfkd.data.tokenizer import make_tokenizer

    return make_tokenizer(vocab_path)
