"""Noise and distances between weight vectors (D15, D16)."""

from __future__ import annotations

import pytest
import torch

import particles as pt

F64 = torch.float64


def _pair(seed: int, shape=(5, 14)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=F64), torch.randn(
        shape, generator=gen, dtype=F64
    )


def test_distances_follow_their_formulas(unchanged):
    a, b = _pair(80)
    with unchanged(a, b):
        mse, mae, mim = (pt.distance(a, b, metric) for metric in ("mse", "mae", "mim"))
    for k in range(a.shape[0]):
        pairs = list(zip(a[k].tolist(), b[k].tolist(), strict=True))
        assert mse[k].item() == pytest.approx(sum((x - y) ** 2 for x, y in pairs) / 14, rel=1e-14)
        assert mae[k].item() == pytest.approx(sum(abs(x - y) for x, y in pairs) / 14, rel=1e-14)
        ordered = zip(sorted(a[k].tolist()), sorted(b[k].tolist()), strict=True)
        assert mim[k].item() == pytest.approx(sum(abs(x - y) for x, y in ordered) / 14, rel=1e-14)
    assert pt.distance(a, b).tolist() == mae.tolist()  # mae is the default


def test_distances_by_hand():
    a = torch.tensor([[0.0, 1.0, 3.0, -2.0]], dtype=F64)
    b = torch.tensor([[1.0, 1.0, -1.0, 0.0]], dtype=F64)
    assert pt.distance(a, b, "mse").item() == (1 + 0 + 16 + 4) / 4
    assert pt.distance(a, b, "mae").item() == (1 + 0 + 4 + 2) / 4
    # sorted: (−2, 0, 1, 3) against (−1, 0, 1, 1)
    assert pt.distance(a, b, "mim").item() == (1 + 0 + 0 + 2) / 4


def test_mim_is_zero_for_permutations_only():
    a, _ = _pair(81)
    gen = torch.Generator().manual_seed(82)
    permuted = torch.stack([row[torch.randperm(14, generator=gen)] for row in a])
    assert not torch.equal(permuted, a)
    assert pt.distance(a, permuted, "mim").tolist() == [0.0] * 5
    assert (pt.distance(a, permuted, "mae") > 0).all()
    shifted = permuted.clone()
    shifted[:, 0] += 1e-3
    assert (pt.distance(a, shifted, "mim") > 0).all()


def test_distances_are_symmetric_and_zero_on_the_diagonal():
    a, b = _pair(83)
    for metric in ("mse", "mae", "mim"):
        assert torch.equal(pt.distance(a, b, metric), pt.distance(b, a, metric))
        assert pt.distance(a, a, metric).tolist() == [0.0] * 5


@pytest.mark.parametrize("noise", ["uniform", "double_uniform"])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.5, 4.0])
def test_noise_is_bounded_by_the_scale(noise, scale, generator, unchanged):
    w = torch.randn(200, 14, generator=generator(84), dtype=F64)
    with unchanged(w):
        noisy = pt.add_noise(w, scale, generator=generator(85), noise=noise)
    assert noisy.shape == w.shape and noisy.dtype == F64
    assert ((noisy - w).abs() <= scale * (1 + 1e-12)).all()
    if scale:
        assert not torch.equal(noisy, w)
    else:
        assert torch.equal(noisy, w)


def test_uniform_noise_fills_the_interval(generator):
    w = torch.zeros(100, 1000, dtype=F64)
    z = pt.add_noise(w, 2.0, generator=generator(86))
    assert z.max() > 1.99 and z.min() < -1.99
    assert abs(z.mean().item()) < 0.02
    assert z.var().item() == pytest.approx(4.0 / 3.0, rel=0.02)  # Var U[−2, 2] = 4/3
    per_row = z.abs().amax(dim=1)
    assert (per_row > 1.95).all()  # every row spans (almost) the whole interval


def test_double_uniform_noise_scales_each_row(generator):
    """Each row draws one s ~ U[0, 1): its noise spans ζ·s, so row ranges spread over [0, ζ)."""
    w = torch.zeros(400, 1000, dtype=F64)
    z = pt.add_noise(w, 2.0, generator=generator(87), noise="double_uniform")
    spread = z.abs().amax(dim=1) / 2.0  # ≈ s per row (a 1000-sample max of U[0, s])
    assert spread.max() < 1.0
    assert spread.min() < 0.05 and spread.max() > 0.95
    assert (spread < 0.5).float().mean().item() == pytest.approx(0.5, abs=0.1)
    # inside a row the noise is uniform on [−ζ·s, ζ·s]: its mean |z| is about half the range
    ratio = z.abs().mean(dim=1) / z.abs().amax(dim=1)
    assert ratio.min() > 0.4 and ratio.max() < 0.6


def test_noise_in_float32_is_added_in_float32(generator):
    w = torch.full((1, 14), 0.5)
    noisy = pt.add_noise(w, 1e-9, generator=generator(88))
    assert noisy.dtype == torch.float32
    assert torch.equal(noisy, w)  # below the float32 spacing at 0.5 (O1)
    noisy64 = pt.add_noise(w.double(), 1e-9, generator=generator(88))
    assert not torch.equal(noisy64, w.double())


@pytest.mark.parametrize("noise", ["uniform", "double_uniform"])
def test_noise_is_reproducible_from_the_seed(noise, generator):
    w = torch.zeros(3, 14)
    a = pt.add_noise(w, 0.1, generator=generator(89), noise=noise)
    b = pt.add_noise(w, 0.1, generator=generator(89), noise=noise)
    c = pt.add_noise(w, 0.1, generator=generator(90), noise=noise)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
