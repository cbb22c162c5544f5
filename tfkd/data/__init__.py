"""tfkd's data layer: tasks, data sources, tokenization and length-bucketed batches.

Example:
>>> import pathlib
>>> from tfkd.data import get_task, load_split, make_tokenizer, tokenize, make_dataset
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\nnot\\ngood\\n")
>>> task = get_task("synthetic")  # get_task("mrpc") with glue_dir="<GLUE folder>", or None for tensorflow-datasets
>>> split = tokenize(load_split(task, "train", None, max_examples=64), make_tokenizer("vocab.txt"), 32)
>>> ds = make_dataset(split, 32, shuffle=True, seed=1, epochs=3)
>>> [batch["token_ids"].shape[0] for batch in ds]  # 2 batches an epoch, 3 epochs
[32, 32, 32, 32, 32, 32]
"""

from tfkd.data.examples import Examples
from tfkd.data.load import load_split, load_unlabeled_text
from tfkd.data.pipeline import (
    TokenizedSplit,
    batch_plan,
    bucket_lengths,
    length_percentile,
    make_dataset,
    padding_efficiency,
    steps_per_epoch,
    tokenize,
)
from tfkd.data.pretrain import MaskingConfig, load_pretraining_texts, mask_batches
from tfkd.data.synthetic import make_synthetic
from tfkd.data.tasks import TASKS, GlueTask, get_task
from tfkd.data.tokenizer import make_tokenizer, vocab_checksum

__all__ = [
    "mask_batches",
    "load_pretraining_texts",
    "MaskingConfig",
    "Examples",
    "GlueTask",
    "TASKS",
    "TokenizedSplit",
    "batch_plan",
    "bucket_lengths",
    "get_task",
    "length_percentile",
    "load_split",
    "load_unlabeled_text",
    "make_dataset",
    "make_synthetic",
    "make_tokenizer",
    "padding_efficiency",
    "steps_per_epoch",
    "tokenize",
    "vocab_checksum",
]
