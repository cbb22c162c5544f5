"""Two replicas train exactly like one: the same global batch gives the same
per-step losses and final weights on 2 logical CPUs (MirroredStrategy) as on
one device, for every method (global-batch reductions, negatives drawn for the
global batch, identical bank updates).

Logical devices must be configured before TensorFlow starts, so the check
runs in a fresh interpreter; it prints one JSON line per method.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from tests.distill.test_methods import METHOD_LOSSES

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from tests.distill.test_methods import LENGTH, METHOD_LOSSES, N, VOCAB, generated_task
    from tfkd.distill import Distiller
    from tfkd.losses import LOSSES, DistillContext, ModelSpec
    from tfkd.models import BertModel, StudentShape, build_student
    from tfkd.runtime.strategy import make_strategy

    STEPS, GLOBAL_BATCH = 20, 8
    data = generated_task(seed=2)

    def train(method, strategy):
        method, clip = method.split("+")[0], method.endswith("+clip")
        with strategy.scope():
            keras.utils.set_random_seed(0)
            teacher = BertModel(vocabulary_size=VOCAB, num_layers=4, num_heads=2, hidden_dim=16, intermediate_dim=32,
                                num_classes=2, max_sequence_length=LENGTH, dropout=0.0, output_attentions=True)
            student = build_student(StudentShape(2, 8, 2, 16, dropout=0.0), like=teacher, output_attentions=True)
            context = DistillContext(ModelSpec(4, 16, 2), ModelSpec(2, 8, 2), ((1, 2), (2, 4)), num_classes=2,
                                     num_train_examples=N, train_labels=data["labels"])
            # CE keeps gradients well above float32 noise (KD between two untrained models is ~1e-6).
            terms = [("ce", 0.5, {})] + METHOD_LOSSES[method]
            losses = [(key, LOSSES.get(key)(context, **kwargs), weight) for key, weight, kwargs in terms]
            distiller = Distiller(student, teacher, losses, num_pairs=2)
            # 0.01 is well below these gradients' norm: every step is clipped.
            optimizer = keras.optimizers.SGD(0.02, global_clipnorm=0.01 if clip else None)
            distiller.compile(optimizer=optimizer, jit_compile=False)
        ds = tf.data.Dataset.from_tensor_slices(data).batch(GLOBAL_BATCH, drop_remainder=True)
        distiller.prepare_losses(ds, N // GLOBAL_BATCH)
        # One step per "epoch": the trackers reset, so each history entry is that step's value.
        history = distiller.fit(ds.repeat(), epochs=STEPS, steps_per_epoch=1, shuffle=False, verbose=0).history
        weights = [np.asarray(w) for w in student.get_weights()]
        return history, weights

    def max_rel(a, b):
        # Relative difference; below 0.01 in magnitude it is absolute / 0.01.
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-2)))

    for method in sys.argv[1:]:
        two, two_w = train(method, make_strategy("mirrored", cpu_replicas=2))
        one, one_w = train(method, tf.distribute.OneDeviceStrategy("/cpu:0"))
        keys = sorted(k for k in one if k.startswith("loss"))
        print(json.dumps({
            "method": method,
            "replicas": 2,
            "losses": max(max_rel(two[k], one[k]) for k in keys),
            "weights": max(max_rel(a, b) for a, b in zip(two_w, one_w)),
            "loss_moved": abs(one["loss"][-1] - one["loss"][0]),
        }))
    """
)


# CKD's LTR angle term works on Gram-form differences that lose ~3 of float32's
# digits to cancellation, so the reduction order of the split batch shows up at
# ~1e-4 after 20 steps (each CKD term alone agrees to 3e-6 except this one, 7e-5).
TOLERANCE = {"ckd": 5e-4}


@pytest.mark.slow
@pytest.mark.ci
def test_two_replicas_match_one_device_for_every_method():
    """Also with global-norm clipping, which must act on the global batch's gradient (Keras alone clips per replica)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    methods = sorted(METHOD_LOSSES) + ["codir+clip"]
    done = subprocess.run([sys.executable, "-c", SCRIPT, *methods], cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["method"] for r in results] == methods
    for r in results:
        # Training moved (the comparison is not between two untouched models) ...
        assert r["loss_moved"] > 1e-3, r
        # ... and 20 steps of the split batch track the single-device run to float32 rounding.
        # A logged loss is a float32 reduction over ~1e3 terms whose order changes
        # when the batch is split, so its own rounding is ~1e-5: losses get 3e-5.
        tolerance = TOLERANCE.get(r["method"], 1e-5)
        assert r["losses"] < max(tolerance, 3e-5) and r["weights"] < tolerance, r
