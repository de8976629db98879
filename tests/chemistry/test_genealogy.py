"""Tests of chemistry.genealogy: events to graph, queries, export and import."""

from __future__ import annotations

import enum
import os
import random

import networkx as nx
import pytest

from chemistry.genealogy import Genealogy
from interactions.events import HORIZONTAL, VERTICAL, Event, EventKind

ATTACK, LEARN, CLONE, MELT = EventKind.ATTACK, EventKind.LEARN, EventKind.CLONE, EventKind.MELT
RESPAWN, BIRTH, DEATH = EventKind.RESPAWN, EventKind.BIRTH, EventKind.DEATH


def birth(epoch: int, uid: int, architecture: str = "weightwise") -> Event:
    return Event(epoch, BIRTH, None, None, child=uid, data={"architecture": architecture})


def random_story(seed: int = 0, population: int = 30, epochs: int = 20) -> list[Event]:
    """A soup-like story: births, attacks, learning, clones, melts, respawns, deaths."""
    rng = random.Random(seed)
    alive = list(range(population))
    next_uid = population
    events = [birth(0, uid, rng.choice(["weightwise", "aggregating"])) for uid in alive]
    for epoch in range(1, epochs + 1):
        for _ in range(5):
            actor, target = rng.sample(alive, 2)
            events.append(
                Event(epoch, ATTACK, actor, target, data={"overwritten": rng.random() < 0.3})
            )
        actor, target = rng.sample(alive, 2)
        events.append(Event(epoch, LEARN, actor, target, data={"severity": 1, "loss": 0.25}))
        parent, victim = rng.sample(alive, 2)
        child = next_uid
        next_uid += 1
        events += [
            Event(epoch, CLONE, parent, victim, child=child, data={"noise": 1e-3}),
            Event(epoch, DEATH, None, victim),
            birth(epoch, child),
        ]
        alive[alive.index(victim)] = child
        first, second, victim = rng.sample(alive, 3)
        child = next_uid
        next_uid += 1
        events += [
            Event(epoch, MELT, first, victim, child=child),
            Event(epoch, MELT, second, victim, child=child),
            Event(epoch, DEATH, None, victim),
            birth(epoch, child),
        ]
        alive[alive.index(victim)] = child
        victim = rng.choice(alive)
        child = next_uid
        next_uid += 1
        events += [
            Event(epoch, RESPAWN, None, victim, child=child, data={"reason": "divergent"}),
            Event(epoch, DEATH, None, victim),
            birth(epoch, child),
        ]
        alive[alive.index(victim)] = child
    return events


EDGE_ENDPOINTS = {
    ATTACK: lambda event: (event.actor, event.target),
    LEARN: lambda event: (event.actor, event.target),
    CLONE: lambda event: (event.actor, event.child),
    MELT: lambda event: (event.actor, event.child),
    RESPAWN: lambda event: (event.target, event.child),
}
INHERITANCE = {ATTACK: "horizontal", LEARN: "horizontal", CLONE: "vertical", MELT: "vertical"}


def sorted_graph_data(graph: nx.MultiDiGraph) -> tuple[list, list]:
    """Nodes and edges with attributes and the attribute types, in a canonical order."""

    def typed(data: dict) -> list:
        return sorted((name, type(value).__name__, value) for name, value in data.items())

    nodes = sorted(
        (node, type(node).__name__, typed(data)) for node, data in graph.nodes(data=True)
    )
    edges = sorted(
        (source, destination, key, type(key).__name__, typed(data))
        for source, destination, key, data in graph.edges(keys=True, data=True)
    )
    return nodes, edges


# ---------------------------------------------------------------------- events -> graph


def test_edges_match_events_one_to_one():
    events = random_story()
    genealogy = Genealogy()
    genealogy.record(events)
    graph = genealogy.graph
    edge_events = [event for event in events if event.kind not in (BIRTH, DEATH)]
    assert graph.number_of_edges() == len(edge_events)
    by_index = {data["event"]: (u, v, data) for u, v, data in graph.edges(data=True)}
    assert len(by_index) == len(edge_events)
    for index, event in enumerate(events):
        if event.kind in (BIRTH, DEATH):
            assert index not in by_index
            continue
        source, destination, data = by_index[index]
        assert (source, destination) == EDGE_ENDPOINTS[event.kind](event)
        assert data["kind"] == event.kind.value and type(data["kind"]) is str
        assert data["epoch"] == event.epoch
        assert data["inheritance"] == INHERITANCE.get(event.kind, "none")
        for name, value in event.data.items():
            assert data[name] == value
        if event.kind in VERTICAL:
            assert data["replaced"] == event.target
    assert len(genealogy) == len(events)
    assert list(genealogy.events) == events


def test_nodes_carry_birth_death_and_architecture():
    events = [
        birth(0, 1, "weightwise"),
        birth(0, 2, "aggregating"),
        Event(4, CLONE, 1, 2, child=3),
        Event(4, DEATH, None, 2),
        Event(6, ATTACK, 9, 1),  # 9 was never born
    ]
    graph = Genealogy(events).graph
    assert graph.nodes[1] == {"birth": 0, "birth_event": 0, "architecture": "weightwise"}
    assert graph.nodes[2]["death"] == 4 and graph.nodes[2]["architecture"] == "aggregating"
    assert "death" not in graph.nodes[1]
    assert "birth" not in graph.nodes[3] and "birth" not in graph.nodes[9]
    assert set(graph.nodes) == {1, 2, 3, 9}


def test_graph_is_built_incrementally():
    events = random_story()
    genealogy = Genealogy()
    genealogy.record(events[:100])
    graph = genealogy.graph
    edges_before = graph.number_of_edges()
    genealogy.record(events[100:])
    assert genealogy.graph is graph
    assert graph.number_of_edges() > edges_before
    reference = Genealogy(events).graph
    assert sorted_graph_data(graph) == sorted_graph_data(reference)
    assert genealogy.graph is graph  # a second access adds nothing twice
    assert graph.number_of_edges() == reference.number_of_edges()


def test_events_are_read_only():
    genealogy = Genealogy([birth(0, 1)])
    with pytest.raises((TypeError, AttributeError)):
        genealogy.events.append(birth(0, 2))
    assert len(genealogy) == 1


def test_set_status_last_call_wins_and_accepts_enums():
    class Status(enum.IntEnum):
        ZERO = 1
        FIXPOINT = 2

    genealogy = Genealogy([birth(0, 1), birth(0, 2)])
    genealogy.set_status([1, 2], ["ZERO", "ZERO"], epoch=3)
    genealogy.set_status([2, 5], [Status.FIXPOINT, Status.ZERO], epoch=4)
    graph = genealogy.graph
    assert graph.nodes[1]["status"] == "ZERO" and graph.nodes[1]["status_epoch"] == 3
    assert graph.nodes[2]["status"] == "FIXPOINT" and type(graph.nodes[2]["status"]) is str
    assert graph.nodes[2]["status_epoch"] == 4
    assert graph.nodes[5]["status"] == "ZERO"


# ---------------------------------------------------------------------- queries


@pytest.fixture
def family() -> Genealogy:
    """1 and 2 are roots; 1 clones 3; 3 and 2 melt into 4; 4 clones 5; 6 respawns 2; 7 attacks 4."""
    events = [birth(0, uid) for uid in (1, 2, 7)] + [
        Event(1, CLONE, 1, 9, child=3),
        Event(2, MELT, 3, 8, child=4),
        Event(2, MELT, 2, 8, child=4),
        Event(3, CLONE, 4, 3, child=5),
        Event(4, RESPAWN, None, 2, child=6),
        Event(5, ATTACK, 7, 4),
    ]
    return Genealogy(events)


def test_parents_children_ancestors_descendants(family):
    assert family.parents(4) == [3, 2]
    assert family.parents(1) == []
    assert family.parents(6) == []  # respawn is not inheritance
    assert family.children(1) == [3]
    assert family.ancestors(5, kinds=VERTICAL) == {1, 2, 3, 4}
    assert family.ancestors(5) == {1, 2, 3, 4, 7}
    assert family.ancestors(4, kinds=HORIZONTAL) == {7}
    assert family.descendants(2, kinds=VERTICAL) == {4, 5}
    assert family.descendants(2) == {4, 5, 6}
    assert family.descendants(2, kinds="respawn") == {6}


def test_lineage_is_the_subgraph_of_relatives(family):
    lineage = family.lineage(3, kinds=VERTICAL)
    assert set(lineage.nodes) == {1, 2, 3, 4, 5} - {2} | {1}
    assert sorted((u, v) for u, v in lineage.edges()) == [(1, 3), (3, 4), (4, 5)]
    full = family.lineage(4)
    assert set(full.nodes) == {1, 2, 3, 4, 5, 7}
    assert full.number_of_edges() == 5
    full.add_edge(1, 2)  # the lineage is an independent copy
    assert not family.graph.has_edge(1, 2)
    edge_data = next(iter(full.get_edge_data(7, 4).values()))
    assert edge_data["kind"] == "attack" and edge_data["epoch"] == 5


def test_attack_chain_follows_attacks_back_in_time():
    events = [birth(0, uid) for uid in range(1, 8)] + [
        Event(1, ATTACK, 5, 4),  # shapes 4 before 4 attacks 3
        Event(2, ATTACK, 6, 4),  # the latest attack on 4 before epoch 3
        Event(3, ATTACK, 4, 3),
        Event(3, ATTACK, 7, 4),  # same epoch as 4 -> 3: too late to shape 4
        Event(5, ATTACK, 3, 2),
        Event(5, ATTACK, 1, 2, data={"overwritten": True}),  # discarded result
        Event(6, LEARN, 1, 2),  # learning is not followed
        Event(7, ATTACK, 2, 1),
        Event(9, ATTACK, 1, 2),
    ]
    genealogy = Genealogy(events)
    chain = genealogy.attack_chain(2, epoch=8)
    assert [(event.actor, event.target, event.epoch) for event in chain] == [
        (3, 2, 5),
        (4, 3, 3),
        (6, 4, 2),
    ]
    assert all(isinstance(event, Event) and event.kind is ATTACK for event in chain)
    latest = genealogy.attack_chain(2)
    assert [(event.actor, event.epoch) for event in latest] == [
        (1, 9),
        (2, 7),
        (3, 5),
        (4, 3),
        (6, 2),
    ]
    assert genealogy.attack_chain(2, epoch=5)[0].actor == 3
    assert genealogy.attack_chain(2, epoch=4) == []
    assert genealogy.attack_chain(5) == []


def test_attack_chain_breaks_ties_by_recording_order():
    events = [Event(3, ATTACK, 1, 9), Event(3, ATTACK, 2, 9)]
    assert Genealogy(events).attack_chain(9)[0].actor == 2


def test_most_successful_lineages_ranks_a_hand_built_story():
    # roots 1, 2, 3, 4 (4 is a respawn of 3's child)
    events = [birth(0, uid) for uid in (1, 2, 3)] + [
        Event(1, CLONE, 1, None, child=10),
        Event(1, CLONE, 1, None, child=11),
        Event(2, CLONE, 10, None, child=12),
        Event(2, MELT, 2, None, child=20),
        Event(2, MELT, 11, None, child=20),
        Event(3, CLONE, 3, None, child=30),
        Event(4, RESPAWN, None, 30, child=4),
        Event(5, CLONE, 4, None, child=40),
        Event(6, ATTACK, 12, 3),  # horizontal only
        Event(6, LEARN, 40, 2),
    ]
    genealogy = Genealogy(events)
    genealogy.set_status(
        [1, 10, 11, 12, 20, 2, 3, 30, 4, 40], ["FIXPOINT"] * 5 + ["ZERO"] * 5, epoch=6
    )
    # 1 -> {1, 10, 11, 12, 20}: 5; 2 -> {20}: 1; 3 -> {}: 0; 4 -> {}: 0
    assert genealogy.most_successful_lineages() == [(1, 5), (2, 1)]
    assert genealogy.most_successful_lineages(k=1) == [(1, 5)]
    genealogy.set_status([4, 40], ["FIXPOINT", "FIXPOINT"], epoch=7)
    assert genealogy.most_successful_lineages() == [(1, 5), (4, 2), (2, 1)]
    # through attack / learn: 3 is reached from 1 (via 12), 2 and 20 from 4 (via 40)
    horizontal = genealogy.most_successful_lineages(include_horizontal=True)
    assert horizontal == [(1, 5), (4, 3), (2, 1)]
    genealogy.set_status([3, 2], ["FIXPOINT", "FIXPOINT"], epoch=8)
    horizontal = genealogy.most_successful_lineages(include_horizontal=True)
    assert horizontal == [(1, 6), (4, 4), (2, 2), (3, 1)]
    assert genealogy.most_successful_lineages(status="ZERO") == [(3, 1)]
    assert genealogy.most_successful_lineages(status="SECOND_ORDER") == []


# ---------------------------------------------------------------------- export / import


@pytest.mark.parametrize("format_name", ["graphml", "json"])
def test_round_trip_keeps_the_graph_identical(tmp_path, format_name):
    genealogy = Genealogy(random_story(seed=3))
    genealogy.set_status(list(range(10)), ["FIXPOINT"] * 5 + ["ZERO"] * 5, epoch=20)
    path = tmp_path / f"genealogy.{format_name}"
    if format_name == "graphml":
        genealogy.to_graphml(path)
        loaded = Genealogy.from_graphml(path)
    else:
        genealogy.to_node_link_json(path)
        loaded = Genealogy.from_node_link_json(path)
    assert isinstance(loaded.graph, nx.MultiDiGraph)
    assert nx.utils.graphs_equal(loaded.graph, genealogy.graph)
    assert sorted_graph_data(loaded.graph) == sorted_graph_data(genealogy.graph)
    assert list(loaded.events) == list(genealogy.events)
    assert len(loaded) == len(genealogy)
    # queries and further recording work on the loaded genealogy
    assert loaded.most_successful_lineages() == genealogy.most_successful_lineages()
    more = [Event(21, ATTACK, 1, 2), birth(21, 999)]
    loaded.record(more)
    genealogy.record(more)
    assert sorted_graph_data(loaded.graph) == sorted_graph_data(genealogy.graph)
    assert loaded.attack_chain(2) == genealogy.attack_chain(2)


def test_writes_are_atomic_and_replace_old_files(tmp_path):
    path = tmp_path / "genealogy.json"
    path.write_text("old content")
    Genealogy(random_story()).to_node_link_json(path)
    Genealogy(random_story()).to_graphml(tmp_path / "genealogy.graphml")
    assert sorted(os.listdir(tmp_path)) == ["genealogy.graphml", "genealogy.json"]
    assert Genealogy.from_node_link_json(path).graph.number_of_edges() > 0


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "genealogy.graphml"
    path.write_text("old content")
    genealogy = Genealogy([Event(0, ATTACK, 1, 2, data={"bad": object()})])
    genealogy.graph.add_edge(1, 2, unwritable=[1, 2])  # GraphML cannot hold a list
    with pytest.raises(Exception):  # noqa: B017 - networkx raises its own error type
        genealogy.to_graphml(path)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["genealogy.graphml"]


def test_non_scalar_data_is_stored_as_json_text():
    graph = Genealogy([Event(0, ATTACK, 1, 2, data={"pair": [1, 2], "none": None})]).graph
    data = graph.get_edge_data(1, 2)[0]
    assert data["pair"] == "[1, 2]"
    assert "none" not in data


# ---------------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_errors_naming_the_value(family):
    with pytest.raises(ValueError, match="'not an event'"):
        family.record(["not an event"])
    assert len(family) == 9
    with pytest.raises(ValueError, match="uid 404"):
        family.ancestors(404)
    with pytest.raises(ValueError, match="uid 404"):
        family.attack_chain(404)
    with pytest.raises(ValueError, match="'birth'"):
        family.descendants(1, kinds=["birth"])
    with pytest.raises(ValueError, match="'hug'"):
        family.lineage(1, kinds=["hug"])
    with pytest.raises(ValueError, match="got 0"):
        family.most_successful_lineages(k=0)
    with pytest.raises(ValueError, match="2 uids and 1 statuses"):
        family.set_status([1, 2], ["FIXPOINT"], epoch=0)


def test_event_without_required_endpoint_is_reported_on_graph_access():
    genealogy = Genealogy([Event(0, ATTACK, 1, None)])
    with pytest.raises(ValueError, match="attack event without target"):
        _ = genealogy.graph
