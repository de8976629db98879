"""Architectures: layouts (D1, D9), initialisation (D3), forward pass and application ◁ (D5–D11).

Batched results are compared with the plain per-particle loop of ``reference.py``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import particles as pt
from tests.particles import reference as ref

F64 = torch.float64
TIGHT = {"rtol": 1e-12, "atol": 1e-12}

# Targets of odd and even length, used to read other nets (lengths 4, 5, 9, 14, 15, 17, 18, 19, 20).
TARGETS = {
    "ww_1x0": pt.Weightwise(width=1, depth=0),
    "ww_1x1": pt.Weightwise(width=1, depth=1),
    "rnn_2x1": pt.Recurrent(width=2, depth=1),
    "ww": pt.Weightwise(),
    "ww_3x1": pt.Weightwise(width=3, depth=1),
    "rnn": pt.Recurrent(),
    "rnn_tanh": ref.TYPES["rnn_tanh"],
    "ww_tanh_bias": ref.TYPES["ww_tanh_bias"],
    "agg": pt.Aggregating(),
    "fft": pt.Fourier(),
}


def identity_operator(b: int) -> torch.Tensor:
    """Weights of a one-layer b → b net whose matrix is I (so f(a) = a)."""
    return torch.eye(b, dtype=F64).reshape(1, -1)


# --------------------------------------------------------------------------------------------
# Layout


def test_table1_weight_counts():
    assert pt.Weightwise().num_weights == 14
    assert pt.Aggregating().num_weights == 20
    assert pt.Recurrent().num_weights == 17
    assert pt.Fourier().num_weights == 20


@pytest.mark.parametrize("name", [*ref.TYPES, *TARGETS])
def test_matrix_shapes_follow_d1_and_d9(name):
    arch = ref.TYPES.get(name) or TARGETS[name]
    assert list(arch.matrix_shapes) == ref.matrix_shapes(arch)
    assert arch.num_weights == ref.num_weights(arch)


def test_default_ww_encoding_matches_spec_feature_values():
    """D6's table of canonical features of the default particle, row-major per matrix."""
    m = torch.arange(14, dtype=F64).reshape(1, -1)
    x, y = pt.Weightwise().samples(pt.Weightwise(), m)
    third = 1 / 3
    expected = (
        [(0, c, p) for c in (0, 1) for p in (0, third, 2 * third, 1)]
        + [(0.5, c, p) for c in (0, 1) for p in (0, 1)]
        + [(1, 0, p) for p in (0, 1)]
    )
    torch.testing.assert_close(x[0, :, 1:], torch.tensor(expected, dtype=F64), rtol=0, atol=1e-15)
    assert torch.equal(x[0, :, 0], m[0])
    assert torch.equal(y[0, :, 0], m[0])


@pytest.mark.parametrize("target", ["ww", "rnn", "ww_tanh_bias", "agg"])
@pytest.mark.parametrize("encoding", ["torch", "keras"])
def test_ww_samples_match_encoding(target, encoding):
    target = TARGETS[target]
    m = ref.random_rows(target, 3, seed=1)
    x, y = pt.Weightwise(encoding=encoding).samples(target, m)
    for k in range(3):
        torch.testing.assert_close(x[k], ref.encode(target, m[k], encoding), rtol=0, atol=1e-15)
        assert torch.equal(y[k, :, 0], m[k])


def test_keras_encoding_swaps_the_neuron_features():
    target = pt.Weightwise(width=3, depth=1)
    m = ref.random_rows(target, 1, seed=2)
    x_torch, _ = pt.Weightwise().samples(target, m)
    x_keras, _ = pt.Weightwise(encoding="keras").samples(target, m)
    assert torch.equal(x_keras[..., [0, 1, 3, 2]], x_torch)
    assert not torch.equal(x_keras, x_torch)


# --------------------------------------------------------------------------------------------
# Forward and application against the per-particle loop


@pytest.mark.parametrize("name", list(ref.TYPES))
def test_forward_matches_torch_nn_modules(name):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 3, seed=3)
    n_in, _ = ref.io_sizes(arch)
    steps = 6
    x = torch.randn((3, steps, n_in), generator=torch.Generator().manual_seed(4), dtype=F64)
    out = arch.forward(w, x)
    for k in range(3):
        with torch.no_grad():
            expected = ref.make_net(arch, w[k])(x[k])
        torch.testing.assert_close(out[k], expected, **TIGHT)


def _readable(op: pt.Architecture, target: pt.Architecture) -> bool:
    """ww and rnn read any target; agg and fft need r_M >= b (D8, D11)."""
    if isinstance(op, (pt.Weightwise, pt.Recurrent)):
        return True
    return ref.num_weights(target) >= op.aggregates


APPLY_PAIRS = [
    (op, target)
    for op in ref.TYPES
    for target in TARGETS
    if _readable(ref.TYPES[op], TARGETS[target])
]


@pytest.mark.parametrize(("op_name", "target_name"), APPLY_PAIRS, ids="-on-".join)
def test_apply_matches_per_particle_loop(op_name, target_name, unchanged):
    op, target = ref.TYPES[op_name], TARGETS[target_name]
    w = ref.random_rows(op, 3, seed=5)
    m = ref.random_rows(target, 3, seed=6)
    with unchanged(w, m):
        out = op.apply(w, target, m)
    assert out.shape == m.shape and out.dtype == F64
    for k in range(3):
        torch.testing.assert_close(out[k], ref.apply_one(op, w[k], target, m[k]), **TIGHT)


def test_ww_apply_is_linear_in_the_features_for_linear_nets():
    """Proposition 2: (N ◁ww M)_i = u·x_i(M) with u = W_2 W_1 W_0."""
    w = ref.random_rows(pt.Weightwise(), 2, seed=7)
    target = pt.Recurrent()
    m = ref.random_rows(target, 2, seed=8)
    out = pt.Weightwise().apply(w, target, m)
    for k in range(2):
        w0, w1, w2 = w[k, :8].reshape(2, 4), w[k, 8:12].reshape(2, 2), w[k, 12:].reshape(1, 2)
        u = (w2 @ w1 @ w0).reshape(4)
        torch.testing.assert_close(out[k], ref.encode(target, m[k]) @ u, **TIGHT)


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_shuffle_apply_matches_loop_with_the_drawn_permutations(aggregation, generator):
    """Permutations reconstructed from an identically seeded generator (see reference.py)."""
    op = pt.Aggregating(aggregation=aggregation, shuffle=True)
    target = pt.Weightwise()
    w, m = ref.random_rows(op, 4, seed=9), ref.random_rows(target, 4, seed=10)
    out = op.apply(w, target, m, generator=generator(11))
    (permutation,) = ref.kernel_permutations(11, 4, target.num_weights, 1)
    for k in range(4):
        expected = ref.apply_one(op, w[k], target, m[k], permutation=permutation[k])
        torch.testing.assert_close(out[k], expected, **TIGHT)


def test_shuffle_permutes_the_unshuffled_output(generator):
    target = pt.Recurrent()
    plain, shuffled = pt.Aggregating(), pt.Aggregating(shuffle=True)
    w, m = ref.random_rows(plain, 6, seed=12), ref.random_rows(target, 6, seed=13)
    base = plain.apply(w, target, m)
    out = shuffled.apply(w, target, m, generator=generator(14))
    assert torch.equal(out.sort(dim=1).values, base.sort(dim=1).values)
    assert not torch.equal(out, base)
    again = shuffled.apply(w, target, m, generator=generator(14))
    assert torch.equal(out, again)
    other = shuffled.apply(w, target, m, generator=generator(15))
    assert not torch.equal(out, other)


def test_shuffle_draws_a_uniform_permutation_per_row(generator):
    """Four distinct values in groups of one: all 24 orders appear about equally often."""
    target = pt.Weightwise(width=1, depth=0)  # 4 weights
    op = pt.Aggregating(width=4, depth=0, shuffle=True)
    n = 4800
    w = identity_operator(4).expand(n, -1)
    m = torch.arange(4, dtype=F64).expand(n, -1)
    out = op.apply(w, target, m, generator=generator(16))
    counts = {}
    for row in out.long().tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    assert set(counts) == set(itertools.permutations(range(4)))
    assert all(130 <= c <= 270 for c in counts.values()), counts  # mean 200, sd ≈ 14


# --------------------------------------------------------------------------------------------
# Aggregating groups (D8)


def test_leftover_weights_join_the_last_group():
    """r = 14, b = 4: s = 3, groups {0,1,2}, {3,4,5}, {6,7,8}, {9,…,13}."""
    target = pt.Weightwise()
    m = torch.arange(14, dtype=F64).reshape(1, -1)
    x, y = pt.Aggregating().samples(target, m)
    assert torch.equal(x, torch.tensor([[[1.0, 4.0, 7.0, 11.0]]], dtype=F64))
    assert torch.equal(y, x)
    copy = pt.Aggregating(width=4, depth=0).apply(identity_operator(4), target, m)
    expected = [1.0] * 3 + [4.0] * 3 + [7.0] * 3 + [11.0] * 5
    assert torch.equal(copy, torch.tensor([expected], dtype=F64))


def test_max_aggregation_takes_each_group_maximum():
    target = pt.Weightwise()
    m = torch.tensor([[5.0, -1, 2, 0, 0, -3, 9, 8, 7, 1, 2, 3, 4, -6]], dtype=F64)
    x, _ = pt.Aggregating(aggregation="max").samples(target, m)
    assert torch.equal(x, torch.tensor([[[5.0, 0.0, 9.0, 4.0]]], dtype=F64))


@pytest.mark.parametrize("b", [1, 3, 4, 5, 9])
@pytest.mark.parametrize("how", ["mean", "max"])
def test_aggregates_match_reference_groups(b, how):
    target = pt.Recurrent()  # 17 weights
    m = ref.random_rows(target, 2, seed=17)
    x, _ = pt.Aggregating(aggregates=b, aggregation=how).samples(target, m)
    for k in range(2):
        torch.testing.assert_close(x[k, 0], ref.aggregate(m[k], b, how), **TIGHT)
    assert len(ref.groups(17, b)) == b


# --------------------------------------------------------------------------------------------
# Fourier reduction (D10, D11)


@pytest.mark.parametrize("target_name", ["ww_1x0", "ww_1x1", "rnn_2x1", "ww", "ww_3x1", "rnn"])
@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_fourier_coordinates_match_rfft(target_name, b):
    target = TARGETS[target_name]
    m = ref.random_rows(target, 3, seed=18)
    x, y = pt.Fourier(aggregates=b).samples(target, m)
    assert x.shape == (3, 1, b)
    for k in range(3):
        torch.testing.assert_close(x[k, 0], ref.fourier_coordinates(m[k])[:b], **TIGHT)
    assert torch.equal(x, y)


@pytest.mark.parametrize("target_name", ["ww_1x0", "ww_1x1", "rnn_2x1", "ww", "ww_3x1", "rnn"])
def test_reference_fourier_coordinates_are_orthogonal(target_name):
    """Sanity check of the reference itself: T is orthogonal and T^{-1} inverts it (D10)."""
    n = TARGETS[target_name].num_weights
    basis = torch.stack([ref.fourier_coordinates(e) for e in torch.eye(n, dtype=F64)], dim=1)
    torch.testing.assert_close(basis @ basis.T, torch.eye(n, dtype=F64), **TIGHT)
    v = torch.randn(n, dtype=F64, generator=torch.Generator().manual_seed(19))
    torch.testing.assert_close(
        ref.inverse_fourier_coordinates(ref.fourier_coordinates(v)), v, **TIGHT
    )


def _projection(b: int, target: pt.Architecture) -> torch.Tensor:
    """Matrix of D∘A: the Fourier application of an operator with f(a) = a, column by column."""
    n = target.num_weights
    op = pt.Fourier(aggregates=b, width=b, depth=0)
    w = identity_operator(b).expand(n, -1)
    return op.apply(w, target, torch.eye(n, dtype=F64)).T


@pytest.mark.parametrize("target_name", ["ww_1x1", "rnn_2x1", "ww", "ww_3x1", "rnn", "agg"])
@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_fourier_round_trip_is_the_low_mode_projection(target_name, b):
    target = TARGETS[target_name]
    n = target.num_weights
    proj = _projection(b, target)
    torch.testing.assert_close(proj @ proj, proj, **TIGHT)
    torch.testing.assert_close(proj, proj.T, **TIGHT)
    assert torch.trace(proj).item() == pytest.approx(b, abs=1e-12)
    for j, e in enumerate(torch.eye(n, dtype=F64)):
        expected = ref.low_pass(ref.fourier_coordinates(e)[:b], n)
        torch.testing.assert_close(proj[:, j], expected, **TIGHT)


@pytest.mark.parametrize("target_name", ["ww_1x0", "ww_1x1", "rnn_2x1"])
def test_fourier_with_all_modes_is_the_identity(target_name):
    target = TARGETS[target_name]
    n = target.num_weights
    torch.testing.assert_close(_projection(n, target), torch.eye(n, dtype=F64), **TIGHT)


def test_fourier_keeps_the_mean_and_first_harmonic_of_a_band_limited_target():
    n = 17
    j = torch.arange(n, dtype=F64)
    m = 0.3 + 0.7 * torch.cos(2 * math.pi * j / n) - 0.2 * torch.sin(2 * math.pi * j / n)
    op = pt.Fourier(aggregates=3, width=3, depth=0)
    out = op.apply(identity_operator(3), pt.Recurrent(), m.reshape(1, -1))
    torch.testing.assert_close(out[0], m, **TIGHT)
    noisy = m + 0.5 * torch.cos(2 * math.pi * 5 * j / n)
    out = op.apply(identity_operator(3), pt.Recurrent(), noisy.reshape(1, -1))
    torch.testing.assert_close(out[0], m, **TIGHT)


# --------------------------------------------------------------------------------------------
# Initialisation (D3)


def _layer_blocks(arch, w):
    offset = 0
    for rows, cols in ref.matrix_shapes(arch):
        yield w[:, offset : offset + rows * cols].reshape(-1, rows, cols)
        offset += rows * cols


@pytest.mark.parametrize(
    "arch",
    [pt.Weightwise(), pt.Aggregating(), pt.Fourier(), pt.Weightwise(width=5, depth=3, bias=True)],
    ids=["ww", "agg", "fft", "ww_5x3_bias"],
)
def test_torch_init_is_uniform_within_one_over_sqrt_fan_in(arch, generator):
    w = arch.init(4000, generator=generator(20), dtype=F64)
    assert w.shape == (4000, ref.num_weights(arch)) and w.dtype == F64
    widths = ref.layer_widths(arch)
    for block, fan_in in zip(_layer_blocks(arch, w), widths[:-1], strict=True):
        bound = 1 / math.sqrt(fan_in)
        assert block.abs().max() <= bound
        assert block.abs().amax(dim=0).min() > 0.99 * bound  # every entry fills its range
        assert block.mean().abs() < 0.05 * bound


@pytest.mark.parametrize(
    "arch", [pt.Weightwise(init_scheme="glorot"), pt.Aggregating(init_scheme="glorot")]
)
def test_glorot_init_bound(arch, generator):
    w = arch.init(4000, generator=generator(21), dtype=F64)
    widths = ref.layer_widths(arch)
    for block, (fan_in, fan_out) in zip(
        _layer_blocks(arch, w), itertools.pairwise(widths), strict=True
    ):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert block.abs().max() <= bound
        assert block.abs().max() > 0.99 * bound


def test_recurrent_torch_init_uses_one_over_sqrt_units(generator):
    arch = pt.Recurrent(width=3, depth=2)
    w = arch.init(4000, generator=generator(22), dtype=F64)
    for block, (units, _) in zip(_layer_blocks(arch, w), ref.matrix_shapes(arch), strict=True):
        bound = 1 / math.sqrt(units)
        assert block.abs().max() <= bound
        assert block.abs().max() > 0.99 * bound


def test_recurrent_glorot_init_has_orthogonal_recurrent_matrices(generator):
    arch = pt.Recurrent(width=3, depth=2, init_scheme="glorot")
    w = arch.init(50, generator=generator(23), dtype=F64)
    shapes = ref.matrix_shapes(arch)
    for index, (block, (rows, cols)) in enumerate(zip(_layer_blocks(arch, w), shapes, strict=True)):
        if index % 2:
            eye = torch.eye(rows, dtype=F64).expand(50, -1, -1)
            torch.testing.assert_close(block @ block.transpose(1, 2), eye, **TIGHT)
        else:
            assert block.abs().max() <= math.sqrt(6 / (rows + cols))


@pytest.mark.parametrize("name", ["ww", "agg", "rnn", "fft"])
@pytest.mark.parametrize("scheme", ["torch", "glorot"])
def test_init_is_reproducible_from_the_seed(name, scheme, generator):
    arch = type(ref.TYPES[name])(init_scheme=scheme)
    a = arch.init(5, generator=generator(24))
    b = arch.init(5, generator=generator(24))
    c = arch.init(5, generator=generator(25))
    assert a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])
    assert arch.init(0, generator=generator(24)).shape == (0, arch.num_weights)
