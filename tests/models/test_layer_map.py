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


def test_uniform_needs_divisible_layers():
    with pytest.raises(TfkdError, match="--layer_map="):
        uniform_layer_map(6, 4)
