"""Torch's intra-op thread count, set for a block and restored after it.

The engine's tensors are small: torch's threads gain little on them and, on a shared machine,
make single operations many times slower (see ``chemistry.threads``). Code that runs torch
operations the caller cannot see (the per_sample visiting orders of the fused kernels, a soup
epoch) runs them on one thread and restores the caller's setting afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run the block with ``count`` intra-op torch threads, restoring the setting afterwards."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"threads={count!r} is not allowed; it must be an integer >= 1")
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)
