"""The fused Triton kernels (``particles.fused_gpu``) against the eager torch path.

On a CUDA machine the kernels run on the GPU; elsewhere the same kernels run once through
Triton's interpreter (``TRITON_INTERPRET=1``, in a subprocess, since the flag is read when
Triton is imported), so that the generated GPU code is checked on every machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import particles.fused as fused
from particles import Status, Weightwise, classify_with_error, learn, self_apply, self_train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
F64, F32 = torch.float64, torch.float32
N = 1000


def rows(architecture, n=N, seed=0, dtype=F64, device="cuda", scale=1.0):
    w = architecture.init(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return (w * scale).to(device)


def eager(run):
    with fused.disabled():
        return run()


def assert_same(actual, expected, tol):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol, equal_nan=True)


@cuda
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("learning", [False, True])
def test_float64_training_equals_eager_on_the_gpu(learning, momentum, monkeypatch):
    import particles.fused_gpu as fused_gpu

    calls = []
    original = fused_gpu.train_full
    monkeypatch.setattr(
        fused_gpu, "train_full", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    architecture, teacher = Weightwise(), Weightwise(width=3)
    w = rows(architecture, seed=1, scale=1.5)
    teacher_w = rows(teacher, seed=2)
    kwargs = dict(steps=1000, lr=0.04, momentum=momentum, momentum_reset="never")

    def run():
        if learning:
            return learn(architecture, w, teacher, teacher_w, **kwargs)
        return self_train(architecture, w, **kwargs)

    fast, slow = run(), eager(run)
    assert calls == [1]
    assert_same(fast.weights, slow.weights, 1e-12)
    assert_same(fast.loss, slow.loss, 1e-12)
    finite = torch.isfinite(slow.weights).all(dim=1)
    assert finite.any()
    assert torch.equal(torch.isfinite(fast.weights).all(dim=1), finite)


@cuda
def test_float32_training_gives_the_eager_classes_on_the_gpu():
    architecture = Weightwise()
    w = rows(architecture, seed=3, dtype=F32)
    fast = self_train(architecture, w, steps=200, lr=0.04)
    slow = eager(lambda: self_train(architecture, w, steps=200, lr=0.04))
    assert_same(fast.weights, slow.weights, 1e-4)
    assert torch.equal(
        classify_with_error(architecture, fast.weights)[0],
        eager(lambda: classify_with_error(architecture, slow.weights)[0]),
    )


@cuda
@pytest.mark.parametrize("dtype", [F32, F64])
def test_divergent_rows_are_contained_on_the_gpu(dtype):
    architecture = Weightwise()
    w = rows(architecture, seed=4, dtype=dtype)
    bad = torch.tensor([0, 500, N - 1], device="cuda")
    poisoned = w.clone()
    poisoned[bad, 3] = float("nan")
    poisoned[bad[1], 7] = float("inf")
    clean = self_train(architecture, w, steps=5, lr=0.04, momentum=0.5)
    dirty = self_train(architecture, poisoned, steps=5, lr=0.04, momentum=0.5)
    others = torch.ones(N, dtype=torch.bool, device="cuda")
    others[bad] = False
    assert torch.equal(dirty.weights[others], clean.weights[others])
    assert torch.equal(dirty.loss[others], clean.loss[others])
    assert not torch.isfinite(dirty.weights[bad]).all(dim=1).any()


@cuda
@pytest.mark.parametrize("dtype", [F32, F64])
def test_classify_and_self_apply_equal_eager_on_the_gpu(dtype):
    architecture = Weightwise()
    w = rows(architecture, seed=5, dtype=dtype)
    w[:20] = Weightwise.identity(dtype=dtype, device="cuda")
    w[20:40] *= 1e-7
    w[40, 2] = float("nan")
    status, error = classify_with_error(architecture, w)
    expected_status, expected_error = eager(lambda: classify_with_error(architecture, w))
    assert torch.equal(status, expected_status)
    assert int((status == Status.FIXPOINT).sum()) >= 20
    assert_same(error, expected_error, 1e-6 if dtype == F32 else 1e-15)
    out = self_apply(architecture, w, times=2)
    expected = eager(lambda: self_apply(architecture, w, times=2))
    finite = torch.isfinite(expected).all(dim=1)
    assert_same(out[finite], expected[finite], 1e-5 if dtype == F32 else 1e-13)
    target = rows(architecture, seed=7, dtype=dtype)
    out = architecture.apply(w, architecture, target)
    expected = eager(lambda: architecture.apply(w, architecture, target))
    finite = torch.isfinite(expected).all(dim=1)
    assert_same(out[finite], expected[finite], 1e-6 if dtype == F32 else 1e-15)


@cuda
def test_per_sample_keeps_the_eager_path_on_the_gpu(monkeypatch):
    import particles.fused_gpu as fused_gpu

    monkeypatch.setattr(fused_gpu, "train_full", None)  # any call would fail
    architecture = Weightwise()
    w = rows(architecture, seed=6)

    def run():
        generator = torch.Generator(device="cuda").manual_seed(0)
        return self_train(architecture, w, steps=3, lr=0.04, mode="per_sample", generator=generator)

    assert torch.equal(run().weights, eager(run).weights)


_INTERPRETED = """
import torch
import particles.fused as fused
import particles.fused_gpu as fg
from particles import Weightwise, classify_with_error, learn, position_features, self_apply
from particles import self_train

a, t = Weightwise(), Weightwise(width=3)
worst = 0.0
for dtype in (torch.float64, torch.float32):
    w = a.init(200, generator=torch.Generator().manual_seed(1), dtype=dtype)
    w[5, 3] = float("nan")
    w[:10] = Weightwise.identity(dtype=dtype)
    tw = t.init(200, generator=torch.Generator().manual_seed(2), dtype=dtype)
    for momentum in (0.0, 0.5):
        velocity = torch.zeros_like(w) if momentum else None
        for teacher in (None, tw):
            target = a if teacher is None else t
            positions = position_features(target, a.encoding, w.device, dtype)
            out, loss, _ = fg.train_full(
                a, w, positions, teacher, steps=20, lr=0.04, momentum=momentum,
                velocity=velocity,
            )
            with fused.disabled():
                if teacher is None:
                    ref = self_train(a, w, steps=20, lr=0.04, momentum=momentum)
                else:
                    ref = learn(a, w, t, tw, steps=20, lr=0.04, momentum=momentum)
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            torch.testing.assert_close(out, ref.weights, rtol=tol, atol=tol, equal_nan=True)
            torch.testing.assert_close(loss, ref.loss, rtol=tol, atol=tol, equal_nan=True)
    status, error = fg.classify(a, w, 1e-5, None)
    with fused.disabled():
        expected_status, expected_error = classify_with_error(a, w)
        expected_apply = self_apply(a, w, times=2)
    assert torch.equal(status, expected_status)
    torch.testing.assert_close(error, expected_error, equal_nan=True)
    applied = fg.self_apply(a, w, 2)
    torch.testing.assert_close(applied, expected_apply, equal_nan=True)
    target = a.init(200, generator=torch.Generator().manual_seed(3), dtype=dtype)
    with fused.disabled():
        expected_pair = a.apply(w, a, target)
    torch.testing.assert_close(fg.apply(a, w, target), expected_pair, equal_nan=True)
print("interpreted kernels agree")
"""


def test_triton_kernels_through_the_interpreter(tmp_path):
    """The generated Triton code, run by Triton's CPU interpreter, equals the eager path."""
    pytest.importorskip("triton")
    root = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        TRITON_INTERPRET="1",
        PYTHONPATH=str(root),
        PARTICLES_KERNEL_CACHE=str(tmp_path),
        OMP_NUM_THREADS="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_INTERPRETED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "interpreted kernels agree" in result.stdout
