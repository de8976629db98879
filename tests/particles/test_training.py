"""Training ⇜ (D12): batched SGD against one ``torch.optim.SGD`` per particle, and the gradient.

per_sample orders: the tests reconstruct each pass's visiting order by drawing from an identically
seeded generator exactly as ``training._per_sample_pass`` does (``reference.kernel_orders``), then
run the reference loop in that order. ``test_per_sample_order_matters`` shows that another order
gives another result, so agreement is not an accident of order independence.
"""

from __future__ import annotations

import pytest
import torch

import particles as pt
from tests.particles import reference as ref

F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-12}
MODES = ["full_batch", "per_sample"]


def _cases(names, modes=MODES):
    params = []
    for name in names:
        for mode in modes:
            label = "-".join(name) if isinstance(name, tuple) else name
            params.append(pytest.param(name, mode, id=f"{label}-{mode}"))
    return params


def _expected_self_train(arch, w, *, steps, lr, mode, seed, momentum=0.0):
    count = ref.sample_count(arch, arch)
    orders = ref.kernel_orders(seed, w.shape[0], count, steps)
    rows = [
        ref.self_train_one(
            arch,
            w[k],
            steps=steps,
            lr=lr,
            mode=mode,
            orders=ref.row_orders(orders, k),
            momentum=momentum,
        )
        for k in range(w.shape[0])
    ]
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


@pytest.mark.parametrize(("name", "mode"), _cases(list(ref.TYPES)))
def test_self_train_matches_sgd_loop(name, mode, generator, unchanged):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 3, seed=30, scale=0.5)
    with unchanged(w):
        result = pt.self_train(arch, w, steps=3, lr=0.05, mode=mode, generator=generator(31))
    weights, losses = _expected_self_train(arch, w, steps=3, lr=0.05, mode=mode, seed=31)
    torch.testing.assert_close(result.weights, weights, **TIGHT)
    torch.testing.assert_close(result.loss, losses, **TIGHT)
    assert not torch.allclose(result.weights, w)  # training moved every particle


LEARN_PAIRS = [
    ("ww", "agg"),
    ("ww", "rnn"),
    ("ww_keras", "ww_tanh_bias"),
    ("ww_tanh_bias", "fft"),
    ("agg", "ww"),
    ("agg_max", "rnn"),
    ("agg_b3_selu", "fft"),
    ("fft", "ww"),
    ("fft_b5_bias", "agg"),
    ("rnn", "ww"),
    ("rnn_tanh", "agg"),
]


@pytest.mark.parametrize(("pair", "mode"), _cases(LEARN_PAIRS))
def test_learn_matches_sgd_loop(pair, mode, generator, unchanged):
    learner, teacher = ref.TYPES[pair[0]], ref.TYPES[pair[1]]
    w = ref.random_rows(learner, 3, seed=32, scale=0.5)
    t = ref.random_rows(teacher, 3, seed=33)
    with unchanged(w, t):
        result = pt.learn(
            learner, w, teacher, t, steps=3, lr=0.05, mode=mode, generator=generator(34)
        )
    orders = ref.kernel_orders(34, 3, ref.sample_count(learner, teacher), 3)
    for k in range(3):
        weights, loss = ref.learn_one(
            learner,
            w[k],
            teacher,
            t[k],
            steps=3,
            lr=0.05,
            mode=mode,
            orders=ref.row_orders(orders, k),
        )
        torch.testing.assert_close(result.weights[k], weights, **TIGHT)
        torch.testing.assert_close(result.loss[k], loss, **TIGHT)


@pytest.mark.parametrize("mode", MODES)
def test_train_on_given_samples_matches_sgd_loop(mode, generator, unchanged):
    arch = pt.Aggregating(aggregates=3, width=4, depth=2)
    w = ref.random_rows(arch, 2, seed=35)
    data = torch.Generator().manual_seed(36)
    x = torch.randn((2, 5, 3), generator=data, dtype=F64)
    y = torch.randn((2, 5, 3), generator=data, dtype=F64)
    with unchanged(w, x, y):
        result = pt.train(arch, w, x, y, steps=4, lr=0.03, mode=mode, generator=generator(37))
    orders = ref.kernel_orders(37, 2, 5, 4)
    for k in range(2):
        pairs = [(x[k, j : j + 1], y[k, j : j + 1]) for j in range(5)]
        weights, loss = ref.train_one(
            arch,
            w[k],
            lambda _, pairs=pairs: pairs,
            steps=4,
            lr=0.03,
            mode=mode,
            orders=ref.row_orders(orders, k),
        )
        torch.testing.assert_close(result.weights[k], weights, **TIGHT)
        torch.testing.assert_close(result.loss[k], loss, **TIGHT)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["ww", "agg", "ww_tanh_bias"])
def test_momentum_matches_torch_sgd(name, mode, generator):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 2, seed=38, scale=0.5)
    result = pt.self_train(
        arch, w, steps=4, lr=0.02, mode=mode, momentum=0.9, generator=generator(39)
    )
    weights, losses = _expected_self_train(
        arch, w, steps=4, lr=0.02, mode=mode, seed=39, momentum=0.9
    )
    torch.testing.assert_close(result.weights, weights, **TIGHT)
    torch.testing.assert_close(result.loss, losses, **TIGHT)
    plain = pt.self_train(arch, w, steps=4, lr=0.02, mode=mode, generator=generator(39))
    assert not torch.allclose(plain.weights, result.weights)


def test_momentum_never_reset_continues_the_buffer():
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 3, seed=40, scale=0.5)
    whole = pt.self_train(arch, w, steps=6, lr=0.02, momentum=0.9)
    first = pt.self_train(arch, w, steps=3, lr=0.02, momentum=0.9, momentum_reset="never")
    second = pt.self_train(
        arch,
        first.weights,
        steps=3,
        lr=0.02,
        momentum=0.9,
        momentum_reset="never",
        velocity=first.velocity,
    )
    torch.testing.assert_close(second.weights, whole.weights, **TIGHT)
    restarted = pt.self_train(arch, first.weights, steps=3, lr=0.02, momentum=0.9)
    assert not torch.allclose(restarted.weights, whole.weights)


@pytest.mark.parametrize("mode", MODES)
def test_zero_steps_returns_a_copy_and_nan_loss(mode):
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 2, seed=41)
    result = pt.self_train(arch, w, steps=0, lr=0.04, mode=mode)
    assert torch.equal(result.weights, w)
    assert result.loss.isnan().all() and result.loss.shape == (2,)
    result.weights.add_(1.0)
    assert torch.equal(w, ref.random_rows(arch, 2, seed=41))


@pytest.mark.parametrize(("name", "mode"), _cases(["ww", "agg", "rnn", "fft"]))
def test_batch_rows_train_as_if_alone(name, mode, generator):
    """The batch minimises the SUM of losses: each row gets its stand-alone update."""
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 5, seed=42, scale=0.5)
    batch = pt.self_train(arch, w, steps=5, lr=0.05, mode=mode, generator=generator(43))
    for k in range(5):
        if mode == "per_sample" and name == "ww":
            continue  # a lone row draws other orders; covered by the order-aware tests
        alone = pt.self_train(
            arch, w[k : k + 1], steps=5, lr=0.05, mode=mode, generator=generator(43)
        )
        torch.testing.assert_close(batch.weights[k : k + 1], alone.weights, **TIGHT)


@pytest.mark.parametrize("name", ["agg", "fft", "rnn"])
def test_per_sample_pass_of_a_single_sample_is_one_full_batch_step(name):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 3, seed=44, scale=0.5)
    one = pt.self_train(arch, w, steps=3, lr=0.01, mode="per_sample")
    full = pt.self_train(arch, w, steps=3, lr=0.01, mode="full_batch")
    torch.testing.assert_close(one.weights, full.weights, **TIGHT)


def test_per_sample_is_reproducible_from_the_seed(generator):
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 4, seed=45)
    a = pt.self_train(arch, w, steps=3, lr=0.01, mode="per_sample", generator=generator(46))
    b = pt.self_train(arch, w, steps=3, lr=0.01, mode="per_sample", generator=generator(46))
    c = pt.self_train(arch, w, steps=3, lr=0.01, mode="per_sample", generator=generator(47))
    assert torch.equal(a.weights, b.weights) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.weights, c.weights)


def test_per_sample_order_matters(generator):
    """Reversing the reconstructed order changes the result, so the orders are really used."""
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 2, seed=48)
    result = pt.self_train(arch, w, steps=2, lr=0.05, mode="per_sample", generator=generator(49))
    orders = ref.kernel_orders(49, 2, 14, 2)
    reversed_orders = [o.flip(dims=[1]) for o in orders]
    for k in range(2):
        right, _ = ref.self_train_one(
            arch, w[k], steps=2, lr=0.05, mode="per_sample", orders=ref.row_orders(orders, k)
        )
        wrong, _ = ref.self_train_one(
            arch,
            w[k],
            steps=2,
            lr=0.05,
            mode="per_sample",
            orders=ref.row_orders(reversed_orders, k),
        )
        torch.testing.assert_close(result.weights[k], right, **TIGHT)
        assert (result.weights[k] - wrong).abs().max() > 1e-8


def test_per_sample_rows_draw_their_own_orders(generator):
    """Identical particles in one batch end differently because each row has its own order."""
    arch = pt.Weightwise()
    w = ref.random_rows(arch, 1, seed=50).expand(3, -1).clone()
    result = pt.self_train(arch, w, steps=1, lr=0.05, mode="per_sample", generator=generator(51))
    assert not torch.equal(result.weights[0], result.weights[1])
    assert not torch.equal(result.weights[1], result.weights[2])


# --------------------------------------------------------------------------------------------
# Gradient (closed form for linear bias-free nets, autograd otherwise)

GRADIENT_ARCHS = {
    "ww_1x0": pt.Weightwise(width=1, depth=0),
    "ww_2x2": pt.Weightwise(),
    "ww_3x1": pt.Weightwise(width=3, depth=1),
    "ww_5x3": pt.Weightwise(width=5, depth=3),
    "ww_4x4": pt.Weightwise(width=4, depth=4),
    "agg_b3_4x2": pt.Aggregating(aggregates=3, width=4, depth=2),
    "agg_b6_1x3": pt.Aggregating(aggregates=6, width=1, depth=3),
    "fft": pt.Fourier(),
    "ww_bias": pt.Weightwise(bias=True),
    "ww_tanh": pt.Weightwise(width=3, depth=2, activation="tanh"),
    "ww_relu_sigmoid": pt.Weightwise(activation="relu", output_activation="sigmoid"),
    "agg_selu_bias": pt.Aggregating(width=3, depth=1, activation="selu", bias=True),
    "fft_elu": pt.Fourier(activation="elu", output_activation="softsign"),
    "rnn": pt.Recurrent(),
    "rnn_tanh_3x3": pt.Recurrent(width=3, depth=3, activation="tanh"),
}


@pytest.mark.parametrize("name", list(GRADIENT_ARCHS))
def test_gradient_matches_autograd_on_the_plain_loss(name, unchanged):
    arch = GRADIENT_ARCHS[name]
    n_in, n_out = ref.io_sizes(arch)
    w = ref.random_rows(arch, 3, seed=52)
    data = torch.Generator().manual_seed(53)
    samples = 7
    x = torch.randn((3, samples, n_in), generator=data, dtype=F64)
    y = torch.randn((3, samples, n_out), generator=data, dtype=F64)
    with unchanged(w, x, y):
        losses, grad = pt.gradient(arch, w, x, y)
        plain = pt.loss(arch, w, x, y)
    assert grad.shape == w.shape and losses.shape == (3,)
    for k in range(3):
        expected_loss, expected_grad = ref.plain_loss_and_grad(arch, w[k], x[k], y[k])
        torch.testing.assert_close(losses[k], expected_loss, **TIGHT)
        torch.testing.assert_close(plain[k], expected_loss, **TIGHT)
        torch.testing.assert_close(grad[k], expected_grad, **TIGHT)


def test_gradient_closed_form_is_used_and_exact_at_a_fixpoint():
    """At 𝓘 the residual on its own samples is exactly zero, so the gradient is exactly zero."""
    arch = pt.Weightwise()
    w = pt.Weightwise.identity(dtype=F64)
    assert arch.is_linear_feedforward
    x, y = arch.samples(arch, w)
    losses, grad = pt.gradient(arch, w, x, y)
    assert torch.equal(losses, torch.zeros(1, dtype=F64))
    assert torch.equal(grad, torch.zeros_like(w))
