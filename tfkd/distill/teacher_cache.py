"""Teacher-output cache: run the frozen teacher once, then train without it.

A frozen teacher (`training=False`) on deterministic inputs gives the same
outputs every epoch. When every loss reads only per-example teacher features
(`DistillationLoss.teacher_features`: logits, pooled layer states), those are
computed once over the training split, stored in a directory (one `.npy` per
feature, rows in the split's order, plus the example indices) and gathered
into each training batch by `tf.data` under the key `teacher/<feature>`. The
distiller then reads them instead of running the teacher, so a kd or CoDIR
step costs about what fine-tuning the student alone costs.

A cache records a fingerprint of everything its numbers depend on (teacher
weights, vocabulary, tokenized data, features, dtype); a cache whose
fingerprint differs is refused, never used.

Example:
>>> import pathlib
>>> from tfkd.data.examples import Examples
>>> from tfkd.data.pipeline import tokenize
>>> from tfkd.data.tokenizer import make_tokenizer
>>> from tfkd.losses import LOSSES, DistillContext, ModelSpec
>>> from tfkd.models import BertModel
>>> _ = pathlib.Path("vocab.txt").write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\nthe\\nfilm\\nwas\\ngood\\n")
>>> examples = Examples(["the film was good", "good", "the film"], None, np.array([1, 1, 0], np.int32), "demo")
>>> train = tokenize(examples, make_tokenizer("vocab.txt"), 16)
>>> teacher = BertModel(vocabulary_size=9, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> kd = LOSSES.get("kd")(DistillContext(ModelSpec(1, 8, 2), ModelSpec(1, 8, 2), ((1, 1),)))
>>> features, blockers = cacheable_features([kd])  # a run passes its distiller.loss_layers
>>> features, blockers
(('logits',), [])
>>> cache = load_or_build("teacher_cache", teacher, "vocab.txt", train, features)
>>> cache.built, cache.features["logits"].shape
(True, (3, 2))
>>> ds = make_dataset(train, 2, shuffle=True, seed=1, extras=cache.extras())
>>> sorted(next(iter(ds)))
['index', 'labels', 'padding_mask', 'segment_ids', 'teacher/logits', 'token_ids', 'weight']
>>> load_or_build("teacher_cache", teacher, "vocab.txt", train, features).built  # the next run loads it
False
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkd.core.errors import TfkdError
from tfkd.core.jsonfile import read_json, write_json
from tfkd.core.paths import check_directory_target
from tfkd.data.pipeline import DEFAULT_PAD_TO_MULTIPLE_OF, TokenizedSplit, make_dataset, steps_per_epoch
from tfkd.data.tokenizer import vocab_checksum
from tfkd.losses._common import pool
from tfkd.losses.base import DistillationLoss
from tfkd.models.bert import INPUT_NAMES

PREFIX = "teacher/"
FINGERPRINT = "fingerprint.json"
DTYPES = ("float32", "float16")


def cacheable_features(loss_layers: Iterable[DistillationLoss]) -> Tuple[Optional[Tuple[str, ...]], List[str]]:
    """`(features, blockers)`: the union of the losses' teacher features, or
    None with the names of the losses that read token-level teacher outputs."""
    features, blockers = set(), []
    for layer in loss_layers:
        needed = layer.teacher_features()
        if needed is None:
            blockers.append(layer.name)
        else:
            features.update(needed)
    return (None if blockers else tuple(sorted(features))), blockers


def compute_features(teacher_outputs: Mapping, padding_mask: tf.Tensor, keys: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The per-example features `keys` (`"logits"`, `"mean_<l>"`, `"cls_<l>"`) from live teacher outputs."""
    features = {}
    for key in keys:
        if key == "logits":
            features[key] = tf.cast(teacher_outputs["logits"], tf.float32)
        else:
            pooling, layer = key.split("_")
            features[key] = pool(teacher_outputs["hidden_states"][int(layer)], padding_mask, pooling)
    return features


def cached_outputs(batch: Mapping[str, tf.Tensor]) -> Optional[Dict[str, object]]:
    """The teacher-output dict losses read, from a batch carrying cached features; None when it carries none."""
    cached = {key[len(PREFIX):]: tf.cast(value, tf.float32) for key, value in batch.items() if key.startswith(PREFIX)}
    if not cached:
        return None
    outputs: Dict[str, object] = {"features": {k: v for k, v in cached.items() if k != "logits"}}
    if "logits" in cached:
        outputs["logits"] = cached["logits"]
    return outputs


def _sha256(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def fingerprint(
    teacher: keras.Model, vocab_path: str, split: TokenizedSplit, features: Sequence[str], dtype: str
) -> Dict[str, object]:
    """What the cached numbers depend on; two caches with equal fingerprints hold the same values."""
    return {
        "teacher_weights": _sha256(keras.ops.convert_to_numpy(w) for w in teacher.weights if "seed_generator" not in w.path),
        "vocabulary": vocab_checksum(vocab_path),
        "data": _sha256([split.token_ids, split.segment_ids, split.offsets, split.index]),
        "max_seq_length": int(split.max_seq_length),
        "examples": int(len(split)),
        "features": list(features),
        "dtype": dtype,
        "precision": keras.config.dtype_policy().name,
    }


@dataclasses.dataclass
class TeacherCache:
    """Cached teacher features `[N, ...]`, rows in the training split's order.

    Args:
        directory: where the cache lives.
        features: feature name → array.
        built: True when this run computed it, False when it was loaded.
        reused: how many of its last rows were given (`load_or_build`'s `known_tail`), not computed.
    """

    directory: str
    features: Dict[str, np.ndarray]
    built: bool
    reused: int = 0

    def extras(self) -> Dict[str, np.ndarray]:
        """The arrays `make_dataset(..., extras=)` gathers into each batch."""
        return {PREFIX + key: value for key, value in self.features.items()}

    @property
    def nbytes(self) -> int:
        return int(sum(value.nbytes for value in self.features.values()))


def _describe_mismatch(stored: Mapping, expected: Mapping) -> str:
    names = {
        "teacher_weights": "another teacher (its weights differ)",
        "vocabulary": "another vocabulary",
        "data": "other training data (the tokenized examples differ)",
        "max_seq_length": f"max_seq_length {stored.get('max_seq_length')} (this run: {expected['max_seq_length']})",
        "examples": f"{stored.get('examples')} examples (this run: {expected['examples']})",
        "features": f"features {stored.get('features')} (this run needs {expected['features']})",
        "dtype": f"dtype {stored.get('dtype')} (this run: {expected['dtype']})",
        "precision": f"precision policy {stored.get('precision')} (this run: {expected['precision']})",
    }
    return "; ".join(text for key, text in names.items() if stored.get(key) != expected[key])


def _load(directory: str, expected: Mapping, split: TokenizedSplit) -> Dict[str, np.ndarray]:
    features = {}
    try:
        for key in expected["features"]:
            features[key] = np.load(os.path.join(directory, f"{key}.npy"), mmap_mode=None)
        index = np.load(os.path.join(directory, "index.npy"))
    except (OSError, ValueError) as e:
        raise TfkdError(
            f"the teacher-output cache in {directory} is damaged ({e}). Fix: delete {directory} to rebuild it, "
            "or pass --teacher_cache=off."
        ) from None
    rows = {value.shape[0] for value in features.values()} | {index.shape[0]}
    if rows != {len(split)} or not np.array_equal(index, split.index):
        raise TfkdError(
            f"the teacher-output cache in {directory} does not have one row per training example in order. "
            f"Fix: delete {directory} to rebuild it, or pass --teacher_cache=off."
        )
    return features


def teacher_pass(
    teacher: keras.Model, split: TokenizedSplit, keys: Sequence[str], dtype: str = "float32", batch_size: int = 64,
    pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF,
) -> Dict[str, np.ndarray]:
    """The per-example teacher features `keys` (see `compute_features`) of every example of `split`, `[N, ...]`
    in its row order, from one pass of the frozen teacher with a progress bar.

    Args:
        teacher: the frozen teacher (a `BertModel`).
        split: the tokenized examples.
        keys: the feature names (`"logits"`, `"mean_<l>"`, `"cls_<l>"`).
        dtype: storage of the arrays.
        batch_size: batch size of the pass.
        pad_to_multiple_of: its bucketing.
    """
    @tf.function
    def forward(batch):
        inputs = {name: batch[name] for name in INPUT_NAMES}
        return compute_features(teacher(inputs, training=False), batch["padding_mask"], keys)

    num_batches = steps_per_epoch(split, batch_size)
    # Evaluation order, with each example's row position riding along.
    dataset = make_dataset(split, batch_size, shuffle=False, seed=0, pad_to_multiple_of=pad_to_multiple_of,
                           extras={"row": np.arange(len(split), dtype=np.int32)})
    arrays: Dict[str, np.ndarray] = {}
    progress = keras.utils.Progbar(num_batches, unit_name="batch")
    for step, batch in enumerate(dataset):
        rows = batch["row"].numpy()
        for key, value in forward(batch).items():
            value = value.numpy()
            if key not in arrays:
                arrays[key] = np.zeros((len(split),) + value.shape[1:], dtype)
            arrays[key][rows] = value
        progress.update(step + 1)
    return arrays


def load_or_build(
    directory: str,
    teacher: keras.Model,
    vocab_path: str,
    split: TokenizedSplit,
    features: Sequence[str],
    dtype: str = "float32",
    batch_size: int = 64,
    pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF,
    known_tail: Optional[Mapping[str, np.ndarray]] = None,
) -> TeacherCache:
    """The cache of `features` for `split` in `directory`: loaded when its
    fingerprint matches, computed (one teacher pass, with a progress bar) when
    the directory holds none; a cache with another fingerprint raises a
    `TfkdError` naming what differs.

    Args:
        directory: the cache's directory.
        teacher: the frozen teacher (a `BertModel`).
        vocab_path: the teacher's vocabulary file.
        split: the tokenized training split.
        features: the feature names (`cacheable_features`).
        dtype: "float32", or "float16" for half the memory.
        batch_size: batch size of the teacher pass.
        pad_to_multiple_of: its bucketing (the run's, so the pass compiles the shapes training compiles).
        known_tail: features of the split's last rows that a teacher pass already computed (the labelling
            pass over augmented examples); when they include every one of `features`, the teacher runs over
            the other rows only.
    """
    if dtype not in DTYPES:
        raise TfkdError(f"teacher-cache dtype '{dtype}' is not supported. Fix: use one of {', '.join(DTYPES)}.")
    check_directory_target(directory, "--teacher_cache")
    expected = fingerprint(teacher, vocab_path, split, features, dtype)
    path = os.path.join(directory, FINGERPRINT)
    if os.path.exists(path):
        fix = f"delete {directory} to rebuild it, pass --teacher_cache=<another directory>, or --teacher_cache=off"
        stored = read_json(path, fix=fix, damaged="(the teacher-output cache's fingerprint) is damaged")
        if stored != expected:
            differs = _describe_mismatch(stored, expected) if isinstance(stored, dict) else ""
            raise TfkdError(f"the teacher-output cache in {directory} was made for "
                            f"{differs or 'an unreadable fingerprint'}; it is not used. Fix: {fix}.")
        return TeacherCache(directory, _load(directory, expected, split), built=False)
    if os.path.isdir(directory) and os.listdir(directory):
        raise TfkdError(
            f"{directory} is not empty but holds no teacher-output cache ({FINGERPRINT} is missing). "
            "Fix: point --teacher_cache at an empty or new directory."
        )
    tail = len(next(iter(known_tail.values()))) if known_tail and set(features) <= set(known_tail) else 0
    head = len(split) - tail
    parts = [teacher_pass(teacher, split.head(head), features, dtype, batch_size, pad_to_multiple_of)] if head else []
    if tail:
        parts.append({key: np.asarray(known_tail[key], dtype) for key in features})
    arrays = parts[0] if len(parts) == 1 else {key: np.concatenate([part[key] for part in parts]) for key in features}
    # One staging folder per process: runs sharing a cache directory may build it at the same time.
    staging = f"{directory.rstrip('/')}.partial-{os.getpid()}"
    try:
        os.makedirs(staging)
        for key, value in arrays.items():
            np.save(os.path.join(staging, f"{key}.npy"), value)
        np.save(os.path.join(staging, "index.npy"), split.index)
        write_json(os.path.join(staging, FINGERPRINT), expected, indent=1)
        try:
            os.rename(staging, directory)  # replaces an empty directory
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another run finished this cache first: use it, checked like any other.
            return load_or_build(directory, teacher, vocab_path, split, features, dtype, batch_size, pad_to_multiple_of)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TeacherCache(directory, arrays, built=True, reused=tail)
