"""Stage layouts of the algorithms, and the defaults the command gives them."""

import types

import pytest

from tests.train_flags import parsed_train_flags
from tfkd.core.errors import TfkdError
from tfkd.distill import StagePlan, build_stages
from tfkd.training.methods import stage_plan


def _plan(final_steps, freeze=False):
    return StagePlan(base_weights=[0.5, 0.5, 1.0], output_mask=[True, True, False], student_layers_of_pairs=[1, 2, 3],
                     num_student_layers=3, total_steps=0, steps_per_stage=10, final_steps=final_steps,
                     freeze_distilled=freeze)


@pytest.mark.parametrize("algorithm", ["progressive", "stacked"])
def test_layer_stage_algorithms_end_by_training_the_classifier(algorithm):
    stages = build_stages(algorithm, _plan(final_steps=20))
    assert stages[-1].name == "soft-label" and stages[-1].loss_weights == [0.5, 0.5, 0.0]
    assert all(stage.loss_weights[:2] == [0.0, 0.0] for stage in stages[:-1])  # only the last stage trains CE/KD
    with pytest.raises(TfkdError, match="classifier is never trained"):
        build_stages(algorithm, _plan(final_steps=0))


@pytest.mark.parametrize("algorithm, epochs", [("progressive", 1), ("stacked", 1), ("joint", 0)])
def test_final_stage_epochs_defaults_by_algorithm(algorithm, epochs):
    values = types.SimpleNamespace(algorithm=algorithm, final_stage_epochs=None, stage_steps=0, stage_epochs=1,
                                   freeze_distilled=False)
    distiller = types.SimpleNamespace(loss_weights_var=types.SimpleNamespace(numpy=lambda: [0.5, 0.5, 1.0]),
                                      loss_layers=[types.SimpleNamespace(teacher_needs=t) for t in ((), ("logits",), ("hidden_states",))],
                                      student=types.SimpleNamespace(num_layers=3))
    plan = stage_plan(values, distiller, [(1, 2), (2, 4), (3, 6)], steps_per_epoch=7, epochs=3)
    assert plan.final_steps == 7 * epochs
    values.final_stage_epochs = 2
    assert stage_plan(values, distiller, [(1, 2), (2, 4), (3, 6)], steps_per_epoch=7, epochs=3).final_steps == 14


def test_the_command_leaves_final_stage_epochs_to_the_algorithm():
    with parsed_train_flags() as train:
        assert train.FLAGS["final_stage_epochs"].default is None
        assert train.run_config().method.final_stage_epochs is None
