"""The four CKD relation losses against naive loop references (METHODS.md §6, §7)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    STUDENT,
    TEACHER,
    as_numpy,
    fake_outputs,
    finite_gradients,
    global_policy,
    make_batch,
    make_context,
    optimise,
    padding_mask,
    variables_of,
)
from tfkd.core.errors import TfkdError
from tfkd.losses import LOSSES
from tfkd.losses.base import ModelSpec

# One row of each kind: full, ragged, a single token (no word pairs), fully padded.
LENGTHS, SEQ_LEN = (9, 6, 1, 0), 9
LAYERS = [(0, 0), (1, 2), (2, 4)]  # embeddings + the uniform 4→2 map


def _inputs(seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    mask = padding_mask(LENGTHS, SEQ_LEN)
    teacher = fake_outputs(rng, TEACHER, mask, attentions=False)
    student = fake_outputs(rng, STUDENT, mask, attentions=False, dtype=dtype)
    return teacher, student, mask


def _states(teacher, student):
    t, s = as_numpy(teacher)["hidden_states"], as_numpy(student)["hidden_states"]
    return [t[lt] for _, lt in LAYERS], [s[ls] for ls, _ in LAYERS]


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _angle(centre, j, k):
    """cos of the angle at `centre`; a zero difference gives 0, as F.normalize does."""
    dj, dk = centre - j, centre - k
    nj, nk = np.linalg.norm(dj), np.linalg.norm(dk)
    if nj == 0 or nk == 0:
        return 0.0
    return float(dj @ dk / (nj * nk))


def _kl_of_softmaxes(scores_t, scores_s):
    q_t = [math.exp(x) / sum(math.exp(y) for y in scores_t) for x in scores_t]
    q_s = [math.exp(x) / sum(math.exp(y) for y in scores_s) for x in scores_s]
    return sum(a * math.log(a / b) for a, b in zip(q_t, q_s))


def _layer_weights(pair_weights):
    return [pair_weights[0]] + list(pair_weights)


def ref_wr_pair(states_t, states_s, mask, normalizer, pair_weights):
    real = [[q for q in range(mask.shape[1]) if mask[b, q]] for b in range(mask.shape[0])]
    per_layer = []
    for e_t, e_s in zip(states_t, states_s):
        total = 0.0
        for b, tokens in enumerate(real):
            for i in tokens:
                others = [j for j in tokens if j != i]
                if others:
                    total += _kl_of_softmaxes(
                        [_cos(e_t[b, i], e_t[b, j]) for j in others], [_cos(e_s[b, i], e_s[b, j]) for j in others]
                    )
        per_layer.append(total)
    count = sum(len(t) * (len(t) - 1) if normalizer == "valid" else len(t) ** 2 for t in real)
    weights = _layer_weights(pair_weights)
    return sum(w * x for w, x in zip(weights, per_layer)) / (count * len(per_layer))


def ref_wr_angle(states_t, states_s, mask, window, mode, pair_weights):
    half, n = window // 2, mask.shape[1]
    per_layer, count = [], 0
    for e_t, e_s in zip(states_t, states_s):
        total, count = 0.0, 0
        for b in range(mask.shape[0]):
            for i in range(n):
                if not mask[b, i]:
                    continue
                if mode == "reference":
                    around = [min(max(i + o, 0), n - 1) for o in range(-half, half + 1)]
                    triples = [(j, k) for j in around for k in around]
                else:
                    around = [j for j in range(i - half, i + half + 1) if 0 <= j < n and j != i and mask[b, j]]
                    triples = [(j, k) for j in around for k in around if j != k]
                for j, k in triples:
                    a_t = _angle(e_t[b, i], e_t[b, j], e_t[b, k])
                    a_s = _angle(e_s[b, i], e_s[b, j], e_s[b, k])
                    total += (a_t - a_s) ** 2
                    count += 1
        per_layer.append(total)
    weights = _layer_weights(pair_weights)
    return sum(w * x for w, x in zip(weights, per_layer)) / (count * len(per_layer))


def ref_ltr_pair(states_t, states_s, mask, normalizer):
    num = len(states_t)
    total, tokens = 0.0, 0
    for b in range(mask.shape[0]):
        for q in range(mask.shape[1]):
            if not mask[b, q]:
                continue
            tokens += 1
            for l in range(num):
                others = [m for m in range(num) if m != l]
                total += _kl_of_softmaxes(
                    [_cos(states_t[l][b, q], states_t[m][b, q]) for m in others],
                    [_cos(states_s[l][b, q], states_s[m][b, q]) for m in others],
                )
    per_token = num * (num - 1) if normalizer == "valid" else num * num
    return total / (tokens * per_token)


def ref_ltr_angle(states_t, states_s, mask, normalizer):
    num = len(states_t)
    total, count = 0.0, 0
    for b in range(mask.shape[0]):
        for q in range(mask.shape[1]):
            if not mask[b, q]:
                continue
            for l in range(num):
                for m in range(num):
                    for r in range(num):
                        if normalizer == "valid" and len({l, m, r}) < 3:
                            continue
                        a_t = _angle(states_t[l][b, q], states_t[m][b, q], states_t[r][b, q])
                        a_s = _angle(states_s[l][b, q], states_s[m][b, q], states_s[r][b, q])
                        total += (a_t - a_s) ** 2
                        count += 1
    return total / count


CASES = [
    ("ckd_wr_pair", {"normalizer": "valid"}),
    ("ckd_wr_pair", {"normalizer": "official"}),
    ("ckd_wr_angle", {"window": 5, "window_mode": "valid"}),
    ("ckd_wr_angle", {"window": 5, "window_mode": "reference"}),
    ("ckd_wr_angle", {}),  # default window 21 > n: every real token is in every window
    ("ckd_wr_angle", {"window": 21, "window_mode": "reference"}),
    ("ckd_ltr_pair", {"normalizer": "valid"}),
    ("ckd_ltr_pair", {"normalizer": "official"}),
    ("ckd_ltr_angle", {"normalizer": "valid"}),
    ("ckd_ltr_angle", {"normalizer": "official"}),
]


def reference(name, kwargs, states_t, states_s, mask, pair_weights):
    if name == "ckd_wr_pair":
        return ref_wr_pair(states_t, states_s, mask, kwargs["normalizer"], pair_weights)
    if name == "ckd_wr_angle":
        return ref_wr_angle(
            states_t, states_s, mask, kwargs.get("window", 21), kwargs.get("window_mode", "valid"), pair_weights
        )
    if name == "ckd_ltr_pair":
        return ref_ltr_pair(states_t, states_s, mask, kwargs["normalizer"])
    return ref_ltr_angle(states_t, states_s, mask, kwargs["normalizer"])


@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_loop_reference(name, kwargs):
    teacher, student, mask = _inputs(0)
    pair_weights = [0.5, 2.0]
    value = LOSSES.get(name)(make_context(), **kwargs)(teacher, student, make_batch(mask, pair_weights=pair_weights))
    expected = reference(name, kwargs, *_states(teacher, student), mask, pair_weights)
    np.testing.assert_allclose(value.numpy(), expected, rtol=2e-5)


@pytest.mark.parametrize("name", ["ckd_wr_pair", "ckd_wr_angle", "ckd_ltr_pair", "ckd_ltr_angle"])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_matches_reference_under_mixed_precision(name, policy):
    teacher, student, mask = _inputs(1, "float16" if policy == "mixed_float16" else "bfloat16")
    kwargs = {"window": 5} if name == "ckd_wr_angle" else {"normalizer": "valid"}
    with global_policy(policy):
        value = LOSSES.get(name)(make_context(), **kwargs)(teacher, student, make_batch(mask))
    assert value.dtype == tf.float32
    expected = reference(name, kwargs, *_states(teacher, student), mask, [1.0, 1.0])
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("name", ["ckd_wr_pair", "ckd_wr_angle", "ckd_ltr_pair", "ckd_ltr_angle"])
def test_identical_inputs_give_zero(name):
    teacher, _, mask = _inputs(2)
    loss = LOSSES.get(name)(make_context(student=TEACHER, layer_map=((2, 2), (4, 4))))
    assert abs(float(loss(teacher, teacher, make_batch(mask)))) < 1e-6


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("ckd_wr_pair", {}),
        ("ckd_wr_angle", {}),
        ("ckd_wr_angle", {"window_mode": "reference"}),
        ("ckd_ltr_pair", {}),
        ("ckd_ltr_angle", {}),
    ],
)
def test_gradients_finite_with_padded_rows_and_student_alone_learns(name, kwargs):
    teacher, student, mask = _inputs(3)
    loss = LOSSES.get(name)(make_context(), **kwargs)
    hidden = variables_of(student)["hidden_states"]
    batch = make_batch(mask)
    fn = lambda: loss(teacher, {"hidden_states": hidden}, batch)  # noqa: E731
    assert finite_gradients(fn, hidden)
    first, last = optimise(fn, hidden, lr=0.02)
    assert last < first


def test_emb_skip_alignment_and_errors():
    loss = LOSSES.get("ckd_wr_pair")(make_context(layer_map=((1, 1), (2, 3))), alignment="emb+skip")
    assert loss.layer_pairs == ((0, 0), (1, 2), (2, 4))
    assert LOSSES.get("ckd_wr_pair")(make_context(layer_map=((1, 1), (2, 3)))).layer_pairs == ((0, 0), (1, 1), (2, 3))
    with pytest.raises(TfkdError, match="multiple"):
        LOSSES.get("ckd_ltr_pair")(make_context(teacher=ModelSpec(3, 12, 3)), alignment="emb+skip")
    with pytest.raises(TfkdError, match="odd"):
        LOSSES.get("ckd_wr_angle")(make_context(), window=4)


@pytest.mark.parametrize("name", ["ckd_ltr_pair", "ckd_ltr_angle"])
def test_ltr_over_two_layers_warns_that_it_is_constant(name):
    context = make_context(student=ModelSpec(1, 8, 2), layer_map=((1, 4),))
    with pytest.warns(UserWarning, match="always 0"):
        loss = LOSSES.get(name)(context)
    teacher, student, mask = _inputs(4)
    assert float(loss(teacher, student, make_batch(mask))) == 0.0


def test_configs_round_trip():
    for name, kwargs in CASES:
        loss = LOSSES.get(name)(make_context(), alignment="emb+skip", **kwargs)
        config = loss.get_config()
        assert type(loss).from_config(config).get_config() == config
