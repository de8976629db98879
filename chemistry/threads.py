"""How many threads torch uses for the engine's tiny tensor operations.

Particles are small ([B, 14] rows): intra-op threading gains little, and on a shared 2-core
machine two OpenMP threads wait on each other, measured 30 to 1000 times slower than one thread.
Results of threaded GEMMs may also round differently, so a run is bit-reproducible only at a
fixed thread count. The command line and the experiment runner therefore use one thread unless
told otherwise; the library itself never changes the setting behind a caller's back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEFAULT_THREADS = 1


@contextmanager
def torch_threads(count: int = DEFAULT_THREADS) -> Iterator[None]:
    """Run the block with ``count`` intra-op torch threads, restoring the setting afterwards."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"threads={count!r} is not allowed; it must be an integer >= 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
