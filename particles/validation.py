"""Argument checks that fail early, naming the argument, the value given and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {options}")


def check_positive(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a number > 0")
    if value == float("inf"):
        raise ValueError(f"{name}={value!r} is not allowed; it must be finite")


def check_probability(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is a number in [0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a number in [0, 1]")


def check_count(name: str, value: int, minimum: int = 0) -> None:
    """Raise ValueError unless ``value`` is an int >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an integer >= {minimum}")


def check_weights(name: str, weights: Any, num_weights: int, batch: int | None = None) -> None:
    """Raise ValueError unless ``weights`` is a floating tensor of shape [batch, num_weights]."""
    if not isinstance(weights, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape [batch, {num_weights}], "
            f"got {type(weights).__name__}"
        )
    if not weights.is_floating_point():
        raise ValueError(f"{name} must hold floating-point weights, got dtype {weights.dtype}")
    if weights.dim() != 2 or weights.shape[1] != num_weights:
        raise ValueError(f"{name} has shape {list(weights.shape)}; expected [batch, {num_weights}]")
    if batch is not None and weights.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {weights.shape[0]}; it must match the other batch ({batch})"
        )
