"""`--student_layers_from=importance` parses into `StudentConfig.layers_from` and survives results.json."""

import pytest
from absl import flags

from tests.train_flags import parsed_train_flags
from tfkd.training.config import RunConfig


@pytest.mark.parametrize("value, layers_from", [("importance", ("importance",)), ("2,4,6", (2, 4, 6)), ("", ())])
def test_importance_and_layer_numbers_are_student_layers_from_values(value, layers_from):
    with parsed_train_flags("--student_layers_from=" + value) as train:
        config = train.run_config()
    assert config.student.layers_from == layers_from
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("value", ["importance,2", "0", "best"])
def test_nothing_else_is_a_student_layers_from_value(value):
    with pytest.raises(flags.IllegalFlagValueError, match="--student_layers_from takes comma-separated integers >= 1"):
        with parsed_train_flags("--student_layers_from=" + value):
            pass
