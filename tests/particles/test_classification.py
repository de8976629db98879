"""Classes and fixpoint measures (D13, D14), Propositions 1 and 2, self-application (D5)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import particles as pt
from particles import Status
from tests.particles import reference as ref

F64 = torch.float64
WW = pt.Weightwise()

TARGETS = [
    pt.Weightwise(),
    pt.Weightwise(width=3, depth=1, bias=True),
    pt.Aggregating(),
    pt.Recurrent(),
    pt.Fourier(),
    pt.Weightwise(width=1, depth=0),
]


def _with_u(u0: float, u3: float = 0.0) -> torch.Tensor:
    """A default ww particle with u(w) = W_2 W_1 W_0 = (u0, 0, 0, u3).

    W_0 = [[u0, 0, 0, u3], [0, 0, 0, 0]], W_1 = [[1, 0], [0, 0]], W_2 = [[1, 0]].
    """
    w = torch.zeros(1, 14, dtype=F64)
    w[0, 0], w[0, 3] = u0, u3  # W_0[0, 0], W_0[0, 3]
    w[0, 8] = 1.0  # W_1[0, 0]
    w[0, 12] = 1.0  # W_2[0, 0]
    return w


def reference_measures(arch, row):
    """(max|w|, q, q₂) of one particle with the reference application; ∞ where non-finite.

    q₂ = max|w″ − w| with w″ = F(w′): the ORIGINAL particle operates both times (D13).
    """
    if not torch.isfinite(row).all():
        return math.inf, math.inf, math.inf
    once = ref.apply_one(arch, row, arch, row)
    twice = ref.apply_one(arch, row, arch, once)

    def gap(out):
        return float((out - row).abs().max()) if torch.isfinite(out).all() else math.inf

    return float(row.abs().max()), gap(once), gap(twice)


def reference_class(measures, eps, divergent=False):
    """The first matching class of D13's table."""
    size, q, q2 = measures
    if divergent or size == math.inf:
        return Status.DIVERGENT
    if size <= eps:
        return Status.ZERO
    if q <= eps:
        return Status.FIXPOINT
    if q2 <= eps:
        return Status.SECOND_ORDER
    return Status.OTHER


# --------------------------------------------------------------------------------------------
# Proposition 1: the identity 𝓘


def test_identity_matches_proposition_1_vector():
    expected = torch.zeros(1, 14)
    expected[0, [0, 8, 12]] = 1.0
    assert torch.equal(pt.Weightwise.identity(), expected)
    assert pt.Weightwise.identity(dtype=F64).dtype == F64


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("encoding", ["torch", "keras"])
def test_identity_is_an_exact_fixpoint(dtype, encoding):
    arch = pt.Weightwise(encoding=encoding)
    w = pt.Weightwise.identity(dtype=dtype)
    assert pt.fixpoint_error(arch, w).item() == 0.0
    assert pt.self_prediction_loss(arch, w).item() == 0.0
    assert pt.classify(arch, w).tolist() == [Status.FIXPOINT]
    assert pt.classify(arch, w, eps=1e-300).tolist() == [Status.FIXPOINT]
    assert torch.equal(pt.self_apply(arch, w, times=100), w)


@pytest.mark.parametrize("encoding", ["torch", "keras"])
@pytest.mark.parametrize("target", TARGETS, ids=lambda a: f"{a.reduction}{a.num_weights}")
def test_identity_maps_every_target_to_itself(target, encoding, unchanged):
    arch = pt.Weightwise(encoding=encoding)
    m = ref.random_rows(target, 4, seed=60, scale=3.0)
    w = pt.Weightwise.identity(dtype=F64).expand(4, -1)
    with unchanged(w, m):
        assert torch.equal(arch.apply(w, target, m), m)
    m32 = m.float()
    assert torch.equal(arch.apply(w.float(), target, m32), m32)


def test_identity_propagates_non_finite_target_weights():
    target = pt.Aggregating()
    m = ref.random_rows(target, 1, seed=61)
    m[0, 3], m[0, 7], m[0, 11] = math.inf, -math.inf, math.nan
    out = WW.apply(pt.Weightwise.identity(dtype=F64), target, m)
    assert out[0, 3] == math.inf and out[0, 7] == -math.inf and out[0, 11].isnan()
    finite = torch.isfinite(m[0])
    assert torch.equal(out[0, finite], m[0, finite])


# --------------------------------------------------------------------------------------------
# Class order (D13)


@pytest.mark.parametrize("name", ["ww", "agg", "rnn", "fft"])
def test_zero_net_is_zero_not_fixpoint(name):
    arch = ref.TYPES[name]
    w = torch.zeros(2, arch.num_weights)
    assert pt.fixpoint_error(arch, w).tolist() == [0.0, 0.0]  # it IS an exact fixpoint …
    assert pt.classify(arch, w).tolist() == [Status.ZERO] * 2  # … but ZERO comes first


def test_small_nets_are_zero_with_a_non_strict_tolerance():
    w = torch.full((1, 14), 2.0**-12, dtype=F64)
    w[0, 5] = -(2.0**-10)
    assert pt.classify(WW, w, eps=2.0**-10).tolist() == [Status.ZERO]
    assert pt.classify(WW, w, eps=2.0**-10 * (1 - 1e-12)).tolist() != [Status.ZERO]


def test_zero_wins_over_fixpoint_for_the_identity_under_a_huge_eps():
    w = pt.Weightwise.identity()
    assert pt.classify(WW, w, eps=1.0).tolist() == [Status.ZERO]
    assert pt.classify(WW, w, eps=0.999).tolist() == [Status.FIXPOINT]


def test_fixpoint_tolerance_is_non_strict():
    """u = (1, 0, 0, ¼) moves weight i by ¼·π_i, so q = ¼ exactly (π_i = 1 in a last column)."""
    w = _with_u(1.0, 0.25)
    assert pt.fixpoint_error(WW, w).item() == 0.25
    assert pt.classify(WW, w, eps=0.25).tolist() == [Status.FIXPOINT]
    # w″ = w + 2·¼·π with the original u, so it is no second-order fixpoint either.
    assert pt.classify(WW, w, eps=0.2499).tolist() == [Status.OTHER]
    expected = (ref.apply_one(WW, w[0], WW, w[0]) - w[0]).abs().mean()
    torch.testing.assert_close(pt.self_prediction_loss(WW, w)[0], expected, rtol=1e-15, atol=0)


def test_period_two_network_is_second_order():
    """Proposition 2 with u(w) = (−1, 0, 0, 0): F(w) = −w and, with the same operator, F(−w) = w.

    So w is not a fixpoint (gap 2·max|w| = 2) but w″ = w exactly: SECOND_ORDER by D13. Under
    REPEATED self-application the operator evolves instead:
    u(−w) = (−W_2)(−W_1)(−W_0) = (+1, 0, 0, 0), so −w is itself a fixpoint and
    self_apply(times=2) stays at −w.
    """
    w = _with_u(-1.0)
    assert torch.equal(WW.apply(w, WW, w), -w)
    assert pt.fixpoint_error(WW, w).item() == 2.0
    assert pt.classify(WW, w).tolist() == [Status.SECOND_ORDER]
    assert pt.classify(WW, w, eps=1e-300).tolist() == [Status.SECOND_ORDER]
    assert torch.equal(pt.self_apply(WW, w, times=2), -w)
    assert pt.classify(WW, -w).tolist() == [Status.FIXPOINT]


@pytest.mark.parametrize("name", ["ww", "agg", "rnn", "fft"])
def test_non_finite_rows_are_divergent(name, no_warnings):
    arch = ref.TYPES[name]
    w = torch.zeros(4, arch.num_weights)
    w[0, 2] = math.nan
    w[1, -1] = math.inf
    w[2, 0] = -math.inf
    with no_warnings():
        status = pt.classify(arch, w)
        q = pt.fixpoint_error(arch, w)
    assert status.tolist() == [Status.DIVERGENT] * 3 + [Status.ZERO]
    assert q[:3].tolist() == [math.inf] * 3


def test_sticky_divergent_flag_wins_over_every_class():
    w = torch.cat(
        [torch.zeros(1, 14, dtype=F64), _with_u(1.0), _with_u(-1.0), ref.random_rows(WW, 1, 62)]
    )
    assert pt.classify(WW, w).tolist() == [
        Status.ZERO,
        Status.FIXPOINT,
        Status.SECOND_ORDER,
        Status.OTHER,
    ]
    flag = torch.tensor([True, True, True, True])
    assert pt.classify(WW, w, divergent=flag).tolist() == [Status.DIVERGENT] * 4
    flag = torch.tensor([False, True, False, False])
    assert pt.classify(WW, w, divergent=flag).tolist() == [
        Status.ZERO,
        Status.DIVERGENT,
        Status.SECOND_ORDER,
        Status.OTHER,
    ]


@pytest.mark.parametrize(
    "name", ["ww", "ww_tanh_bias", "agg", "agg_max", "rnn", "fft", "fft_b5_bias"]
)
def test_classify_matches_d13_over_many_tolerances(name):
    """Every class boundary: eps between the sorted values of max|w|, q and q₂ of all rows."""
    arch = ref.TYPES[name]
    w = torch.cat(
        [
            ref.random_rows(arch, 6, seed=63, scale=0.8),
            1e-3 * ref.random_rows(arch, 2, seed=64),
            torch.zeros(1, arch.num_weights, dtype=F64),
        ]
    )
    w[6, 1] = math.nan
    measures = [reference_measures(arch, row) for row in w]
    values = sorted(v for m in measures for v in m if 0 < v < math.inf)
    tolerances = [(a + b) / 2 for a, b in itertools.pairwise(values) if b - a > 1e-9 * b]
    tolerances += [values[0] / 2, values[-1] * 2]
    flag = torch.zeros(w.shape[0], dtype=torch.bool)
    flag[3] = True
    seen = set()
    for eps in tolerances:
        status = pt.classify(arch, w, eps=eps, divergent=flag)
        expected = [reference_class(m, eps, bool(f)) for m, f in zip(measures, flag, strict=True)]
        assert status.tolist() == expected, eps
        seen.update(expected)
    assert {Status.DIVERGENT, Status.ZERO, Status.OTHER} <= seen


def test_aggregating_nonzero_fixpoint_needs_equal_weights_per_group():
    """One 4×4 layer, groups = rows: W rows constant v_c with Σv = 1 give W·a = a and F(w) = w."""
    arch = pt.Aggregating(width=4, depth=0)
    v = torch.tensor([0.5, 0.25, 0.5, -0.25], dtype=F64)
    w = v.repeat_interleave(4).reshape(1, 16)
    assert pt.fixpoint_error(arch, w).item() == 0.0
    assert pt.classify(arch, w).tolist() == [Status.FIXPOINT]


def test_aggregates_fixpoint_test_compares_only_the_group_aggregates():
    """W = I + E with zero row sums: a = (¼,…,¼) and W a = a, but F(w) = ¼·1 ≠ w."""
    w = torch.eye(4, dtype=F64)
    w[0, :2] += torch.tensor([0.5, -0.5], dtype=F64)
    w[2, 1:] += torch.tensor([0.25, 0.25, -0.5], dtype=F64)
    w = w.reshape(1, 16)
    canonical = pt.Aggregating(width=4, depth=0)
    loose = pt.Aggregating(width=4, depth=0, fixpoint_test="aggregates")
    assert torch.equal(canonical.apply(w, canonical, w), torch.full_like(w, 0.25))
    assert pt.classify(canonical, w).tolist() == [Status.OTHER]
    assert pt.classify(loose, w).tolist() == [Status.FIXPOINT]
    assert pt.fixpoint_error(loose, w).item() == 0.0
    assert pt.fixpoint_error(canonical, w).item() == 1.5 - 0.25


def test_classify_with_shuffle_needs_a_generator(generator, value_error):
    arch = pt.Aggregating(shuffle=True)
    w = arch.init(3, generator=generator(65))
    with value_error("generator"):
        pt.classify(arch, w)
    a = pt.classify(arch, w, generator=generator(66))
    assert a.tolist() == pt.classify(arch, w, generator=generator(66)).tolist()


def test_count_statuses_counts_every_class():
    status = torch.tensor([Status.ZERO, Status.OTHER, Status.ZERO, Status.DIVERGENT])
    counts = pt.count_statuses(status)
    assert counts == {
        Status.DIVERGENT: 1,
        Status.ZERO: 2,
        Status.FIXPOINT: 0,
        Status.SECOND_ORDER: 0,
        Status.OTHER: 1,
    }


def test_status_order_is_d13_order():
    assert [s.name for s in sorted(Status)] == [
        "DIVERGENT",
        "ZERO",
        "FIXPOINT",
        "SECOND_ORDER",
        "OTHER",
    ]


# --------------------------------------------------------------------------------------------
# Measures and self-application


@pytest.mark.parametrize("name", ["ww", "ww_tanh_bias", "agg", "rnn", "fft"])
def test_fixpoint_measures_match_d14(name, unchanged):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 3, seed=67)
    with unchanged(w):
        q = pt.fixpoint_error(arch, w)
        loss = pt.self_prediction_loss(arch, w)
    for k in range(3):
        gap = ref.apply_one(arch, w[k], arch, w[k]) - w[k]
        torch.testing.assert_close(q[k], gap.abs().max(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(loss[k], gap.abs().mean(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["ww", "agg_max", "rnn", "fft"])
def test_self_apply_evolves_the_operator(name, unchanged):
    arch = ref.TYPES[name]
    w = ref.random_rows(arch, 2, seed=68, scale=0.3)
    with unchanged(w):
        out = pt.self_apply(arch, w, times=3)
        same = pt.self_apply(arch, w, times=0)
    assert torch.equal(same, w) and same.data_ptr() != w.data_ptr()
    for k in range(2):
        row = w[k]
        for _ in range(3):
            row = ref.apply_one(arch, row, arch, row)
        assert torch.isfinite(row).all()
        torch.testing.assert_close(out[k], row, rtol=1e-10, atol=1e-12)


def test_linear_ww_fixpoint_continuum_of_proposition_2():
    """Any w with u(w) = (1,0,0,0) is an exact fixpoint that maps every target to itself."""
    gen = torch.Generator().manual_seed(69)
    for _ in range(5):
        w1 = torch.randn(2, 2, generator=gen, dtype=F64)
        w2 = torch.randn(1, 2, generator=gen, dtype=F64)
        v = (w2 @ w1).reshape(2, 1)  # W_2 W_1 as a column
        r = torch.randn(2, 4, generator=gen, dtype=F64)
        e0 = torch.tensor([[1.0, 0, 0, 0]], dtype=F64)
        w0 = v @ e0 / v.square().sum() + (torch.eye(2, dtype=F64) - v @ v.T / v.square().sum()) @ r
        w = torch.cat([w0.reshape(-1), w1.reshape(-1), w2.reshape(-1)]).reshape(1, 14)
        assert pt.fixpoint_error(WW, w).item() < 1e-12
        assert pt.classify(WW, w).tolist() == [Status.FIXPOINT]
        m = ref.random_rows(pt.Recurrent(), 1, seed=70)
        torch.testing.assert_close(WW.apply(w, pt.Recurrent(), m), m, rtol=0, atol=1e-12)
