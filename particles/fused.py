"""Dispatch to the fused kernels of linear bias-free weightwise particles (CPU: numba; GPU: Triton).

The eager torch code of ``training``, ``classification`` and ``architectures`` defines the
behaviour and serves every other particle; these functions return None whenever the fused path
does not apply (other architectures, dtypes or devices, numba or Triton missing, a batch too
small to be worth a kernel, ``PARTICLES_FUSED=0`` in the environment), and the caller then runs
the eager code. The kernels agree with it to floating-point reassociation (tests pin it).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cache

import numpy as np
import torch

from particles import fused_cpu
from particles.architectures import Architecture, Weightwise, position_features
from particles.threads import torch_threads

Tensor = torch.Tensor

MIN_BATCH = 128  # smaller batches take the eager path: the kernel saves little there
# ... except per_sample training, whose eager pass loops over the samples in Python: there the
# kernel is some 40 times faster even for one particle (batch 10, 100 steps: 2 ms against 80 ms).
MIN_BATCH_PER_SAMPLE = 1
MAX_WEIGHTS = 256  # larger nets take the eager path: the unrolled step would be huge
enabled = os.environ.get("PARTICLES_FUSED", "1") != "0"
_NO_FLAGS = np.zeros(0, dtype=np.bool_)  # classify without a sticky divergent flag
_NUMPY_TYPES = {torch.float32: np.float32, torch.float64: np.float64}
_CPU = torch.device("cpu")
_NUMPY_OF = {**_NUMPY_TYPES, torch.long: np.int64}


@contextmanager
def disabled():
    """Run the block on the eager torch path (reference runs and benchmarks)."""
    global enabled
    previous, enabled = enabled, False
    try:
        yield
    finally:
        enabled = previous


def _gpu():
    """The Triton back end, or None where CUDA or Triton is missing."""
    try:
        from particles import fused_gpu
    except ImportError:
        return None
    return fused_gpu if fused_gpu.AVAILABLE else None


def applies(
    architecture: Architecture, w: Tensor, *others: Tensor | None, min_batch: int = MIN_BATCH
) -> bool:
    """True when a fused kernel can run this call (see the module docstring)."""
    if not (
        enabled
        and w.dtype in _NUMPY_TYPES
        and w.dim() == 2
        and w.shape[0] >= min_batch
        and (architecture is _recent_fit or _fits(architecture))
    ):
        return False
    device = w.device
    for t in others:  # a loop, not all(): this runs on every call
        if t is not None and (t.dtype != w.dtype or t.device != device):
            return False
    if w.is_cuda:
        return _gpu() is not None
    return device == _CPU and fused_cpu.AVAILABLE


_recent_fit: Architecture | None = None  # the last architecture ``_fits`` accepted


def _fits(architecture: Architecture) -> bool:
    """The architecture part of ``applies``; the last accepted one is kept at hand, so a hot
    caller skips hashing the (frozen dataclass) architecture on every call."""
    global _recent_fit
    if not _fits_by_value(architecture):
        return False
    _recent_fit = architecture
    return True


@cache
def _fits_by_value(architecture: Architecture) -> bool:
    return (
        type(architecture) is Weightwise
        and architecture.is_linear_feedforward
        and architecture.num_weights <= MAX_WEIGHTS
    )


@cache
def describe(device: torch.device) -> str:
    """Which kernels serve weightwise particles on ``device``, for benchmark output."""
    if not enabled:
        return "eager torch (fused kernels disabled)"
    if device.type == "cpu":
        if not fused_cpu.AVAILABLE:
            return "eager torch (numba not installed)"
        return f"fused numba kernels, {fused_cpu.threads()} worker thread(s)"
    gpu = _gpu()
    return "fused Triton kernels" if gpu is not None else "eager torch (Triton not available)"


@cache
def _key(architecture: Weightwise):
    positions = position_features(
        architecture, architecture.encoding, torch.device("cpu"), torch.float64
    )
    return architecture.matrix_shapes, tuple(tuple(p) for p in positions.tolist())


_recent_map: tuple = (None, None, {})  # (architecture, module, {dtype: constants}) of the last call


def _own_map_kernels(architecture: Weightwise, dtype: torch.dtype):
    """(module, constants) of the CPU own-map kernels; the last architecture's are kept at hand
    (calls are hot: a batch of 10,000 takes less than 100 µs)."""
    global _recent_map
    known, module, constants = _recent_map
    if known is not architecture:
        module = fused_cpu.map_module(*_key(architecture))
        constants = {}
        _recent_map = (architecture, module, constants)
    if dtype not in constants:
        constants[dtype] = fused_cpu.constants(module, "own_map", _NUMPY_TYPES[dtype])
    return module, constants[dtype]


def _in_pairs(w: Tensor) -> bool:
    """True where the own-map kernels move the weights into lanes two at a time (8 bytes)."""
    return w.dtype == torch.float32 and w.shape[1] % 2 == 0


def _array(t: Tensor) -> np.ndarray:
    if t.requires_grad or not t.is_contiguous():
        t = t.detach().contiguous()
    return t.numpy()


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> tuple[Tensor, np.ndarray]:
    """An uninitialised CPU tensor and the numpy array sharing its memory (one allocation,
    cheaper per call than ``torch.empty`` followed by ``.numpy()``)."""
    array = np.empty(shape, dtype=_NUMPY_OF[dtype])
    return torch.from_numpy(array), array


def train_weightwise(
    architecture: Weightwise,
    w: Tensor,
    positions: Tensor,
    teacher: Tensor | None,
    *,
    steps: int,
    lr: float,
    mode: str,
    momentum: float,
    velocity: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """``training._train_weightwise`` in one fused kernel, or None where none applies."""
    count = positions.shape[0]
    single = mode == "per_sample" and count > 1
    least = MIN_BATCH_PER_SAMPLE if single else MIN_BATCH
    if steps < 1 or not applies(architecture, w, teacher, velocity, positions, min_batch=least):
        return None
    batch, dtype = w.shape[0], w.dtype
    if w.device.type == "cuda":
        if single:
            return None
        return _gpu().train_full(
            architecture,
            w,
            positions,
            teacher,
            steps=steps,
            lr=lr,
            momentum=momentum,
            velocity=velocity,
        )
    shapes, own = _key(architecture)
    learning = teacher is not None
    module = fused_cpu.train_module(
        shapes, None if learning else own, velocity is not None, learning
    )
    gram = (positions.T @ positions).flatten().tolist()
    if velocity is None:
        step, scale = -lr * 2.0 if single else -lr * (2.0 / count), 0.0
    else:
        step, scale = 0.0, 2.0 if single else 2.0 / count
    w_in = _array(w)
    q = np.asarray([lr, momentum, step, scale, *gram], dtype=w_in.dtype)
    out_w = torch.empty_like(w, memory_format=torch.contiguous_format)
    out_vel = torch.empty_like(out_w) if velocity is not None else out_w[:, :1]
    loss = torch.empty(batch, dtype=dtype)
    vel_in = _array(velocity) if velocity is not None else w_in
    teacher_in = _array(teacher) if learning else w_in
    pos = _array(positions)
    if not single:
        k = fused_cpu.constants(module, "train_full", w_in.dtype)
        fused_cpu.run_chunks(
            module.train_full,
            batch,
            steps,
            w_in,
            vel_in,
            teacher_in,
            pos,
            out_w.numpy(),
            out_vel.numpy(),
            loss.numpy(),
            k,
            q,
            steps,
        )
        return out_w, loss, out_vel if velocity is not None else None
    k = fused_cpu.constants(module, "train_sample", w_in.dtype)
    order_type = torch.uint8 if count <= 255 else torch.int32
    per_chunk = max(1, min(steps, fused_cpu.ORDER_BUDGET // max(1, batch * count)))
    done = 0
    while done < steps:
        passes = min(per_chunk, steps - done)
        orders = torch.empty((passes, batch, count), dtype=order_type)
        with torch_threads(1):  # small sorts: torch's threads only cost time here
            for p in range(passes):  # the same draws, in the same order, as the eager path
                orders[p] = torch.rand((batch, count), generator=generator).argsort(dim=1)
        fused_cpu.run_chunks(
            module.train_sample,
            batch,
            passes * count,
            w_in,
            vel_in,
            teacher_in,
            pos,
            orders.numpy(),
            out_w.numpy(),
            out_vel.numpy(),
            loss.numpy(),
            k,
            q,
        )
        w_in = out_w.numpy()
        vel_in = out_vel.numpy() if velocity is not None else w_in
        done += passes
    return out_w, loss, out_vel if velocity is not None else None


def self_apply(architecture: Weightwise, w: Tensor, times: int) -> Tensor | None:
    """``times`` rounds of N ← N ◁ N in one kernel, or None where none applies."""
    if times < 1 or not applies(architecture, w):
        return None
    if w.is_cuda:
        return _gpu().self_apply(architecture, w, times)
    module, k = _own_map_kernels(architecture, w.dtype)
    out, out_array = _empty(tuple(w.shape), w.dtype)
    rows_in, rows_out, kernel = _array(w).reshape(-1), out_array.reshape(-1), module.self_apply
    if _in_pairs(w):
        rows_in, rows_out = rows_in.view(np.uint64), rows_out.view(np.uint64)
        kernel = module.self_apply_pairs
    fused_cpu.run_chunks(kernel, w.shape[0], times, rows_in, rows_out, k, times)
    return out


def apply(
    architecture: Weightwise, w: Tensor, target: Architecture, target_w: Tensor
) -> Tensor | None:
    """N ◁ M row by row in one kernel when M has N's architecture, or None."""
    if target != architecture or not applies(architecture, w, target_w):
        return None
    if w.is_cuda:
        return _gpu().apply(architecture, w, target_w)
    module, k = _own_map_kernels(architecture, w.dtype)
    out, out_array = _empty(tuple(w.shape), w.dtype)
    fused_cpu.run_chunks(
        module.apply_rows, w.shape[0], 1, _array(w), _array(target_w), out_array, k
    )
    return out


def classify(
    architecture: Weightwise, w: Tensor, eps: float, divergent: Tensor | None
) -> tuple[Tensor, Tensor] | None:
    """(status [B] int64, fixpoint error [B]) of SPEC D13 in one kernel, or None."""
    if not applies(architecture, w):
        return None
    if w.is_cuda:
        return _gpu().classify(architecture, w, eps, divergent)
    module, k = _own_map_kernels(architecture, w.dtype)
    batch = w.shape[0]
    flag = _NO_FLAGS if divergent is None else _array(divergent.cpu())
    status, status_array = _empty((batch,), torch.long)
    error, error_array = _empty((batch,), w.dtype)
    rows_in, kernel = _array(w).reshape(-1), module.classify
    if _in_pairs(w):
        rows_in, kernel = rows_in.view(np.uint64), module.classify_pairs
    eps_typed = k.dtype.type(eps)
    fused_cpu.run_chunks(kernel, batch, 3, rows_in, flag, status_array, error_array, k, eps_typed)
    return status, error
