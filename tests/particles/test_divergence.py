"""Divergence is contained (D4, §0): a non-finite row never changes another row, without warnings.

Each operation runs twice on the same batch: once with NaN/±inf rows, once with those rows replaced
by finite values. Every other row must be bitwise equal between the two runs, and close to the
same row computed alone (the kernel on a batch of one, or, where a lone row would draw other
random orders, the reference loop in the orders the batch drew; see reference.py).
"""

from __future__ import annotations

import math

import pytest
import torch

import particles as pt
from tests.particles import reference as ref

BAD = [1, 3, 4]
CLOSE = {"rtol": 1e-6, "atol": 1e-7}
TYPES = {k: ref.TYPES[k] for k in ("ww", "ww_tanh_bias", "agg", "agg_max", "rnn", "fft")}
SHUFFLE = pt.Aggregating(shuffle=True)


def _batches(arch, n=6, seed=110, dtype=torch.float32, scale=0.5):
    """(w with non-finite rows BAD, the same with finite rows there), both [n, r]."""
    fine = ref.random_rows(arch, n, seed=seed, scale=scale).to(dtype)
    bad = fine.clone()
    bad[1, 0] = math.nan
    bad[3] = math.inf
    bad[4, -1] = -math.inf
    bad[4, 2] = math.nan
    return bad, fine


def _good(n=6):
    return [k for k in range(n) if k not in BAD]


def _assert_contained(run, bad_inputs, fine_inputs, no_warnings):
    """run(*inputs) -> tensor [n, ...]; the good rows must be bitwise equal in both runs."""
    with no_warnings():
        out_bad = run(*bad_inputs)
        out_fine = run(*fine_inputs)
    good = _good()
    assert torch.equal(out_bad[good], out_fine[good])
    assert torch.isfinite(out_fine[good]).all()
    return out_bad


@pytest.mark.parametrize("where", ["operator", "target"])
@pytest.mark.parametrize("name", [*TYPES, "shuffle"])
def test_apply_contains_non_finite_rows(name, where, no_warnings, generator):
    op = SHUFFLE if name == "shuffle" else TYPES[name]
    target = pt.Recurrent()
    w_bad, w_fine = _batches(op)
    m_bad, m_fine = _batches(target, seed=111)
    if where == "operator":
        m_bad = m_fine
    else:
        w_bad = w_fine

    def run(w, m):
        return op.apply(w, target, m, generator=generator(112))

    out = _assert_contained(run, (w_bad, m_bad), (w_fine, m_fine), no_warnings)
    if where == "operator" or getattr(op, "activation", None) is None:
        # non-finite values propagate (a saturating tanh may map a target's inf to ±1)
        assert not torch.isfinite(out[BAD]).all(dim=1).any()
    if name != "shuffle":  # a lone shuffled row draws another permutation
        for k in _good():
            alone = op.apply(w_fine[k : k + 1], target, m_fine[k : k + 1])
            torch.testing.assert_close(out[k : k + 1], alone, **CLOSE)


@pytest.mark.parametrize("name", list(TYPES))
def test_self_apply_and_measures_contain_non_finite_rows(name, no_warnings):
    arch = TYPES[name]
    w_bad, w_fine = _batches(arch, scale=0.3)
    _assert_contained(lambda w: pt.self_apply(arch, w, times=3), (w_bad,), (w_fine,), no_warnings)
    _assert_contained(lambda w: pt.fixpoint_error(arch, w), (w_bad,), (w_fine,), no_warnings)
    _assert_contained(lambda w: pt.self_prediction_loss(arch, w), (w_bad,), (w_fine,), no_warnings)
    status = _assert_contained(
        lambda w: pt.classify(arch, w, eps=1e-2), (w_bad,), (w_fine,), no_warnings
    )
    assert status[BAD].tolist() == [pt.Status.DIVERGENT] * len(BAD)
    assert pt.fixpoint_error(arch, w_bad)[BAD].tolist() == [math.inf] * len(BAD)


def _alone_self_train(arch, w_fine, k, mode, seed, steps, lr):
    """Row k trained on its own: the kernel on a batch of one, or the reference loop in the
    order the batch drew for row k when a lone row would draw a different order."""
    if mode == "per_sample" and ref.sample_count(arch, arch) > 1:
        orders = ref.kernel_orders(seed, w_fine.shape[0], ref.sample_count(arch, arch), steps)
        weights, _ = ref.self_train_one(
            arch,
            w_fine[k].double(),
            steps=steps,
            lr=lr,
            mode=mode,
            orders=ref.row_orders(orders, k),
        )
        return weights.to(w_fine.dtype).reshape(1, -1)
    result = pt.self_train(arch, w_fine[k : k + 1], steps=steps, lr=lr, mode=mode)
    return result.weights


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("name", list(TYPES))
def test_self_train_contains_non_finite_rows(name, mode, momentum, no_warnings, generator):
    arch = TYPES[name]
    w_bad, w_fine = _batches(arch)

    def run(w):
        result = pt.self_train(
            arch, w, steps=5, lr=0.02, mode=mode, momentum=momentum, generator=generator(113)
        )
        return torch.cat([result.weights, result.loss[:, None]], dim=1)

    out = _assert_contained(run, (w_bad,), (w_fine,), no_warnings)
    assert not torch.isfinite(out[BAD]).all(dim=1).any()
    if momentum == 0.0:
        for k in _good():
            alone = _alone_self_train(arch, w_fine, k, mode, 113, steps=5, lr=0.02)
            torch.testing.assert_close(out[k : k + 1, :-1], alone, **CLOSE)


LEARN_PAIRS = [("ww", "agg"), ("agg", "ww"), ("rnn", "fft"), ("fft", "rnn"), ("ww_tanh_bias", "ww")]


@pytest.mark.parametrize("where", ["learner", "teacher"])
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("pair", LEARN_PAIRS, ids="-".join)
def test_learn_contains_non_finite_rows(pair, mode, where, no_warnings, generator):
    learner, teacher = TYPES[pair[0]], TYPES[pair[1]]
    w_bad, w_fine = _batches(learner)
    t_bad, t_fine = _batches(teacher, seed=114)
    if where == "learner":
        t_bad = t_fine
    else:
        w_bad = w_fine

    def run(w, t):
        result = pt.learn(
            learner, w, teacher, t, steps=4, lr=0.02, mode=mode, generator=generator(115)
        )
        return torch.cat([result.weights, result.loss[:, None]], dim=1)

    out = _assert_contained(run, (w_bad, t_bad), (w_fine, t_fine), no_warnings)
    assert not torch.isfinite(out[BAD]).all(dim=1).any()
    count = ref.sample_count(learner, teacher)
    orders = ref.kernel_orders(115, 6, count, 4)
    for k in _good():
        if mode == "per_sample" and count > 1:  # a lone row would draw other orders
            weights, _ = ref.learn_one(
                learner,
                w_fine[k].double(),
                teacher,
                t_fine[k].double(),
                steps=4,
                lr=0.02,
                mode=mode,
                orders=ref.row_orders(orders, k),
            )
            alone = weights.float().reshape(1, -1)
        else:
            alone = pt.learn(
                learner,
                w_fine[k : k + 1],
                teacher,
                t_fine[k : k + 1],
                steps=4,
                lr=0.02,
                mode=mode,
            ).weights
        torch.testing.assert_close(out[k : k + 1, :-1], alone, **CLOSE)


@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
def test_train_and_gradient_contain_non_finite_samples(mode, no_warnings, generator):
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 6, seed=116).float()
    x_bad, x_fine = _batches(pt.Weightwise(width=1, depth=0), seed=117)  # 4 features
    x_bad, x_fine = x_bad.reshape(6, 1, 4).expand(6, 3, 4), x_fine.reshape(6, 1, 4).expand(6, 3, 4)
    y = torch.zeros(6, 3, 1)

    def run(x):
        result = pt.train(arch, w, x, y, steps=3, lr=0.05, mode=mode, generator=generator(118))
        return result.weights

    _assert_contained(run, (x_bad,), (x_fine,), no_warnings)
    _assert_contained(lambda x: pt.gradient(arch, w, x, y)[1], (x_bad,), (x_fine,), no_warnings)


@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("name", ["ww", "agg", "rnn", "fft"])
def test_overflowing_particle_diverges_alone(name, mode, no_warnings, generator):
    """A particle with huge weights overflows float32 under training; nothing else changes."""
    arch = ref.TYPES[name]
    normal = arch.init(5, generator=generator(119))
    huge = normal.clone()
    huge[2] *= 1e3
    with no_warnings():
        out = pt.self_train(arch, huge, steps=20, lr=0.1, mode=mode, generator=generator(120))
        ref_out = pt.self_train(arch, normal, steps=20, lr=0.1, mode=mode, generator=generator(120))
        status = pt.classify(arch, out.weights)
    others = [0, 1, 3, 4]
    assert not torch.isfinite(out.weights[2]).all()
    assert status[2].item() == pt.Status.DIVERGENT
    assert torch.equal(out.weights[others], ref_out.weights[others])
    assert torch.isfinite(out.weights[others]).all()
    assert (status[others] != pt.Status.DIVERGENT).all()
    bank = pt.WeightBank(arch, capacity=5)
    rows = bank.allocate(huge, [0, 1, 2, 3, 4])
    bank.write(rows, out.weights)
    bank.write(rows, torch.zeros_like(out.weights))  # finite again: the flag stays
    assert bank.divergent[rows].tolist() == [False, False, True, False, False]
    status = pt.classify(arch, bank.read(rows), divergent=bank.divergent[rows])
    assert (
        status.tolist()
        == [pt.Status.ZERO, pt.Status.ZERO, pt.Status.DIVERGENT] + [pt.Status.ZERO] * 2
    )
