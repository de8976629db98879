"""WeightBank rows (allocation, reuse, growth, sticky divergence, uids) and the Particle agent."""

from __future__ import annotations

import math

import mesa
import pytest
import torch

import particles as pt

WW = pt.Weightwise()


def _rows(n: int, start: float = 1.0) -> torch.Tensor:
    return start + torch.arange(n * 14, dtype=torch.float32).reshape(n, 14)


def test_allocate_writes_rows_and_uids(unchanged):
    bank = pt.WeightBank(WW, capacity=4)
    weights = _rows(3)
    with unchanged(weights):
        rows = bank.allocate(weights, [10, 11, 12])
    assert len(bank) == 3 and bank.capacity == 4
    assert len(set(rows.tolist())) == 3
    assert torch.equal(bank.read(rows), weights)
    assert bank.uids[rows].tolist() == [10, 11, 12]
    assert bank.rows_in_use().tolist() == sorted(rows.tolist())
    assert not bank.divergent.any()
    weights.add_(100)  # the bank holds a copy
    assert torch.equal(bank.read(rows), _rows(3))


def test_read_returns_a_copy():
    bank = pt.WeightBank(WW, capacity=2)
    rows = bank.allocate(_rows(2), [1, 2])
    bank.read(rows).zero_()
    assert torch.equal(bank.read(rows), _rows(2))


def test_release_frees_and_clears_rows_for_reuse():
    bank = pt.WeightBank(WW, capacity=3)
    rows = bank.allocate(_rows(3), [1, 2, 3])
    bank.release(rows[1:2])
    assert len(bank) == 2
    assert bank.rows_in_use().tolist() == sorted([rows[0].item(), rows[2].item()])
    assert bank.uids[rows[1]].item() == -1
    assert torch.equal(bank.weights[rows[1]], torch.zeros(14))
    again = bank.allocate(_rows(1, start=-5.0), [4])
    assert again.tolist() == [rows[1].item()]  # the freed row is reused, no growth
    assert bank.capacity == 3
    assert torch.equal(bank.read(again), _rows(1, start=-5.0))
    assert torch.equal(bank.read(rows[[0, 2]]), _rows(3)[[0, 2]])  # neighbours untouched


def test_release_of_a_free_row_raises(value_error):
    bank = pt.WeightBank(WW, capacity=3)
    rows = bank.allocate(_rows(1), [1])
    bank.release(rows)
    with value_error(str(rows.tolist()[0])):
        bank.release(rows)


def test_release_of_the_same_row_twice_in_one_call_raises(value_error):
    """A duplicate would enter the free list twice and later hand one row to two particles."""
    bank = pt.WeightBank(WW, capacity=4)
    rows = bank.allocate(_rows(2), [1, 2])
    with value_error("rows"):
        bank.release(torch.tensor([rows[0].item(), rows[0].item()]))
    assert len(bank) == 2
    new = bank.allocate(_rows(2), [3, 4])
    assert len(set(new.tolist()) | set(rows.tolist())) == 4


def test_growth_keeps_contents_and_flags():
    bank = pt.WeightBank(WW, capacity=2)
    first = bank.allocate(_rows(2), [1, 2])
    bad = _rows(1)
    bad[0, 3] = math.nan
    bank.write(first[1:], bad)
    more = bank.allocate(_rows(5, start=1000.0), [3, 4, 5, 6, 7])
    assert bank.capacity >= 7 and len(bank) == 7
    assert len(set(first.tolist()) | set(more.tolist())) == 7
    assert torch.equal(bank.read(first[:1]), _rows(1))
    assert bank.read(first[1:])[0, 3].isnan()
    assert bank.divergent[first].tolist() == [False, True]
    assert torch.equal(bank.read(more), _rows(5, start=1000.0))
    assert bank.uids[first].tolist() == [1, 2] and bank.uids[more].tolist() == [3, 4, 5, 6, 7]


def test_divergent_flag_is_sticky_until_release():
    bank = pt.WeightBank(WW, capacity=3)
    rows = bank.allocate(_rows(3), [1, 2, 3])
    bad = _rows(1)
    bad[0, 0] = math.inf
    bank.write(rows[1:2], bad)
    assert bank.divergent[rows].tolist() == [False, True, False]
    bank.write(rows[1:2], _rows(1))  # finite again, still divergent (D4)
    assert bank.divergent[rows].tolist() == [False, True, False]
    status = pt.classify(WW, bank.read(rows), divergent=bank.divergent[rows])
    assert status[1].item() == pt.Status.DIVERGENT
    bank.release(rows[1:2])
    assert bank.divergent.tolist() == [False, False, False]
    again = bank.allocate(_rows(1), [4])
    assert again.tolist() == rows[1:2].tolist() and not bank.divergent[again].any()


def test_allocating_non_finite_weights_sets_the_flag():
    bank = pt.WeightBank(WW, capacity=2)
    weights = _rows(2)
    weights[1, 13] = -math.inf
    rows = bank.allocate(weights, [1, 2])
    assert bank.divergent[rows].tolist() == [False, True]


def test_bank_dtype_and_state_dict():
    bank = pt.WeightBank(pt.Recurrent(), capacity=2, dtype=torch.float64)
    assert bank.dtype == torch.float64 and bank.weights.shape == (2, 17)
    rows = bank.allocate(torch.ones(1, 17), [9])
    assert bank.read(rows).dtype == torch.float64
    state = bank.state_dict()
    assert {"weights", "divergent", "uids"} <= set(state)
    assert state["uids"][rows].tolist() == [9]
    assert torch.equal(state["weights"][rows], torch.ones(1, 17, dtype=torch.float64))


def test_release_rejects_rows_outside_the_bank(value_error):
    """A negative index would silently wrap around to the last row."""
    bank = pt.WeightBank(WW, capacity=3)
    rows = bank.allocate(_rows(3), [1, 2, 3])
    with value_error("rows", "-1"):
        bank.release(torch.tensor([-1]))
    with value_error("rows", "3"):
        bank.release(torch.tensor([3]))
    assert len(bank) == 3 and bank.uids[rows].tolist() == [1, 2, 3]


def test_bank_rejects_bad_input(value_error):
    with value_error("capacity", "0"):
        pt.WeightBank(WW, capacity=0)
    with value_error("dtype", "int64"):
        pt.WeightBank(WW, dtype=torch.int64)
    bank = pt.WeightBank(WW, capacity=2)
    with value_error("weights", "[2, 13]"):
        bank.allocate(torch.zeros(2, 13), [1, 2])
    with value_error("3 uids", "2"):
        bank.allocate(torch.zeros(2, 14), [1, 2, 3])
    with value_error("uid", "-1"):
        bank.allocate(torch.zeros(1, 14), [-1])
    assert len(bank) == 0


# --------------------------------------------------------------------------------------------
# Particle agent


def test_particle_registers_in_a_mesa_model_and_reads_its_row():
    model = mesa.Model(rng=0)
    bank = pt.WeightBank(WW, capacity=2)
    rows = bank.allocate(_rows(3), [0, 0, 0])
    a = pt.Particle(model, bank, int(rows[0]), birth=0)
    b = pt.Particle(model, bank, int(rows[2]), birth=3, parents=[a.unique_id], node=7)
    assert a in model.agents and b in model.agents and len(model.agents) == 2
    assert a.unique_id != b.unique_id
    assert b.parents == (a.unique_id,) and b.birth == 3 and b.node == 7
    assert a.architecture is WW
    assert torch.equal(a.weights, _rows(3)[0]) and torch.equal(b.weights, _rows(3)[2])
    a.weights.zero_()  # a copy
    assert torch.equal(a.weights, _rows(3)[0])
    bank.write(rows[2:], torch.full((1, 14), 2.0))  # the agent sees the bank's current row
    assert torch.equal(b.weights, torch.full((14,), 2.0))
    assert not b.divergent
    bank.write(rows[2:], torch.full((1, 14), math.nan))
    assert b.divergent
    assert "ww" in repr(a)


def test_particles_of_several_models_are_independent():
    bank = pt.WeightBank(pt.Aggregating(), capacity=1)
    row = int(bank.allocate(torch.zeros(1, 20), [0])[0])
    first, second = mesa.Model(rng=0), mesa.Model(rng=1)
    a = pt.Particle(first, bank, row, birth=0)
    pt.Particle(second, bank, row, birth=0)
    assert list(first.agents) == [a] and len(second.agents) == 1


@pytest.mark.parametrize(
    ("name", "mode", "lr", "eps"),
    [("keras2019", "per_sample", 0.01, 1e-4), ("journal2021", "full_batch", 0.04, 1e-5)],
)
def test_presets_match_table_2(name, mode, lr, eps):
    preset = pt.preset(name)
    assert (preset.mode, preset.lr, preset.eps) == (mode, lr, eps)
    assert pt.PRESETS[name] == preset and mode in pt.MODES
