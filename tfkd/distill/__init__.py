"""The distiller (`train_step` over composed losses) and the training algorithms."""

from tfkd.distill.algorithms import ALGORITHMS, Stage, StagePlan, StageScheduler, build_stages, register_algorithm
from tfkd.distill.distiller import Distiller, model_inputs
from tfkd.distill.optimization import WarmupLinearDecay, make_optimizer
