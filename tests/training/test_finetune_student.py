"""The labels-only student baseline starts where configs/student_common.flags says, a pruned start included."""

import dataclasses

import tfkd
from tests.training.test_layer_map_default import config


def test_a_pruned_student_is_fine_tuned_on_labels_alone(tiny_setup, tmp_path):
    run = config(tiny_setup, tmp_path / "ft", init="pruned")
    run = dataclasses.replace(run, mode="finetune", finetune_model="student",
                              student=dataclasses.replace(run.student, hidden_dim=8, num_heads=1, intermediate_dim=16))
    result = tfkd.run_finetune(run)
    assert result.kind == "finetune" and result.student.hidden_dim == 8 and result.best_dev is not None
