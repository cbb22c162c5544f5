"""Without --layer_map, layer losses pair each student layer with the teacher layer it was copied from."""

import dataclasses

import pytest

import tfkd
from tests.helpers import tiny_run_config


def config(setup, workdir, **student) -> tfkd.RunConfig:
    return tiny_run_config(setup, workdir, student=student, method={"name": "kd"})


@pytest.mark.parametrize("student, expected", [
    ({"init": "teacher", "layers_from": (1,)}, [[1, 1]]),
    ({"init": "pruned", "layers_from": (1,)}, [[1, 1]]),
    ({"init": "teacher"}, [[1, 2]]),  # uniform, as the copied layers are
    ({"init": "random", "layers_from": (1,)}, [[1, 2]]),  # nothing copied: uniform
])
def test_the_default_layer_map_follows_the_copied_layers(tiny_setup, tmp_path, student, expected):
    result = tfkd.run_distill(config(tiny_setup, tmp_path / "run", **student))
    assert result.layer_map == expected


def test_an_explicit_layer_map_wins(tiny_setup, tmp_path):
    run = config(tiny_setup, tmp_path / "run", init="teacher", layers_from=(1,))
    run = dataclasses.replace(run, method=tfkd.MethodConfig(name="kd", layer_map=(2,)))
    assert tfkd.run_distill(run).layer_map == [[1, 2]]
