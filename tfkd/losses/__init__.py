"""Distillation losses, one module per method, all in one registry (`LOSSES`).

Importing this package imports every module of it whose name does not start
with `_` (those are helpers), which registers every built-in loss: `ce`, `kd`
(output losses), `pkd` (PKD-style L2 baseline), `attention_kl`, `cls_cosine`
(Aguilar et al.), `codir` (CoDIR), `ackd` (ACKD, reconstructed from its
abstract) and `ckd_wr_pair`, `ckd_wr_angle`, `ckd_ltr_pair`, `ckd_ltr_angle`
(CKD), and `mlm` (masked-LM loss of CoDIR's pre-training stage). A new
built-in loss is a new module here and needs no line in this file.

Example:
>>> import tfkd.losses
>>> [h.name for h in tfkd.losses.hyperparameters("pkd")]
['variant']
"""

import importlib
import pkgutil

from tfkd.losses.ackd import ACKDLoss
from tfkd.losses.base import (
    GOLD,
    LOSSES,
    DistillationLoss,
    DistillContext,
    HyperParameter,
    LossRegistry,
    ModelSpec,
    constructor_arguments,
    flag_prefix,
    gold_mean,
    hyperparameters,
    loss_arguments,
    masked_mean,
    pair_weights,
    register_loss,
    require_outputs,
    to_float32,
    weighted_pair_sum,
)
from tfkd.losses.ckd import CKDLayerAngleLoss, CKDLayerPairLoss, CKDWordAngleLoss, CKDWordPairLoss
from tfkd.losses.codir import CoDIRLoss
from tfkd.losses.internal import AttentionKLLoss, CLSCosineLoss
from tfkd.losses.kd import CrossEntropyLoss, KDLoss
from tfkd.losses.mlm import MaskedLMLoss
from tfkd.losses.pkd import PKDLoss

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
del _module

__all__ = [
    "GOLD",
    "LOSSES",
    "ACKDLoss",
    "AttentionKLLoss",
    "CKDLayerAngleLoss",
    "CKDLayerPairLoss",
    "CKDWordAngleLoss",
    "CKDWordPairLoss",
    "CLSCosineLoss",
    "CoDIRLoss",
    "CrossEntropyLoss",
    "DistillContext",
    "DistillationLoss",
    "HyperParameter",
    "KDLoss",
    "LossRegistry",
    "MaskedLMLoss",
    "ModelSpec",
    "PKDLoss",
    "constructor_arguments",
    "flag_prefix",
    "gold_mean",
    "hyperparameters",
    "loss_arguments",
    "masked_mean",
    "pair_weights",
    "register_loss",
    "require_outputs",
    "to_float32",
    "weighted_pair_sum",
]
