"""How the engine uses the CPU: torch's intra-op threads and subnormal floats.

Particles are small ([B, 14] rows): torch's intra-op threading gains little on them, and on a
shared machine its threads wait on each other (measured on a 2-core machine with other work
running: one elementwise op over 10,000 particles 5.6 ms with torch's default of 2 threads,
0.1 ms with 1). The fused particle kernels (``particles.fused``) do not use torch's threads at
all: they share their blocks of particles out to their own workers, one per core, taken on
demand. So a soup epoch runs its remaining torch operations on one thread (``soup_cpu``),
whatever the caller set, and the caller's setting is restored after each epoch: a user who never
heard of threads gets the fast path. Results of threaded GEMMs may also round differently, so
one torch thread also keeps a run bit-reproducible.

Soups drift towards ZERO particles, whose weights become subnormal floats; on x86 every
operation on a subnormal is many times slower. ``soup_cpu`` therefore flushes subnormals to zero
during an epoch (``torch.set_flush_denormal``, on the caller's thread and the kernel workers),
and restores the caller's mode after it. A flushed weight of size < 1.2e-38 (float32) is far
below the ZERO threshold ε = 1e-5, so no classification changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from particles import fused_cpu
from particles.threads import torch_threads

DEFAULT_THREADS = 1
__all__ = [
    "DEFAULT_THREADS",
    "flushed_subnormals",
    "soup_cpu",
    "subnormals_flushed",
    "torch_threads",
]


def subnormals_flushed() -> bool:
    """True when this thread flushes subnormal floats to zero (probed: torch has no getter)."""
    return torch.tensor([1e-40], dtype=torch.float32).mul(1.0).item() == 0.0


@contextmanager
def flushed_subnormals() -> Iterator[None]:
    """Run the block with subnormal floats flushed to zero, restoring the caller's mode after."""
    previous = subnormals_flushed()
    previous_workers = fused_cpu.flush_denormal
    supported = torch.set_flush_denormal(True)
    fused_cpu.flush_denormal = supported
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)
        fused_cpu.flush_denormal = previous_workers


@contextmanager
def soup_cpu() -> Iterator[None]:
    """One epoch's CPU environment: one torch thread, subnormals flushed; both restored after."""
    with torch_threads(DEFAULT_THREADS), flushed_subnormals():
        yield
