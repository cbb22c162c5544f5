"""tfkd: knowledge distillation of BERT-style models from intermediate representations.

The public API: a run is configured with plain dataclasses (`RunConfig` and
its sections `DataConfig`, `TeacherConfig`, `StudentConfig`, `MethodConfig`,
`OptimConfig`, `RuntimeConfig`, `AugmentConfig`; `PretrainConfig` for CoDIR pre-training) and
run by `run_finetune`, `run_distill` or `run_pretrain`, which return a
`RunResult` (also written to `<workdir>/results.json`; `read_result` reads one
back). Losses and data augmenters are pluggable (`register_loss`, `LOSSES`;
`register_augmenter`, `AUGMENTERS`). The commands
(`python -m tfkd.train`, ...) are flags mapped onto these calls.

tfkd selects Keras 3's TensorFlow backend itself, so users need no
environment variable.

Example:
>>> import tfkd
>>> tfkd.LOSSES.names()  # doctest: +ELLIPSIS
[...'codir'...]
>>> tfkd.RunConfig(workdir="/tmp/run", method=tfkd.MethodConfig(name="codir")).method.kd_beta
0.5
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
from tfkd.data.augment import AUGMENTERS, register_augmenter  # noqa: E402
from tfkd.losses import LOSSES, DistillationLoss, DistillContext, ModelSpec, register_loss  # noqa: E402
from tfkd.training.api import run_distill, run_finetune, run_pretrain  # noqa: E402
from tfkd.training.config import (  # noqa: E402
    AugmentConfig,
    DataConfig,
    MethodConfig,
    MLMConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    RuntimeConfig,
    StudentConfig,
    TeacherConfig,
)
from tfkd.training.results import RunResult, read_result  # noqa: E402

__all__ = [
    "AUGMENTERS", "AugmentConfig", "LOSSES", "DataConfig", "DistillContext", "DistillationLoss", "MLMConfig",
    "MethodConfig", "ModelSpec", "OptimConfig", "PretrainConfig", "Registry", "RunConfig", "RunResult",
    "RuntimeConfig", "StudentConfig", "TeacherConfig", "TfkdError", "read_result", "register_augmenter",
    "register_loss", "run_distill", "run_finetune", "run_pretrain",
]
