"""`--algorithm=tinybert`: TinyBERT's task distillation as a stage schedule (internal losses alone, then KD + CE)."""

import pytest

import tfkd
from tfkd.distill import StagePlan, build_stages


def plan(total_steps=40, final_steps=10, output_mask=(True, True, False)):
    return StagePlan(base_weights=(0.5, 0.5, 1.0)[:len(output_mask)], output_mask=output_mask,
                     student_layers_of_pairs=(1, 2, 3), num_student_layers=3, total_steps=total_steps,
                     steps_per_stage=10, final_steps=final_steps, freeze_distilled=False)


def test_all_pairs_internal_losses_alone_then_the_soft_label_stage():
    intermediate, final = build_stages("tinybert", plan())
    assert (intermediate.name, intermediate.steps, list(intermediate.loss_weights)) == ("intermediate", 30, [0, 0, 1])
    assert list(intermediate.pair_weights) == [1.0, 1.0, 1.0] and set(intermediate.grad_scale) == {1.0}
    assert (final.name, final.steps, list(final.loss_weights)) == ("soft-label", 10, [0.5, 0.5, 0.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"final_steps": 0}, "without a final soft-label stage the classifier is never trained"),
    ({"final_steps": 40}, "leaves no steps for tinybert's intermediate stage"),
    ({"output_mask": (True, True)}, "only output losses are configured"),
])
def test_schedules_that_cannot_train_are_refused(kwargs, message):
    with pytest.raises(tfkd.TfkdError, match="Fix:") as error:
        build_stages("tinybert", plan(**kwargs))
    assert message in str(error.value)
