import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.core.errors import TfkdError
from tfkd.models import BertModel, StudentShape, build_student

TEACHER = dict(vocabulary_size=40, num_layers=4, num_heads=2, hidden_dim=8, intermediate_dim=16, num_classes=3, max_sequence_length=16)


def test_init_copies_embeddings_pooler_and_chosen_layers():
    teacher = BertModel(**TEACHER)
    student = build_student(StudentShape(2, 8, 2, 16), like=teacher, init_from=teacher, layers_from=[2, 4])
    for name in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm", "pooled_dense"):
        for a, b in zip(student.get_layer(name).get_weights(), teacher.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for k, source in enumerate([2, 4]):
        for a, b in zip(student.get_layer(f"transformer_layer_{k}").get_weights(), teacher.get_layer(f"transformer_layer_{source - 1}").get_weights()):
            np.testing.assert_array_equal(a, b)
    assert student.num_classes == 3 and student.num_layers == 2


def test_default_layers_are_uniform():
    teacher = BertModel(**TEACHER)
    student = build_student(StudentShape(2, 8, 2, 16), like=teacher, init_from=teacher)
    np.testing.assert_array_equal(
        student.get_layer("transformer_layer_1").get_weights()[0], teacher.get_layer("transformer_layer_3").get_weights()[0]
    )


def test_random_init_with_other_width():
    teacher = BertModel(**TEACHER)
    student = build_student(StudentShape(1, 4, 2, 8), like=teacher)
    assert student.hidden_dim == 4


@pytest.mark.parametrize(
    "config, layers, message",
    [
        (StudentShape(2, 4, 2, 8), [2, 4], "hidden_dim: student 4 vs source 8"),
        (StudentShape(2, 8, 2, 16), [2, 5], r"layer\(s\) \[5\]"),
        (StudentShape(2, 8, 2, 16), [2], "lists 1 layers but the student has 2"),
        (StudentShape(2, 9, 2, 16), None, "not divisible"),
    ],
)
def test_init_errors_name_the_fix(config, layers, message):
    teacher = BertModel(**TEACHER)
    with pytest.raises(TfkdError, match=message):
        build_student(config, like=teacher, init_from=teacher, layers_from=layers)
