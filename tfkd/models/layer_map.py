"""Which teacher layer each student layer learns from.

Layers are numbered as in `hidden_states`: 0 is the embedding output,
1..L the transformer layer outputs. A layer map is a tuple of
`(student_layer, teacher_layer)` pairs over student layers 1..L_S.

Example:
>>> uniform_layer_map(num_teacher_layers=6, num_student_layers=3)
((1, 2), (2, 4), (3, 6))
>>> parse_layer_map("1,3,5", num_teacher_layers=6, num_student_layers=3)
((1, 1), (2, 3), (3, 5))
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from tfkd.core.errors import TfkdError

LayerMap = Tuple[Tuple[int, int], ...]


def uniform_layer_map(num_teacher_layers: int, num_student_layers: int) -> LayerMap:
    """The default map `g(k) = ⌈k · L_T / L_S⌉` (12→6: 2,4,…,12; 6→3: 2,4,6; 6→4: 2,3,5,6), ending at the
    teacher's last layer.

    Example:
    >>> uniform_layer_map(6, 4)
    ((1, 2), (2, 3), (3, 5), (4, 6))
    """
    if num_student_layers < 1 or num_teacher_layers < num_student_layers:
        raise TfkdError(
            f"cannot map a {num_student_layers}-layer student onto a {num_teacher_layers}-layer "
            "teacher. Fix: use a student with 1..L_T layers or pass --layer_map explicitly."
        )
    return tuple((k, -(-k * num_teacher_layers // num_student_layers)) for k in range(1, num_student_layers + 1))


def parse_layer_map(
    spec: Union[None, str, Sequence[int]],
    num_teacher_layers: int,
    num_student_layers: int,
) -> LayerMap:
    """Parses `--layer_map`: empty/None/"uniform" for the default, else one teacher
    layer (1-based, 0 = embeddings) per student layer, in student order."""
    if spec is None or spec == "" or spec == "uniform":
        return uniform_layer_map(num_teacher_layers, num_student_layers)
    if isinstance(spec, str):
        try:
            teacher_layers = [int(x) for x in spec.replace(" ", "").split(",") if x]
        except ValueError:
            raise TfkdError(
                f"--layer_map '{spec}' is not a comma-separated list of integers. "
                "Fix: e.g. --layer_map=2,4,6"
            ) from None
    else:
        teacher_layers = [int(x) for x in spec]
    if len(teacher_layers) != num_student_layers:
        raise TfkdError(
            f"--layer_map has {len(teacher_layers)} entries but the student has "
            f"{num_student_layers} layers. Fix: give exactly one teacher layer per student layer."
        )
    bad = [t for t in teacher_layers if not 0 <= t <= num_teacher_layers]
    if bad:
        raise TfkdError(
            f"--layer_map names teacher layer(s) {bad}, but the teacher has layers "
            f"0..{num_teacher_layers} (0 = embeddings). Fix: use numbers in that range."
        )
    return tuple((k + 1, t) for k, t in enumerate(teacher_layers))
