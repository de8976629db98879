"""The built-in rules (SPEC R1-R6) against the kernel, and user-written rules.

Every rule is called directly on a small float64 soup, ``events = rule(soup)``; the weights
before the call are the rule's snapshot. Expected results come from the kernel functions in
``particles`` applied to that snapshot, one pair or one batch at a time.
"""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch

from chemistry import Soup, Topology
from interactions import (
    Attack,
    Event,
    EventBatch,
    EventKind,
    Interaction,
    Learn,
    Melt,
    NoisyClone,
    PairwiseInteraction,
    Respawn,
    SelfApply,
    SelfTrain,
)
from particles import Aggregating, Recurrent, Weightwise, learn, self_apply, self_train
from tests.soup_helpers import (
    architecture_of,
    bank_snapshot,
    by_kind,
    make_soup,
    run_rule,
    same,
    value_error,
    weights_by_uid,
)

TIGHT = {"rtol": 1e-12, "atol": 1e-12}
MIXED = {Weightwise(): 4, Aggregating(): 4, Recurrent(): 4}


def kept(events) -> list[Event]:
    return [e for e in events if not e.data.get("overwritten")]


# --------------------------------------------------------------------------------------------
# R1 attack


@pytest.mark.parametrize("population", [12, MIXED], ids=["weightwise", "mixed"])
def test_attack_changes_exactly_its_targets_to_the_application_of_the_snapshot(population):
    soup = make_soup(population=population, rng=1)
    before = weights_by_uid(soup)
    banks_before = bank_snapshot(soup)
    events = list(Attack(0.6)(soup))
    assert events, "the draw should produce attacks"
    assert all(e.kind == EventKind.ATTACK and e.epoch == 0 for e in events)
    targets = {e.target for e in events}
    for event in kept(events):
        attacker = architecture_of(soup, event.actor)
        victim = architecture_of(soup, event.target)
        expected = attacker.apply(before[event.actor][None], victim, before[event.target][None])
        torch.testing.assert_close(soup.particles[event.target].weights, expected[0], **TIGHT)
        assert not same(expected[0], before[event.target]), "the attack should change the victim"
    for uid, weights in before.items():
        if uid not in targets:
            assert same(soup.particles[uid].weights, weights), f"non-target {uid} changed"
    # Rows that hold no particle are untouched too.
    for arch, bank in soup.banks.items():
        free = bank.uids < 0
        assert same(bank.weights[free], banks_before[arch][free])
    if population is MIXED:
        pairs = {(architecture_of(soup, e.actor), architecture_of(soup, e.target)) for e in events}
        assert any(a != v for a, v in pairs), "expected attacks across architectures"


def test_attack_reads_the_snapshot_when_an_attacker_is_itself_attacked():
    # A ring of 3 where everybody attacks: every attacker is also a victim in the same rule.
    soup = make_soup(population=3, topology=Topology.from_graph(nx.cycle_graph(3)), rng=2)
    before = weights_by_uid(soup)
    events = list(Attack(1.0)(soup))
    assert len(events) == 3
    for event in kept(events):
        arch = architecture_of(soup, event.actor)
        expected = arch.apply(before[event.actor][None], arch, before[event.target][None])[0]
        torch.testing.assert_close(soup.particles[event.target].weights, expected, **TIGHT)


def test_several_attackers_on_one_victim_keep_exactly_one_result():
    # A star: every leaf can only attack the centre, so the centre is hit by all five leaves.
    soup = make_soup(population=6, topology=nx.star_graph(5), rng=3)
    centre = soup.particle_at(0).unique_id
    before = weights_by_uid(soup)
    events = list(Attack(1.0)(soup))
    on_centre = [e for e in events if e.target == centre]
    assert len(on_centre) == 5
    winners = [e for e in on_centre if not e.data]
    losers = [e for e in on_centre if e.data]
    assert len(winners) == 1 and len(losers) == 4
    assert all(e.data == {"overwritten": True} for e in losers)
    arch = architecture_of(soup, centre)
    expected = arch.apply(before[winners[0].actor][None], arch, before[centre][None])[0]
    torch.testing.assert_close(soup.particles[centre].weights, expected, **TIGHT)
    # The centre's own attack on a leaf is not overwritten.
    (own,) = [e for e in events if e.actor == centre]
    assert own.data == {}


def test_the_kept_attacker_is_drawn_uniformly():
    winners = []
    for seed in range(40):
        soup = make_soup(population=3, topology=nx.star_graph(2), rng=seed)
        centre = soup.particle_at(0).unique_id
        events = Attack(1.0)(soup)
        winners += [e.actor for e in events if e.target == centre and not e.data]
    assert len(winners) == 40
    leaves = set(winners)
    assert len(leaves) == 2
    share = winners.count(min(leaves)) / 40
    assert 0.2 < share < 0.8


def test_attack_returns_an_event_batch_that_reads_like_a_list_of_events():
    soup = make_soup(population=8, rng=4)
    batch = Attack(1.0)(soup)
    assert isinstance(batch, EventBatch) and len(batch) == 8
    events = list(batch)
    assert batch[0] == events[0] and batch[-1] == events[-1] and batch[1:3] == events[1:3]
    assert all(isinstance(e, Event) for e in events)
    assert events[0].data is not events[1].data


def test_single_mode_attacks_at_most_once_per_call():
    soup = make_soup(population=10, rng=5)
    counts = [len(Attack(0.5, pairing="single")(soup)) for _ in range(20)]
    assert set(counts) == {0, 1}


def test_attack_with_allow_self_can_hit_the_attacker():
    soup = make_soup(population=2, rng=6)
    events = [e for _ in range(20) for e in Attack(1.0, allow_self=True)(soup)]
    assert any(e.actor == e.target for e in events)
    assert any(e.actor != e.target for e in events)


def test_aggregating_attacker_needs_victims_of_at_least_b_weights():
    tiny = Weightwise(width=1, depth=0)
    assert tiny.num_weights == 4
    big = Aggregating(aggregates=5)
    with value_error("Attack", "at least 5", "has 4"):
        Soup([Attack(0.1)], population={tiny: 2, big: 2}, rng=0)
    with value_error("Learn", "at least 5", "has 4"):
        Soup([Learn(0.1)], population={tiny: 2, big: 2}, rng=0)
    Soup([SelfTrain(1)], population={tiny: 2, big: 2}, rng=0)  # other rules do not care


# --------------------------------------------------------------------------------------------
# R2 learn, R3 self-train, self-application


@pytest.mark.parametrize("population", [12, MIXED], ids=["weightwise", "mixed"])
def test_learn_trains_learners_only_and_matches_the_kernel_on_the_snapshot(population):
    soup = make_soup(population=population, rng=7)
    before = weights_by_uid(soup)
    rule = Learn(0.7, severity=3, lr=0.05)
    events = list(rule(soup))
    assert events and all(e.kind == EventKind.LEARN for e in events)
    assert all(e.data == {"steps": 3} for e in events)
    learners = {e.target for e in events}
    assert len(learners) == len(events), "each learner learns once per rule"
    for event in events:
        learner, teacher = event.target, event.actor
        expected = learn(
            architecture_of(soup, learner),
            before[learner][None],
            architecture_of(soup, teacher),
            before[teacher][None],
            steps=3,
            lr=0.05,
            mode="full_batch",
        ).weights[0]
        torch.testing.assert_close(soup.particles[learner].weights, expected, **TIGHT)
    for uid, weights in before.items():
        if uid not in learners:
            assert same(soup.particles[uid].weights, weights), "a teacher or bystander changed"
    assert {e.actor for e in events} - learners, "some teacher should not be a learner"


def test_learn_with_per_sample_preset_changes_only_learners():
    soup = make_soup(population=10, rng=8, preset="keras2019")
    before = weights_by_uid(soup)
    events = list(Learn(0.5, severity=2)(soup))
    learners = {e.target for e in events}
    assert learners
    for uid, weights in before.items():
        changed = not same(soup.particles[uid].weights, weights)
        assert changed == (uid in learners)


@pytest.mark.parametrize("preset", ["journal2021", "keras2019"])
def test_self_train_equals_the_kernel_on_the_same_rows(preset):
    soup = make_soup(population=MIXED, rng=9, preset=preset)
    rows = {arch: bank.read(bank.rows_in_use()) for arch, bank in soup.banks.items()}
    generator = torch.Generator().set_state(soup.weight_generator.get_state())
    rule = SelfTrain(4)  # lr and training mode: the soup's preset's (SPEC Table 2)
    lr, mode = {"journal2021": (0.04, "full_batch"), "keras2019": (0.01, "per_sample")}[preset]
    assert rule(soup) == []
    for arch, bank in soup.banks.items():
        expected = self_train(
            arch, rows[arch], steps=4, lr=lr, mode=mode, generator=generator
        ).weights
        assert same(bank.read(bank.rows_in_use()), expected)


def test_self_train_with_zero_steps_changes_nothing():
    soup = make_soup(population=5)
    before = bank_snapshot(soup)
    assert SelfTrain(0)(soup) == []
    assert all(same(soup.banks[a].weights, w) for a, w in before.items())


def test_self_apply_equals_the_kernel():
    soup = make_soup(population=MIXED, rng=10)
    rows = {arch: bank.read(bank.rows_in_use()) for arch, bank in soup.banks.items()}
    assert SelfApply(2)(soup) == []
    for arch, bank in soup.banks.items():
        assert same(bank.read(bank.rows_in_use()), self_apply(arch, rows[arch], times=2))


# --------------------------------------------------------------------------------------------
# R4 respawn


def put(soup: Soup, uid: int, value: float) -> None:
    """Overwrite every weight of one particle in its bank row."""
    particle = soup.particles[uid]
    particle.bank.weights[particle.row] = value


def test_respawn_replaces_a_divergent_particle_by_a_fresh_one():
    soup = make_soup(population=6, rng=11)
    doomed = soup.particle_at(2)
    put(soup, doomed.unique_id, math.nan)
    before = weights_by_uid(soup)
    newest = max(soup.particles)
    events = Respawn()(soup)
    assert [e.kind for e in events] == [EventKind.DEATH, EventKind.BIRTH, EventKind.RESPAWN]
    death, birth, respawn = events
    assert death.target == doomed.unique_id
    assert birth.child == respawn.child and respawn.target == doomed.unique_id
    fresh = soup.particles[respawn.child]
    assert fresh.unique_id > newest
    assert fresh.node == 2 and fresh.parents == () and fresh.birth == soup.epoch
    assert doomed.unique_id not in soup.particles and doomed not in soup.agents
    assert torch.isfinite(fresh.weights).all() and not fresh.divergent
    for uid, weights in before.items():
        if uid != doomed.unique_id:
            assert same(soup.particles[uid].weights, weights)


@pytest.mark.parametrize("zero", [True, False])
def test_zero_particles_are_respawned_only_when_asked(zero):
    soup = make_soup(population=5, rng=12)
    uid = soup.particle_at(1).unique_id
    put(soup, uid, 0.0)
    events = Respawn(zero=zero)(soup)
    assert (uid in soup.particles) is not zero
    assert len(by_kind(events, EventKind.RESPAWN)) == int(zero)


def test_respawn_size_test_uses_eps():
    soup = make_soup(population=4, rng=13, eps=1e-3)
    small, big = soup.particle_at(0).unique_id, soup.particle_at(1).unique_id
    put(soup, small, 1e-3)  # max|w| <= eps: replaced (non-strict, SPEC §0)
    put(soup, big, 2e-3)
    Respawn()(soup)
    assert small not in soup.particles and big in soup.particles
    put(soup, big, 1e-2)
    Respawn(eps=0.05)(soup)
    assert big not in soup.particles


def test_respawn_keeps_divergent_particles_when_divergent_is_false():
    soup = make_soup(population=4, rng=14)
    uid = soup.particle_at(0).unique_id
    put(soup, uid, math.inf)
    assert Respawn(divergent=False)(soup) == []
    assert uid in soup.particles


# --------------------------------------------------------------------------------------------
# R5 melt, R6 noisy clone


@pytest.mark.parametrize("noise", ["uniform", "double_uniform"])
def test_noisy_clone_child_is_near_its_parent_and_replaces_the_victim(noise):
    soup = make_soup(population=8, rng=15)
    before = weights_by_uid(soup)
    scale = 0.01
    events = run_rule(soup, NoisyClone(1.0, scale, noise=noise, pairing="per_particle"))
    clones = by_kind(events, EventKind.CLONE)
    assert clones
    graph = soup.genealogy.graph
    for event in clones:
        child = soup.particles[event.child]
        assert child.parents == (event.actor,)
        assert event.target not in soup.particles, "the victim dies"
        assert event.target in before and event.target != event.actor
        difference = (child.weights - before[event.actor]).abs()
        assert float(difference.max()) <= scale and float(difference.max()) > 0
        assert soup.genealogy.parents(event.child) == [event.actor]
        edges = graph.get_edge_data(event.actor, event.child)
        assert [d["kind"] for d in edges.values()] == ["clone"]
        assert [d["replaced"] for d in edges.values()] == [event.target]
    assert len(soup.particles) == 8 == len(soup.agents)


def test_noisy_clone_single_mode_makes_at_most_one_child():
    soup = make_soup(population=8, rng=16)
    counts = [len(by_kind(NoisyClone(0.5, 0.1)(soup), EventKind.CLONE)) for _ in range(20)]
    assert set(counts) == {0, 1}


def test_melt_child_takes_half_of_parent_one_and_the_rest_of_parent_two():
    soup = make_soup(population=MIXED, rng=17)
    children = 0
    for _ in range(25):
        snapshot = weights_by_uid(soup)
        events = run_rule(soup, Melt(1.0))
        melts = by_kind(events, EventKind.MELT)
        for first, second in zip(melts[::2], melts[1::2], strict=True):
            assert first.child == second.child and first.target == second.target
            child = soup.particles[first.child]
            assert child.parents == (first.actor, second.actor)
            assert soup.genealogy.parents(child.unique_id) == [first.actor, second.actor]
            assert first.target not in soup.particles
            one, two, mix = snapshot[first.actor], snapshot[second.actor], child.weights
            from_one, from_two = mix == one, mix == two
            assert bool((from_one | from_two).all()), "every weight comes from a parent"
            # Where the parents agree (relatives after earlier melts) the source is ambiguous.
            only_one, either = int((from_one & ~from_two).sum()), int((from_one & from_two).sum())
            assert only_one <= mix.numel() // 2 <= only_one + either
            children += 1
    assert children >= 5


@pytest.mark.parametrize("seed", range(5))
def test_melt_of_unrelated_parents_takes_exactly_half_from_parent_one(seed):
    soup = make_soup(population=MIXED, rng=seed)
    before = weights_by_uid(soup)
    events = []
    while not events:
        events = by_kind(run_rule(soup, Melt(1.0)), EventKind.MELT)
    first, second = events
    one, two = before[first.actor], before[second.actor]
    child = soup.particles[first.child].weights
    r = child.numel()
    assert int((child == one).sum()) == r // 2 and int((child == two).sum()) == r - r // 2


def test_melt_drops_pairs_of_different_architectures():
    soup = make_soup(population={Weightwise(): 1, Aggregating(): 1, Recurrent(): 1}, rng=18)
    for _ in range(10):
        assert Melt(1.0, pairing="per_particle")(soup) == []


@pytest.mark.parametrize("rule", [NoisyClone(1.0, 0.01), Melt(1.0)], ids=["clone", "melt"])
def test_grow_puts_children_on_free_topology_nodes(rule):
    rule.grow = True
    soup = make_soup(population=4, topology=Topology.complete(7), rng=19)
    uids = set(soup.particles)
    for expected in (5, 6, 7, 7):
        events = rule(soup)
        assert len(soup.particles) == expected == len(soup.agents)
        assert not by_kind(events, EventKind.DEATH), "growing never kills"
    assert uids <= set(soup.particles)
    assert sorted(p.node for p in soup.particles.values()) == list(range(7))
    assert len(soup.free_nodes()) == 0


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "make, fragments",
    [
        (lambda: Attack(1.5), ("chance=1.5", "[0, 1]")),
        (lambda: Attack(-0.1), ("chance=-0.1",)),
        (lambda: Learn(math.nan), ("chance=nan",)),
        (lambda: NoisyClone(2, 0.1), ("chance=2",)),
        (lambda: Melt(-1), ("chance=-1",)),
        (lambda: Attack(0.1, pairing="sometimes"), ("pairing='sometimes'",)),
        (lambda: SelfTrain(-1), ("steps=-1",)),
        (lambda: SelfTrain(2.5), ("steps=2.5",)),
        (lambda: Learn(0.1, severity=-2), ("severity=-2",)),
        (lambda: SelfApply(-3), ("times=-3",)),
        (lambda: SelfTrain(1, lr=-0.1), ("lr=-0.1",)),
        (lambda: SelfTrain(1, training_mode="sgd"), ("training_mode='sgd'",)),
        (lambda: Learn(0.1, lr=0), ("lr=0",)),
        (lambda: NoisyClone(0.1, -1.0), ("scale=-1.0",)),
        (lambda: NoisyClone(0.1, 0.1, noise="gauss"), ("noise='gauss'",)),
        (lambda: Respawn(eps=0), ("eps=0",)),
    ],
)
def test_bad_rule_arguments_raise_value_errors_naming_the_value(make, fragments):
    with value_error(*fragments):
        make()


# --------------------------------------------------------------------------------------------
# User-written rules


class Mutate(Interaction):
    """Adds noise to a random fraction of the particles (a user rule, no library code touched)."""

    def __init__(self, fraction: float, scale: float) -> None:
        self.fraction, self.scale = fraction, scale

    def __call__(self, soup):
        nodes = soup.occupied_nodes()
        picked = nodes[torch.rand(nodes.numel(), generator=soup.index_generator) < self.fraction]
        for bank, _, rows in soup.groups(picked):
            noise = torch.randn(
                rows.numel(),
                bank.architecture.num_weights,
                generator=soup.weight_generator,
                dtype=bank.dtype,
            )
            bank.write(rows, bank.read(rows) + self.scale * noise)
        return [
            Event(soup.epoch, EventKind.RESPAWN, None, uid, uid, {"mutation": self.scale})
            for uid in soup.uids_at(picked).tolist()
        ]


class Average(PairwiseInteraction):
    """Moves each actor halfway towards a neighbour of the same architecture."""

    def act(self, soup, actors, partners):
        events = []
        for actor_bank, actor_rows, partner_bank, partner_rows, positions in soup.pair_groups(
            actors, partners
        ):
            if actor_bank is not partner_bank:
                continue
            middle = (actor_bank.read(actor_rows) + partner_bank.read(partner_rows)) / 2
            actor_bank.write(actor_rows, middle)
            for a, p in zip(
                soup.uids_at(actors[positions]).tolist(),
                soup.uids_at(partners[positions]).tolist(),
                strict=True,
            ):
                events.append(Event(soup.epoch, "learn", p, a, data={"rule": "average"}))
        return events


def test_a_user_interaction_plugs_in_and_its_events_reach_the_genealogy():
    soup = make_soup([Mutate(0.5, 0.1)], population=6, rng=20)
    soup.run_for(3)
    mutations = [e for e in soup.genealogy.events if e.data.get("mutation")]
    assert mutations and all(e.epoch in (1, 2, 3) for e in mutations)
    graph = soup.genealogy.graph
    loops = [(u, d) for u, v, d in graph.edges(data=True) if u == v]
    assert len(loops) == len(mutations)
    assert all(d["mutation"] == 0.1 for _, d in loops)


def test_a_user_pairwise_rule_plugs_in_and_acts_on_the_snapshot():
    soup = make_soup(population=6, rng=21, topology=nx.cycle_graph(6))
    before = weights_by_uid(soup)
    events = Average(1.0)(soup)
    assert len(events) == 6
    # This user rule reads all rows of a batch before writing, so it sees the snapshot.
    for event in events:
        expected = (before[event.target] + before[event.actor]) / 2
        torch.testing.assert_close(soup.particles[event.target].weights, expected, **TIGHT)
    soup.rules.append(Average(0.5))
    soup.run_for(2)
    averages = [e for e in soup.genealogy.events if e.data.get("rule") == "average"]
    learn_edges = [d for _, _, d in soup.genealogy.graph.edges(data=True) if d["kind"] == "learn"]
    assert len(learn_edges) == len(averages) > 0


def test_a_rule_returning_something_else_than_a_list_of_events_is_a_type_error():
    class Bad(Interaction):
        def __init__(self, result):
            self.result = result

        def __call__(self, soup):
            return self.result

    for result, fragment in [(None, "NoneType"), ((), "tuple"), ([1], "int"), ({}, "dict")]:
        soup = make_soup([Bad(result)], population=3)
        with pytest.raises(TypeError, match=fragment):
            soup.step()


# --------------------------------------------------------------------------------------------
# Event batches


def test_event_batch_columns_and_errors():
    batch = EventBatch(
        4,
        "attack",
        torch.tensor([1, 2, -1]),
        [5, 6, 7],
        data={"a": 1},
        columns={"overwritten": [None, True, None]},
    )
    assert len(batch) == 3 and batch.kind == EventKind.ATTACK
    assert list(batch) == [
        Event(4, EventKind.ATTACK, 1, 5, None, {"a": 1}),
        Event(4, EventKind.ATTACK, 2, 6, None, {"a": 1, "overwritten": True}),
        Event(4, EventKind.ATTACK, None, 7, None, {"a": 1}),
    ]
    batch[0].data["a"] = 2
    assert batch[0].data == {"a": 1}, "every event gets its own data dict"
    with pytest.raises(IndexError):
        batch[3]
    with value_error("kind 'hug'"):
        EventBatch(0, "hug", [1], [2])
    with value_error("targets", "2 entries, expected 1"):
        EventBatch(0, "learn", [1], [2, 3])
    with value_error("'x'", "expected 1"):
        EventBatch(0, "learn", [1], [2], columns={"x": [1, 2]})
    with value_error("at least one of"):
        EventBatch(0, "learn")


def test_genealogy_keeps_the_order_of_mixed_lists_and_batches():
    soup = make_soup(population=3)
    genealogy = soup.genealogy_record
    start = len(genealogy)
    first = [Event(1, EventKind.LEARN, 1, 2)]
    batch = EventBatch(1, EventKind.ATTACK, [2, 3], [3, 1])
    last = [Event(1, EventKind.LEARN, 3, 1)]
    for chunk in (first, batch, last):
        genealogy.record(chunk)
    assert len(genealogy) == start + 4
    assert list(genealogy.events[start:]) == first + list(batch) + last
    edges = sorted(genealogy.graph.edges(data=True), key=lambda e: e[2]["event"])[-4:]
    assert [d["kind"] for _, _, d in edges] == ["learn", "attack", "attack", "learn"]


def test_genealogy_builds_the_same_graph_from_a_batch_as_from_its_events():
    from chemistry import Genealogy

    batches = [
        EventBatch(2, "attack", [1, 2, 3], [2, 3, 1], columns={"overwritten": [None, True, None]}),
        EventBatch(2, "learn", [4, 4], [1, 2], data={"steps": 3, "kind": "x", "loss": 0.5}),
        EventBatch(3, "respawn", None, [1], [9]),  # not a horizontal batch: event by event
        EventBatch(3, "attack", [None, 2], [1, 3]),  # a missing actor: event by event (error)
    ]
    lazy, eager = Genealogy(), Genealogy()
    for batch in batches[:3]:
        lazy.record(batch)
        eager.record(list(batch))
    assert nx.utils.graphs_equal(lazy.graph, eager.graph)
    assert lazy.events == eager.events and len(lazy) == len(eager) == 6
    assert lazy.graph.get_edge_data(4, 1)[0]["data_kind"] == "x"
    lazy.record(batches[3])
    with value_error("without actor"):
        lazy.graph  # noqa: B018
