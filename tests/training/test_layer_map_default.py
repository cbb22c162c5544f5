"""Without --layer_map, layer losses pair each student layer with the teacher layer it was copied from."""

import dataclasses

import pytest

import tfkd


def config(setup, workdir, **student) -> tfkd.RunConfig:
    return tfkd.RunConfig(
        workdir=str(workdir),
        data=tfkd.DataConfig(task="sst2", glue_dir=str(setup / "glue"), max_seq_length=16, batch_size=8,
                             eval_batch_size=8),
        teacher=tfkd.TeacherConfig(source=str(setup / "teacher")),
        student=tfkd.StudentConfig(num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, **student),
        method=tfkd.MethodConfig(name="kd"),
        optim=tfkd.OptimConfig(epochs=1, learning_rate=1e-3),
        runtime=tfkd.RuntimeConfig(jit_compile=False),
    )


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
