"""Fused GPU kernels (Triton) for linear bias-free weightwise particles.

One particle per GPU thread: a program loads a block of particles' weights into registers, runs
every step of the call there (the step loop is inside the kernel) and writes them back once.
The step is the straight-line code of ``fused_source``, the same maths as the CPU kernels.
Full-batch training, self-application and classification run here; per_sample training keeps
the eager path on the GPU (its random visiting order is a gather per update).
"""

from __future__ import annotations

from functools import cache

import torch

from particles import fused_cpu
from particles import fused_source as src
from particles.architectures import Weightwise, position_features

try:
    import triton
    import triton.language as tl  # noqa: F401

    AVAILABLE = torch.cuda.is_available()
except ImportError:  # pragma: no cover - a CPU-only torch build
    AVAILABLE = False

BLOCK = 128  # particles per program: one per thread of four warps
WARPS = 4

_HEADER = """\
import triton
import triton.language as tl
"""


def _constants(e: src.Emitter) -> list[str]:
    return [f"k{i} = tl.load(k_ptr + {i})" for i in range(len(e.constants))]


def _io(r: int, momentum: bool, store: bool) -> list[str]:
    out = []
    for prefix, pointer, flag in (("w", "w_ptr", True), ("m", "vel_ptr", momentum)):
        if not flag:
            continue
        target = "out_" + pointer if store else pointer
        for i in range(r):
            if store:
                out.append(f"tl.store({target} + offs * {r} + {i}, {prefix}{i}, mask=mask)")
            else:
                out.append(f"{prefix}{i} = tl.load({pointer} + offs * {r} + {i}, mask=mask)")
    return out


def _train_source(shapes, positions, momentum: bool, learning: bool) -> tuple[str, list]:
    r = sum(rows * cols for rows, cols in shapes)
    e = src.Emitter()
    src.full_batch_step(e, shapes, None if learning else positions, report=False, momentum=momentum)
    plain_lines = list(e.lines)
    e.lines = []
    reported, v = src.full_batch_step(
        e, shapes, None if learning else positions, report=True, momentum=momentum
    )
    last_lines = list(e.lines)
    lines = [
        "@triton.jit",
        "def train_full(w_ptr, vel_ptr, teacher_ptr, pos_ptr, out_w_ptr, out_vel_ptr, loss_ptr,",
        "               k_ptr, q_ptr, batch, count, steps, BLOCK: tl.constexpr):",
        "    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < batch",
        "    lr = tl.load(q_ptr + 0)",
        "    mu = tl.load(q_ptr + 1)",
        "    step = tl.load(q_ptr + 2)",
        "    scale = tl.load(q_ptr + 3)",
        *["    " + line for line in _constants(e)],
        src.indent(_io(r, momentum, False), 1),
    ]
    if learning:
        lines += [f"    c{i} = tl.load(q_ptr + {4 + i})" for i in range(9)]
        lines += [
            "    h0 = tl.zeros([BLOCK], dtype=w_ptr.dtype.element_ty)",
            "    h1 = tl.zeros([BLOCK], dtype=w_ptr.dtype.element_ty)",
            "    h2 = tl.zeros([BLOCK], dtype=w_ptr.dtype.element_ty)",
            "    h3 = tl.zeros([BLOCK], dtype=w_ptr.dtype.element_ty)",
            "    for i in range(count):",
            "        t = tl.load(teacher_ptr + offs * count + i, mask=mask)",
            "        h0 += t * t",
            "        h1 += tl.load(pos_ptr + 3 * i) * t",
            "        h2 += tl.load(pos_ptr + 3 * i + 1) * t",
            "        h3 += tl.load(pos_ptr + 3 * i + 2) * t",
        ]
    lines += [
        "    for _ in range(steps - 1):",
        src.indent(plain_lines, 2),
        src.indent(last_lines, 1),
    ]
    if learning:  # the loss before the last update, over the teacher's samples
        lines += [
            "    acc = tl.zeros([BLOCK], dtype=w_ptr.dtype.element_ty)",
            "    for i in range(count):",
            "        t = tl.load(teacher_ptr + offs * count + i, mask=mask)",
            f"        res = tl.load(pos_ptr + 3 * i) * {v[1]}"
            f" + tl.load(pos_ptr + 3 * i + 1) * {v[2]}"
            f" + tl.load(pos_ptr + 3 * i + 2) * {v[3]} + t * {v[0]}",
            "        acc += res * res",
            "    tl.store(loss_ptr + offs, acc / count, mask=mask)",
        ]
    else:
        lines += [f"    tl.store(loss_ptr + offs, {reported}, mask=mask)"]
    lines += [src.indent(_io(r, momentum, True), 1)]
    return "\n".join(lines), e.constants


def _own_map_source(shapes, positions) -> tuple[str, list]:
    r = sum(rows * cols for rows, cols in shapes)
    b = src.own_map_bodies(shapes, positions)
    e, names, once, twice, applied = b.emitter, b.names, b.once, b.twice, b.applied
    apply_lines, classify_lines, pair_lines = b.apply, b.classify, b.pair
    for label, values in (("d1", once), ("d2", twice), ("sz", None)):
        terms = [
            f"tl.abs({name})" if values is None else f"tl.abs({value} - {name})"
            for value, name in zip(values or names, names, strict=True)
        ]
        current = terms[0]
        for term in terms[1:]:  # NaN propagates, as in amax
            current = f"tl.maximum({current}, {term}, propagate_nan=tl.PropagateNan.ALL)"
        classify_lines.append(f"{label} = {current}")
    load = [f"w{i} = tl.load(w_ptr + offs * {r} + {i}, mask=mask)" for i in range(r)]
    start = [
        "    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < batch",
        *["    " + line for line in _constants(e)],
        src.indent(load, 1),
    ]
    apply_src = [
        "@triton.jit",
        "def self_apply(w_ptr, out_ptr, k_ptr, batch, times, BLOCK: tl.constexpr):",
        *start,
        "    for _ in range(times):",
        src.indent(apply_lines, 2),
        src.indent([f"tl.store(out_ptr + offs * {r} + {i}, w{i}, mask=mask)" for i in range(r)], 1),
    ]
    pair_src = [
        "@triton.jit",
        "def apply_rows(w_ptr, target_ptr, out_ptr, k_ptr, batch, BLOCK: tl.constexpr):",
        *start,
        src.indent(
            [f"m{i} = tl.load(target_ptr + offs * {r} + {i}, mask=mask)" for i in range(r)]
            + pair_lines,
            1,
        ),
        src.indent(
            [
                f"tl.store(out_ptr + offs * {r} + {i}, {v}, mask=mask)"
                for i, v in enumerate(applied)
            ],
            1,
        ),
    ]
    classify_src = [
        "@triton.jit",
        "def classify(w_ptr, flag_ptr, status_ptr, error_ptr, k_ptr, eps, batch,",
        "             BLOCK: tl.constexpr):",
        *start,
        src.indent(classify_lines, 1),
        "    inf = float('inf')",
        "    first = tl.where(d1 != d1, inf, d1)",
        "    second = tl.where(d2 != d2, inf, d2)",
        "    tl.store(error_ptr + offs, first, mask=mask)",
        "    flag = tl.load(flag_ptr + offs, mask=mask, other=0) != 0",
        "    code = tl.full([BLOCK], 4, tl.int64)",
        "    code = tl.where(second <= eps, 3, code)",
        "    code = tl.where(first <= eps, 2, code)",
        "    code = tl.where(sz <= eps, 1, code)",
        "    code = tl.where((sz != sz) | (sz == inf) | flag, 0, code)",
        "    tl.store(status_ptr + offs, code, mask=mask)",
    ]
    sources = ["\n".join(part) for part in (apply_src, pair_src, classify_src)]
    return "\n\n\n".join(sources), e.constants


@cache
def _train_module(shapes, positions, momentum: bool, learning: bool):
    body, constants = _train_source(shapes, positions, momentum, learning)
    return fused_cpu._module(_HEADER + f"\nK = {constants!r}\n\n\n" + body + "\n")


@cache
def _map_module(shapes, positions):
    body, constants = _own_map_source(shapes, positions)
    return fused_cpu._module(_HEADER + f"\nK = {constants!r}\n\n\n" + body + "\n")


_constant_tensors: dict = {}


def _k(module, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (module.__name__, dtype, device)
    if key not in _constant_tensors:
        _constant_tensors[key] = torch.tensor(module.K, dtype=dtype, device=device)
    return _constant_tensors[key]


@cache
def _key(architecture: Weightwise):
    positions = position_features(
        architecture, architecture.encoding, torch.device("cpu"), torch.float64
    )
    return architecture.matrix_shapes, tuple(tuple(p) for p in positions.tolist())


def _grid(batch: int) -> tuple[int]:
    return (triton.cdiv(batch, BLOCK),)


def train_full(
    architecture: Weightwise,
    w: torch.Tensor,
    positions: torch.Tensor,
    teacher: torch.Tensor | None,
    *,
    steps: int,
    lr: float,
    momentum: float,
    velocity: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Full-batch SGD (``training._train_weightwise``) for every particle in one launch."""
    shapes, own = _key(architecture)
    learning = teacher is not None
    module = _train_module(shapes, None if learning else own, velocity is not None, learning)
    count = positions.shape[0]
    w = w.contiguous()
    gram = (positions.T @ positions).flatten().tolist()
    if velocity is None:
        step, scale = -lr * (2.0 / count), 0.0
    else:
        step, scale = 0.0, 2.0 / count
    q = torch.tensor([lr, momentum, step, scale, *gram], dtype=w.dtype, device=w.device)
    out_w = torch.empty_like(w)
    out_vel = torch.empty_like(w) if velocity is not None else out_w
    loss = torch.empty(w.shape[0], dtype=w.dtype, device=w.device)
    module.train_full[_grid(w.shape[0])](
        w,
        velocity.contiguous() if velocity is not None else w,
        teacher.contiguous() if learning else w,
        positions.contiguous(),
        out_w,
        out_vel,
        loss,
        _k(module, w.dtype, w.device),
        q,
        w.shape[0],
        count,
        steps,
        BLOCK=BLOCK,
        num_warps=WARPS,
    )
    return out_w, loss, out_vel if velocity is not None else None


def self_apply(architecture: Weightwise, w: torch.Tensor, times: int) -> torch.Tensor:
    module = _map_module(*_key(architecture))
    w = w.contiguous()
    out = torch.empty_like(w)
    module.self_apply[_grid(w.shape[0])](
        w, out, _k(module, w.dtype, w.device), w.shape[0], times, BLOCK=BLOCK, num_warps=WARPS
    )
    return out


def apply(architecture: Weightwise, w: torch.Tensor, target_w: torch.Tensor) -> torch.Tensor:
    """N ◁ M row by row, M of N's architecture."""
    module = _map_module(*_key(architecture))
    w = w.contiguous()
    out = torch.empty_like(w)
    module.apply_rows[_grid(w.shape[0])](
        w,
        target_w.contiguous(),
        out,
        _k(module, w.dtype, w.device),
        w.shape[0],
        BLOCK=BLOCK,
        num_warps=WARPS,
    )
    return out


def classify(
    architecture: Weightwise, w: torch.Tensor, eps: float, divergent: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    module = _map_module(*_key(architecture))
    w = w.contiguous()
    batch = w.shape[0]
    flag = (
        torch.zeros(batch, dtype=torch.uint8, device=w.device)
        if divergent is None
        else divergent.to(device=w.device, dtype=torch.uint8)
    )
    status = torch.empty(batch, dtype=torch.long, device=w.device)
    error = torch.empty(batch, dtype=w.dtype, device=w.device)
    eps_typed = torch.tensor(eps, dtype=w.dtype).item()
    module.classify[_grid(batch)](
        w,
        flag,
        status,
        error,
        _k(module, w.dtype, w.device),
        eps_typed,
        batch,
        BLOCK=BLOCK,
        num_warps=WARPS,
    )
    return status, error
