"""Running a model over a dev split and scoring it with the task's official metrics."""

from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.data.pipeline import DEFAULT_PAD_TO_MULTIPLE_OF, TokenizedSplit, make_dataset
from tfkd.data.tasks import GlueTask
from tfkd.evaluate.metrics import compute_metrics
from tfkd.models.bert import INPUT_NAMES, BertModel


def _forward_fn(model: BertModel, jit_compile: bool):
    # Without XLA one trace with unknown lengths serves every batch; with XLA each length compiles anyway.
    @tf.function(jit_compile=jit_compile, reduce_retracing=not jit_compile)
    def forward(token_ids, segment_ids, padding_mask):
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": tf.cast(padding_mask, tf.int32)}
        return model(inputs, training=False)["logits"]

    return forward


class Evaluator:
    """Scores a model on one tokenized split; compiles once per padded length.

    Args:
        task: the `GlueTask` (metrics, regression or not).
        split: the tokenized dev split; one without labels (`has_labels` False) is refused.
        batch_size: evaluation batch size.
        jit_compile: compile the forward pass with XLA.
        pad_to_multiple_of: bucketing of the batches (the run's, so dev evaluation compiles the shapes
            training compiles; 0: geometric buckets).

    Example:
    >>> import pathlib
    >>> import numpy as np
    >>> from tfkd.data import Examples, get_task, make_tokenizer, tokenize
    >>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nfine\\nfilm\\n")
    >>> dev_split = tokenize(Examples(["a fine film", "a film"], None, np.array([1, 0], np.int32), "dev"),
    ...                      make_tokenizer("vocab.txt"), 16)
    >>> model = BertModel(vocabulary_size=8, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    >>> metrics = Evaluator(get_task("sst2"), dev_split, 64, jit_compile=False).evaluate(model)
    >>> sorted(metrics), 0.0 <= metrics["accuracy"] <= 1.0
    (['accuracy'], True)
    """

    def __init__(self, task: GlueTask, split: TokenizedSplit, batch_size: int = 64, jit_compile: bool = True,
                 pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF):
        if not split.has_labels:
            # Its labels are placeholders (-1 or NaN): metrics over them would be numbers that mean nothing.
            raise TfkdError(f"the {task.name} split to score has no labels, so it cannot be scored. Fix: score a "
                            "labelled split (dev), or get predictions for unlabelled rows with "
                            "python -m tfkd.predict --model=<model dir> --input=<file> --output=<file>.")
        self.task = task
        self.split = split
        self.dataset = make_dataset(split, batch_size, shuffle=False, seed=0, pad_to_multiple_of=pad_to_multiple_of)
        self.jit_compile = jit_compile
        self._forwards: Dict[int, object] = {}

    def predict_logits(self, model: BertModel) -> np.ndarray:
        """Logits `[N, C]` in example-index order."""
        forward = self._forwards.get(id(model))
        if forward is None:
            forward = self._forwards[id(model)] = _forward_fn(model, self.jit_compile)
        num_examples = len(self.split.lengths)
        logits = np.zeros((num_examples, model.num_classes), np.float32)
        for batch in self.dataset:
            out = forward(*(batch[name] for name in INPUT_NAMES)).numpy()
            keep = batch["weight"].numpy() > 0
            logits[batch["index"].numpy()[keep]] = out[keep]
        return logits

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, 0] if self.task.is_regression else logits.argmax(-1)

    def evaluate(self, model: BertModel, logits: Optional[np.ndarray] = None) -> Dict[str, float]:
        """The task's metrics (fractions in [0, 1]; correlations in [-1, 1])."""
        if logits is None:
            logits = self.predict_logits(model)
        return compute_metrics(self.task, self.split.labels, self.predictions(logits))

    def throughput(self, model: BertModel) -> float:
        """Examples per second of the forward pass over the split (after compiling)."""
        self.predict_logits(model)
        start = time.perf_counter()
        self.predict_logits(model)
        return len(self.split.lengths) / (time.perf_counter() - start)
