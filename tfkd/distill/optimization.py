"""AdamW with linear warm-up and linear decay, as BERT fine-tuning uses."""

from __future__ import annotations

from typing import Any, Dict

import keras


@keras.saving.register_keras_serializable(package="tfkd")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    Example:
    >>> schedule = WarmupLinearDecay(5e-5, total_steps=1000, warmup_steps=100)
    >>> [round(float(schedule(step)) / 5e-5, 4) for step in (0, 50, 100, 550, 1000)]  # fractions of the peak
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.maximum(float(self.warmup_steps), 1.0)
        decay_span = keras.ops.maximum(float(self.total_steps - self.warmup_steps), 1.0)
        up = step / warmup
        down = keras.ops.maximum(0.0, (self.total_steps - step) / decay_span)
        return self.peak * keras.ops.where(step < self.warmup_steps, up, down)

    def get_config(self) -> Dict[str, Any]:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def make_optimizer(
    learning_rate: float,
    total_steps: int,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    clipnorm: float = 1.0,
) -> keras.optimizers.AdamW:
    """AdamW (no decay on biases and LayerNorm), global grad-norm clipping, warm-up + linear decay."""
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(round(warmup_ratio * total_steps)))
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=weight_decay,
        epsilon=1e-6,
        global_clipnorm=clipnorm if clipnorm > 0 else None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
