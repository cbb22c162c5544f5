import re

import pytest

from tfkd.core.errors import TfkdError
from tfkd.models.layer_map import parse_layer_map, uniform_layer_map


def test_uniform_maps():
    assert uniform_layer_map(12, 6) == ((1, 2), (2, 4), (3, 6), (4, 8), (5, 10), (6, 12))
    assert uniform_layer_map(6, 3) == ((1, 2), (2, 4), (3, 6))


def test_explicit_list():
    assert parse_layer_map("1,3,5", 6, 3) == ((1, 1), (2, 3), (3, 5))
    assert parse_layer_map([0, 6], 6, 2) == ((1, 0), (2, 6))
    assert parse_layer_map("", 6, 3) == uniform_layer_map(6, 3)


@pytest.mark.parametrize(
    "spec, message",
    [("1,2", "has 2 entries but the student has 3"), ("1,2,9", "teacher layer(s) [9]"), ("a,b,c", "not a comma-separated")],
)
def test_bad_maps_name_the_problem(spec, message):
    with pytest.raises(TfkdError, match=re.escape(message)):
        parse_layer_map(spec, 6, 3)


def test_uniform_maps_any_student_depth_spread_to_the_last_teacher_layer():
    assert uniform_layer_map(6, 4) == ((1, 2), (2, 3), (3, 5), (4, 6))
    assert uniform_layer_map(6, 5) == ((1, 2), (2, 3), (3, 4), (4, 5), (5, 6))
    for teacher in range(1, 13):
        for student in range(1, teacher + 1):
            layers = [t for _, t in uniform_layer_map(teacher, student)]
            assert layers[-1] == teacher and len(set(layers)) == student and layers == sorted(layers)


def test_the_copied_layers_and_the_layer_map_agree_by_default():
    from tfkd.models.prune import source_layers

    for student in range(1, 7):
        assert [t - 1 for _, t in uniform_layer_map(6, student)] == list(source_layers(6, student))
