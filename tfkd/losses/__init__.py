"""Distillation losses, one module per method, all in one registry (`LOSSES`).

Importing this package registers every built-in loss:
`ce`, `kd` (output losses), `pkd` (PKD-style L2 baseline), `attention_kl`,
`cls_cosine` (Aguilar et al.), `codir` (CoDIR), `ackd` (ACKD, reconstructed
from its abstract) and `ckd_wr_pair`, `ckd_wr_angle`, `ckd_ltr_pair`,
`ckd_ltr_angle` (CKD), and `mlm` (masked-LM loss of CoDIR's pre-training stage).
"""

from tfkd.losses.base import (
    LOSSES,
    DistillContext,
    DistillationLoss,
    ModelSpec,
    masked_mean,
    pair_weights,
    register_loss,
    require_outputs,
    to_float32,
    weighted_pair_sum,
)
from tfkd.losses.kd import CrossEntropyLoss, KDLoss
from tfkd.losses.pkd import PKDLoss
from tfkd.losses.internal import AttentionKLLoss, CLSCosineLoss
from tfkd.losses.codir import CoDIRLoss
from tfkd.losses.ackd import ACKDLoss
from tfkd.losses.mlm import MaskedLMLoss
from tfkd.losses.ckd import CKDLayerAngleLoss, CKDLayerPairLoss, CKDWordAngleLoss, CKDWordPairLoss

__all__ = [
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
    "KDLoss",
    "MaskedLMLoss",
    "ModelSpec",
    "PKDLoss",
    "masked_mean",
    "pair_weights",
    "register_loss",
    "require_outputs",
    "to_float32",
    "weighted_pair_sum",
]
