"""The column-wise weightwise route of ``particles.training`` against plain autograd (SPEC D12).

Linear bias-free ``Weightwise`` particles trained on weightwise samples (``self_train``, ``learn``)
take ``training._train_weightwise``. These tests check it against a straightforward reference
written here: ``torch.autograd`` on ``particles.training.loss`` with the samples of
``Architecture.samples``, one SGD (or heavy-ball) update per step or per sample, in float64. They
also check batch isolation (SPEC §0: a non-finite row never changes another row), that the
caller's tensors are never written, and that everything else still takes the general path.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import particles.training as training
from particles import Aggregating, Fourier, Recurrent, Weightwise, learn, self_train

F64 = torch.float64
BATCH = 5


# --------------------------------------------------------------------------------------------
# Reference: autograd on training.loss, SPEC D12 written out


def autograd_gradient(architecture, w, x, y):
    leaf = w.detach().clone().requires_grad_(True)
    losses = training.loss(architecture, leaf, x, y)
    (grad,) = torch.autograd.grad(losses.sum(), leaf)
    return losses.detach(), grad


def reference_train(
    architecture,
    w,
    sample_source,
    *,
    steps,
    lr,
    mode,
    momentum=0.0,
    velocity=None,
    generator=None,
):
    """SGD on Σ_k L(θ_k; S_k) by autograd; per_sample draws its orders like the kernel."""
    w = w.clone()
    if velocity is None and momentum:
        velocity = torch.zeros_like(w)

    def update(w, grad):
        nonlocal velocity
        if velocity is None:
            return w - lr * grad
        velocity = momentum * velocity + grad
        return w - lr * velocity

    reported = torch.full((w.shape[0],), math.nan, dtype=w.dtype)
    for _ in range(steps):
        x, y = sample_source(w)
        count = x.shape[1]
        if mode == "full_batch" or count == 1:
            reported, grad = autograd_gradient(architecture, w, x, y)
            w = update(w, grad)
            continue
        batch = w.shape[0]
        order = torch.rand((batch, count), generator=generator, device=w.device).argsort(dim=1)
        rows = torch.arange(batch)
        total = torch.zeros(batch, dtype=w.dtype)
        for position in range(count):
            pick = order[:, position]
            losses, grad = autograd_gradient(
                architecture, w, x[rows, pick].unsqueeze(1), y[rows, pick].unsqueeze(1)
            )
            total = total + losses
            w = update(w, grad)
        reported = total / count
    return w, reported, velocity


def reference_self_train(architecture, w, **kwargs):
    return reference_train(
        architecture, w, lambda current: architecture.samples(architecture, current), **kwargs
    )


def reference_learn(architecture, w, teacher, teacher_w, **kwargs):
    samples = architecture.samples(teacher, teacher_w)
    return reference_train(architecture, w, lambda _: samples, **kwargs)


@pytest.fixture
def route_calls(monkeypatch):
    """Count the calls of the column-wise route."""
    calls = []
    original = training._train_weightwise

    def spy(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "_train_weightwise", spy)
    return calls


def weights(architecture, n=BATCH, seed=0, dtype=F64):
    return architecture.init(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close(actual, expected, tol=1e-11):
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


SHAPES = [(1, 0), (2, 0), (1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (1, 3), (2, 3), (4, 3)]
MODES = [("full_batch", 0.04), ("per_sample", 0.01)]


# --------------------------------------------------------------------------------------------
# Equal to autograd, float64


@pytest.mark.parametrize("mode, lr", MODES)
@pytest.mark.parametrize("encoding", ["torch", "keras"])
@pytest.mark.parametrize("width, depth", SHAPES)
def test_self_train_matches_autograd(width, depth, encoding, mode, lr, route_calls):
    architecture = Weightwise(width=width, depth=depth, encoding=encoding)
    w = weights(architecture)
    result = self_train(
        architecture, w, steps=4, lr=lr, mode=mode, generator=torch.Generator().manual_seed(3)
    )
    expected, loss, _ = reference_self_train(
        architecture, w, steps=4, lr=lr, mode=mode, generator=torch.Generator().manual_seed(3)
    )
    assert route_calls, "the column-wise route was not taken"
    assert_close(result.weights, expected)
    assert_close(result.loss, loss)
    assert result.velocity is None


TEACHERS = [
    Weightwise(),
    Weightwise(width=3, depth=1, encoding="keras"),
    Weightwise(width=2, depth=2, bias=True),
    Aggregating(),
    Aggregating(aggregates=1, depth=0),  # a single weight: one sample
    Recurrent(),
    Fourier(),
]


@pytest.mark.parametrize("mode, lr", MODES)
@pytest.mark.parametrize("encoding", ["torch", "keras"])
@pytest.mark.parametrize("width, depth", [(1, 0), (2, 1), (2, 2), (3, 3)])
@pytest.mark.parametrize("teacher", TEACHERS, ids=repr)
def test_learn_matches_autograd(teacher, width, depth, encoding, mode, lr, route_calls):
    architecture = Weightwise(width=width, depth=depth, encoding=encoding)
    w = weights(architecture)
    teacher_w = weights(teacher, seed=1)
    result = learn(
        architecture,
        w,
        teacher,
        teacher_w,
        steps=3,
        lr=lr,
        mode=mode,
        generator=torch.Generator().manual_seed(4),
    )
    expected, loss, _ = reference_learn(
        architecture,
        w,
        teacher,
        teacher_w,
        steps=3,
        lr=lr,
        mode=mode,
        generator=torch.Generator().manual_seed(4),
    )
    assert route_calls
    assert_close(result.weights, expected)
    assert_close(result.loss, loss)


@pytest.mark.parametrize("mode, lr", MODES)
@pytest.mark.parametrize("reset", ["per_call", "never"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("learning", [False, True])
def test_momentum_matches_autograd(learning, momentum, reset, mode, lr, route_calls):
    architecture = Weightwise(width=3, depth=2)
    w = weights(architecture)
    given = 0.1 * torch.randn(w.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    given_before = given.clone()
    velocity = given if reset == "never" else None
    kwargs = dict(steps=3, lr=lr, mode=mode, momentum=momentum)
    teacher = Aggregating()
    teacher_w = weights(teacher, seed=1)
    if learning:
        run = lambda **k: learn(architecture, w, teacher, teacher_w, **k)  # noqa: E731
        ref = lambda **k: reference_learn(architecture, w, teacher, teacher_w, **k)  # noqa: E731
    else:
        run = lambda **k: self_train(architecture, w, **k)  # noqa: E731
        ref = lambda **k: reference_self_train(architecture, w, **k)  # noqa: E731
    result = run(
        momentum_reset=reset,
        velocity=velocity,
        generator=torch.Generator().manual_seed(5),
        **kwargs,
    )
    # The general path's rule: a buffer exists with momentum, or when one is handed back in.
    expected, loss, expected_velocity = ref(
        velocity=None if velocity is None else velocity.clone(),
        generator=torch.Generator().manual_seed(5),
        **kwargs,
    )
    assert route_calls
    assert_close(result.weights, expected)
    assert_close(result.loss, loss)
    if reset == "never" and expected_velocity is not None:
        assert_close(result.velocity, expected_velocity)
    else:
        assert result.velocity is None
    assert torch.equal(given, given_before)


@pytest.mark.parametrize("encoding", ["torch", "keras"])
def test_long_run_matches_autograd(encoding):
    """Many steps: the two computations stay together (no drift beyond reassociation)."""
    architecture = Weightwise(encoding=encoding)
    w = weights(architecture, n=20, seed=11)
    result = self_train(architecture, w, steps=300, lr=0.04)
    expected, loss, _ = reference_self_train(architecture, w, steps=300, lr=0.04, mode="full_batch")
    assert_close(result.weights, expected, tol=1e-10)
    assert_close(result.loss, loss, tol=1e-10)


def test_float32_close_to_float64():
    architecture = Weightwise()
    w = weights(architecture, n=50, seed=2)
    fast = self_train(architecture, w.float(), steps=50, lr=0.04)
    exact, _, _ = reference_self_train(architecture, w, steps=50, lr=0.04, mode="full_batch")
    assert fast.weights.dtype == torch.float32
    torch.testing.assert_close(fast.weights.double(), exact, rtol=1e-5, atol=1e-5)


def test_identity_fixpoint_stays_exact():
    """𝓘 is an exact fixpoint (Proposition 1): zero loss, zero gradient, unchanged weights."""
    for dtype in (torch.float32, F64):
        identity = Weightwise.identity(dtype=dtype).repeat(3, 1)
        for mode in ("full_batch", "per_sample"):
            result = self_train(Weightwise(), identity, steps=5, lr=0.04, mode=mode)
            assert torch.equal(result.weights, identity)
            assert torch.equal(result.loss, torch.zeros(3, dtype=dtype))


# --------------------------------------------------------------------------------------------
# Batch isolation: a non-finite row never changes another row


def poison_cases():
    return itertools.product(
        [float("nan"), float("inf"), -float("inf"), 1e30],  # 1e30 overflows during training
        ["full_batch", "per_sample"],
        [torch.float32, F64],
        [False, True],
    )


@pytest.mark.parametrize("value, mode, dtype, learning", list(poison_cases()))
def test_non_finite_row_leaves_other_rows_bit_identical(value, mode, dtype, learning):
    architecture = Weightwise()
    n, bad = 64, 17
    w = weights(architecture, n=n, seed=8, dtype=dtype)
    teacher = Weightwise(width=3)
    teacher_w = weights(teacher, n=n, seed=9, dtype=dtype)
    poisoned = w.clone()
    poisoned[bad, 3] = value
    poisoned_teacher = teacher_w.clone()
    poisoned_teacher[bad, 5] = value
    kwargs = dict(steps=6, lr=0.04, mode=mode, momentum=0.5, momentum_reset="never")

    def run(w, teacher_w):
        generator = torch.Generator().manual_seed(12)
        if learning:
            return learn(architecture, w, teacher, teacher_w, generator=generator, **kwargs)
        return self_train(architecture, w, generator=generator, **kwargs)

    clean = run(w, teacher_w)
    dirty = run(poisoned, poisoned_teacher if learning else teacher_w)
    others = torch.arange(n) != bad
    assert torch.equal(dirty.weights[others], clean.weights[others])
    assert torch.equal(dirty.loss[others], clean.loss[others])
    assert torch.equal(dirty.velocity[others], clean.velocity[others])
    if value != 1e30:
        assert not torch.isfinite(dirty.weights[bad]).all()


@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
def test_isolation_in_a_large_batch(mode):
    """Large enough for multi-threaded kernels: still bit-identical rows."""
    architecture = Weightwise()
    n = 6000
    w = weights(architecture, n=n, seed=13, dtype=torch.float32)
    poisoned = w.clone()
    bad = torch.tensor([0, 1234, n - 1])
    poisoned[bad, 0] = float("nan")
    poisoned[bad[1], 7] = float("inf")
    clean = self_train(
        architecture, w, steps=3, lr=0.04, mode=mode, generator=torch.Generator().manual_seed(1)
    )
    dirty = self_train(
        architecture,
        poisoned,
        steps=3,
        lr=0.04,
        mode=mode,
        generator=torch.Generator().manual_seed(1),
    )
    others = torch.ones(n, dtype=torch.bool)
    others[bad] = False
    assert torch.equal(dirty.weights[others], clean.weights[others])
    assert torch.equal(dirty.loss[others], clean.loss[others])
    assert not torch.isfinite(dirty.weights[bad]).all(dim=1).any()


def test_all_rows_non_finite_is_fine():
    w = torch.full((3, 14), float("nan"))
    for mode in ("full_batch", "per_sample"):
        result = self_train(Weightwise(), w, steps=2, lr=0.04, mode=mode)
        assert torch.isnan(result.weights).all()


# --------------------------------------------------------------------------------------------
# The caller's tensors are never written; results are fresh tensors


@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("layout", ["rows", "single", "transposed", "slice"])
def test_inputs_are_never_modified(layout, mode):
    architecture = Weightwise()
    base = weights(architecture, n=6, seed=3, dtype=torch.float32)
    if layout == "rows":
        w = base
    elif layout == "single":  # [1, r]: its transpose is "contiguous", the classic aliasing trap
        w = base[:1]
    elif layout == "transposed":  # a [B, r] view of a column-wise [r, B] tensor
        w = base.T.contiguous().T
    else:
        w = base[1:5]
    before = w.clone()
    velocity = torch.ones_like(w)
    teacher_w = weights(architecture, n=w.shape[0], seed=4, dtype=torch.float32)
    teacher_before = teacher_w.clone()
    for run in (
        lambda: self_train(architecture, w, steps=2, lr=0.04, mode=mode),
        lambda: self_train(
            architecture,
            w,
            steps=2,
            lr=0.04,
            mode=mode,
            momentum=0.9,
            momentum_reset="never",
            velocity=velocity,
        ),
        lambda: learn(architecture, w, architecture, teacher_w, steps=2, lr=0.04, mode=mode),
    ):
        result = run()
        assert torch.equal(w, before)
        assert torch.equal(teacher_w, teacher_before)
        assert torch.equal(velocity, torch.ones_like(w))
        assert result.weights.shape == w.shape and result.weights.is_contiguous()
        assert result.weights.data_ptr() != w.data_ptr()
        assert not torch.equal(result.weights, w)


def test_zero_steps_returns_a_copy_and_nan_loss():
    w = weights(Weightwise(), dtype=torch.float32)
    result = self_train(Weightwise(), w, steps=0, lr=0.04)
    assert torch.equal(result.weights, w) and result.weights.data_ptr() != w.data_ptr()
    assert torch.isnan(result.loss).all()


def test_empty_batch():
    w = torch.zeros(0, 14)
    result = self_train(Weightwise(), w, steps=3, lr=0.04)
    assert result.weights.shape == (0, 14) and result.loss.shape == (0,)
    result = self_train(Weightwise(), w, steps=3, lr=0.04, mode="per_sample")
    assert result.weights.shape == (0, 14)


# --------------------------------------------------------------------------------------------
# Everything else takes the general path


@pytest.mark.parametrize(
    "architecture",
    [
        Weightwise(activation="tanh"),
        Weightwise(output_activation="sigmoid"),
        Weightwise(bias=True),
        Aggregating(),
        Recurrent(),
        Fourier(),
    ],
    ids=repr,
)
def test_other_particles_take_the_general_path(architecture, route_calls):
    w = weights(architecture)
    result = self_train(architecture, w, steps=2, lr=0.04)
    expected, loss, _ = reference_self_train(architecture, w, steps=2, lr=0.04, mode="full_batch")
    assert not route_calls
    assert_close(result.weights, expected)
    assert_close(result.loss, loss)


def test_subclass_and_other_dtypes_take_the_general_path(route_calls):
    class Custom(Weightwise):
        pass

    w = weights(Custom())
    self_train(Custom(), w, steps=1, lr=0.04)
    self_train(Weightwise(), w.to(torch.bfloat16), steps=1, lr=0.04)
    assert not route_calls
