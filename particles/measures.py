"""Noise and distances between weight vectors (SPEC D15, D16)."""

from __future__ import annotations

import torch

from particles.validation import check_choice

Tensor = torch.Tensor

NOISES = ("uniform", "double_uniform")
METRICS = ("mse", "mae", "mim")


def add_noise(
    w: Tensor,
    scale: float,
    *,
    generator: torch.Generator | None = None,
    noise: str = "uniform",
) -> Tensor:
    """Noisy copies w + ζ·z, z_i ~ U[−1, 1] per weight: [B, r] -> [B, r] (SPEC D15).

    ``noise="double_uniform"`` draws s ~ U[0, 1) once per row and adds ζ·s·z (journal cloning).
    """
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale >= 0:
        raise ValueError(f"scale={scale!r} is not allowed; it must be a number >= 0")
    check_choice("noise", noise, NOISES)
    if w.dim() != 2 or not w.is_floating_point():
        raise ValueError(
            f"w has shape {list(w.shape)} and dtype {w.dtype}; expected a float [B, r]"
        )
    z = 2 * torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype) - 1
    if noise == "double_uniform":
        z = z * torch.rand((w.shape[0], 1), generator=generator, device=w.device, dtype=w.dtype)
    return w + scale * z


def distance(a: Tensor, b: Tensor, metric: str = "mae") -> Tensor:
    """Row-wise distance between weight vectors: a, b [B, r] -> [B] (SPEC D16).

    mse = mean (a−b)²; mae = mean |a−b|; mim = mae of both rows sorted ascending
    (0 exactly when one row is a permutation of the other).
    """
    check_choice("metric", metric, METRICS)
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(
            f"a {list(a.shape)} and b {list(b.shape)} must both have the same shape [B, r]"
        )
    if metric == "mse":
        return (a - b).square().mean(dim=1)
    if metric == "mim":
        a, b = a.sort(dim=1).values, b.sort(dim=1).values
    return (a - b).abs().mean(dim=1)
