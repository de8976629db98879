"""Checkpoints restore a soup bit for bit, detect corruption and never unpickle objects."""

from __future__ import annotations

import hashlib
import json
import pickle

import networkx as nx
import pytest
import torch

from chemistry import Soup, Topology
from chemistry.checkpoint import list_checkpoints, load_checkpoint, read_checkpoint, save_checkpoint
from interactions import Attack, Learn, Melt, NoisyClone, Respawn, SelfTrain
from particles import Aggregating, Weightwise


def build(config: dict) -> Soup:
    """A soup with every kind of state: births, deaths, two banks, a ring, per-sample orders."""
    return Soup(
        [
            Attack(0.3),
            Learn(0.3, 2),
            SelfTrain(3),
            NoisyClone(0.5, 0.05),
            Melt(0.5),
            Respawn(),
        ],
        population={Weightwise(): config["ww"], Aggregating(): config["agg"]},
        topology=Topology.ring(config["ww"] + config["agg"]),
        rng=config["seed"],
        eps=1e-4,
    )


CONFIG = {"ww": 8, "agg": 4, "seed": 3}


def assert_same_soup(a: Soup, b: Soup) -> None:
    assert a.epoch == b.epoch
    for bank_a, bank_b in zip(a.banks.values(), b.banks.values(), strict=True):
        assert torch.equal(bank_a.weights, bank_b.weights)
        assert torch.equal(bank_a.uids, bank_b.uids)
        assert torch.equal(bank_a.divergent, bank_b.divergent)
    assert torch.equal(a.node_uid, b.node_uid)
    assert a.datacollector.model_vars == b.datacollector.model_vars
    assert a.genealogy.events == b.genealogy.events
    assert nx.utils.graphs_equal(a.genealogy.graph, b.genealogy.graph)
    for name in a.trajectories.names:
        for x, y in zip(a.trajectories.arrays(name), b.trajectories.arrays(name), strict=True):
            assert (x == y).all()
    assert sorted(p.unique_id for p in a.agents) == sorted(p.unique_id for p in b.agents)
    assert a.agent_id_counter == b.agent_id_counter


def test_resumed_soup_ends_exactly_like_the_uninterrupted_one(tmp_path):
    uninterrupted = build(CONFIG)
    uninterrupted.run_for(12)
    interrupted = build(CONFIG)
    interrupted.run_for(5)
    save_checkpoint(interrupted, tmp_path, CONFIG)
    interrupted.run_for(4)  # work after the checkpoint is lost, as after a kill
    resumed, config = load_checkpoint(tmp_path, build)
    assert config == CONFIG
    assert resumed.epoch == 5
    resumed.run_for(7)
    assert_same_soup(uninterrupted, resumed)
    births = [e for e in uninterrupted.genealogy.events if e.kind == "birth" and e.epoch > 0]
    assert births, "the scenario should include births after the start"


def test_restored_particles_are_registered_mesa_agents(tmp_path):
    soup = build(CONFIG)
    soup.run_for(3)
    save_checkpoint(soup, tmp_path, CONFIG)
    resumed, _ = load_checkpoint(tmp_path, build)
    assert len(resumed.agents) == len(soup.agents) == len(resumed.particles)
    for uid, particle in resumed.particles.items():
        assert particle.unique_id == uid
        assert torch.equal(particle.weights, soup.particles[uid].weights)
        assert particle.model is resumed


def test_index_lists_checkpoints_with_checksums(tmp_path):
    soup = build(CONFIG)
    for _ in range(3):
        soup.run_for(2)
        save_checkpoint(soup, tmp_path, CONFIG)
    entries = list_checkpoints(tmp_path)
    assert [e["epoch"] for e in entries] == [2, 4, 6]
    assert all(len(e["sha256"]) == 64 for e in entries)
    resumed, _ = load_checkpoint(tmp_path, build, epoch=4)
    assert resumed.epoch == 4


def test_corrupted_checkpoint_is_detected(tmp_path):
    soup = build(CONFIG)
    soup.run_for(2)
    path = save_checkpoint(soup, tmp_path, CONFIG)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        read_checkpoint(tmp_path)


def test_truncated_index_is_a_clear_error(tmp_path):
    soup = build(CONFIG)
    save_checkpoint(soup, tmp_path, CONFIG)
    index = tmp_path / "checkpoints" / "index.json"
    index.write_text(index.read_text()[:10])
    with pytest.raises(ValueError, match="damaged"):
        read_checkpoint(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        read_checkpoint(tmp_path)


def test_a_pickled_object_in_a_checkpoint_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "epoch-000001.pt").write_bytes(
        pickle.dumps({"tensors": {}, "meta": Payload()}, protocol=2)
    )
    digest = hashlib.sha256((directory / "epoch-000001.pt").read_bytes()).hexdigest()
    (directory / "index.json").write_text(
        json.dumps({"checkpoints": [{"epoch": 1, "file": "epoch-000001.pt", "sha256": digest}]})
    )
    with pytest.raises(pickle.UnpicklingError):
        read_checkpoint(tmp_path)


def test_failed_write_keeps_the_previous_checkpoint_latest(tmp_path, monkeypatch):
    soup = build(CONFIG)
    soup.run_for(2)
    save_checkpoint(soup, tmp_path, CONFIG)
    soup.run_for(2)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("chemistry.checkpoint.os.fsync", explode)
    with pytest.raises(OSError):
        save_checkpoint(soup, tmp_path, CONFIG)
    assert [e["epoch"] for e in list_checkpoints(tmp_path)] == [2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch-000002.pt",
        "index.json",
    ]
    resumed, _ = load_checkpoint(tmp_path, build)
    assert resumed.epoch == 2
