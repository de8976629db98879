"""The soup's cached occupied nodes (and their split by bank) follow spawn, kill and restore."""

from __future__ import annotations

import torch

from chemistry import Soup, Topology
from chemistry.checkpoint import load_checkpoint, save_checkpoint
from interactions import SelfTrain
from particles import Weightwise


def assert_cache_is_fresh(soup: Soup) -> None:
    occupied = torch.nonzero(soup.node_bank >= 0).flatten()
    nodes = soup.occupied_nodes()
    assert torch.equal(nodes, occupied)
    assert torch.equal(soup.node_status[soup.occupied_index()], soup.node_status[occupied])
    cached = soup.groups(nodes)
    fresh = soup.groups(nodes.clone())  # another tensor: split without the cache
    assert len(cached) == len(fresh)
    for (bank, positions, rows), (bank2, positions2, rows2) in zip(cached, fresh, strict=True):
        assert bank is bank2
        assert torch.equal(positions, positions2)
        assert torch.equal(rows.cpu(), rows2.cpu())
        assert torch.equal(bank.read(rows), bank.read(rows2))


def test_cache_follows_kill_and_spawn():
    soup = Soup([SelfTrain(1)], population=6, topology=Topology.complete(6), rng=0)
    bank = soup.bank_list[0]
    assert soup.occupied_index() == slice(None)
    assert soup.groups(soup.occupied_nodes())[0][2] is bank.every_row()
    assert_cache_is_fresh(soup)
    soup.kill(torch.tensor([1, 4]))
    assert soup.occupied_nodes().tolist() == [0, 2, 3, 5]
    assert soup.groups(soup.occupied_nodes())[0][2] is not bank.every_row()
    assert_cache_is_fresh(soup)
    weights = Weightwise().init(2, generator=torch.Generator().manual_seed(1))
    soup.spawn(Weightwise(), weights, torch.tensor([4, 1]))  # rows back, but not in node order
    assert soup.occupied_index() == slice(None)
    assert_cache_is_fresh(soup)
    soup.run_for(2)
    assert_cache_is_fresh(soup)


def build(config: dict) -> Soup:
    return Soup([SelfTrain(1)], population=config["n"], topology=Topology.ring(8), rng=0)


def test_cache_follows_checkpoint_restore(tmp_path):
    soup = build({"n": 8})
    soup.kill(torch.tensor([2, 5, 6]))
    soup.run_for(1)
    save_checkpoint(soup, tmp_path, {"n": 8})
    resumed, _ = load_checkpoint(tmp_path, build)  # built full, restored with three gaps
    assert resumed.occupied_nodes().tolist() == [0, 1, 3, 4, 7]
    assert_cache_is_fresh(resumed)
    resumed.run_for(1)
    soup.run_for(1)
    for a, b in zip(soup.banks.values(), resumed.banks.values(), strict=True):
        assert torch.equal(a.weights, b.weights)
