"""`synthetic`: a small generated sentiment task for tfkd's offline demo.

This is synthetic data, made by tfkd from templates, not a benchmark. Each
sentence reviews a movie; the binary label (0 negative, 1 positive) follows
from its composition, so word counting alone is not enough:

- negation flips a clause: "the plot was not bad" is positive, and so are
  "anything but boring" and "i did not hate it";
- intensifiers ("very", "truly") keep the polarity;
- double negation: "it is not true that the acting was not good" is positive;
- contrast: in "X but Y", "although X , Y" and "at first X , but in the end Y"
  the second clause decides; in "X , even though Y" the first one does;
  "i expected it to be great but it was dull" is negative.

Labels are balanced, every sentence is unique, dev never repeats a train
sentence, and everything is deterministic from the seed. Sentences have at
most 24 words, so they fit `--max_seq_length=32` untruncated.

Example:
>>> train = make_synthetic("train", num_train=10, num_dev=4)
>>> len(train), train.source
(10, 'synthetic')
"""

from __future__ import annotations

from typing import List, Optional, Set, Tuple

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples

SUBJECTS = ("the movie", "the film", "the plot", "the acting", "the script", "the ending", "the soundtrack",
            "the cast", "the story", "the dialogue", "the show", "the direction", "the pacing", "the humor")
POSITIVE = ("good", "great", "wonderful", "brilliant", "charming", "funny", "moving", "enjoyable", "superb",
            "clever", "delightful", "gripping")
NEGATIVE = ("bad", "dull", "boring", "awful", "terrible", "weak", "tedious", "bland", "clumsy", "forgettable",
            "messy", "predictable")
INTENSIFIERS = ("very", "really", "truly", "quite", "incredibly", "so", "pretty", "rather")
COPULAS = ("was", "is", "seemed", "felt")
NEGATORS = ("not", "never", "hardly", "far from", "anything but")
VERB_NEGATIONS = {
    "seemed": {"not": "did not seem", "never": "never seemed"},
    "felt": {"not": "did not feel", "never": "never felt"},
}
LIKE_VERBS = (("loved", "love"), ("enjoyed", "enjoy"), ("liked", "like"), ("adored", "adore"))
HATE_VERBS = (("hated", "hate"), ("disliked", "dislike"), ("resented", "resent"))
OBJECTS = ("it", "every minute", "the whole thing", "this film", "the movie")
NOUNS = ("film", "movie", "experience", "story", "night out")
# Wrappers that flip the clause's polarity (double negation when the clause is negated) ...
FLIP_WRAPPERS = ("it is not true that", "i would not say", "nobody could claim", "i do not think", "i cannot say")
# ... and ones that keep it (distractors).
KEEP_WRAPPERS = ("i think", "honestly ,", "i have to say", "to be fair ,", "in my view ,")
MAX_WORDS = 24

Clause = Tuple[str, int]  # text, polarity (+1 / -1)


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _adjective(rng: np.random.Generator, polarity: int) -> str:
    return _pick(rng, POSITIVE if polarity > 0 else NEGATIVE)


def _clause(rng: np.random.Generator) -> Clause:
    """One evaluative clause; its polarity after any negation."""
    polarity = 1 if rng.random() < 0.5 else -1
    negated = rng.random() < 0.4
    kind = rng.random()
    if kind < 0.55:
        negator = _pick(rng, NEGATORS) if negated else ""
        intensifier = _pick(rng, INTENSIFIERS) if rng.random() < 0.35 and negator in ("", "not", "never") else ""
        verb = _pick(rng, COPULAS)
        if verb in VERB_NEGATIONS and negator in VERB_NEGATIONS[verb]:  # "never seemed", not "seemed never"
            verb, negator = VERB_NEGATIONS[verb][negator], ""
        words = [_pick(rng, SUBJECTS), verb, negator, intensifier, _adjective(rng, polarity)]
    elif kind < 0.8:
        past, base = _pick(rng, LIKE_VERBS if polarity > 0 else HATE_VERBS)
        words = ["i", "did not", base] if negated else ["i", past]
        words.append(_pick(rng, OBJECTS))
    else:
        intensifier = _pick(rng, INTENSIFIERS) if rng.random() < 0.3 else ""
        adjective = _adjective(rng, polarity)
        article = "an" if (intensifier or adjective)[0] in "aeiou" else "a"
        words = ["it was", "not" if negated else "", article, intensifier, adjective, _pick(rng, NOUNS)]
    text = " ".join(w for w in words if w)
    return text, -polarity if negated else polarity


def _wrapped(rng: np.random.Generator, p_wrap: float = 0.25) -> Clause:
    text, polarity = _clause(rng)
    if rng.random() < p_wrap:
        if rng.random() < 0.6:
            return f"{_pick(rng, FLIP_WRAPPERS)} {text}", -polarity
        return f"{_pick(rng, KEEP_WRAPPERS)} {text}", polarity
    return text, polarity


def _clause_adjective(rng: np.random.Generator) -> Clause:
    """An adjective phrase ("not very good") and its polarity."""
    polarity = 1 if rng.random() < 0.5 else -1
    negator = _pick(rng, NEGATORS) if rng.random() < 0.4 else ""
    intensifier = _pick(rng, INTENSIFIERS) if rng.random() < 0.35 and negator in ("", "not", "never") else ""
    text = " ".join(w for w in (negator, intensifier, _adjective(rng, polarity)) if w)
    return text, -polarity if negator else polarity


def _sentence(rng: np.random.Generator) -> Clause:
    """A sentence and its label polarity, from one of seven templates."""
    kind = rng.random()
    if kind < 0.3:
        return _wrapped(rng)
    if kind < 0.5:
        (a, _), (b, pb) = _wrapped(rng), _wrapped(rng)
        return f"{a} but {b}", pb
    if kind < 0.6:
        (a, _), (b, pb) = _clause(rng), _wrapped(rng)
        return f"although {a} , {b}", pb
    if kind < 0.7:
        (a, pa), (b, _) = _wrapped(rng), _clause(rng)
        return f"{a} , even though {b}", pa
    if kind < 0.8:
        expected = 1 if rng.random() < 0.5 else -1
        actual, polarity = _clause_adjective(rng)
        return f"i expected it to be {_adjective(rng, expected)} but it was {actual}", polarity
    if kind < 0.9:
        (a, pa) = _clause(rng)
        b, pb = _clause(rng)
        while pb != pa:  # "and" joins agreeing clauses; disagreeing ones would have no label
            b, pb = _clause(rng)
        return f"{a} and {b}", pa
    (a, _), (b, pb) = _clause(rng), _clause(rng)
    return f"at first {a} , but in the end {b}", pb


def _generate(rng: np.random.Generator, n: int, seen: Set[str]) -> Tuple[List[str], np.ndarray]:
    sentences: List[str] = []
    labels = np.arange(n, dtype=np.int32) % 2  # balanced
    rng.shuffle(labels)
    for label in labels:
        while True:
            text, polarity = _sentence(rng)
            if (polarity > 0) == bool(label) and text not in seen and len(text.split()) <= MAX_WORDS:
                break
        seen.add(text)
        sentences.append(text)
    return sentences, labels


def make_synthetic(split: str, seed: int = 0, num_train: int = 2000, num_dev: int = 400,
                   max_examples: Optional[int] = None) -> Examples:
    """The `train` or `dev` split of the synthetic sentiment task.

    Both splits are generated together from `seed`, so dev stays disjoint from
    train for any split asked for.

    Args:
        split: `train`, or `dev` / `validation`.
        seed: the generator seed; the same seed gives the same data.
        num_train: training examples.
        num_dev: dev examples.
        max_examples: keep only the first this many.

    Example:
    >>> dev = make_synthetic("dev")
    >>> len(dev), int(dev.labels.sum())
    (400, 200)
    """
    if split not in ("train", "dev", "validation"):
        raise TfkdError(f"unknown split '{split}' for task synthetic. Fix: use train or dev.")
    rng = np.random.default_rng(seed)
    seen: Set[str] = set()
    train = _generate(rng, num_train, seen)
    texts, labels = train if split == "train" else _generate(rng, num_dev, seen)
    return Examples(text_a=texts, text_b=None, labels=labels, source="synthetic").take(max_examples)
