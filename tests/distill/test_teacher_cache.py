"""The teacher-output cache: same numbers as the live teacher, refused when stale, same training losses."""

import json
import os

import keras
import numpy as np
import pytest

import tfkd  # noqa: F401
from tests.data.test_pipeline import split_of
from tfkd.core.errors import TfkdError
from tfkd.data.pipeline import make_dataset
from tfkd.distill import Distiller
from tfkd.distill.teacher_cache import cacheable_features, compute_features, load_or_build
from tfkd.losses import LOSSES, DistillContext, ModelSpec
from tfkd.models import BertModel, StudentShape, build_student

TEACHER = dict(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, num_classes=2,
               max_sequence_length=16, dropout=0.0)
FEATURES = ("cls_1", "logits", "mean_2")


@pytest.fixture
def setup(tmp_path):
    lengths = np.random.default_rng(0).integers(3, 16, 40)
    split = split_of(lengths, max_seq_length=16)
    split.token_ids[:] = split.token_ids % 25 + 1  # ids inside the tiny vocabulary
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"tok{i}" for i in range(30)) + "\n")
    keras.utils.set_random_seed(0)
    return split, BertModel(**TEACHER), str(vocab)


def live_features(teacher, split):
    """Features of every example, from the live teacher, in row order (one example per batch: no padding effects)."""
    rows = {key: [] for key in FEATURES}
    for i in range(len(split)):
        ids, segments = split.example(i)
        inputs = {"token_ids": ids[None], "segment_ids": segments[None], "padding_mask": np.ones_like(ids)[None]}
        for key, value in compute_features(teacher(inputs, training=False), inputs["padding_mask"], FEATURES).items():
            rows[key].append(value.numpy()[0])
    return {key: np.stack(value) for key, value in rows.items()}


@pytest.mark.parametrize("dtype, tolerance", [("float32", 2e-6), ("float16", 2e-3)])
def test_cached_features_equal_the_live_teacher(setup, tmp_path, dtype, tolerance):
    split, teacher, vocab = setup
    cache = load_or_build(str(tmp_path / "cache"), teacher, vocab, split, FEATURES, dtype=dtype, batch_size=8)
    assert cache.built and sorted(cache.features) == sorted(FEATURES)
    live = live_features(teacher, split)
    for key in FEATURES:
        assert cache.features[key].dtype == np.dtype(dtype)
        np.testing.assert_allclose(cache.features[key].astype(np.float32), live[key], rtol=tolerance, atol=tolerance)
    again = load_or_build(str(tmp_path / "cache"), teacher, vocab, split, FEATURES, dtype=dtype, batch_size=8)
    assert not again.built
    for key in FEATURES:
        np.testing.assert_array_equal(again.features[key], cache.features[key])


def test_a_changed_teacher_data_or_setting_is_refused(setup, tmp_path):
    split, teacher, vocab = setup
    directory = str(tmp_path / "cache")
    load_or_build(directory, teacher, vocab, split, FEATURES, batch_size=8)

    weight = teacher.weights[3]
    weight.assign(weight + 1e-3)
    with pytest.raises(TfkdError, match="another teacher"):
        load_or_build(directory, teacher, vocab, split, FEATURES)
    weight.assign(weight - 1e-3)

    other = split_of(np.random.default_rng(1).integers(3, 16, 40), max_seq_length=16)
    other.token_ids[:] = other.token_ids % 25 + 1
    with pytest.raises(TfkdError, match="other training data"):
        load_or_build(directory, teacher, vocab, other, FEATURES)
    with pytest.raises(TfkdError, match="dtype float32"):
        load_or_build(directory, teacher, vocab, split, FEATURES, dtype="float16")
    with pytest.raises(TfkdError, match="features"):
        load_or_build(directory, teacher, vocab, split, ("logits",))
    with open(vocab, "a") as f:
        f.write("extra\n")
    with pytest.raises(TfkdError, match="another vocabulary.*Fix: delete"):
        load_or_build(directory, teacher, vocab, split, FEATURES)


def test_a_damaged_or_foreign_directory_is_refused(setup, tmp_path):
    split, teacher, vocab = setup
    directory = tmp_path / "cache"
    load_or_build(str(directory), teacher, vocab, split, FEATURES, batch_size=8)
    (directory / "logits.npy").write_bytes(b"not numpy")
    with pytest.raises(TfkdError, match="damaged"):
        load_or_build(str(directory), teacher, vocab, split, FEATURES)
    (directory / "fingerprint.json").write_text(json.dumps({"teacher_weights": "x"}))
    with pytest.raises(TfkdError, match="not used"):
        load_or_build(str(directory), teacher, vocab, split, FEATURES)
    (directory / "fingerprint.json").write_text('{"teacher_weights": ')
    with pytest.raises(TfkdError, match=r"fingerprint.json' \(the teacher-output cache's fingerprint\) is damaged .*Fix: delete"):
        load_or_build(str(directory), teacher, vocab, split, FEATURES)
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(TfkdError, match="holds no teacher-output cache"):
        load_or_build(str(foreign), teacher, vocab, split, FEATURES)
    assert os.listdir(foreign) == ["notes.txt"]


def context_for(split, num_layers=2):
    return DistillContext(ModelSpec(2, 8, 2), ModelSpec(num_layers, 8, 2), ((1, 1), (2, 2))[:num_layers],
                          num_train_examples=len(split), train_labels=split.labels)


def test_only_per_example_losses_can_use_a_cache(setup):
    split, _, _ = setup
    context = context_for(split)
    cacheable = [LOSSES.get("kd")(context), LOSSES.get("codir")(context, num_negatives=4),
                 LOSSES.get("ackd")(context), LOSSES.get("cls_cosine")(context), LOSSES.get("pkd")(context),
                 LOSSES.get("ce")(context)]
    features, blockers = cacheable_features(cacheable)
    assert blockers == [] and features == ("cls_1", "cls_2", "logits", "mean_1", "mean_2")
    token_level = [LOSSES.get("ckd_wr_pair")(context, name="wr"), LOSSES.get("attention_kl")(context, name="att"),
                   LOSSES.get("pkd")(context, variant="all_tokens", name="pkd_all")]
    features, blockers = cacheable_features(cacheable + token_level)
    assert features is None and blockers == ["wr", "att", "pkd_all"]


def distiller_losses(setup, cache_dir=None):
    """Per-step losses of 6 steps of kd + codir (bank filled by `prepare_losses`), live or from a cache."""
    split, teacher, vocab = setup
    keras.utils.set_random_seed(0)
    student = build_student(StudentShape(2, 8, 2, 16, dropout=0.0), like=teacher)
    context = context_for(split)
    losses = [("ce", LOSSES.get("ce")(context), 0.5), ("kd", LOSSES.get("kd")(context), 0.5),
              ("codir", LOSSES.get("codir")(context, num_negatives=4, bank_dtype="float32", seed=3), 1.0),
              ("cls", LOSSES.get("cls_cosine")(context), 0.3)]
    distiller = Distiller(student, teacher, losses, num_pairs=2)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    extras = None
    if cache_dir:
        features, _ = cacheable_features(distiller.loss_layers)
        extras = load_or_build(cache_dir, teacher, vocab, split, features, batch_size=8).extras()
    distiller.prepare_losses(make_dataset(split, 8, shuffle=False, seed=0, extras=extras))
    bank = distiller.loss_layers[2].summary_bank.rows.numpy().copy()

    calls = []
    original = teacher.call

    def counting_call(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    teacher.call = counting_call
    values = []
    for batch in make_dataset(split, 8, shuffle=True, seed=1, epochs=2, pad_to_multiple_of=0, extras=extras).take(6):
        logs = distiller.train_on_batch(batch, return_dict=True)
        values.append([logs[k] for k in ("loss", "loss_kd", "loss_codir", "loss_cls")])
    teacher.call = original
    return np.array(values), bank, len(calls)


def test_training_from_the_cache_gives_the_live_losses_without_running_the_teacher(setup, tmp_path):
    live, live_bank, live_calls = distiller_losses(setup)
    cached, cached_bank, cached_calls = distiller_losses(setup, str(tmp_path / "cache"))
    assert live_calls > 0 and cached_calls == 0
    np.testing.assert_allclose(cached_bank, live_bank, atol=1e-6)
    np.testing.assert_allclose(cached, live, rtol=1e-5, atol=1e-6)
    assert np.ptp(live[:, 0]) > 1e-3  # the losses move: the comparison covers training, not one point
