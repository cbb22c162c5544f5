"""Data for pre-training distillation: unlabelled texts and masked-LM batches.

The corpus is either a text file with one sentence per line or the training
texts of a GLUE task with the labels dropped. It is tokenized and batched by
`tfkd.data.pipeline` like any split (same length bucketing, same stable
`index`, which CoDIR's memory bank is keyed by); `mask_batches` then applies
BERT's masked-LM masking to every batch with keras-hub's
`MaskedLMMaskGenerator`: 15% of the real tokens other than [CLS]/[SEP] are
selected per example, of which 80% become [MASK], 10% a random token and 10%
stay as they are.

Example:
>>> import pathlib
>>> from tfkd.data.pipeline import make_dataset, tokenize
>>> from tfkd.data.tokenizer import make_tokenizer
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
>>> _ = pathlib.Path("corpus.txt").write_text("the film was good\\nthe film was not good\\n")
>>> tokenizer = make_tokenizer("vocab.txt")
>>> examples = load_pretraining_texts(text_file="corpus.txt")
>>> split = tokenize(examples, tokenizer, max_seq_length=128)
>>> masking = MaskingConfig.for_tokenizer(tokenizer, max_seq_length=128)
>>> ds = mask_batches(make_dataset(split, 2, shuffle=True, seed=1), masking, seed=1)
>>> sorted(next(iter(ds)))
['index', 'labels', 'mask_ids', 'mask_positions', 'mask_weights', 'padding_mask', 'segment_ids', 'token_ids', 'weight']
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional, Tuple

import keras_hub
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.data.examples import Examples
from tfkd.data.load import load_split, load_unlabeled_text
from tfkd.data.tasks import get_task


def load_pretraining_texts(
    text_file: Optional[str] = None,
    task: Optional[str] = None,
    glue_dir: Optional[str] = None,
    max_examples: Optional[int] = None,
) -> Examples:
    """The pre-training corpus: sentences of a file, or a GLUE task's training texts without labels.

    Exactly one of `text_file` and `task` must be given. Labels are replaced
    by zeros so that nothing downstream can use them; sentence-pair tasks keep
    both texts (packed as `[CLS] a [SEP] b [SEP]`).

    Args:
        text_file: a UTF-8 file with one sentence per line (blank lines skipped).
        task: a GLUE task name (`sst2`, `mrpc`, ...) whose training split is read.
        glue_dir: the GLUE TSV folder for `task` (None: tensorflow-datasets).
        max_examples: keep only the first this many texts.

    Example:
    >>> corpus = load_pretraining_texts(task="synthetic", max_examples=10)  # or task="sst2", glue_dir=...
    >>> len(corpus), bool(corpus.labels.any()), corpus.source
    (10, False, 'synthetic (labels dropped)')
    """
    if bool(text_file) == bool(task):
        raise TfkdError(
            "pre-training needs exactly one corpus. Fix: pass --text_file=<one sentence per line> "
            "or --task=<glue task> (with --glue_dir), not both and not neither."
        )
    if max_examples is not None and max_examples < 1:
        raise TfkdError(f"max_examples={max_examples}. Fix: pass a positive number, or none for all texts.")
    if text_file:
        sentences = load_unlabeled_text(text_file)[:max_examples]
        return Examples(sentences, None, np.zeros(len(sentences), np.int32), text_file)
    examples = load_split(get_task(task), "train", glue_dir, max_examples=max_examples)
    return Examples(examples.text_a, examples.text_b, np.zeros(len(examples), np.int32), f"{examples.source} (labels dropped)")


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """BERT's masked-LM masking, as keras-hub's `MaskedLMMaskGenerator` takes it.

    Args:
        vocabulary_size: the vocabulary size (random replacements are drawn from all of it).
        mask_token_id: the id of [MASK].
        unselectable_ids: ids never selected ([CLS], [SEP], [PAD]); padding
            positions are excluded by the padding mask in any case.
        max_predictions: masked positions per example, the width of
            `mask_positions` (BERT: 20 for 128 tokens).
        selection_rate: fraction of the selectable tokens of an example that
            are predicted (rounded up).
        mask_token_rate: fraction of those replaced by [MASK].
        random_token_rate: fraction replaced by a random token (the rest stay unchanged).

    Example:
    >>> MaskingConfig(vocabulary_size=30522, mask_token_id=103, unselectable_ids=(101, 102, 0),
    ...               max_predictions=20).selection_rate
    0.15
    """

    vocabulary_size: int
    mask_token_id: int
    unselectable_ids: Tuple[int, ...]
    max_predictions: int
    selection_rate: float = 0.15
    mask_token_rate: float = 0.8
    random_token_rate: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.selection_rate <= 1.0:
            raise TfkdError(f"mask selection rate {self.selection_rate} is not in (0, 1]. Fix: e.g. --mlm_probability=0.15.")
        if min(self.mask_token_rate, self.random_token_rate) < 0.0 or self.mask_token_rate + self.random_token_rate > 1.0:
            raise TfkdError(
                f"mask_token_rate={self.mask_token_rate} and random_token_rate={self.random_token_rate} must be "
                "non-negative and sum to at most 1. Fix: BERT uses 0.8 and 0.1."
            )
        if self.max_predictions < 1:
            raise TfkdError(f"max_predictions={self.max_predictions}. Fix: pass a positive number.")

    @classmethod
    def for_tokenizer(
        cls,
        tokenizer,
        max_seq_length: int,
        selection_rate: float = 0.15,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
    ) -> "MaskingConfig":
        """The configuration for a keras-hub `BertTokenizer`; `max_predictions` is
        `ceil(selection_rate · max_seq_length)`, which no example can exceed.

        Args:
            tokenizer: the `BertTokenizer` the corpus was tokenized with.
            max_seq_length: the longest example, [CLS]/[SEP] included.
            selection_rate, mask_token_rate, random_token_rate: as in the class.

        Example:
        >>> import pathlib
        >>> from tfkd.data.tokenizer import make_tokenizer
        >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\n")
        >>> masking = MaskingConfig.for_tokenizer(make_tokenizer("vocab.txt"), 128)
        >>> masking.max_predictions, masking.mask_token_id, masking.unselectable_ids
        (20, 4, (2, 3, 0))
        """
        return cls(
            vocabulary_size=int(tokenizer.vocabulary_size()),
            mask_token_id=int(tokenizer.mask_token_id),
            unselectable_ids=(int(tokenizer.cls_token_id), int(tokenizer.sep_token_id), int(tokenizer.pad_token_id)),
            max_predictions=max(1, math.ceil(selection_rate * max_seq_length)),
            selection_rate=selection_rate,
            mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
        )


def mask_batches(dataset: tf.data.Dataset, config: MaskingConfig, seed: int) -> tf.data.Dataset:
    """Adds masked-LM inputs and targets to every batch of `dataset` (from `make_dataset`).

    Each batch gets `token_ids` with the selected tokens replaced, and
    `mask_positions` (int32 `[B, P]`), `mask_ids` (int32 `[B, P]`, the
    original tokens) and `mask_weights` (float32 `[B, P]`, 1 for a real
    prediction, 0 for a padding slot), `P = config.max_predictions`. Only real
    tokens can be selected: each example is cut to its length (from
    `padding_mask`) before keras-hub's masker sees it. All other keys pass
    through unchanged.

    The masks are a function of `seed` and the order of the batches: the
    same dataset masked with the same seed gives the same masks, and every
    batch (so every epoch) gets fresh ones. Iterating a dataset anew, as a
    resumed run does, restarts the sequence.

    Args:
        dataset: batches with `token_ids` and `padding_mask` `[B, n]`.
        config: the `MaskingConfig`.
        seed: the seed of the masks.

    Example:
    >>> import pathlib
    >>> from tfkd.data.pipeline import make_dataset, tokenize
    >>> from tfkd.data.tokenizer import make_tokenizer
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
    >>> texts = ["the film was good", "the film was not good"]
    >>> split = tokenize(Examples(texts, None, np.zeros(2, np.int32), "demo"), make_tokenizer("vocab.txt"), 16)
    >>> config = MaskingConfig(vocabulary_size=10, mask_token_id=4, unselectable_ids=(2, 3, 0), max_predictions=3)
    >>> batch = next(iter(mask_batches(make_dataset(split, 2, shuffle=True, seed=1, epochs=3), config, seed=1)))
    >>> batch["mask_positions"].shape, batch["mask_weights"].numpy().tolist()  # weight 0: an unused slot
    (TensorShape([2, 3]), [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    """
    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=config.vocabulary_size,
        mask_selection_rate=config.selection_rate,
        mask_token_id=config.mask_token_id,
        mask_selection_length=config.max_predictions,
        unselectable_token_ids=list(config.unselectable_ids),
        mask_token_rate=config.mask_token_rate,
        random_token_rate=config.random_token_rate,
    )
    width = config.max_predictions

    def mask_example(row: Tuple[tf.Tensor, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        token_ids, length = row
        out = masker(token_ids[:length])
        masked = tf.concat([tf.cast(out["token_ids"], tf.int32), token_ids[length:]], axis=0)
        return (
            masked,
            tf.ensure_shape(tf.cast(out["mask_positions"], tf.int32), [width]),
            tf.ensure_shape(tf.cast(out["mask_ids"], tf.int32), [width]),
            tf.ensure_shape(tf.cast(out["mask_weights"], tf.float32), [width]),
        )

    def mask_batch(batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        # keras-hub's masker draws from TensorFlow's unseeded stateful random
        # ops. A graph-level seed on this function's graph fixes their op seeds
        # (without touching the process-wide seed), and masking one example at
        # a time (parallel_iterations=1; the masker would otherwise shuffle its
        # rows in parallel loop iterations) fixes the order of the draws.
        tf.random.set_seed(seed)
        token_ids = tf.cast(batch["token_ids"], tf.int32)
        lengths = tf.reduce_sum(tf.cast(batch["padding_mask"], tf.int32), axis=1)
        masked, positions, ids, weights = tf.map_fn(
            mask_example,
            (token_ids, lengths),
            fn_output_signature=(
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([width], tf.int32),
                tf.TensorSpec([width], tf.int32),
                tf.TensorSpec([width], tf.float32),
            ),
            parallel_iterations=1,
        )
        return dict(
            batch,
            token_ids=tf.ensure_shape(masked, batch["token_ids"].shape),
            mask_positions=positions,
            mask_ids=ids,
            mask_weights=weights,
        )

    # A sequential map: parallel calls would interleave the stateful draws.
    return dataset.map(mask_batch).prefetch(tf.data.AUTOTUNE)
