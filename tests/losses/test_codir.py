"""`codir` against loop references, and its memory bank and sampler (METHODS.md §4, §7)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    STUDENT,
    TEACHER,
    as_numpy,
    dense_np,
    fake_outputs,
    finite_gradients,
    global_policy,
    l2n,
    make_batch,
    make_context,
    optimise,
    padding_mask,
    variables_of,
)
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES

N = 12
TRAIN_LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 1, 0])
INDEX = np.array([3, 7, 0, 10])  # the last example of the default batch is a fully padded filler
TAU = 0.07


def _context(**kwargs):
    defaults = dict(num_classes=3, num_train_examples=N, train_labels=TRAIN_LABELS)
    defaults.update(kwargs)
    return make_context(**defaults)


def _codir(context=None, fill=True, **kwargs):
    """A small CoDIR loss; `fill` writes random unprojected summaries into its bank (as `prepare` would)."""
    kwargs = dict(dict(num_negatives=5, projection_dim=6, seed=1), **kwargs)
    loss = LOSSES.get("codir")(context or _context(), **kwargs)
    if fill and loss.uses_bank:
        bank = loss.summary_bank
        rows = np.random.default_rng(99).normal(size=(bank.num_rows, bank.dim))
        bank.assign(tf.range(bank.num_rows), tf.constant(rows, tf.float32))
    return loss


def diagnostics_of(loss):
    """The loss's recorded diagnostics by short name (`positive_probability`, `fresh_loss`)."""
    return {m.name[len(loss.name) + 1:]: float(m.result()) for m in loss.diagnostic_metrics}


def summaries(loss):
    return loss.summary_bank.rows.numpy().astype(np.float64)


def projected(loss, rows):
    """The unprojected summary rows through the loss's current teacher head, normalised (NumPy)."""
    return np.array([l2n(dense_np(loss.teacher_head, r)) for r in rows])


def _inputs(seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    mask = padding_mask()
    teacher = fake_outputs(rng, TEACHER, mask, num_classes=3, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, num_classes=3, attentions=False, dtype=dtype)
    return teacher, student, mask, make_batch(mask, labels=TRAIN_LABELS[INDEX], index=INDEX)


# --- loop references ----------------------------------------------------------------------


def ref_embed(outputs, layers, mask, pooling, head):
    vectors = []
    for b in range(mask.shape[0]):
        parts = []
        for layer in layers:
            h = outputs["hidden_states"][layer][b]
            if pooling == "cls":
                parts.append(h[0])
            else:
                real = [h[q] for q in range(mask.shape[1]) if mask[b, q]]
                parts.append(np.mean(real, axis=0) if real else np.zeros(h.shape[-1]))
        vectors.append(l2n(dense_np(head, np.concatenate(parts))))
    return np.array(vectors)


def _log_sum_exp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def ref_infonce(z_s, positives, bank, negatives, valid, masked=None):
    """Mean `ℓ` and mean `p⁺` of InfoNCE with positive vectors `positives[b]`
    and negatives `bank[j]`; `masked[b][k]` drops negative k of example b."""
    losses = []
    for b in range(len(z_s)):
        if not valid[b]:
            continue
        positive = z_s[b] @ positives[b] / TAU
        logits = [positive] + [
            z_s[b] @ bank[j] / TAU for k, j in enumerate(negatives[b]) if masked is None or not masked[b][k]
        ]
        losses.append(_log_sum_exp(logits) - positive)
    return np.mean(losses), np.mean(np.exp(-np.array(losses)))


def ref_in_batch(z_s, z_t, valid):
    losses = []
    for b in range(len(z_s)):
        if not valid[b]:
            continue
        positive = z_s[b] @ z_t[b] / TAU
        logits = [positive] + [z_s[b] @ z_t[j] / TAU for j in range(len(z_t)) if j != b and valid[j]]
        losses.append(_log_sum_exp(logits) - positive)
    return np.mean(losses)


def ref_nce(z_s, z_t, bank_t, bank_s, index, negatives, valid, normalizers=None):
    """The official CRD code: ContrastMemory + ContrastLoss, averaged over both anchors."""
    eps = 1e-7
    k = negatives.shape[1]
    rows = [[index[b]] + list(negatives[b]) for b in range(len(z_s))]
    out_s = [[math.exp(z_s[b] @ bank_t[j] / TAU) for j in rows[b]] for b in range(len(z_s))]
    out_t = [[math.exp(z_t[b] @ bank_s[j] / TAU) for j in rows[b]] for b in range(len(z_s))]
    real = [b for b in range(len(z_s)) if valid[b]]
    if normalizers is None:
        normalizers = [np.mean([out[b] for b in real]) * N for out in (out_s, out_t)]

    def contrast_loss(out, z):
        total = 0.0
        for b in real:
            p = [o / z for o in out[b]]
            total += math.log(p[0] / (p[0] + k / N + eps))
            total += sum(math.log((k / N) / (p_neg + k / N + eps)) for p_neg in p[1:])
        return -total / len(real)

    value = 0.5 * (contrast_loss(out_s, normalizers[0]) + contrast_loss(out_t, normalizers[1]))
    return value, normalizers


def ref_momentum(bank, index, z, valid, momentum):
    bank = bank.copy()
    for b in range(len(index)):
        if valid[b]:
            bank[index[b]] = l2n(momentum * bank[index[b]] + (1 - momentum) * z[b])
    return bank


def call_and_negatives(loss, teacher, student, batch, training):
    """Calls the loss and replays its sampler from the same state to read the negatives it drew."""
    state = loss.seed_generator.state.numpy()
    value = loss(teacher, student, batch, training=training)
    after = loss.seed_generator.state.numpy()
    loss.seed_generator.state.assign(state)
    negatives = loss.sample_negatives(batch["index"]).numpy()
    np.testing.assert_array_equal(loss.seed_generator.state.numpy(), after)
    return value, negatives


def _embeddings(loss, teacher, student, mask, student_layers, teacher_layers, pooling="mean"):
    z_s = ref_embed(as_numpy(student), student_layers, mask, pooling, loss.student_head)
    z_t = ref_embed(as_numpy(teacher), teacher_layers, mask, pooling, loss.teacher_head)
    return z_s, z_t


VALID = np.array([1, 1, 1, 0])


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, pooling, negatives, layers",
    [
        ("float32", "mean", "auto", {}),
        ("float32", "cls", "uniform", {"layers": "all", "teacher_layers": "1,3"}),
        ("mixed_float16", "mean", "label_aware", {}),
    ],
)
def test_infonce_projects_the_sampled_summaries_through_the_current_head(policy, pooling, negatives, layers):
    teacher, student, mask, batch = _inputs(0, "float16" if policy == "mixed_float16" else "float32")
    with global_policy(policy):
        loss = _codir(pooling=pooling, negatives=negatives, bank_dtype="float32", **layers)
        bank = summaries(loss)
        value, drawn = call_and_negatives(loss, teacher, student, batch, training=True)
    assert value.dtype == tf.float32 and loss.student_head.kernel.dtype == "float32"
    assert not hasattr(loss, "teacher_bank")  # nothing projected is stored, so nothing can go stale
    if layers:
        student_layers, teacher_layers = [1, 2], [1, 3]
    else:
        student_layers, teacher_layers = [1, 2], [2, 4]
    z_s, z_t = _embeddings(loss, teacher, student, mask, student_layers, teacher_layers, pooling)
    tol = 1e-4 if policy == "float32" else 1e-3
    expected, p_positive = ref_infonce(z_s, z_t, projected(loss, bank), drawn, VALID)
    np.testing.assert_allclose(value.numpy(), expected, rtol=tol)
    np.testing.assert_array_equal(summaries(loss), bank)  # the frozen teacher's summaries are never rewritten
    diagnostics = diagnostics_of(loss)
    np.testing.assert_allclose(diagnostics["positive_probability"], p_positive, rtol=tol)
    np.testing.assert_allclose(diagnostics["fresh_loss"], expected, rtol=tol)


def test_the_teacher_head_learns_from_the_negatives_too():
    teacher, student, mask, batch = _inputs(5)
    loss = _codir()
    with tf.GradientTape() as tape:
        value = loss(teacher, student, batch, training=True)
    gradient = tape.gradient(value, loss.teacher_head.kernel)
    # Through the positive alone the head's gradient would differ: the negatives carry part of it.
    with tf.GradientTape() as tape:
        z_s = loss.embed_student(student, batch["padding_mask"])
        z_t = loss.embed_teacher(teacher, batch["padding_mask"])
        positive_only = -tf.reduce_sum(z_s * z_t) / TAU
    assert not np.allclose(gradient.numpy(), tape.gradient(positive_only, loss.teacher_head.kernel).numpy())


@pytest.mark.parametrize("objective", ["infonce_stale", "infonce_bank"])
def test_projected_bank_objectives_match_reference_and_report_the_fresh_loss(objective):
    teacher, student, mask, batch = _inputs(0)
    loss = _codir(objective=objective, momentum=0.3, bank_dtype="float32")
    bank = loss.teacher_bank.rows.numpy().astype(np.float64)
    fresh_rows = projected(loss, summaries(loss))
    value, drawn = call_and_negatives(loss, teacher, student, batch, training=True)
    z_s, z_t = _embeddings(loss, teacher, student, mask, [1, 2], [2, 4])
    positives = z_t if objective == "infonce_stale" else bank[INDEX]
    expected, p_positive = ref_infonce(z_s, positives, bank, drawn, VALID)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4)
    diagnostics = diagnostics_of(loss)
    np.testing.assert_allclose(diagnostics["positive_probability"], p_positive, rtol=1e-4)
    np.testing.assert_allclose(diagnostics["fresh_loss"], ref_infonce(z_s, z_t, fresh_rows, drawn, VALID)[0], rtol=1e-4)
    # μ = 0.3, not 0.5: a swap of μ and 1−μ would show.
    np.testing.assert_allclose(loss.teacher_bank.rows.numpy(), ref_momentum(bank, INDEX, z_t, VALID, 0.3), atol=1e-5)


def test_a_bounded_pool_draws_negatives_only_from_its_examples_and_never_the_anchor():
    context = _context(num_train_examples=N)
    loss = _codir(context, negatives="uniform", pool_size=5, num_negatives=40, bank_dtype="float32")
    pool = set(loss._pool_ids.tolist())
    assert loss.summary_bank.num_rows == 5 and len(pool) == 5
    teacher, student, mask, _ = _inputs(6)
    anchor = sorted(pool)[0]  # an anchor that is itself in the pool
    batch = make_batch(mask, labels=TRAIN_LABELS[[anchor, 1, 2, 3]], index=np.array([anchor, 1, 2, 3]))
    value, drawn = call_and_negatives(loss, teacher, student, batch, training=True)
    assert drawn.min() >= 0 and drawn.max() < 5
    ids = loss._pool_ids[drawn]
    z_s, z_t = _embeddings(loss, teacher, student, mask, [1, 2], [2, 4])
    masked = ids == batch["index"].numpy()[:, None]
    assert masked[0].any()  # the anchor was drawn, and must not count as its own negative
    expected, _ = ref_infonce(z_s, z_t, projected(loss, summaries(loss)), drawn, VALID, masked)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4)
    label_aware = _codir(context, pool_size=6, num_negatives=30)
    pool_labels = TRAIN_LABELS[label_aware._pool_ids]
    rows = label_aware.sample_negatives(tf.constant(np.arange(N), tf.int32)).numpy()
    assert np.all(pool_labels[rows] != TRAIN_LABELS[:, None])


def test_in_batch_negatives_match_reference():
    teacher, student, mask, batch = _inputs(1)
    loss = _codir(negatives="in_batch")
    assert not hasattr(loss, "teacher_bank") and not loss.needs_preparation
    value = loss(teacher, student, batch, training=True)
    z_s, z_t = _embeddings(loss, teacher, student, mask, [1, 2], [2, 4])
    np.testing.assert_allclose(value.numpy(), ref_in_batch(z_s, z_t, VALID), rtol=1e-5)


def test_nce_matches_reference_and_fixes_the_normaliser_on_the_first_batch():
    loss = _codir(objective="nce")
    np.testing.assert_array_equal(loss.normalizers.numpy(), [-1.0, -1.0])
    normalizers = None
    for step in range(2):
        teacher, student, mask, batch = _inputs(10 + step)
        bank_t = loss.teacher_bank.rows.numpy().astype(np.float64)
        bank_s = loss.student_bank.rows.numpy().astype(np.float64)
        value, drawn = call_and_negatives(loss, teacher, student, batch, training=True)
        z_s, z_t = _embeddings(loss, teacher, student, mask, [1, 2], [2, 4])
        expected, normalizers = ref_nce(z_s, z_t, bank_t, bank_s, INDEX, drawn, VALID, normalizers)
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4)
        np.testing.assert_allclose(loss.normalizers.numpy(), normalizers, rtol=1e-4)
        np.testing.assert_allclose(loss.teacher_bank.rows.numpy(), ref_momentum(bank_t, INDEX, z_t, VALID, 0.5), atol=1e-5)
        np.testing.assert_allclose(loss.student_bank.rows.numpy(), ref_momentum(bank_s, INDEX, z_s, VALID, 0.5), atol=1e-5)


# --- memory bank ----------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["infonce", "infonce_stale"])
def test_prepare_fills_the_banks_from_one_teacher_pass(objective):
    loss = _codir(objective=objective, fill=False, bank_dtype="float32")
    assert loss.needs_preparation
    before = summaries(loss)
    projected_before = loss.teacher_bank.rows.numpy() if objective != "infonce" else None
    passes = []
    for seed, index in ((20, np.array([3, 7, 0, 10])), (21, np.array([5, 1, 2, 11]))):
        teacher, _, mask, _ = _inputs(seed)
        passes.append((teacher, make_batch(mask, index=index)))
    loss.prepare(iter(passes))
    after = summaries(loss)
    written = set()
    for teacher, batch in passes:
        mask = batch["padding_mask"].numpy()
        z_t = ref_embed(as_numpy(teacher), [2, 4], mask, "mean", loss.teacher_head)
        for b, i in enumerate(batch["index"].numpy()):
            if VALID[b]:
                summary = np.concatenate([np.mean(as_numpy(teacher)["hidden_states"][l][b][mask[b] > 0], axis=0) for l in (2, 4)])
                np.testing.assert_allclose(after[i], summary, atol=1e-6)
                if projected_before is not None:
                    np.testing.assert_allclose(loss.teacher_bank.rows.numpy()[i], z_t[b], atol=1e-6)
                written.add(i)
    untouched = [i for i in range(N) if i not in written]  # includes the filler rows' indices 10 and 11
    np.testing.assert_array_equal(after[untouched], before[untouched])
    if projected_before is not None:
        np.testing.assert_array_equal(loss.teacher_bank.rows.numpy()[untouched], projected_before[untouched])


def test_summaries_are_stored_as_float16_by_default():
    loss = _codir()
    assert loss.summary_bank.rows.dtype == "float16"
    assert loss.summary_bank.nbytes == N * (2 * TEACHER.hidden_dim) * 2


def test_random_bank_init_leaves_the_projected_bank_random():
    loss = _codir(objective="nce", bank_init="random")
    norms = np.linalg.norm(loss.teacher_bank.rows.numpy(), axis=1)
    assert 0.5 < norms.mean() < 1.5  # the official ±1/sqrt(d/3) init: rows of about unit norm
    with pytest.raises(TfkdError, match="bank_init='random'"):
        _codir(bank_init="random")


def test_bank_changes_only_for_the_batch_rows_and_only_in_training():
    teacher, student, mask, batch = _inputs(2)
    loss = _codir(objective="infonce_stale")
    before = loss.teacher_bank.rows.numpy()
    loss(teacher, student, batch, training=False)
    np.testing.assert_array_equal(loss.teacher_bank.rows.numpy(), before)
    loss(teacher, student, batch, training=True)
    after = loss.teacher_bank.rows.numpy()
    changed = {i for i in range(N) if not np.array_equal(after[i], before[i])}
    assert changed == set(INDEX[VALID == 1].tolist())
    np.testing.assert_allclose(np.linalg.norm(after[list(changed)], axis=1), 1.0, rtol=1e-6)


# --- negatives ------------------------------------------------------------------------------


def test_label_aware_negatives_never_share_the_anchor_label():
    loss = _codir(num_negatives=50)
    assert loss.negatives == "label_aware"
    index = tf.constant(np.arange(N), tf.int32)
    seen = set()
    for _ in range(20):
        drawn = loss.sample_negatives(index).numpy()
        assert drawn.shape == (N, 50) and drawn.min() >= 0 and drawn.max() < N
        assert np.all(TRAIN_LABELS[drawn] != TRAIN_LABELS[:, None])
        seen |= set(drawn[0].tolist())
    assert seen == set(np.flatnonzero(TRAIN_LABELS != TRAIN_LABELS[0]).tolist())


def test_uniform_negatives_exclude_the_anchor_and_cover_the_bank():
    loss = _codir(negatives="uniform", num_negatives=50)
    index = tf.constant(np.arange(N), tf.int32)
    seen = set()
    for _ in range(10):
        drawn = loss.sample_negatives(index).numpy()
        assert drawn.min() >= 0 and drawn.max() < N
        assert np.all(drawn != np.arange(N)[:, None])
        seen |= set(drawn[0].tolist())
    assert seen == set(range(1, N))


def test_default_negatives_and_clear_errors():
    assert _codir().negatives == "label_aware"
    assert _codir(_context(num_classes=1, is_regression=True, train_labels=None)).negatives == "uniform"
    assert _codir(_context(train_labels=None)).negatives == "uniform"
    with pytest.raises(TfkdError, match="label-aware"):
        _codir(_context(num_classes=1, is_regression=True), negatives="label_aware")
    with pytest.raises(TfkdError, match="in-batch"):
        _codir(negatives="in_batch", objective="nce")
    with pytest.raises(TfkdError, match="pool_size"):
        _codir(objective="nce", pool_size=4)
    with pytest.raises(TfkdError, match="pool_size"):
        _codir(pool_size=N + 1)
    with pytest.raises(TfkdError, match="objective"):
        _codir(objective="stale")
    with pytest.raises(TfkdError, match="num_train_examples"):
        _codir(_context(num_train_examples=0, train_labels=None))
    with pytest.raises(TfkdError, match="pooling"):
        _codir(pooling="max")


# --- gradients, learning, XLA -----------------------------------------------------------------


@pytest.mark.parametrize("objective", ["infonce", "infonce_bank", "nce"])
def test_gradients_finite_with_a_fully_padded_row_and_student_alone_learns(objective):
    teacher, student, mask, batch = _inputs(3)
    loss = _codir(objective=objective)
    loss(teacher, student, batch, training=True)  # fixes the NCE normaliser
    hidden = variables_of(student)["hidden_states"]
    state = loss.seed_generator.state.numpy()

    def fn():
        loss.seed_generator.state.assign(state)  # the same negatives at every step
        return loss(teacher, {"hidden_states": hidden}, batch, training=False)

    assert finite_gradients(fn, hidden + loss.trainable_variables)
    first, last = optimise(fn, hidden, steps=10)
    assert last < first


def test_compiles_under_xla_and_updates_the_bank():
    teacher, student, mask, batch = _inputs(4)
    loss = _codir(objective="nce", momentum=0.3)
    hidden = variables_of(student)["hidden_states"]
    heads = loss.trainable_variables

    @tf.function(jit_compile=True)
    def step(teacher, batch):
        with tf.GradientTape() as tape:
            value = loss(teacher, {"hidden_states": hidden}, batch, training=True)
        for variable, gradient in zip(hidden + heads, tape.gradient(value, hidden + heads)):
            if gradient is not None:
                variable.assign_sub(0.01 * gradient)
        return value

    initial = loss.teacher_bank.rows.numpy()
    expected = initial.astype(np.float64)
    for _ in range(2):
        # The bank takes the vectors of this step's forward pass, before the SGD update.
        z_t = ref_embed(as_numpy(teacher), [2, 4], mask, "mean", loss.teacher_head)
        assert np.isfinite(float(step(teacher, batch)))
        expected = ref_momentum(expected, INDEX, z_t, VALID, 0.3)
        np.testing.assert_allclose(loss.teacher_bank.rows.numpy(), expected, atol=1e-5)
    assert np.all(loss.normalizers.numpy() > 0)
    untouched = [i for i in range(N) if i not in INDEX[VALID == 1]]
    np.testing.assert_array_equal(loss.teacher_bank.rows.numpy()[untouched], initial[untouched])


def test_default_objective_compiles_under_xla():
    teacher, student, mask, batch = _inputs(4)
    loss = _codir(pool_size=8, negatives="uniform")
    hidden = variables_of(student)["hidden_states"]

    @tf.function(jit_compile=True)
    def step(teacher, batch):
        return loss(teacher, {"hidden_states": hidden}, batch, training=True)

    assert np.isfinite(float(step(teacher, batch)))


def test_config_round_trip():
    loss = _codir(objective="nce", pooling="cls", layers="all", teacher_layers=[1, 3], momentum=0.3)
    config = loss.get_config()
    pooled = _codir(pool_size=5, bank_dtype="float32")
    assert type(pooled).from_config(pooled.get_config()).get_config() == pooled.get_config()
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    assert clone.teacher_layer_ids == [1, 3] and clone.student_layer_ids == [1, 2]
    assert _codir(teacher_layers="").teacher_layer_ids == [2, 4]
    with pytest.raises(TfkdError, match="teacher_layers"):
        _codir(teacher_layers="1,9")
