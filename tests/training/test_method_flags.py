"""`tfkd.methods`: which constructor arguments the method flags and --loss_args may set."""

import tfkd  # noqa: F401
from tfkd.losses import LOSSES
from tfkd.training.methods import _constructor_args


def test_loss_arguments_are_the_named_constructor_arguments_of_the_loss_and_its_parents():
    assert _constructor_args(LOSSES.get("kd")) == ["temperature"]
    assert {"temperature", "num_negatives"} <= set(_constructor_args(LOSSES.get("codir")))
    assert _constructor_args(LOSSES.get("attention_kl")) == []
    for key in LOSSES.names():
        assert not {"self", "context", "kwargs"} & set(_constructor_args(LOSSES.get(key)))
