"""Every method trains a student half as wide as its teacher, built as a run builds it.

The student is cut from the teacher by the pruned initialisation (16 → 8 hidden channels, 4 → 2 heads,
32 → 16 FFN units); the losses come from `method_losses` and the distiller from `build_distiller`, so a
loss that assumes equal widths fails here. Losses that compare teacher and student vectors must map them
into one space with learned heads of the right shapes; attention and relation losses need none.
"""

from typing import Dict, List, Tuple

import keras
import numpy as np
import pytest

import tfkd  # noqa: F401
from tfkd.data.pipeline import TokenizedSplit, make_dataset
from tfkd.distill import StageScheduler, build_stages
from tfkd.models import BertModel, LoadedModel, ModelMetadata
from tfkd.models.layer_map import parse_layer_map
from tfkd.training.build import build_distiller, make_student, needs_attentions
from tfkd.training.config import MethodConfig, StudentConfig
from tfkd.training.methods import METHODS, method_losses, stage_plan

D_T, D_S, NUM_EXAMPLES, BATCH = 16, 8, 16, 4
STEPS = NUM_EXAMPLES // BATCH

# Kernel shapes `(in, out)` of the learned heads of each loss, 2 layer pairs; ce, kd, attention_kl (head-averaged
# maps when the head counts differ) and CKD's relations (compared within each model) have none.
CODIR_DIM = ACKD_DIM = 128
HEADS: Dict[str, List[Tuple[int, int]]] = {
    "pkd": [(D_S, D_T)] * 2,
    "cls_cosine": [(D_S, D_T)] * 2,
    "codir": [(2 * D_S, CODIR_DIM), (2 * D_T, CODIR_DIM)],
    "ackd": [(D_S, ACKD_DIM)] * 2 + [(D_T, ACKD_DIM)] * 2,
}

CASES = [(method, "joint") for method in sorted(METHODS)] + [("internal", "progressive"), ("internal", "stacked")]


def training_split(seed: int = 0) -> TokenizedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, NUM_EXAMPLES).astype("int32")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype("int64")
    ids = rng.integers(5, 20, offsets[-1]).astype("int32")
    ids[offsets[:-1]] = 2  # [CLS]
    labels = rng.integers(0, 2, NUM_EXAMPLES).astype("int32")
    return TokenizedSplit(ids, np.zeros_like(ids), offsets, lengths, labels, np.arange(NUM_EXAMPLES, dtype="int32"),
                          0, 8)


def random_teacher() -> BertModel:
    keras.utils.set_random_seed(0)
    return BertModel(vocabulary_size=20, num_layers=2, num_heads=4, hidden_dim=D_T, intermediate_dim=32,
                     num_classes=2, max_sequence_length=8, dropout=0.0, name="teacher")


def kernel_shapes(layer: keras.layers.Layer) -> List[Tuple[int, int]]:
    return [tuple(v.shape) for v in layer.trainable_weights if v.path.endswith("kernel")]


@pytest.mark.parametrize("method, algorithm", CASES)
def test_method_trains_a_student_half_as_wide_as_its_teacher(method, algorithm):
    train = training_split()
    config = MethodConfig(name=method, algorithm=algorithm, freeze_distilled=algorithm == "stacked")
    specs = method_losses(config, task="sst2", seed=1)
    teacher_attentions, student_attentions = needs_attentions(specs)
    loaded = LoadedModel(random_teacher(), "vocab.txt", True, True, ModelMetadata())
    student = make_student(StudentConfig(num_layers=2, hidden_dim=D_S, num_heads=2, intermediate_dim=16, dropout=0.0,
                                         init="pruned"),
                           loaded, 2, student_attentions, batches=make_dataset(train, BATCH, shuffle=True, seed=1))
    assert (student.hidden_dim, student.num_heads) == (D_S, 2)
    layer_map = parse_layer_map(None, 2, 2)
    distiller = build_distiller(student, loaded.model.with_outputs(teacher_attentions), specs, layer_map, False,
                                train.labels, freeze_layers=config.freeze_distilled)
    for spec, layer in zip(specs, distiller.loss_layers):
        assert sorted(kernel_shapes(layer)) == sorted(HEADS.get(spec.key, [])), spec.key
    plan = stage_plan(config, distiller, layer_map, steps_per_epoch=1, epochs=STEPS)
    stages = build_stages(algorithm, plan)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    distiller.prepare_losses(make_dataset(train, BATCH, shuffle=False, seed=1), STEPS)
    before = [v.numpy().copy() for v in student.trainable_weights]
    heads = [v for layer in distiller.loss_layers for v in layer.trainable_weights if v.path.endswith("kernel")]
    heads_before = [v.numpy().copy() for v in heads]
    history = distiller.fit(make_dataset(train, BATCH, shuffle=True, seed=1).repeat(), epochs=1,
                            steps_per_epoch=sum(s.steps for s in stages),
                            callbacks=[StageScheduler(distiller, stages)], shuffle=False, verbose=0).history
    assert {f"loss_{spec.name}" for spec in specs} <= set(history)
    assert all(np.isfinite(values).all() for values in history.values()), history
    assert distiller.nonfinite_report() is None
    unchanged = [v.path for a, v in zip(before, student.trainable_weights) if np.array_equal(a, v.numpy())]
    assert not unchanged, unchanged
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(heads_before, heads)), "a projection head is not trained"
