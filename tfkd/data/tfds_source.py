"""GLUE from tensorflow-datasets (`glue/<task>`), used when no `--glue_dir` is given.

tfds without a network retries its download for minutes and leaves empty
folders behind, so this module probes first: an already prepared dataset is
read at once; otherwise the download host must answer a TCP connect within a
few seconds, or a `TfkdError` says to pass `--glue_dir`. Folders created by a
failed download are removed.

Example:
>>> from tfkd.data.tasks import get_task
>>> ex = load_tfds_split(get_task("sst2"), "dev")  # doctest: +SKIP
>>> ex.source  # doctest: +SKIP
'tfds:glue/sst2'
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import List, Optional

import numpy as np

from tfkd.core.errors import TfkdError
from tfkd.core.network import reachable
from tfkd.data.examples import Examples
from tfkd.data.tasks import GlueTask

logger = logging.getLogger(__name__)

# Where tfds' glue builder downloads from (MRPC also needs firebasestorage).
DOWNLOAD_HOST = ("dl.fbaipublicfiles.com", 443)


def _offline_error(task: GlueTask, data_dir: str, why: str) -> TfkdError:
    return TfkdError(
        f"tensorflow-datasets has no prepared {task.tfds_name} in {data_dir} and {why}. Fix: pass "
        f"--glue_dir=<folder> with the original GLUE TSV files: {task.tsv_folder}/{task.tsv_train_file} and "
        f"{task.tsv_folder}/{', '.join(task.tsv_dev_files)} under it (or the {task.tsv_folder} folder itself)."
    )


def _created_dirs(paths: List[str]) -> List[str]:
    return [p for p in paths if not os.path.exists(p)]


def _load(task: GlueTask, split: str, data_dir: str, download: bool):
    import tensorflow_datasets as tfds  # slow to import; only this source needs it

    return tfds.as_numpy(tfds.load(task.tfds_name, split=split, data_dir=data_dir, download=download, try_gcs=False))


def load_tfds_split(
    task: GlueTask, split: str, data_dir: Optional[str] = None, max_examples: Optional[int] = None
) -> Examples:
    """Examples of one split of `task` from tensorflow-datasets.

    Args:
        task: the task (must have a `tfds_name`).
        split: `train`, `dev` or a dev split name (`validation_mismatched`, `dev_mismatched`).
        data_dir: tfds' data folder (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        max_examples: read only the first this many examples.

    Example:
    >>> from tfkd.data.tasks import get_task
    >>> load_tfds_split(get_task("mrpc"), "train", max_examples=100).labels.shape  # doctest: +SKIP
    (100,)
    >>> load_tfds_split(get_task("synthetic"), "train")
    Traceback (most recent call last):
    ...
    tfkd.core.errors.TfkdError: task synthetic is not in tensorflow-datasets. Fix: use a GLUE task.
    """
    if task.tfds_name is None:
        raise TfkdError(f"task {task.name} is not in tensorflow-datasets. Fix: use a GLUE task.")
    dev = task.resolve_split(split)
    tfds_split = "train" if dev is None else task.dev_splits[dev]
    if max_examples is not None:
        tfds_split += f"[:{max_examples}]"
    data_dir = os.path.expanduser(
        data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    )
    try:
        dataset = _load(task, tfds_split, data_dir, download=False)
    except (AssertionError, FileNotFoundError, ValueError) as not_prepared:
        # tfds signals "not prepared" with an AssertionError (DatasetNotFoundError in
        # some versions, a FileNotFoundError subclass); anything else is a real error.
        logger.info("%s is not prepared in %s (%s)", task.tfds_name, data_dir, not_prepared)
        if not reachable(*DOWNLOAD_HOST):
            raise _offline_error(task, data_dir, f"{DOWNLOAD_HOST[0]} cannot be reached (offline?)") from None
        builder_dir = os.path.join(data_dir, *task.tfds_name.split("/"))
        ours = _created_dirs([data_dir, os.path.dirname(builder_dir), builder_dir, os.path.join(data_dir, "downloads")])
        try:
            dataset = _load(task, tfds_split, data_dir, download=True)
        except Exception as e:
            for path in reversed(ours):  # deepest first
                shutil.rmtree(path, ignore_errors=True)
            raise _offline_error(task, data_dir, f"downloading it failed ({type(e).__name__}: {e})") from e
    text_a: List[str] = []
    text_b: List[str] = []
    labels = []
    for row in dataset:
        text_a.append(row[task.text_fields[0]].decode("utf-8"))
        if task.is_pair:
            text_b.append(row[task.text_fields[1]].decode("utf-8"))
        labels.append(row["label"])
    if not labels:
        raise TfkdError(f"tfds:{task.tfds_name} split {tfds_split} is empty. Fix: pass --glue_dir instead.")
    return Examples(
        text_a=text_a,
        text_b=text_b if task.is_pair else None,
        labels=np.asarray(labels, np.float32 if task.is_regression else np.int32),
        source=f"tfds:{task.tfds_name}",
    )
