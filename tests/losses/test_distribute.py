"""Banks and in-batch negatives under `tf.distribute` with two replicas (two logical CPUs).

Logical devices must be configured before TensorFlow starts, so the check
runs in a fresh interpreter.
"""

import pathlib
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from tests.helpers import STUDENT, TEACHER, fake_outputs, make_batch, make_context, padding_mask
    from tfkd.losses import LOSSES

    N, INDEX = 10, np.array([4, 9, 1, 6])
    rng = np.random.default_rng(0)
    mask = padding_mask((7, 5, 3, 6), 7)
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, attentions=False)
    batch = make_batch(mask, index=INDEX)
    context = make_context(num_train_examples=N)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        cdl = LOSSES.get("ackd")(context, projection_dim=6, sar=False, seed=1)
        ackd = LOSSES.get("ackd")(context, projection_dim=6, bank_negatives=3, seed=1)
        codir = LOSSES.get("codir")(context, projection_dim=6, num_negatives=3, objective="nce", seed=1)
        fresh = LOSSES.get("codir")(context, projection_dim=6, num_negatives=3, negatives="uniform", seed=1)
    single = LOSSES.get("ackd")(context, projection_dim=6, sar=False, seed=1)
    for mine, theirs in zip(single.weights, cdl.weights):
        mine.assign(theirs.numpy())
    expected = float(single(teacher, student, batch))
    banks = {"codir_t": codir.teacher_bank.rows, "codir_s": codir.student_bank.rows}
    before = {name: bank.numpy() for name, bank in banks.items()}

    data = {"t": tuple(teacher["hidden_states"]), "s": tuple(student["hidden_states"]), "b": batch}
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(data).unbatch().batch(4))

    @tf.function
    def step(d):
        def replica_fn(d):
            t, s = {"hidden_states": list(d["t"])}, {"hidden_states": list(d["s"])}
            return (cdl(t, s, d["b"]), ackd(t, s, d["b"], training=True), codir(t, s, d["b"], training=True),
                    fresh(t, s, d["b"], training=True))
        return strategy.run(replica_fn, args=(d,))

    values = step(next(iter(dataset)))
    # Each replica contrasts its 2 examples with all 4 teacher vectors: the replica
    # means average to the one-device loss of the whole batch.
    np.testing.assert_allclose(np.mean([v.numpy() for v in values[0].values]), expected, rtol=1e-5)
    assert all(np.isfinite(v.numpy()) for out in values[1:] for v in out.values)
    for name, bank in banks.items():
        first, second = (copy.numpy() for copy in bank.value.values)
        np.testing.assert_array_equal(first, second)
        changed = set(np.flatnonzero(np.any(first != before[name], axis=1)).tolist())
        assert changed == set(INDEX.tolist()), (name, changed)
    first, second = (copy.numpy() for copy in codir.normalizers.value.values)
    assert np.all(first > 0) and np.array_equal(first, second)
    # Diagnostics are recorded inside the replicas and read as one value.
    for loss in (ackd, codir, fresh):
        assert all(np.isfinite(float(m.result())) and float(m.count.numpy()) == 2 for m in loss.diagnostic_metrics)
    print("OK")
    """
)


def test_two_replicas_share_negatives_and_apply_identical_bank_updates():
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-3000:]
