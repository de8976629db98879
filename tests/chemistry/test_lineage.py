"""The time-respecting genealogy: version DAG vs a brute-force replay, phylogeny, ALife CSV,
class at death, the events DataFrame and the chunked column tables."""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
import torch

from chemistry import Soup, Topology
from chemistry.alife import read_alife
from chemistry.columnar import ChunkedTable
from chemistry.event_log import EventLog
from chemistry.genealogy import Genealogy
from interactions import Attack, Melt, NoisyClone, Respawn
from interactions.events import Event, EventKind, inheritance_of
from particles.architectures import Weightwise

ATTACK, LEARN, CLONE, MELT = EventKind.ATTACK, EventKind.LEARN, EventKind.CLONE, EventKind.MELT
RESPAWN, BIRTH, DEATH = EventKind.RESPAWN, EventKind.BIRTH, EventKind.DEATH


def birth(epoch: int, uid: int) -> Event:
    return Event(epoch, BIRTH, None, None, child=uid, data={"architecture": "ww", "node": uid})


def story(seed: int, population: int = 8, epochs: int = 12) -> list[list[Event]]:
    """Record calls (steps) of a soup-like story with attacks both ways, overwritten attacks,
    learning, clones, melts and respawns; several steps share an epoch."""
    rng = random.Random(seed)
    alive = list(range(population))
    fresh = population
    calls = [[birth(0, uid) for uid in alive]]
    for epoch in range(1, epochs + 1):
        for _ in range(rng.randint(1, 3)):  # several rule calls per epoch
            call = []
            for _ in range(rng.randint(1, 5)):
                kind = rng.choice([ATTACK, ATTACK, LEARN])
                actor, target = rng.choice(alive), rng.choice(alive)  # self-attacks too
                data = {"overwritten": True} if rng.random() < 0.2 else {}
                call.append(Event(epoch, kind, actor, target, data=data))
            calls.append(call)
        choice = rng.random()
        victim = rng.choice(alive)
        child = fresh
        fresh += 1
        if choice < 0.4:
            parent = rng.choice([uid for uid in alive if uid != victim])
            call = [Event(epoch, DEATH, None, victim), birth(epoch, child)]
            call.append(Event(epoch, CLONE, parent, victim, child))
        elif choice < 0.7:
            one, two = rng.sample([uid for uid in alive if uid != victim], 2)
            call = [Event(epoch, MELT, one, victim, child), Event(epoch, MELT, two, victim, child)]
            call += [Event(epoch, DEATH, None, victim), birth(epoch, child)]
        else:
            call = [Event(epoch, DEATH, None, victim), birth(epoch, child)]
            call.append(Event(epoch, RESPAWN, None, victim, child))
        alive[alive.index(victim)] = child
        calls.append(call)
    return calls


def replay_influence(calls: list[list[Event]]) -> dict[tuple[int, int], set[tuple[int, int]]]:
    """Brute force: for each version, every version whose weights could have reached it.

    Walks the story forward holding, per living particle, the set of versions that influenced
    its current weights. A call reads the weights as they were before it (snapshot).
    """
    current: dict[int, tuple[int, int]] = {}
    influence: dict[tuple[int, int], set[tuple[int, int]]] = {}

    def start(uid: int) -> None:
        if uid is not None and uid not in current:
            current[uid] = (uid, 0)
            influence[(uid, 0)] = {(uid, 0)}

    for call in calls:
        for event in call:  # particles acting before their birth was recorded
            start(event.actor)
            start(event.target)
        for event in call:
            if inheritance_of(event.kind) == "vertical":
                start(event.child)
        for event in call:
            if event.child is not None:
                start(event.child)
        before = {uid: set(influence[version]) for uid, version in current.items()}
        for event in call:
            kind = inheritance_of(event.kind)
            if kind == "vertical":
                influence[current[event.child]] |= before[event.actor]
            elif kind == "horizontal" and not event.data.get("overwritten"):
                uid, k = current[event.target]
                new = (uid, k + 1)
                influence[new] = influence[(uid, k)] | before[event.actor] | {new}
                current[event.target] = new
    return influence


def record(calls: list[list[Event]]) -> Genealogy:
    genealogy = Genealogy()
    for call in calls:
        genealogy.record(call)
    return genealogy


@pytest.mark.parametrize("seed", range(6))
def test_version_ancestors_are_exactly_the_replayed_influences(seed):
    calls = story(seed)
    graph = record(calls).version_graph()
    assert nx.is_directed_acyclic_graph(graph)
    influence = replay_influence(calls)
    assert set(graph.nodes) == set(influence)
    for version, expected in influence.items():
        assert nx.ancestors(graph, version) | {version} == expected, version


def test_time_order_decides_influence():
    """A attacks B, then B attacks C: A reached C. The other order: it did not."""
    forward = [[birth(0, u) for u in (1, 2, 3)], [Event(1, ATTACK, 1, 2)], [Event(2, ATTACK, 2, 3)]]
    backward = [
        [birth(0, u) for u in (1, 2, 3)],
        [Event(1, ATTACK, 2, 3)],
        [Event(2, ATTACK, 1, 2)],
    ]
    assert (1, 0) in nx.ancestors(record(forward).version_graph(), (3, 1))
    assert (1, 0) not in nx.ancestors(record(backward).version_graph(), (3, 1))
    # within one call both attacks read the old weights: 1 does not reach 3
    same_call = [[birth(0, u) for u in (1, 2, 3)], [Event(1, ATTACK, 1, 2), Event(1, ATTACK, 2, 3)]]
    assert nx.ancestors(record(same_call).version_graph(), (3, 1)) == {(3, 0), (2, 0)}


def test_version_nodes_carry_uid_epoch_kind_and_the_ancestry_query():
    calls = [[birth(0, u) for u in (1, 2)], [Event(3, ATTACK, 1, 2)], [Event(5, CLONE, 2, 1, 4)]]
    genealogy = record(calls)
    graph = genealogy.version_graph()
    assert graph.nodes[(2, 1)] | {"event": 0} == {
        "uid": 2,
        "k": 1,
        "epoch": 3,
        "kind": "attack",
        "event": 0,
    }
    assert graph.nodes[(4, 0)]["kind"] == "clone"
    assert graph.edges[(2, 0), (2, 1)]["kind"] == "previous"
    assert graph.edges[(1, 0), (2, 1)]["kind"] == "attack"
    assert set(genealogy.ancestry(2, epoch=2).nodes) == {(2, 0)}
    assert set(genealogy.ancestry(4).nodes) == {(4, 0), (2, 1), (2, 0), (1, 0)}
    assert genealogy.influencers(4) == {1: 1}
    assert nx.dag_longest_path(graph) == [(1, 0), (2, 1), (4, 0)] or nx.dag_longest_path(graph) == [
        (2, 0),
        (2, 1),
        (4, 0),
    ]
    assert nx.lowest_common_ancestor(graph, (4, 0), (2, 1)) == (2, 1)
    part = genealogy.version_graph(uid=1, epoch=0)
    assert set(part.nodes) == {(1, 0), (2, 1), (4, 0)}


def soup_with_attacks_both_ways() -> Soup:
    soup = Soup(
        [Attack(0.6), NoisyClone(0.5, 0.01, pairing="per_particle"), Melt(0.5), Respawn()],
        population=8,
        topology=Topology.ring(8),
        rng=3,
        record_every=0,
    )
    soup.run_for(12)
    return soup


def test_soup_version_dag_is_acyclic_and_phylogeny_a_forest():
    soup = soup_with_attacks_both_ways()
    genealogy = soup.genealogy
    attacks = {(u, v) for u, v, k in genealogy.graph.edges(data="kind") if k == "attack"}
    assert any((v, u) in attacks for u, v in attacks)  # the particle graph has cycles
    assert not nx.is_directed_acyclic_graph(genealogy.graph)
    versions = genealogy.version_graph()
    assert nx.is_directed_acyclic_graph(versions)
    kinds = {kind for _, kind in versions.nodes(data="kind")}
    assert {"birth", "attack", "clone", "melt"} <= kinds
    tree = genealogy.phylogeny()
    assert nx.is_forest(tree) and max(d for _, d in tree.in_degree()) <= 1
    melted = [n for n, p in tree.nodes(data="parents") if p and "," in p]
    assert melted  # melt children name both parents
    for child in melted:
        first = int(tree.nodes[child]["parents"].split(",")[0])
        assert list(tree.predecessors(child)) == [first]
        assert tree.edges[first, child]["kind"] == "melt"


def test_respawned_zero_particle_dies_with_status_zero():
    zero = torch.zeros(1, Weightwise().num_weights)
    live = Weightwise().init(3, generator=torch.Generator().manual_seed(0))
    soup = Soup([Respawn()], population={Weightwise(): torch.cat([zero, live])}, rng=0)
    dead = int(soup.node_uid[0])
    assert soup.status_counts()["ZERO"] == 1
    soup.run_for(1)
    graph = soup.genealogy.graph
    assert graph.nodes[dead]["status"] == "ZERO"
    assert graph.nodes[dead]["death"] == 1 and graph.nodes[dead]["death_cause"] == "respawn"
    tree = soup.genealogy.phylogeny()
    assert tree.nodes[dead]["status"] == "ZERO" and tree.nodes[dead]["death_cause"] == "respawn"
    others = [n for n in graph if n != dead and "death" not in graph.nodes[n]]
    assert all(graph.nodes[n]["status"] != "ZERO" for n in others)


def test_alife_csv_round_trips(tmp_path):
    soup = soup_with_attacks_both_ways()
    path = soup.genealogy.write_alife(tmp_path / "phylogeny.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "ancestor_list", "origin_time", "destruction_time"]
    loaded = read_alife(path)
    tree = soup.genealogy.phylogeny()
    assert set(loaded.nodes) == set(tree.nodes)
    assert set(loaded.edges) == set(tree.edges)
    for uid, data in tree.nodes(data=True):
        row = loaded.nodes[uid]
        assert row["origin_time"] == data["birth"]
        assert row.get("destruction_time") == data.get("death")
        assert row.get("status") == data.get("status")
        assert row["ancestor_list"] == [int(p) for p in data.get("parents", "").split(",") if p]
        if "error" in data:
            assert row["fixpoint_error"] == pytest.approx(data["error"])


def test_events_frame_has_one_row_per_event():
    calls = story(1)
    genealogy = record(calls)
    frame = genealogy.events_frame()
    events = [event for call in calls for event in call]
    assert len(frame) == len(events)
    assert list(frame["kind"].astype(str)) == [e.kind.value for e in events]
    assert [None if v is pd_na() else v for v in frame["actor"].tolist()] == [
        e.actor for e in events
    ]
    assert frame["overwritten"].tolist() == [e.data.get("overwritten") for e in events]


def pd_na():
    import pandas as pd

    return pd.NA


def test_most_successful_lineages_ranks_by_size_without_a_status():
    calls = [
        [birth(0, u) for u in (1, 2)],
        [Event(1, CLONE, 1, None, 3)],
        [Event(2, CLONE, 3, None, 4)],
    ]
    genealogy = record(calls)
    assert genealogy.most_successful_lineages(status=None) == [(1, 3), (2, 1)]


# ---------------------------------------------------------------------- chunked tables


def test_chunked_table_append_flush_truncate_reopen(tmp_path):
    rng = np.random.default_rng(0)
    table = ChunkedTable({"uid": (np.int64, ()), "w": (np.float32, (3,))}, tmp_path / "t")
    uids, weights = [], []
    for size in (5, 0, 7, 4):
        u, w = rng.integers(0, 99, size), rng.normal(size=(size, 3))
        table.append(uid=u, w=w)
        uids.append(u)
        weights.append(w.astype(np.float32))
        table.flush()
    table.append(uid=[1, 2], w=np.ones((2, 3)))  # pending, not flushed
    uids.append(np.array([1, 2]))
    weights.append(np.ones((2, 3), np.float32))
    all_uids, all_weights = np.concatenate(uids), np.concatenate(weights)
    assert table.length == 18
    np.testing.assert_array_equal(table.read()["uid"], all_uids)
    np.testing.assert_array_equal(table.read(start=3, stop=14)["w"], all_weights[3:14])
    assert table.read()["w"].dtype == np.float32
    table.truncate(9)  # cuts the second chunk
    reopened = ChunkedTable.open(tmp_path / "t")
    assert reopened.length == 9
    np.testing.assert_array_equal(reopened.read()["uid"], all_uids[:9])
    reopened.append(uid=[7], w=np.zeros((1, 3)))
    reopened.flush()
    again = ChunkedTable.open(tmp_path / "t")
    np.testing.assert_array_equal(again.read()["uid"], np.r_[all_uids[:9], 7])
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "000000.npz",
        "000001.npz",
        "000002.npz",
        "index.json",
    ]
    frame = again.to_frame()
    assert list(frame.columns) == ["uid", "w_0", "w_1", "w_2"] and len(frame) == 10


def test_event_log_streams_to_a_directory_and_reads_back(tmp_path):
    calls = story(2)
    streamed, kept = EventLog(), EventLog()
    streamed.attach(tmp_path / "log")
    for call in calls:
        streamed.record(call)
        kept.record(call)
        streamed.flush()
    assert list(streamed) == list(kept)
    reopened = ChunkedTable.open(tmp_path / "log" / "events")
    assert reopened.length == len(kept)
    np.testing.assert_array_equal(reopened.read()["actor"], kept.columns()["actor"])
    assert reopened.meta["kinds"][: len(EventKind)] == [k.value for k in EventKind]


def test_each_version_carries_the_class_it_had():
    genealogy = record([[birth(0, u) for u in (1, 2)]])
    genealogy.set_status([1, 2], ["FIXPOINT", "FIXPOINT"], epoch=0)
    genealogy.record([Event(1, ATTACK, 1, 2)])
    genealogy.set_status([1, 2], ["FIXPOINT", "ZERO"], epoch=1)
    genealogy.set_status([1, 2], ["OTHER", "ZERO"], epoch=2)
    graph = genealogy.version_graph()
    assert graph.nodes[(2, 0)]["status"] == "FIXPOINT"
    assert graph.nodes[(2, 1)]["status"] == "ZERO"
    assert graph.nodes[(1, 0)]["status"] == "OTHER"  # its last measured class
    assert genealogy.graph.nodes[1]["status"] == "OTHER"


def test_lineage_graph_keeps_only_time_respecting_relatives():
    calls = [
        [birth(0, u) for u in (1, 2, 3, 4)],
        [Event(1, ATTACK, 1, 2)],
        [Event(2, ATTACK, 2, 3)],
        [Event(3, ATTACK, 4, 1)],  # after 1 shaped 2: 4 is no ancestor of 2 or 3
    ]
    genealogy = record(calls)
    part = genealogy.lineage_graph(3)
    assert set(part.nodes) == {1, 2, 3}
    assert sorted((u, v) for u, v in part.edges()) == [(1, 2), (2, 3)]
    assert set(genealogy.graph.nodes) == {1, 2, 3, 4}  # the structural graph links 4 to all
    assert set(genealogy.lineage_graph(1, epoch=2).nodes) == {1, 2, 3}
    assert set(genealogy.lineage_graph(1).nodes) == {1, 4}


def test_replicator_lineages_follow_the_phylogeny_from_the_root():
    calls = [[birth(0, u) for u in (1, 2)], [Event(1, CLONE, 1, 2, 3)], [Event(2, CLONE, 3, 1, 4)]]
    genealogy = record(calls)
    genealogy.set_status([3, 4], ["FIXPOINT", "FIXPOINT"], epoch=2)
    genealogy.record([Event(2, DEATH, None, 3)])
    assert genealogy.replicator_lineages() == {4: [1, 3, 4]}


def test_lineage_command_draws_one_particle_as_of_an_epoch(tmp_path, capsys):
    from chemistry.cli import main

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--population", "6", "--epochs", "4"]) == 0
    assert (out / "phylogeny.csv").is_file() and (out / "events" / "events").is_dir()
    genealogy = Genealogy.from_node_link_json(out / "genealogy.json")
    uid = max(genealogy.graph.nodes, key=lambda n: (genealogy.graph.degree(n), -n))
    capsys.readouterr()
    assert main(["lineage", str(out), "--particle", str(uid), "--epoch", "2"]) == 0
    assert (out / "figures" / f"lineage_{uid}.png").is_file()
    assert "as of epoch 2" not in capsys.readouterr().err
    assert main(["lineage", str(out), "--particle", str(uid), "--epoch", "-5"]) == 2
    assert "--epoch -5" in capsys.readouterr().err


def test_registered_kinds_take_their_inheritance_from_the_registry(monkeypatch):
    from interactions import events
    from interactions.events import register_event_kind

    monkeypatch.setattr(events, "_KINDS", dict(events._KINDS))  # registered for this test only
    mutate = register_event_kind("lineage_test_mutate", "none")  # in place: target == child
    share = register_event_kind("lineage_test_share", "horizontal")
    calls = [
        [birth(0, u) for u in (1, 2)],
        [Event(1, mutate, None, 1, 1)],
        [Event(2, share, 1, 2)],
    ]
    genealogy = record(calls)
    graph = genealogy.version_graph()
    assert graph.nodes[(1, 1)]["kind"] == "lineage_test_mutate"
    assert set(graph.predecessors((1, 1))) == {(1, 0)}
    assert set(graph.predecessors((2, 1))) == {(2, 0), (1, 1)}
    assert graph.edges[(1, 1), (2, 1)]["kind"] == "lineage_test_share"
    assert genealogy.influencers(2) == {1: 1}
    assert nx.is_forest(genealogy.phylogeny())
