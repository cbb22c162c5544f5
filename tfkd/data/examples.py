"""The one in-memory form every data source produces: texts plus labels.

Example:
>>> import numpy as np
>>> ex = Examples(["a fine film", "dull"], None, np.array([1, 0], np.int32), "demo")
>>> len(ex), ex.is_pair
(2, False)
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np


@dataclasses.dataclass
class Examples:
    """Labelled examples of one split, in source order.

    Args:
        text_a: the first (or only) text of each example.
        text_b: the second text of sentence-pair tasks, else None.
        labels: class ids (int32) or, for regression, scores (float32).
        source: where they came from: a file path, `tfds:glue/<task>` or `synthetic`.
        has_labels: False for a test file without labels; `labels` then holds
            -1 (classes) or NaN (scores), placeholders that no metric may see.

    Example:
    >>> ex = Examples(["a"], ["b"], np.zeros(1, np.int32), "x.tsv")
    >>> ex.take(1).text_b
    ['b']
    """

    text_a: List[str]
    text_b: Optional[List[str]]
    labels: np.ndarray
    source: str
    has_labels: bool = True

    def __post_init__(self):
        if self.text_b is not None and len(self.text_b) != len(self.text_a):
            raise ValueError(f"text_b has {len(self.text_b)} entries, text_a {len(self.text_a)}")
        if len(self.labels) != len(self.text_a):
            raise ValueError(f"labels has {len(self.labels)} entries, text_a {len(self.text_a)}")

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def take(self, n: Optional[int]) -> "Examples":
        """The first `n` examples (all of them when `n` is None)."""
        if n is None or n >= len(self):
            return self
        return Examples(
            self.text_a[:n], None if self.text_b is None else self.text_b[:n], self.labels[:n], self.source,
            self.has_labels,
        )

    @staticmethod
    def concatenate(parts: Sequence["Examples"]) -> "Examples":
        """The examples of `parts` one after the other (chunks of one source: the first one's source is kept).

        Example:
        >>> part = Examples(["a"], None, np.zeros(1, np.int32), "x.csv")
        >>> len(Examples.concatenate([part, part]))
        2
        """
        if not parts:
            raise ValueError("need at least one part")
        first = parts[0]
        if any(p.is_pair != first.is_pair or p.has_labels != first.has_labels for p in parts):
            raise ValueError("parts differ in being pairs or having labels")
        return Examples(
            [text for p in parts for text in p.text_a],
            [text for p in parts for text in p.text_b] if first.is_pair else None,
            np.concatenate([p.labels for p in parts]),
            first.source,
            first.has_labels,
        )
