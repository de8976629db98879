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


# ---------------------------------------------------------------------- incremental checkpoints


def checkpoint_sizes(directory) -> list[int]:
    entries = list_checkpoints(directory)
    return [(directory / "checkpoints" / e["file"]).stat().st_size for e in entries]


def test_checkpoint_bytes_grow_linearly_over_1000_epochs(tmp_path):
    """Each checkpoint holds the soup state and the history of its own 100 epochs only: the
    last two are about the same size, and the last is far smaller than a full copy of the
    history (a full copy at epoch 1000 is about ten times the one at epoch 100)."""
    soup = Soup([SelfTrain(1), Respawn()], population={Weightwise(): 6}, rng=1)
    save_checkpoint(soup, tmp_path, CONFIG)
    for _ in range(10):
        soup.run_for(100)
        save_checkpoint(soup, tmp_path, CONFIG)
    sizes = checkpoint_sizes(tmp_path)
    assert len(sizes) == 11
    assert 0.9 < sizes[-1] / sizes[-2] < 1.1
    assert sizes[-1] < 1.5 * sizes[1]
    full = tmp_path / "full"
    save_checkpoint(soup, full, CONFIG)  # a first checkpoint: the whole history
    (full_size,) = checkpoint_sizes(full)
    assert full_size > 5 * sizes[-1]
    resumed, _ = load_checkpoint(
        tmp_path,
        lambda c: Soup([SelfTrain(1), Respawn()], population={Weightwise(): 6}, rng=1),
    )
    assert_same_soup(soup, resumed)


def test_resume_from_a_chain_and_pruned_checkpoints_ends_like_the_uninterrupted(tmp_path):
    uninterrupted = build(CONFIG)
    uninterrupted.run_for(12)
    soup = build(CONFIG)
    for _ in range(4):
        soup.run_for(2)
        save_checkpoint(soup, tmp_path, CONFIG, keep=2)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["epoch-000006.full.pt", "epoch-000008.pt", "index.json"]
    assert [e["epoch"] for e in list_checkpoints(tmp_path)] == [6, 8]
    for epoch in (6, 8):  # the folded one and the increment on top of it
        resumed, _ = load_checkpoint(tmp_path, build, epoch=epoch)
        resumed.run_for(12 - epoch)
        assert_same_soup(uninterrupted, resumed)


def test_an_increment_on_a_replaced_base_is_refused(tmp_path):
    soup = build(CONFIG)
    soup.run_for(2)
    save_checkpoint(soup, tmp_path, CONFIG)
    soup.run_for(2)
    save_checkpoint(soup, tmp_path, CONFIG)
    other = build({**CONFIG, "seed": 4})  # same configuration keys, another history
    other.run_for(2)
    save_checkpoint(other, tmp_path / "other", CONFIG)
    source = tmp_path / "other" / "checkpoints" / "epoch-000002.pt"
    target = tmp_path / "checkpoints" / "epoch-000002.pt"
    target.write_bytes(source.read_bytes())
    index = tmp_path / "checkpoints" / "index.json"
    entries = json.loads(index.read_text())["checkpoints"]
    entries[0]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    index.write_text(json.dumps({"checkpoints": entries}))
    with pytest.raises(ValueError, match="does not continue"):
        read_checkpoint(tmp_path)


def test_a_later_checkpoint_of_an_abandoned_continuation_leaves_the_index(tmp_path):
    soup = build(CONFIG)
    for _ in range(3):
        soup.run_for(2)
        save_checkpoint(soup, tmp_path, CONFIG)
    resumed, _ = load_checkpoint(tmp_path, build, epoch=2)
    resumed.run_for(1)
    save_checkpoint(resumed, tmp_path, CONFIG)
    assert [e["epoch"] for e in list_checkpoints(tmp_path)] == [2, 3]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "epoch-000002.pt",
        "epoch-000003.pt",
    ]
