"""Measures the experiments report, each on a hand-built case with an answer known independently.

The weightwise particle with only W_0[0,0] = a, W_1[0,0] = b, W_2[0,0] = c non-zero computes
f(x) = abc·x_0 (Proposition 2), so self-application scales every weight by u = abc: the state
(a, b, c) → u·(a, b, c). A few lines of plain Python floats follow that recursion and apply SPEC
E4's definitions (T = t* − 1, F counts FIXPOINT states t = 1..T), independently of the kernel.
"""

from __future__ import annotations

import math

import pytest
import torch

from chemistry.experiments.fig12 import _main_cluster
from chemistry.experiments.learn_soup import _independent_census
from chemistry.experiments.mixed import _reliable_from, _spearman
from chemistry.experiments.self_application import medians_rise, robustness_trials
from chemistry.experiments.self_training import path_measures
from chemistry.experiments.soup_tools import _spearman as soup_spearman
from particles import Status, Weightwise, classify

EPS = 1e-4
ARCH = Weightwise()


def _diagonal_particle(a: float, b: float, c: float) -> torch.Tensor:
    w = torch.zeros(1, 14, dtype=torch.float64)
    w[0, 0], w[0, 8], w[0, 12] = a, b, c
    return w


def _reference(a: float, b: float, c: float, cap: int) -> tuple[int, int, bool]:
    """(T, F, censored) by SPEC E4 for the diagonal particle, in plain Python."""
    state = [a, b, c]
    fixpoint_count = 0
    for t in range(1, cap + 1):
        u = state[0] * state[1] * state[2]
        state = [u * v for v in state]
        size = max(abs(v) for v in state)
        if size <= EPS or not math.isfinite(size):
            return t - 1, fixpoint_count, False
        u_next = state[0] * state[1] * state[2]
        if abs(1 - u_next) * size <= EPS:
            fixpoint_count += 1
    return cap, fixpoint_count, True


@pytest.mark.parametrize(
    ("a", "b", "c"),
    [
        (1.0, 1.0, 0.5),  # u = 0.5: ZERO at the 3rd application, so T = 2 and F = 0
        (1.0, 1.0, 1 - 1e-6),  # near 𝓘: FIXPOINT for a few applications, then collapses
        (1.0, 1.0, 1 - 3e-7),
        (1.2, 1.0, 1.0),  # u > 1: grows until it diverges
    ],
)
def test_time_to_verge_and_time_as_fixpoint_match_the_hand_recursion(a, b, c):
    start = _diagonal_particle(a, b, c)
    cap = 40
    trials = robustness_trials(ARCH, start, eps=EPS, applications=cap)
    T, F, censored = _reference(a, b, c, cap)
    assert int(trials["T"][0]) == T
    assert int(trials["F"][0]) == F
    assert bool(trials["censored"][0]) == censored


def test_time_to_verge_counts_applications_survived():
    # u = 0.5: after 1 application max|w| = 0.5, after 2 it is 0.5·0.0625 = 0.03125, after 3
    # about 5e-7 <= ε: the trial verges at t* = 3 and survived T = 2 applications.
    trials = robustness_trials(ARCH, _diagonal_particle(1, 1, 0.5), eps=EPS, applications=10)
    assert int(trials["T"][0]) == 2
    assert Status(int(trials["final"][0])) == Status.ZERO
    # The exact identity never verges: censored at the cap, FIXPOINT at every application.
    identity = Weightwise.identity(dtype=torch.float64)
    trials = robustness_trials(ARCH, identity, eps=EPS, applications=7)
    assert int(trials["T"][0]) == 7 and bool(trials["censored"][0])
    assert int(trials["F"][0]) == 7 and int(trials["reentries"][0]) == 0
    # A zero start has verged before any application.
    trials = robustness_trials(
        ARCH, torch.zeros(1, 14, dtype=torch.float64), eps=EPS, applications=5
    )
    assert int(trials["T"][0]) == 0 and int(trials["F"][0]) == 0


def test_medians_rise():
    assert medians_rise([1, 2, 2, 5])
    assert not medians_rise([1, 3, 2, 5])  # falls once
    assert not medians_rise([2, 2, 2])  # never ends higher
    assert medians_rise([math.nan, 1, 4])


def test_spearman_on_hand_ranked_values():
    assert _spearman([0, 1, 2, 3], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert _spearman([0, 1, 2, 3], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (1, 3, 2, 4): 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8
    assert _spearman([0, 1, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert soup_spearman([0, 1, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(_spearman([0, 1, 2], [5, 5, 5]))


def test_reliable_from_is_the_start_of_the_last_unbroken_run():
    a_values = [0, 100, 200, 300, 400]
    assert _reliable_from(a_values, [0.0, 0.95, 0.5, 0.9, 1.0]) == 300
    assert _reliable_from(a_values, [0.0, 0.1, 0.2, 0.3, 0.89]) is None
    assert _reliable_from(a_values, [0.9] * 5) == 0


def test_main_cluster_is_the_largest_tight_group():
    base = torch.zeros(7, 3, dtype=torch.float64)
    base[:4] = torch.tensor([1.0, 1.0, 1.0])  # four near-identical points
    base[:4, 0] += torch.tensor([0.0, 0.001, 0.002, 0.003])
    base[4:, :] = torch.tensor([[-5.0, 0, 0], [0, 7.0, 0], [3.0, -3.0, 9.0]])  # far apart
    members = _main_cluster(base, 0.25)
    assert sorted(members.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("encoding", ["torch", "keras"])
def test_independent_recount_matches_hand_built_and_kernel_classes(encoding):
    arch = Weightwise(encoding=encoding)
    identity = Weightwise.identity(dtype=torch.float64)
    zero = torch.zeros(1, 14, dtype=torch.float64)
    random = arch.init(200, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = torch.cat([identity, zero, random])
    zeros, fixpoints, gap = _independent_census(w, EPS, encoding)
    status = classify(arch, w, eps=EPS)
    assert zeros == int((status == int(Status.ZERO)).sum()) >= 1
    assert fixpoints == int((status == int(Status.FIXPOINT)).sum()) >= 1
    assert float(gap[0]) == 0.0  # 𝓘 has u = (1, 0, 0, 0) exactly
    # A non-fixpoint whose classes differ between encodings proves the swap is applied.
    w = arch.init(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    other = "torch" if encoding == "keras" else "keras"
    mine, theirs = ARCH.__class__(encoding=encoding), ARCH.__class__(encoding=other)
    assert not torch.equal(mine.apply(w, mine, w), theirs.apply(w, theirs, w))


def test_path_measures_on_a_hand_built_trajectory():
    # One particle, one weight, 4 steps: moves 0 → 8 → 9 → 9.5 → 10 (moves 8, 1, 0.5, 0.5).
    stack = torch.tensor([0.0, 8.0, 9.0, 9.5, 10.0], dtype=torch.float64).view(5, 1, 1)
    path, late, settled = path_measures(stack)
    assert float(path[0]) == 10.0
    assert float(late[0]) == pytest.approx(0.1)  # steps 3 and 4 travel 1 of 10
    # remaining after steps 1..4: 2, 1, 0.5, 0 → first ≤ 5 % of 10 (0.5) after step 3
    assert int(settled[0]) == 3
