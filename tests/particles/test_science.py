"""The paper's checkable claims that the kernel alone can decide (SPEC §11, Propositions 1–2).

Seeds are fixed; the bounds leave room for seed-to-seed variation (about 88–93% of 200 weightwise
particles become fixpoints across seeds 0–7), not for a change of behaviour.
"""

from __future__ import annotations

import pytest
import torch

import particles as pt
from particles import Status

WW, AGG, RNN, FFT = pt.Weightwise(), pt.Aggregating(), pt.Recurrent(), pt.Fourier()
JOURNAL = pt.preset("journal2021")
KERAS = pt.preset("keras2019")


@pytest.fixture(scope="module")
def trained_ww():
    """200 fresh ww particles self-trained 2000 full_batch steps at lr 0.04 (journal2021)."""
    w = WW.init(200, generator=torch.Generator().manual_seed(2024))
    result = pt.self_train(WW, w, steps=2000, lr=JOURNAL.lr, mode=JOURNAL.mode)
    return w, result.weights


def test_c9_weightwise_particles_self_train_to_nonzero_fixpoints(trained_ww):
    _, trained = trained_ww
    counts = pt.count_statuses(pt.classify(WW, trained, eps=JOURNAL.eps))
    assert counts[Status.FIXPOINT] >= 0.85 * 200, counts
    assert counts[Status.ZERO] == 0 and counts[Status.DIVERGENT] == 0, counts


def test_c9_aggregating_particles_do_not_become_fixpoints():
    w = AGG.init(200, generator=torch.Generator().manual_seed(2025))
    trained = pt.self_train(AGG, w, steps=2000, lr=JOURNAL.lr, mode=JOURNAL.mode).weights
    counts = pt.count_statuses(pt.classify(AGG, trained, eps=JOURNAL.eps))
    assert counts[Status.FIXPOINT] == 0, counts
    assert counts[Status.OTHER] >= 190, counts


def test_trained_fixpoints_lie_on_the_identity_set_of_proposition_2(trained_ww):
    """A non-zero linear fixpoint outside case (b) has u(w) = W_2 W_1 W_0 = (1, 0, 0, 0) (O1)."""
    _, trained = trained_ww
    fixpoints = trained[pt.classify(WW, trained, eps=JOURNAL.eps) == Status.FIXPOINT].double()
    w0 = fixpoints[:, :8].reshape(-1, 2, 4)
    w1 = fixpoints[:, 8:12].reshape(-1, 2, 2)
    w2 = fixpoints[:, 12:].reshape(-1, 1, 2)
    u = (w2 @ w1 @ w0)[:, 0]
    target = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert (u - target).abs().amax(dim=1).max() < 1e-4


def test_c11_no_two_particles_reach_the_same_fixpoint(trained_ww):
    start, trained = trained_ww
    fixpoints = trained[pt.classify(WW, trained, eps=JOURNAL.eps) == Status.FIXPOINT]
    n = fixpoints.shape[0]
    left, right = torch.triu_indices(n, n, offset=1)
    assert pt.distance(fixpoints[left], fixpoints[right]).min() > 1e-3
    assert pt.distance(trained, start).min() > 0  # C7: every particle moved


def test_c4_random_particles_are_not_fixpoints():
    gen = torch.Generator().manual_seed(2026)
    for arch in (WW, AGG, RNN, FFT):
        status = pt.classify(arch, arch.init(10_000, generator=gen), eps=KERAS.eps)
        counts = pt.count_statuses(status)
        assert counts[Status.OTHER] == 10_000, (arch.reduction, counts)


def test_c1_repeated_self_application_ends_in_zero_or_divergence():
    gen = torch.Generator().manual_seed(2027)
    for arch in (WW, AGG, RNN, FFT):
        w = pt.self_apply(arch, arch.init(50, generator=gen), times=100)
        counts = pt.count_statuses(pt.classify(arch, w, eps=KERAS.eps))
        assert counts[Status.ZERO] + counts[Status.DIVERGENT] == 50, (arch.reduction, counts)


@pytest.mark.parametrize("mode", ["full_batch", "per_sample"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_and_zero_are_stationary_under_self_training(mode, dtype):
    """Their own samples are fitted exactly, so every gradient is exactly zero."""
    w = torch.cat([pt.Weightwise.identity(dtype=dtype), torch.zeros(1, 14, dtype=dtype)])
    result = pt.self_train(WW, w, steps=50, lr=0.04, mode=mode)
    assert torch.equal(result.weights, w)
    assert result.loss.tolist() == [0.0, 0.0]


def test_identity_learns_nothing_new_from_itself_and_copies_other_teachers():
    """A learner at 𝓘 whose teacher is 𝓘 stays put; 𝓘 ◁ M = M for a teacher of any type."""
    w = pt.Weightwise.identity(dtype=torch.float64)
    assert torch.equal(pt.learn(WW, w, WW, w, steps=10, lr=0.04).weights, w)
    m = RNN.init(1, generator=torch.Generator().manual_seed(2028), dtype=torch.float64)
    assert torch.equal(WW.apply(w, RNN, m), m)
