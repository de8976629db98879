"""Shared fixtures of the kernel tests: guards against input mutation and against warnings.

The kernel tests run torch on one thread: their tensors are tiny, and on a busy 2-core machine
the spin-waiting of a second BLAS thread made single small matmuls a thousand times slower.
"""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Bitwise-equal values (NaN equal to NaN), same shape and dtype."""
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    return bool(((before == after) | (before.isnan() & after.isnan())).all())


@contextlib.contextmanager
def _unchanged(*tensors: torch.Tensor):
    clones = [t.clone() for t in tensors]
    yield
    for index, (tensor, clone) in enumerate(zip(tensors, clones, strict=True)):
        assert _same(clone, tensor), f"input {index} was modified in place"


@pytest.fixture
def unchanged():
    """``with unchanged(a, b): ...`` fails if the block modifies any of the tensors."""
    return _unchanged


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def no_warnings():
    """``with no_warnings(): ...`` turns every warning inside the block into an error."""
    return _no_warnings


@contextlib.contextmanager
def _value_error(*fragments: str):
    with pytest.raises(ValueError) as info:
        yield info
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in ValueError message {message!r}"


@pytest.fixture
def value_error():
    """``with value_error("steps", "-1"): ...`` expects a ValueError naming every fragment."""
    return _value_error


@pytest.fixture
def generator():
    """A factory of seeded CPU generators: ``generator(seed)``."""
    return lambda seed: torch.Generator().manual_seed(seed)
