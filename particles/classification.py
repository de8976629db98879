"""Classes of particles and fixpoint measures (SPEC D13, D14)."""

from __future__ import annotations

from enum import IntEnum

import torch

from particles import fused
from particles.architectures import Architecture
from particles.validation import check_count, check_positive, check_weights

Tensor = torch.Tensor


class Status(IntEnum):
    """A particle's class, in SPEC D13's test order: the first matching class wins."""

    DIVERGENT = 0
    ZERO = 1
    FIXPOINT = 2
    SECOND_ORDER = 3
    OTHER = 4


def self_apply(
    architecture: Architecture,
    w: Tensor,
    *,
    times: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Repeated self-application N_{t+1} = N_t ◁ N_t (the operator evolves): [B, r] -> [B, r]."""
    check_weights("w", w, architecture.num_weights)
    check_count("times", times, 0)
    fused_result = fused.self_apply(architecture, w, times)
    if fused_result is not None:
        return fused_result
    for _ in range(times):
        w = architecture.apply(w, architecture, w, generator=generator)
    return w.clone() if times == 0 else w


def _own_map(architecture: Architecture, w: Tensor, generator: torch.Generator | None) -> Tensor:
    return architecture.apply(w, architecture, w, generator=generator)


def fixpoint_error(
    architecture: Architecture, w: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Fixpoint quality q = max_i |(N◁N)_i − w_i|, +inf if non-finite: [B, r] -> [B]."""
    check_weights("w", w, architecture.num_weights)
    return architecture.fixpoint_gap(w, _own_map(architecture, w, generator))


def self_prediction_loss(
    architecture: Architecture, w: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """L1 prediction loss ℓ = (1/r) Σ_i |(N◁N)_i − w_i| per particle: [B, r] -> [B]."""
    check_weights("w", w, architecture.num_weights)
    return (_own_map(architecture, w, generator) - w).abs().mean(dim=1)


def classify(
    architecture: Architecture,
    w: Tensor,
    *,
    eps: float = 1e-5,
    divergent: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Class of every particle as ``Status`` codes: w [B, r] -> int64 [B].

    DIVERGENT: a non-finite weight (or the sticky ``divergent`` flag [B] set);
    ZERO: max|w_i| ≤ eps; FIXPOINT: max|w′_i − w_i| ≤ eps with w′ = F(w);
    SECOND_ORDER: max|w″_i − w_i| ≤ eps with w″ = F(w′), F the original particle's own map;
    OTHER: none of these.
    """
    return classify_with_error(architecture, w, eps=eps, divergent=divergent, generator=generator)[
        0
    ]


def classify_with_error(
    architecture: Architecture,
    w: Tensor,
    *,
    eps: float = 1e-5,
    divergent: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``classify`` and ``fixpoint_error`` from one self-application: w [B, r] -> ([B], [B])."""
    check_weights("w", w, architecture.num_weights)
    check_positive("eps", eps)
    batch = w.shape[0]
    if divergent is not None and (divergent.dtype != torch.bool or divergent.shape != (batch,)):
        raise ValueError(
            f"divergent must be a bool tensor of shape [{batch}], got "
            f"{divergent.dtype} {list(divergent.shape)}"
        )
    fused_result = fused.classify(architecture, w, eps, divergent)
    if fused_result is not None:
        return fused_result
    status = torch.full((batch,), int(Status.OTHER), dtype=torch.long, device=w.device)
    once = _own_map(architecture, w, generator)
    twice = architecture.apply(w, architecture, once, generator=generator)
    error = architecture.fixpoint_gap(w, once)
    second_order = architecture.fixpoint_gap(w, twice) <= eps
    fixpoint = error <= eps
    size = w.abs().amax(dim=1)  # NaN or inf exactly when a weight is non-finite
    zero = size <= eps
    is_divergent = ~size.isfinite()
    if divergent is not None:
        is_divergent = is_divergent | divergent.to(w.device)
    # Write in reverse order of precedence so that the first matching class wins.
    status[second_order] = int(Status.SECOND_ORDER)
    status[fixpoint] = int(Status.FIXPOINT)
    status[zero] = int(Status.ZERO)
    status[is_divergent] = int(Status.DIVERGENT)
    return status, error


def count_statuses(status: Tensor) -> dict[Status, int]:
    """How many particles hold each class: int64 [B] -> {Status: count}."""
    counts = torch.bincount(status.flatten().cpu(), minlength=len(Status))
    return {s: int(counts[s]) for s in Status}
