"""tfkd: knowledge distillation of BERT-style models from intermediate representations.

tfkd selects Keras 3's TensorFlow backend itself, so users need no
environment variable.

Example:
>>> import tfkd
>>> tfkd.LOSSES.names()  # doctest: +ELLIPSIS
[...'codir'...]
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ["KERAS_BACKEND"] != "tensorflow":
    raise ImportError(
        f"tfkd needs Keras' TensorFlow backend, but KERAS_BACKEND={os.environ['KERAS_BACKEND']}. "
        "Fix: unset KERAS_BACKEND or set it to 'tensorflow'."
    )

__version__ = "0.1.0"

from tfkd.core.errors import TfkdError  # noqa: E402
from tfkd.core.registry import Registry  # noqa: E402
from tfkd.losses import LOSSES, DistillationLoss, DistillContext, ModelSpec, register_loss  # noqa: E402
