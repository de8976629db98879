"""The fused CPU kernels (``particles.fused``) against the eager torch path and the reference.

The eager path (``fused.disabled()``) defines the behaviour; the per-particle torch reference of
``tests/particles/reference.py`` (one ``nn.Module`` and one ``torch.optim.SGD`` per particle) is
the independent answer. Batches are at least ``fused.MIN_BATCH`` so that the kernels run (except
where a test says so), and a route spy checks that they did.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

import particles.fused as fused
import particles.fused_cpu as fused_cpu
from particles import (
    Status,
    Weightwise,
    classify_with_error,
    learn,
    self_apply,
    self_train,
)
from tests.particles import reference as ref

pytestmark = pytest.mark.skipif(not fused_cpu.AVAILABLE, reason="numba is not installed")

F64, F32 = torch.float64, torch.float32
CLASSIFY = {F32: "classify_pairs", F64: "classify"}  # float32 weights move into lanes in pairs
SELF_APPLY = {F32: "self_apply_pairs", F64: "self_apply"}
N = 2 * fused.MIN_BATCH + 37  # two full blocks of lanes and a ragged one


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the calls that the fused CPU kernels actually ran."""
    calls = []
    original = fused_cpu.run_chunks

    def spy(kernel, *args):
        calls.append(kernel.__name__)
        return original(kernel, *args)

    monkeypatch.setattr(fused_cpu, "run_chunks", spy)
    return calls


def rows(architecture, n=N, seed=0, dtype=F64, scale=1.0):
    w = architecture.init(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return w * scale


def eager(run):
    with fused.disabled():
        return run()


def assert_same(actual, expected, tol):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, equal_nan=True)


def run_training(learning, architecture, w, teacher, teacher_w, **kwargs):
    generator = torch.Generator().manual_seed(5)
    if learning:
        return learn(architecture, w, teacher, teacher_w, generator=generator, **kwargs)
    return self_train(architecture, w, generator=generator, **kwargs)


# --------------------------------------------------------------------------------------------
# Training: fused == eager


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("learning", [False, True])
@pytest.mark.parametrize("mode, steps", [("full_batch", 1000), ("per_sample", 100)])
def test_float64_training_equals_eager(mode, steps, learning, momentum, kernel_calls):
    """float64, long runs: ≤ 1e-12 apart, divergent rows (NaN/inf) in the same places."""
    architecture = Weightwise()
    teacher = Weightwise(width=3)
    w = rows(architecture, seed=1, scale=1.5)  # wide enough that some rows diverge
    teacher_w = rows(teacher, seed=2)
    kwargs = dict(steps=steps, lr=0.04, mode=mode, momentum=momentum, momentum_reset="never")
    fast = run_training(learning, architecture, w, teacher, teacher_w, **kwargs)
    slow = eager(lambda: run_training(learning, architecture, w, teacher, teacher_w, **kwargs))
    assert kernel_calls == ["train_sample" if mode == "per_sample" else "train_full"]
    assert_same(fast.weights, slow.weights, 1e-12)
    assert_same(fast.loss, slow.loss, 1e-12)
    if momentum:
        assert_same(fast.velocity, slow.velocity, 1e-12)
    finite = torch.isfinite(slow.weights).all(dim=1)
    assert finite.any()
    assert torch.equal(torch.isfinite(fast.weights).all(dim=1), finite)


@pytest.mark.parametrize("learning", [False, True])
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
def test_float32_training_gives_the_eager_classes(mode, learning):
    architecture = Weightwise()
    w = rows(architecture, seed=3, dtype=F32)
    teacher_w = rows(architecture, seed=4, dtype=F32)
    kwargs = dict(steps=200 if mode == "full_batch" else 40, lr=0.04, mode=mode)
    fast = run_training(learning, architecture, w, architecture, teacher_w, **kwargs)
    slow = eager(lambda: run_training(learning, architecture, w, architecture, teacher_w, **kwargs))
    assert_same(fast.weights, slow.weights, 1e-4)
    classes = classify_with_error(architecture, fast.weights)[0]
    assert torch.equal(classes, eager(lambda: classify_with_error(architecture, slow.weights)[0]))


@pytest.mark.parametrize(
    "width, depth, encoding", [(1, 0, "torch"), (3, 1, "keras"), (2, 3, "torch")]
)
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
def test_other_shapes_equal_eager(width, depth, encoding, mode, kernel_calls):
    architecture = Weightwise(width=width, depth=depth, encoding=encoding)
    w = rows(architecture, seed=6)
    teacher_w = rows(Weightwise(), seed=7)
    for learning in (False, True):
        kwargs = dict(steps=30, lr=0.02, mode=mode)
        fast = run_training(learning, architecture, w, Weightwise(), teacher_w, **kwargs)
        with fused.disabled():
            slow = run_training(learning, architecture, w, Weightwise(), teacher_w, **kwargs)
        assert_same(fast.weights, slow.weights, 1e-12)
        assert_same(fast.loss, slow.loss, 1e-12)
    assert len(kernel_calls) == 2


@pytest.mark.parametrize("batch", [1, 10, fused.MIN_BATCH - 1])
@pytest.mark.parametrize("learning", [False, True])
def test_small_per_sample_batches_take_the_kernel(batch, learning, kernel_calls):
    """per_sample training is fused at any batch (its eager pass loops over the samples in
    Python); full_batch training under ``MIN_BATCH`` rows stays eager."""
    architecture = Weightwise()
    w = rows(architecture, n=batch, seed=15)
    teacher_w = rows(architecture, n=batch, seed=16)
    kwargs = dict(steps=50, lr=0.04, mode="per_sample")
    fast = run_training(learning, architecture, w, architecture, teacher_w, **kwargs)
    slow = eager(lambda: run_training(learning, architecture, w, architecture, teacher_w, **kwargs))
    assert kernel_calls == ["train_sample"]
    assert_same(fast.weights, slow.weights, 1e-12)
    assert_same(fast.loss, slow.loss, 1e-12)
    kwargs["mode"] = "full_batch"
    run_training(learning, architecture, w, architecture, teacher_w, **kwargs)
    assert kernel_calls == ["train_sample"]


# --------------------------------------------------------------------------------------------
# Training: fused == the per-particle torch reference (nn.Module + torch.optim.SGD)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("learning", [False, True])
def test_training_equals_the_per_particle_reference(learning, mode, momentum):
    architecture, teacher = Weightwise(), Weightwise(width=3)
    w = rows(architecture, seed=8)
    teacher_w = rows(teacher, seed=9)
    steps = 25
    fast = run_training(
        learning,
        architecture,
        w,
        teacher,
        teacher_w,
        steps=steps,
        lr=0.03,
        mode=mode,
        momentum=momentum,
    )
    count = teacher.num_weights if learning else architecture.num_weights
    orders = ref.kernel_orders(5, N, count, steps) if mode == "per_sample" else None
    for k in (0, 1, N // 2, N - 1):
        kwargs = dict(steps=steps, lr=0.03, mode=mode, momentum=momentum)
        if orders is not None:
            kwargs["orders"] = ref.row_orders(orders, k)
        if learning:
            expected, loss = ref.learn_one(architecture, w[k], teacher, teacher_w[k], **kwargs)
        else:
            expected, loss = ref.self_train_one(architecture, w[k], **kwargs)
        assert_same(fast.weights[k], expected, 1e-12)
        assert_same(fast.loss[k], loss, 1e-12)


# --------------------------------------------------------------------------------------------
# Batch isolation: a non-finite row never changes another row


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e30])
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("learning", [False, True])
def test_divergent_rows_are_contained(value, dtype, mode, learning, kernel_calls):
    architecture = Weightwise()
    w = rows(architecture, seed=10, dtype=dtype)
    teacher_w = rows(architecture, seed=11, dtype=dtype)
    bad = torch.tensor([0, 200, N - 1])
    poisoned, poisoned_teacher = w.clone(), teacher_w.clone()
    poisoned[bad, 3] = value
    poisoned_teacher[bad, 5] = value
    kwargs = dict(steps=6, lr=0.04, mode=mode, momentum=0.5, momentum_reset="never")
    clean = run_training(learning, architecture, w, architecture, teacher_w, **kwargs)
    dirty = run_training(
        learning,
        architecture,
        poisoned,
        architecture,
        poisoned_teacher if learning else teacher_w,
        **kwargs,
    )
    others = torch.ones(N, dtype=torch.bool)
    others[bad] = False
    assert torch.equal(dirty.weights[others], clean.weights[others])
    assert torch.equal(dirty.loss[others], clean.loss[others])
    assert torch.equal(dirty.velocity[others], clean.velocity[others])
    if value != 1e30:
        assert not torch.isfinite(dirty.weights[bad]).all(dim=1).any()
    assert len(kernel_calls) == 2


def test_inputs_are_never_modified_and_results_are_fresh():
    architecture = Weightwise()
    w = rows(architecture, seed=12, dtype=F32)
    velocity = torch.ones_like(w)
    before = w.clone()
    for mode in ("full_batch", "per_sample"):
        result = self_train(
            architecture,
            w,
            steps=3,
            lr=0.04,
            mode=mode,
            momentum=0.9,
            momentum_reset="never",
            velocity=velocity,
        )
        assert torch.equal(w, before) and torch.equal(velocity, torch.ones_like(w))
        assert result.weights.is_contiguous() and result.weights.data_ptr() != w.data_ptr()
    transposed = w.T.contiguous().T  # a [B, r] view of a column-wise tensor
    assert torch.equal(
        self_train(architecture, transposed, steps=3, lr=0.04).weights,
        self_train(architecture, w, steps=3, lr=0.04).weights,
    )


def test_without_numba_the_eager_path_runs(monkeypatch, kernel_calls):
    monkeypatch.setattr(fused_cpu, "AVAILABLE", False)
    w = rows(Weightwise(), seed=13)
    result = self_train(Weightwise(), w, steps=5, lr=0.04)
    assert not kernel_calls
    assert_same(
        result.weights, eager(lambda: self_train(Weightwise(), w, steps=5, lr=0.04)).weights, 0
    )


# --------------------------------------------------------------------------------------------
# Self-application and classification


def special_rows(dtype):
    """Fixpoints, zeros, a second-order particle, non-finite rows and ordinary ones."""
    architecture = Weightwise()
    w = rows(architecture, seed=14, dtype=dtype)
    w[:20] = Weightwise.identity(dtype=dtype)  # FIXPOINT
    w[20:40] *= 1e-7  # ZERO
    flip = Weightwise.identity(dtype=dtype)
    flip[0, 0] = -1.0  # u = (-1, 0, 0, 0): N ◁ N = -w, twice = w
    w[40:60] = flip
    w[60, 3], w[61, 0], w[62, 13] = float("nan"), float("inf"), -float("inf")
    return w


@pytest.mark.parametrize("dtype", [F32, F64])
def test_classify_equals_eager(dtype, kernel_calls):
    architecture = Weightwise()
    w = special_rows(dtype)
    divergent = torch.zeros(N, dtype=torch.bool)
    divergent[100] = True
    status, error = classify_with_error(architecture, w, eps=1e-5, divergent=divergent)
    expected_status, expected_error = eager(
        lambda: classify_with_error(architecture, w, eps=1e-5, divergent=divergent)
    )
    assert kernel_calls == [CLASSIFY[dtype]]
    assert torch.equal(status, expected_status)
    assert_same(error, expected_error, 1e-6 if dtype == F32 else 1e-15)
    counts = torch.bincount(status, minlength=5)
    assert counts[Status.FIXPOINT] >= 20 and counts[Status.ZERO] >= 20
    assert counts[Status.SECOND_ORDER] == 20 and counts[Status.DIVERGENT] == 4


@pytest.mark.parametrize("flagged", [None, 0, N - 1])
def test_classify_without_or_with_one_flag(flagged, kernel_calls):
    """No flag: only non-finite rows are DIVERGENT; one flag (first row, last of the ragged
    block) turns exactly that particle DIVERGENT and leaves its fixpoint error as it was."""
    architecture = Weightwise()
    w = special_rows(F64)
    divergent = None
    if flagged is not None:
        divergent = torch.zeros(N, dtype=torch.bool)
        divergent[flagged] = True
    status, error = classify_with_error(architecture, w, eps=1e-5, divergent=divergent)
    plain_status, plain_error = eager(lambda: classify_with_error(architecture, w, eps=1e-5))
    assert kernel_calls == ["classify"]
    expected = plain_status.clone()
    if flagged is not None:
        expected[flagged] = Status.DIVERGENT
    assert torch.equal(status, expected)
    assert_same(error, plain_error, 1e-15)


@pytest.mark.parametrize("times", [1, 3])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_self_apply_equals_eager(dtype, times, kernel_calls):
    architecture = Weightwise()
    w = special_rows(dtype)
    out = self_apply(architecture, w, times=times)
    expected = eager(lambda: self_apply(architecture, w, times=times))
    assert kernel_calls == [SELF_APPLY[dtype]]
    finite = torch.isfinite(expected).all(dim=1)
    assert_same(out[finite], expected[finite], 1e-5 if dtype == F32 else 1e-13)
    assert torch.equal(torch.isfinite(out).all(dim=1), finite)


def _train_in_child(w):
    return self_train(Weightwise(), w, steps=20, lr=0.04).weights


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_gets_its_own_worker_threads(monkeypatch):
    """After fork the parent's workers do not exist in the child: the child must not hang."""
    import multiprocessing

    monkeypatch.setattr(fused_cpu, "TASK_WORK", 1000)  # force the worker threads
    w = rows(Weightwise(), n=4000, seed=15, dtype=F32)
    expected = self_train(Weightwise(), w, steps=20, lr=0.04).weights  # starts the pool
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_train_in_child, (w,)).get(timeout=120)
    assert torch.equal(result, expected)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_apply_to_the_same_architecture_equals_eager(dtype, kernel_calls):
    architecture = Weightwise()
    w = special_rows(dtype)
    target_w = rows(architecture, seed=16, dtype=dtype)
    target_w[70, 2] = float("nan")
    out = architecture.apply(w, architecture, target_w)
    expected = eager(lambda: architecture.apply(w, architecture, target_w))
    assert kernel_calls == ["apply_rows"]
    finite = torch.isfinite(expected).all(dim=1)
    assert_same(out[finite], expected[finite], 1e-6 if dtype == F32 else 1e-15)
    assert torch.equal(torch.isfinite(out).all(dim=1), finite)
    assert not finite[70]
    kernel_calls.clear()
    other = Weightwise(width=3)  # another target architecture: the eager path
    architecture.apply(w, other, rows(other, seed=17, dtype=dtype))
    assert kernel_calls == []


def test_an_unwritable_cache_folder_falls_back_to_a_private_one(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder should be: mkdir fails
    monkeypatch.setenv("PARTICLES_KERNEL_CACHE", str(blocked / "kernels"))
    fused_cpu._writable_folder.cache_clear()
    try:
        folder = fused_cpu._writable_folder()
        assert folder.is_dir() and folder != blocked / "kernels"
    finally:
        fused_cpu._writable_folder.cache_clear()


@pytest.mark.parametrize(
    ("width", "depth", "dtype", "kernel"),
    [
        (3, 2, F32, "classify_pairs"),  # r = 24: float32 weights move in pairs
        (3, 1, F32, "classify"),  # r = 15: an odd row moves one weight at a time
        (3, 3, F32, "classify"),  # r = 33
        (3, 3, F64, "classify"),
    ],
)
def test_own_map_kernels_of_other_widths_equal_eager(width, depth, dtype, kernel, kernel_calls):
    architecture = Weightwise(width=width, depth=depth)
    w = rows(architecture, seed=18, dtype=dtype)
    w[:30] *= 1e-7  # ZERO
    w[30, 0], w[31, -1], w[32, 5] = float("nan"), float("inf"), -float("inf")
    status, error = classify_with_error(architecture, w, eps=1e-5)
    expected_status, expected_error = eager(lambda: classify_with_error(architecture, w, eps=1e-5))
    assert kernel_calls == [kernel]
    assert torch.equal(status, expected_status)
    assert_same(error, expected_error, 1e-5 if dtype == F32 else 1e-13)
    assert (status == Status.ZERO).sum() == 30 and (status == Status.DIVERGENT).sum() == 3
    kernel_calls.clear()
    applied = self_apply(architecture, w, times=2)
    expected = eager(lambda: self_apply(architecture, w, times=2))
    assert kernel_calls == [kernel.replace("classify", "self_apply")]
    finite = torch.isfinite(expected).all(dim=1)
    assert_same(applied[finite], expected[finite], 1e-5 if dtype == F32 else 1e-13)
    assert torch.equal(torch.isfinite(applied).all(dim=1), finite)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_own_map_kernels_read_rows_at_any_offset(dtype):
    """A batch that starts one weight into its storage (not 8-byte aligned in float32)."""
    architecture = Weightwise()
    storage = special_rows(dtype).flatten()
    w = storage[1 : 1 + (N - 1) * 14].view(N - 1, 14)
    assert w.is_contiguous() and w.storage_offset() == 1
    expected_status, expected_error = eager(lambda: classify_with_error(architecture, w))
    status, error = classify_with_error(architecture, w)
    assert torch.equal(status, expected_status)
    assert_same(error, expected_error, 1e-6 if dtype == F32 else 1e-15)
    finite = torch.isfinite(error)
    expected = eager(lambda: self_apply(architecture, w))
    assert_same(self_apply(architecture, w)[finite], expected[finite], 1e-5)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_own_map_kernels_in_chunks_on_threads_equal_one_call(dtype, monkeypatch):
    architecture = Weightwise()
    w = special_rows(dtype)
    flag = torch.zeros(N, dtype=torch.bool)
    flag[N - 1] = True
    whole = [
        self_apply(architecture, w, times=3),
        *classify_with_error(architecture, w, divergent=flag),
    ]
    monkeypatch.setattr(fused_cpu, "TASK_WORK", 1)  # every block its own chunk, helpers woken
    monkeypatch.setattr(fused_cpu, "threads", lambda: 2)
    chunked = [
        self_apply(architecture, w, times=3),
        *classify_with_error(architecture, w, divergent=flag),
    ]
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


class _LateExecutor:
    """A pool whose workers wake only when told: the caller must not wait for them."""

    def __init__(self):
        self.asleep = []

    def submit(self, fn, *args):
        self.asleep.append((fn, args))


def test_the_caller_never_waits_for_a_worker_that_has_not_woken(monkeypatch):
    late = _LateExecutor()
    monkeypatch.setattr(fused_cpu, "_executor", lambda: late)
    monkeypatch.setattr(fused_cpu, "TASK_WORK", 1)
    monkeypatch.setattr(fused_cpu, "threads", lambda: 2)
    ran = []
    fused_cpu.run_chunks(lambda start, stop: ran.append((start, stop)), 8 * fused_cpu.LANES, 1)
    assert sorted(ran) == [(i * fused_cpu.LANES, (i + 1) * fused_cpu.LANES) for i in range(8)]
    assert len(late.asleep) == 1
    fn, args = late.asleep[0]
    fn(*args)  # the worker wakes after the call: it finds no chunk left
    assert len(ran) == 8


def test_an_error_in_a_worker_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(fused_cpu, "TASK_WORK", 1)
    monkeypatch.setattr(fused_cpu, "threads", lambda: 2)
    caller = threading.get_ident()

    def kernel(start, stop):
        time.sleep(0.002)  # long enough that the worker takes chunks too
        if threading.get_ident() != caller:
            raise ArithmeticError(f"chunk {start}")

    with pytest.raises(ArithmeticError, match="chunk"):
        fused_cpu.run_chunks(kernel, 8 * fused_cpu.LANES, 1)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_own_map_kernels_take_strided_and_grad_rows(dtype, kernel_calls):
    """Rows that are a strided view or require grad run on the kernels and give the results of
    the plain contiguous rows; the results own their memory (writing them leaves ``w`` alone)."""
    architecture = Weightwise()
    w = special_rows(dtype)
    before = w.clone()
    status, error = classify_with_error(architecture, w)
    applied = self_apply(architecture, w)
    for variant in (w.T.contiguous().T, w.clone().requires_grad_(True)):
        assert not variant.is_contiguous() or variant.requires_grad
        other_status, other_error = classify_with_error(architecture, variant)
        assert torch.equal(other_status, status)
        assert_same(other_error, error, 0)
        assert_same(self_apply(architecture, variant), applied, 0)
    assert kernel_calls == [CLASSIFY[dtype], SELF_APPLY[dtype]] * 3
    assert status.dtype == torch.long and error.dtype == dtype and applied.dtype == dtype
    status += 1
    error.zero_()
    applied.zero_()
    assert_same(w, before, 0)
    assert torch.equal(classify_with_error(architecture, w)[0], status - 1)


def test_the_last_accepted_architecture_lets_no_other_in():
    """``applies`` remembers the last fitting architecture by identity; an equal one still fits
    and an architecture that does not fit is still refused right after it."""
    w = rows(Weightwise(), dtype=F32)
    assert fused.applies(Weightwise(), w)
    assert fused.applies(Weightwise(), w)  # equal, not the same object
    for other in (
        Weightwise(activation="tanh"),
        Weightwise(bias=True),
        Weightwise(width=40, depth=8),
    ):
        assert not fused.applies(other, torch.zeros(N, other.num_weights, dtype=F32))
    assert not fused.applies(Weightwise(), w.to(torch.float16))
    assert not fused.applies(Weightwise(), w[: fused.MIN_BATCH - 1])
