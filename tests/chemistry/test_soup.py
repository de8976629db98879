"""The Soup as a Mesa model: agents, seeds, schedules, topology, records, divergence, errors."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

from chemistry import Soup, Topology
from interactions import (
    Attack,
    Event,
    EventKind,
    Interaction,
    Learn,
    Melt,
    NoisyClone,
    Respawn,
    SelfTrain,
)
from particles import Aggregating, Particle, Recurrent, Status, Weightwise, self_train
from tests.soup_helpers import by_kind, make_soup, same, value_error, weights_by_uid

EVERYTHING = [
    Attack(0.3),
    Learn(0.3, 2),
    SelfTrain(3),
    NoisyClone(0.2, 0.05, pairing="per_particle"),
    Melt(0.2, pairing="per_particle"),
    Respawn(),
]
MIXED = {Weightwise(): 4, Aggregating(): 4, Recurrent(): 4}


def busy_soup(seed: int, **options) -> Soup:
    """A soup with births and deaths every epoch (clones, melts, respawns)."""
    options.setdefault("population", 12)
    return make_soup(EVERYTHING, rng=seed, **options)


# --------------------------------------------------------------------------------------------
# Mesa agents and unique ids


def test_particles_are_the_mesa_agents_of_the_soup():
    soup = make_soup(population=MIXED)
    assert len(soup) == len(soup.agents) == 12
    assert len(soup.agents_by_type[Particle]) == 12
    assert {a.unique_id for a in soup.agents} == set(soup.particles)
    for uid, particle in soup.particles.items():
        assert particle.model is soup
        assert soup.particle_at(particle.node) is particle
        assert soup.node_uid[particle.node] == uid
        assert particle.bank.uids[particle.row] == uid


def test_dead_particles_leave_mesa_and_newcomers_get_new_ids():
    soup = make_soup([Respawn()], population=5)
    old = soup.particle_at(3)
    old.bank.weights[old.row] = math.nan
    soup.step()
    assert old not in soup.agents and old.unique_id not in soup.particles
    new = soup.particle_at(3)
    assert new.unique_id > max(uid for uid in soup.particles if uid != new.unique_id)
    assert new.birth == 1 and new.node == 3
    assert len(soup.agents) == 5


def test_unique_ids_never_repeat_over_a_long_run():
    soup = busy_soup(seed=1, population=10)
    seen = set(soup.particles)
    deaths = 0
    for _ in range(40):
        soup.step()
        born = [e.child for e in by_kind(soup.last_events, EventKind.BIRTH)]
        assert not seen & set(born), "a unique id was used twice"
        assert all(uid > max(seen) for uid in born)
        seen |= set(born)
        deaths += len(by_kind(soup.last_events, EventKind.DEATH))
        assert len(soup.agents) == len(soup.particles) == 10
        assert {a.unique_id for a in soup.agents} == set(soup.particles)
    assert deaths > 20, "the run should replace many particles"
    births = by_kind(soup.genealogy.events, EventKind.BIRTH)
    assert len(births) == len({e.child for e in births}) == len(seen)


# --------------------------------------------------------------------------------------------
# Seeds


def run_record(seed: int, **options) -> tuple:
    soup = busy_soup(seed, **options)
    soup.run_for(8)
    banks = [bank.weights.clone() for bank in soup.banks.values()]
    rows = soup.datacollector.get_model_vars_dataframe()
    return banks, soup.genealogy.events, rows


@pytest.mark.parametrize("population", [12, MIXED], ids=["weightwise", "mixed"])
def test_the_same_seed_gives_the_same_run_and_another_seed_another(population):
    banks, events, rows = run_record(5, population=population)
    banks_again, events_again, rows_again = run_record(5, population=population)
    assert all(same(a, b) for a, b in zip(banks, banks_again, strict=True))
    assert events == events_again
    assert rows.equals(rows_again)
    other_banks, other_events, other_rows = run_record(6, population=population)
    assert not all(
        a.shape == b.shape and same(a, b) for a, b in zip(banks, other_banks, strict=True)
    )
    assert events != other_events
    assert not rows.equals(other_rows)


def test_a_numpy_generator_seeds_the_soup_too():
    a = make_soup([Attack(0.5), SelfTrain(2)], rng=np.random.default_rng(3))
    b = make_soup([Attack(0.5), SelfTrain(2)], rng=np.random.default_rng(3))
    a.run_for(3)
    b.run_for(3)
    assert a.genealogy.events == b.genealogy.events


# --------------------------------------------------------------------------------------------
# Genealogy and topology


def test_genealogy_edges_match_the_events_one_to_one():
    soup = busy_soup(seed=2)
    soup.run_for(10)
    events = soup.genealogy.events
    graph = soup.genealogy.graph
    edge_kinds = {"attack", "learn", "clone", "melt", "respawn"}
    expected = [i for i, e in enumerate(events) if e.kind.value in edge_kinds]
    edges = sorted(graph.edges(data=True), key=lambda edge: edge[2]["event"])
    assert [d["event"] for _, _, d in edges] == expected
    for source, target, data in edges:
        event = events[data["event"]]
        assert data["kind"] == event.kind.value and data["epoch"] == event.epoch
        if event.kind in (EventKind.ATTACK, EventKind.LEARN):
            assert (source, target) == (event.actor, event.target)
        elif event.kind in (EventKind.CLONE, EventKind.MELT):
            assert (source, target) == (event.actor, event.child)
            assert data["replaced"] == event.target
        else:
            assert (source, target) == (event.target, event.child)
    assert {d["kind"] for _, _, d in edges} == edge_kinds
    for uid in soup.particles:
        assert graph.nodes[uid]["status"] in {s.name for s in Status}
    births = by_kind(events, EventKind.BIRTH)
    assert all(graph.nodes[e.child]["birth"] == e.epoch for e in births)
    for death in by_kind(events, EventKind.DEATH):
        assert graph.nodes[death.target]["death"] == death.epoch


def test_events_carry_the_epoch_they_happened_in():
    soup = busy_soup(seed=3)
    for epoch in range(1, 5):
        soup.step()
        assert soup.epoch == epoch
        assert soup.last_events and {e.epoch for e in soup.last_events} == {epoch}


def test_on_a_ring_every_attack_and_learn_joins_neighbours():
    ring = Topology.ring(12, k=1)
    soup = make_soup([Attack(0.5), Learn(0.5), SelfTrain(1)], population=12, topology=ring)
    soup.run_for(10)
    pairs = [
        (soup.particles[e.actor].node, soup.particles[e.target].node)
        for e in soup.genealogy.events
        if e.kind in (EventKind.ATTACK, EventKind.LEARN)
    ]
    assert len(pairs) > 30
    actors, targets = (torch.tensor(column) for column in zip(*pairs, strict=True))
    assert bool(ring.are_neighbours(actors, targets).all())
    assert {int(d) for d in (actors - targets) % 12} == {1, 11}


def test_a_soup_may_use_part_of_a_larger_topology():
    soup = make_soup([Attack(1.0), SelfTrain(1)], population=5, topology=nx.path_graph(8))
    soup.run_for(3)
    assert len(soup) == 5 and sorted(p.node for p in soup.particles.values()) == list(range(5))
    assert soup.free_nodes().tolist() == [5, 6, 7]


# --------------------------------------------------------------------------------------------
# Divergence


def test_a_divergent_particle_is_respawned_and_poisons_no_other_row():
    soup = make_soup([SelfTrain(5), Respawn()], population=8, rng=4)
    sick = soup.particle_at(5)
    sick.bank.weights[sick.row, 3] = math.nan
    healthy = {uid: w for uid, w in weights_by_uid(soup).items() if uid != sick.unique_id}
    uids = list(healthy)
    expected = self_train(
        Weightwise(), torch.stack([healthy[u] for u in uids]), steps=5, lr=0.04
    ).weights
    soup.step()
    for uid, row in zip(uids, expected, strict=True):
        torch.testing.assert_close(soup.particles[uid].weights, row, rtol=1e-12, atol=1e-12)
    kinds = [e.kind for e in soup.last_events]
    assert kinds == [EventKind.DEATH, EventKind.BIRTH, EventKind.RESPAWN]
    respawn = soup.last_events[-1]
    assert respawn.target == sick.unique_id and respawn.child not in uids
    fresh = soup.particle_at(5)
    assert fresh.unique_id == respawn.child and torch.isfinite(fresh.weights).all()
    assert soup.status_counts()["DIVERGENT"] == 0
    assert soup.genealogy.graph.nodes[sick.unique_id]["death"] == 1


def test_without_respawn_a_divergent_particle_stays_divergent_and_alone():
    soup = make_soup([Attack(0.3), SelfTrain(2)], population=8, rng=5)
    sick = soup.particle_at(0)
    sick.bank.weights[sick.row] = math.inf
    soup.run_for(3)
    assert sick.divergent
    statuses = soup.node_status[soup.occupied_nodes()]
    poisoned = {e.target for e in soup.genealogy.events if e.kind == EventKind.ATTACK} & set(
        soup.particles
    )
    # Only the sick particle, and victims of attack chains starting at it, may be divergent.
    assert int((statuses == Status.DIVERGENT).sum()) <= 1 + len(poisoned)
    assert soup.status_counts()["DIVERGENT"] >= 1


@pytest.mark.parametrize("zero", [True, False])
def test_zero_particles_are_respawned_only_with_zero_true(zero):
    soup = make_soup([Respawn(zero=zero)], population=4)
    dull = soup.particle_at(2)
    dull.bank.weights[dull.row] = 0.0
    soup.step()
    assert (dull.unique_id in soup.particles) is not zero
    if not zero:
        assert soup.status_counts()["ZERO"] == 1


# --------------------------------------------------------------------------------------------
# Mixed architectures and schedules


def test_a_mixed_soup_runs_every_rule_across_architectures():
    soup = make_soup(EVERYTHING, population=MIXED, rng=6)
    soup.run_for(6)
    assert len(soup) == 12
    names = {soup.architecture_names[p.architecture] for p in soup.particles.values()}
    assert names <= {"ww", "agg", "rnn"}
    attacks = [e for e in soup.genealogy.events if e.kind == EventKind.ATTACK]
    graph = soup.genealogy.graph
    crossing = [
        e
        for e in attacks
        if graph.nodes[e.actor]["architecture"] != graph.nodes[e.target]["architecture"]
    ]
    assert crossing, "attacks between architectures should happen"
    rows = soup.datacollector.get_model_vars_dataframe()
    for name in ("ww", "agg", "rnn"):
        per_type = rows[[f"{s.name.lower()}[{name}]" for s in Status]].sum(axis=1)
        assert (per_type >= 0).all()
    totals = sum(rows[[f"{s.name.lower()}[{n}]" for s in Status]].sum(axis=1) for n in names)
    assert (totals == rows["particles"]).all()


def test_sequential_schedule_runs_and_differs_from_synchronous():
    rules = [Attack(0.3), Learn(0.3), SelfTrain(2), Respawn()]
    runs = {}
    for schedule in ("synchronous", "sequential"):
        soup = make_soup(rules, population=8, rng=7, schedule=schedule)
        soup.run_for(4)
        assert len(soup) == 8
        runs[schedule] = (soup.banks[Weightwise()].weights.clone(), soup.genealogy.events)
    assert not same(runs["synchronous"][0], runs["sequential"][0])
    assert runs["sequential"][1], "the sequential run should record events"


def test_single_mode_rules_act_at_most_once_per_epoch_under_the_sequential_schedule():
    rules = [Attack(0.5, pairing="single"), NoisyClone(1.0, 0.01)]  # NoisyClone: single by default
    soup = make_soup(rules, population=10, rng=3, schedule="sequential")
    attacks = []
    for _ in range(12):
        soup.step()
        counts = soup.last_event_counts()
        assert counts[EventKind.CLONE] == 1
        attacks.append(counts[EventKind.ATTACK])
    assert set(attacks) == {0, 1}
    # The same rule objects in another soup draw for that soup.
    other = make_soup(rules, population=10, rng=4, schedule="sequential")
    other.step()
    assert other.last_event_counts()[EventKind.CLONE] == 1


def test_sequential_rules_see_the_weights_changed_before_them():
    # Sequential: a particle's self-training acts on the weights its attack just wrote.
    soup = make_soup([Attack(1.0), SelfTrain(1)], population=2, rng=8, schedule="sequential")
    before = weights_by_uid(soup)
    first, second = sorted(soup.particles, key=lambda u: soup.particles[u].node)
    soup.step()
    arch = Weightwise()
    # Node order: first attacks second, first trains; then second attacks first, second trains.
    w2 = arch.apply(before[first][None], arch, before[second][None])
    w1 = self_train(arch, before[first][None], steps=1, lr=0.04).weights
    w1 = arch.apply(w2, arch, w1)
    w2 = self_train(arch, w2, steps=1, lr=0.04).weights
    torch.testing.assert_close(soup.particles[first].weights, w1[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(soup.particles[second].weights, w2[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Records: trajectories and data collection


def test_trajectories_record_every_k_epochs_with_the_right_uids():
    soup = make_soup([SelfTrain(2), Respawn()], population=6, record_every=3)
    soup.run_for(5)
    sick = soup.particle_at(0)
    sick.bank.weights[sick.row] = math.nan  # respawned at epoch 6
    soup.run_for(2)
    epochs, uids, weights = soup.trajectories.arrays("ww")
    assert sorted(set(epochs.tolist())) == [0, 3, 6]
    for epoch in (0, 3):
        assert sorted(uids[epochs == epoch].tolist()) == sorted(set(uids[epochs == 0].tolist()))
    at_six = set(uids[epochs == 6].tolist())
    assert at_six == set(soup.particles) and sick.unique_id not in at_six
    assert sick.unique_id in set(uids[epochs == 3].tolist())
    # The epoch-6 record was taken after epoch 6; epoch 7 added nothing.
    assert len(uids) == 18
    projection = soup.trajectories.pca()
    assert projection.points.shape == (18, 2)
    assert np.isfinite(projection.points).all()
    assert sorted(set(projection.uids.tolist())) == sorted(set(uids.tolist()))


def test_trajectories_hold_the_weights_of_that_epoch():
    soup = make_soup([SelfTrain(1)], population=4, record_every=1)
    soup.run_for(2)
    epochs, uids, weights = soup.trajectories.arrays("ww")
    now = weights_by_uid(soup)
    for uid, row in zip(uids[epochs == 2], weights[epochs == 2], strict=True):
        np.testing.assert_array_equal(row, now[int(uid)].float().numpy())


def test_trajectories_off_records_nothing():
    soup = make_soup([SelfTrain(1)], population=4, record_every=0)
    soup.run_for(3)
    assert len(soup.trajectories) == 0


def test_datacollector_counts_are_integers_and_sum_to_the_particles():
    soup = busy_soup(seed=9)
    soup.run_for(6)
    rows = soup.datacollector.get_model_vars_dataframe()
    assert len(rows) == 7 and rows["epoch"].tolist() == list(range(7))
    for column, values in soup.datacollector.model_vars.items():
        kind = float if column.startswith("fixpoint_error") else int
        assert all(type(v) is kind for v in values), column
    counts = rows[[s.name.lower() for s in Status]].sum(axis=1)
    assert (counts == rows["particles"]).all() and (rows["particles"] == 12).all()
    last = soup.last_events
    for kind in EventKind:
        assert rows[f"events_{kind.value}"].iloc[-1] == len(by_kind(last, kind))
    assert rows["events_attack"].sum() > 0


def test_collect_every_k_epochs():
    soup = make_soup([SelfTrain(1)], population=4, collect_every=2)
    soup.run_for(5)
    assert soup.datacollector.get_model_vars_dataframe()["epoch"].tolist() == [0, 2, 4]


# --------------------------------------------------------------------------------------------
# Bad input


class Bad(Interaction):
    def __call__(self, soup):
        return "nothing"


@pytest.mark.parametrize(
    "options, fragments",
    [
        ({"population": 0}, ("population=0", "empty")),
        ({"population": []}, ("population=[]", "empty")),
        ({"population": -3}, ("-3",)),
        ({"population": 2.5}, ("population=2.5",)),
        ({"population": {Weightwise(): 0}}, ("empty",)),
        ({"population": 10, "topology": Topology.ring(5)}, ("5 nodes", "10 particles")),
        ({"population": 10, "topology": "ring"}, ("topology='ring'",)),
        ({"rules": [SelfTrain(1), 3]}, ("3", "Interaction")),
        ({"rules": [SelfTrain(1), "atack"]}, ("'atack'", "attack, learn")),
        ({"rules": [SelfTrain(1), "attack"]}, ("'attack'", "attack_chance=")),
        ({"rules": [Attack]}, ("Attack", "without arguments")),
        ({"rules": ["attack"], "attack_chanse": 0.1}, ("attack_chanse", "attack_chance")),
        ({"rules": [SelfTrain(1)], "popultion": 5}, ("popultion",)),
        ({"epochs": -2}, ("epochs=-2",)),
        ({"eps": 0}, ("eps=0",)),
        ({"eps": -1e-5}, ("eps=-1e-05",)),
        ({"schedule": "async"}, ("schedule='async'",)),
        ({"record_every": -1}, ("record_every=-1",)),
        ({"collect_every": 1.5}, ("collect_every=1.5",)),
        ({"dtype": torch.float16}, ("torch.float16",)),
    ],
)
def test_bad_soup_arguments_raise_value_errors_naming_the_value(options, fragments):
    rules = options.pop("rules", [SelfTrain(1)])
    with value_error(*fragments):
        Soup(rules, **options)


def test_negative_epochs_raise_and_zero_epochs_do_nothing():
    soup = make_soup([SelfTrain(1)], population=3)
    with value_error("epochs=-1"):
        soup.run_for(-1)
    soup.run_for(0)
    assert soup.epoch == 0
    soup.run_for(2)
    assert soup.epoch == 2


def test_a_rule_returning_no_list_is_a_type_error_naming_what_it_returned():
    soup = make_soup([Bad()], population=3)
    with pytest.raises(TypeError, match="str"):
        soup.step()


# --------------------------------------------------------------------------------------------
# A custom rule


class Swap(Interaction):
    """Swaps the weights of the first two particles (same architecture) every epoch."""

    def __call__(self, soup, participants=None):
        nodes = soup.occupied_nodes()[:2]
        ((bank, _, rows),) = soup.groups(nodes)
        bank.write(rows, bank.read(rows.flip(0)))
        first, second = soup.uids_at(nodes).tolist()
        return [Event(soup.epoch, EventKind.ATTACK, first, second, data={"swap": True})]


def test_a_custom_rule_plugs_into_the_soup_and_the_genealogy():
    soup = make_soup([Swap(), SelfTrain(1)], population=4)
    a, b = soup.particle_at(0), soup.particle_at(1)
    wa, wb = a.weights, b.weights
    soup.run_for(3)
    edges = [d for _, _, d in soup.genealogy.graph.edges(data=True) if d.get("swap")]
    assert [d["epoch"] for d in edges] == [1, 2, 3]
    assert soup.genealogy.graph.has_edge(a.unique_id, b.unique_id)
    rows = soup.datacollector.get_model_vars_dataframe()
    assert rows["events_attack"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert not same(a.weights, wa) and not same(b.weights, wb)
    sequential = make_soup([Swap()], population=4, schedule="sequential")
    sequential.step()  # called with participants, one particle at a time
    assert len(by_kind(sequential.last_events, EventKind.ATTACK)) == 4


def test_population_weights_start_the_soup_from_given_particles():
    """A weight tensor in place of a count puts exactly those particles into the soup."""
    arch = Weightwise()
    given = arch.init(5, generator=torch.Generator().manual_seed(11))
    soup = Soup([SelfTrain(0)], population={arch: given, Aggregating(): 2}, rng=0)
    nodes = soup.occupied_nodes()[:5]
    bank, _, rows = soup.groups(nodes)[0]
    assert bank.architecture == arch
    assert torch.equal(bank.read(rows), given)
    epochs, uids, weights = soup.trajectories.arrays("ww")
    assert (epochs == 0).all() and torch.equal(torch.from_numpy(weights).float(), given)
    with pytest.raises(ValueError, match=r"population weights .* shape \[5, 3\]"):
        Soup([SelfTrain(0)], population={arch: given[:, :3]}, rng=0)
