"""The WordPiece tokenizer tfkd uses, built from a `vocab.txt` file.

`BertTokenizer.from_preset` passes only `lowercase`, so with an uncased
vocabulary accented words become `[UNK]`; stripping accents together with
lowercasing matches the reference (Hugging Face) tokenizer far more often.

Example:
>>> import pathlib
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\ncafe\\n")
>>> make_tokenizer("vocab.txt")(["the Café"])  # the café: lowercased, accent stripped
[[5, 6]]
"""

from __future__ import annotations

import hashlib
import os
from typing import List

import keras_hub

from tfkd.core.errors import TfkdError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _check_vocab(vocab_path: str) -> None:
    if not os.path.isfile(vocab_path):
        raise TfkdError(
            f"vocabulary file not found: {vocab_path}. Fix: pass the vocab.txt that belongs to the model "
            "(one WordPiece token per line)."
        )


def read_vocab(vocab_path: str) -> List[str]:
    """The vocabulary's tokens in id order.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[unused0]\\n[unused1]\\n[UNK]\\n")
    >>> read_vocab("vocab.txt")[:3]
    ['[PAD]', '[unused0]', '[unused1]']
    """
    _check_vocab(vocab_path)
    try:
        with open(vocab_path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as e:
        raise TfkdError(
            f"{vocab_path} is not UTF-8 text (byte {e.start}: {e.reason}). Fix: pass a BERT WordPiece vocab.txt, "
            "one token per line, UTF-8 encoded."
        ) from None


def make_tokenizer(vocab_path: str, lowercase: bool = True) -> keras_hub.models.BertTokenizer:
    """A keras-hub BERT tokenizer for `vocab_path`.

    Args:
        vocab_path: the WordPiece vocabulary, one token per line; must contain
            [PAD], [UNK], [CLS], [SEP] and [MASK].
        lowercase: True for uncased vocabularies (also strips accents).

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\n")
    >>> make_tokenizer("vocab.txt").token_to_id("[CLS]")  # 101 in BERT's vocab.txt
    2
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\nthe\\n")
    >>> make_tokenizer("vocab.txt")
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: vocab.txt: the vocabulary lacks [CLS], [SEP], [MASK]. Fix: use a BERT WordPiece vocab.txt.
    """
    tokens = set(read_vocab(vocab_path))
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise TfkdError(
            f"{vocab_path}: the vocabulary lacks {', '.join(missing)}. Fix: use a BERT WordPiece vocab.txt."
        )
    return keras_hub.models.BertTokenizer(vocabulary=vocab_path, lowercase=lowercase, strip_accents=lowercase)


def vocab_checksum(vocab_path: str) -> str:
    """The sha256 hex digest of the vocabulary file (to check a model and its vocab belong together).

    Args:
        vocab_path: the vocabulary file.

    Example:
    >>> import pathlib
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\n")
    >>> vocab_checksum("vocab.txt")[:12]
    'fd4c97618db7'
    """
    _check_vocab(vocab_path)
    digest = hashlib.sha256()
    with open(vocab_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
