"""`--mixed_precision`: the Keras dtype policy a run trains under.

`bfloat16` and `float16` compute in 16 bits and keep float32 weights; losses,
memory banks and the other float32 islands of METHODS.md stay float32 in
either case. `float16` also needs loss scaling: `Distiller.compile` wraps the
optimizer in Keras' `LossScaleOptimizer` (dynamic scale, steps with
non-finite gradients skipped) and `Distiller.train_step` scales the loss with
`optimizer.scale_loss`. The Keras policy names `mixed_bfloat16` and
`mixed_float16` are accepted as aliases.

Example:
>>> set_precision("bfloat16")
'mixed_bfloat16'
"""

from __future__ import annotations

import keras

from tfkd.core.errors import TfkdError

# flag value -> Keras dtype policy
PRECISIONS = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
    "mixed_float16": "mixed_float16",
}


def set_precision(name: str) -> str:
    """Sets the global Keras dtype policy for `--mixed_precision=name`; returns the policy name."""
    if name not in PRECISIONS:
        raise TfkdError(f"unknown --mixed_precision '{name}'. Fix: use one of float32, bfloat16, float16.")
    keras.mixed_precision.set_global_policy(PRECISIONS[name])
    return PRECISIONS[name]
