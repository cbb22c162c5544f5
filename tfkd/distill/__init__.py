"""The distiller (`train_step` over composed losses) and the training algorithms."""

from tfkd.distill.algorithms import ALGORITHMS, Stage, StagePlan, StageScheduler, build_stages, register_algorithm
from tfkd.distill.distiller import Distiller, model_inputs
from tfkd.distill.optimization import WarmupLinearDecay, make_optimizer

__all__ = [
    "ALGORITHMS",
    "build_stages",
    "Distiller",
    "make_optimizer",
    "model_inputs",
    "register_algorithm",
    "Stage",
    "StagePlan",
    "StageScheduler",
    "WarmupLinearDecay",
]
