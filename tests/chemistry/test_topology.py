"""Tests of chemistry.topology: constructors, partner sampling, neighbourhood queries."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest
import torch

from chemistry.topology import Topology, as_topology


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_occupied(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


def neighbour_sets(topology: Topology) -> list[set[int]]:
    return [set(topology.graph.neighbors(node)) for node in range(topology.num_nodes)]


# ---------------------------------------------------------------------- constructors


def test_ring_has_k_neighbours_each_side():
    topology = Topology.ring(10, k=2)
    assert topology.num_nodes == 10
    assert topology.num_edges == 20
    assert topology.neighbours(0).tolist() == [1, 2, 8, 9]
    assert neighbour_sets(topology)[5] == {3, 4, 6, 7}
    assert nx.is_isomorphic(topology.graph, nx.watts_strogatz_graph(10, 4, 0.0))


def test_grid_is_a_torus_with_four_neighbours():
    topology = Topology.grid(3, 4)
    assert topology.num_nodes == 12
    assert all(degree == 4 for _, degree in topology.graph.degree())
    # slot 0 is (0, 0): right (0, 1)=1, left (0, 3)=3, down (1, 0)=4, up (2, 0)=8
    assert topology.neighbours(0).tolist() == [1, 3, 4, 8]
    expected = nx.convert_node_labels_to_integers(nx.grid_2d_graph(3, 4, periodic=True))
    assert nx.is_isomorphic(topology.graph, expected)


def test_small_world_is_seeded():
    first = Topology.small_world(60, k=4, p=0.3, seed=7)
    second = Topology.small_world(60, k=4, p=0.3, seed=7)
    other = Topology.small_world(60, k=4, p=0.3, seed=8)
    assert torch.equal(first.indices, second.indices)
    assert torch.equal(first.indptr, second.indptr)
    assert sorted(first.graph.edges()) != sorted(other.graph.edges())
    assert first.num_edges == 60 * 4 // 2


def test_csr_arrays_match_graph():
    topology = Topology.small_world(40, k=4, p=0.5, seed=1)
    indptr, indices = topology.indptr, topology.indices
    assert indptr.dtype == torch.long and indices.dtype == torch.long
    assert indptr.shape == (41,)
    for node in range(40):
        row = indices[indptr[node] : indptr[node + 1]].tolist()
        assert row == sorted(topology.graph.neighbors(node))


def test_from_graph_relabels_keeps_label_and_drops_self_loops():
    graph = nx.Graph()
    graph.add_edges_from([("a", "b"), ("b", "c"), ("c", "c")])
    graph.add_node("lonely")
    topology = Topology.from_graph(graph)
    assert topology.num_nodes == 4
    labels = nx.get_node_attributes(topology.graph, "label")
    assert labels == {0: "a", 1: "b", 2: "c", 3: "lonely"}
    assert sorted(topology.graph.edges()) == [(0, 1), (1, 2)]
    assert graph.has_edge("c", "c"), "the input graph must not be modified"


def test_complete_graph_materialises_small_and_matches_networkx():
    topology = Topology.complete(6)
    assert topology.is_implicit
    assert topology.num_edges == 15
    assert nx.utils.edges_equal(topology.graph.edges(), nx.complete_graph(6).edges())
    assert topology.indices.numel() == 30


def test_complete_of_100000_slots_is_cheap_and_refuses_the_graph():
    start = time.perf_counter()
    topology = Topology.complete(100_000)
    occupied = torch.zeros(100_000, dtype=torch.bool)
    occupied[::3] = True
    partners = topology.sample_partners(torch.arange(100_000), occupied, generator=generator())
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    assert topology.num_edges == 100_000 * 99_999 // 2
    assert topology._indices_numpy is None  # no n^2 neighbour list was built
    assert bool(occupied[partners].all())
    assert bool((partners != torch.arange(100_000)).all())
    with pytest.raises(ValueError, match="MAX_MATERIALISED_EDGES"):
        _ = topology.graph
    with pytest.raises(ValueError, match="MAX_MATERIALISED_EDGES"):
        _ = topology.indices


def test_disjoint_cliques_components_and_graph():
    topology = Topology.disjoint_cliques(10, 10)
    assert topology.num_nodes == 100
    assert topology.components().tolist() == [slot // 10 for slot in range(100)]
    assert topology.num_components == 10
    assert nx.number_connected_components(topology.graph) == 10
    assert topology.num_edges == 10 * 45


def test_components_of_a_general_graph():
    graph = nx.disjoint_union(nx.path_graph(3), nx.cycle_graph(4))
    graph.add_node(7)
    topology = Topology.from_graph(graph)
    assert topology.components().tolist() == [0, 0, 0, 1, 1, 1, 1, 2]


def test_as_topology_accepts_none_topology_and_graph():
    assert as_topology(None, 5).kind == "complete"
    ring = Topology.ring(5)
    assert as_topology(ring, 5) is ring
    from_graph = as_topology(nx.cycle_graph(5), 5)
    assert sorted(from_graph.graph.edges()) == sorted(nx.cycle_graph(5).edges())
    assert as_topology(Topology.ring(8), 5).num_nodes == 8  # spare slots are allowed


# ---------------------------------------------------------------------- sample_partners


def test_ring_partners_are_neighbours_and_every_neighbour_is_drawn():
    topology = Topology.ring(12, k=2)
    nodes = torch.arange(12).repeat(200)
    partners = topology.sample_partners(nodes, all_occupied(12), generator=generator())
    assert partners.shape == nodes.shape and partners.dtype == torch.long
    assert bool(topology.are_neighbours(nodes, partners).all())
    neighbours = neighbour_sets(topology)
    for node in range(12):
        drawn = set(partners[nodes == node].tolist())
        assert drawn == neighbours[node]


@pytest.mark.parametrize(
    "topology",
    [
        Topology.ring(20, k=3),
        Topology.grid(4, 5),
        Topology.complete(20),
        Topology.disjoint_cliques(4, 5),
        Topology.small_world(20, k=4, p=0.5, seed=3),
    ],
    ids=repr,
)
def test_unoccupied_slots_are_never_picked(topology):
    occupied = torch.ones(20, dtype=torch.bool)
    occupied[[1, 2, 7, 13, 19]] = False
    nodes = torch.arange(20).repeat(100)
    for allow_self in (False, True):
        partners = topology.sample_partners(
            nodes, occupied, generator=generator(1), allow_self=allow_self
        )
        picked = partners[partners >= 0]
        assert picked.numel() > 0
        assert bool(occupied[picked].all())
        not_self = partners != nodes
        assert bool(topology.are_neighbours(nodes[not_self], partners[not_self]).all())


def test_minus_one_without_candidates():
    graph = nx.path_graph(3)
    graph.add_node(3)  # isolated
    topology = Topology.from_graph(graph)
    occupied = torch.tensor([True, False, True, True])
    partners = topology.sample_partners(torch.arange(4), occupied, generator=generator())
    # 0's only neighbour (1) is empty, 1 has 0 and 2, 2's only neighbour is empty, 3 is isolated
    assert partners[[0, 2, 3]].tolist() == [-1, -1, -1]
    assert partners[1].item() in (0, 2)
    with_self = topology.sample_partners(
        torch.tensor([3, 3]), occupied, generator=generator(), allow_self=True
    )
    assert with_self.tolist() == [3, 3]


def test_minus_one_in_empty_complete_soups():
    topology = Topology.complete(5)
    occupied = torch.tensor([False, False, True, False, False])
    partners = topology.sample_partners(torch.arange(5), occupied, generator=generator())
    assert partners.tolist() == [2, 2, -1, 2, 2]
    nobody = topology.sample_partners(
        torch.arange(5), torch.zeros(5, dtype=torch.bool), generator=generator()
    )
    assert nobody.tolist() == [-1] * 5
    cliques = Topology.disjoint_cliques(2, 3)
    occupied = torch.tensor([True, False, False, False, True, True])
    partners = cliques.sample_partners(torch.arange(6), occupied, generator=generator())
    assert partners.tolist() == [-1, 0, 0, partners[3].item(), 5, 4]
    assert partners[3].item() in (4, 5)


def test_empty_query_returns_empty():
    for topology in (Topology.ring(5), Topology.complete(5)):
        partners = topology.sample_partners(
            torch.zeros(0, dtype=torch.long), all_occupied(5), generator=generator()
        )
        assert partners.shape == (0,)


@pytest.mark.parametrize("topology", [Topology.ring(9, k=2), Topology.complete(9)], ids=repr)
def test_allow_self_can_pick_self_and_default_never_does(topology):
    nodes = torch.arange(9).repeat(300)
    default = topology.sample_partners(nodes, all_occupied(9), generator=generator(2))
    assert not bool((default == nodes).any())
    with_self = topology.sample_partners(
        nodes, all_occupied(9), generator=generator(2), allow_self=True
    )
    picks_self = with_self == nodes
    assert bool(picks_self.any())
    # every node gets itself sometimes; candidates are its degree + 1
    for node in range(9):
        assert bool(picks_self[nodes == node].any())
    # an unoccupied node cannot pick itself even with allow_self
    occupied = all_occupied(9)
    occupied[4] = False
    partners = topology.sample_partners(
        torch.full((500,), 4), occupied, generator=generator(3), allow_self=True
    )
    assert not bool((partners == 4).any())


def test_same_seed_same_partners_different_seed_different():
    topology = Topology.small_world(200, k=6, p=0.2, seed=0)
    occupied = torch.rand(200, generator=generator(9)) < 0.7
    nodes = torch.arange(200)
    first = topology.sample_partners(nodes, occupied, generator=generator(5))
    second = topology.sample_partners(nodes, occupied, generator=generator(5))
    third = topology.sample_partners(nodes, occupied, generator=generator(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, third)
    complete = Topology.complete(200)
    assert torch.equal(
        complete.sample_partners(nodes, occupied, generator=generator(5)),
        complete.sample_partners(nodes, occupied, generator=generator(5)),
    )


def test_sampling_advances_the_given_generator_only():
    topology = Topology.ring(10)
    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    gen = generator(4)
    first = topology.sample_partners(torch.arange(10), all_occupied(10), generator=gen)
    second = topology.sample_partners(torch.arange(10), all_occupied(10), generator=gen)
    assert torch.equal(torch.get_rng_state(), global_state)
    assert not torch.equal(first, second)


def test_implicit_and_explicit_complete_graphs_draw_identically():
    occupied = torch.rand(30, generator=generator(1)) < 0.6
    nodes = torch.arange(30).repeat(5)
    implicit = Topology.complete(30).sample_partners(nodes, occupied, generator=generator(8))
    explicit = Topology.from_graph(nx.complete_graph(30)).sample_partners(
        nodes, occupied, generator=generator(8)
    )
    assert torch.equal(implicit, explicit)


def chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def test_partners_are_uniform_in_a_complete_soup():
    topology = Topology.complete(11)
    occupied = all_occupied(11)
    occupied[7] = False
    partners = topology.sample_partners(
        torch.zeros(45_000, dtype=torch.long), occupied, generator=generator(11)
    )
    counts = np.bincount(partners.numpy(), minlength=11)
    assert counts[0] == 0 and counts[7] == 0
    allowed = np.delete(counts, [0, 7])
    # 8 degrees of freedom: P(chi2 > 60) is about 5e-10
    assert chi_square(allowed) < 60.0


def test_partners_are_uniform_on_a_graph():
    graph = nx.star_graph(8)  # centre 0 with leaves 1..8
    topology = Topology.from_graph(graph)
    occupied = all_occupied(9)
    occupied[3] = False
    partners = topology.sample_partners(
        torch.zeros(35_000, dtype=torch.long), occupied, generator=generator(12)
    )
    counts = np.bincount(partners.numpy(), minlength=9)
    assert counts[0] == 0 and counts[3] == 0
    assert chi_square(np.delete(counts, [0, 3])) < 60.0  # 6 degrees of freedom


def test_partners_stay_inside_their_soup():
    topology = Topology.disjoint_cliques(10, 10)
    nodes = torch.arange(100).repeat(20)
    partners = topology.sample_partners(nodes, all_occupied(100), generator=generator())
    assert torch.equal(partners // 10, nodes // 10)
    assert not bool((partners == nodes).any())


# ---------------------------------------------------------------------- are_neighbours


def test_are_neighbours_matches_networkx():
    topology = Topology.small_world(50, k=4, p=0.4, seed=2)
    a = torch.randint(0, 50, (2000,), generator=generator())
    b = torch.randint(0, 50, (2000,), generator=generator(1))
    result = topology.are_neighbours(a, b)
    expected = [topology.graph.has_edge(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert result.tolist() == expected
    assert bool(result.any()) and not bool(result.all())


def test_are_neighbours_on_implicit_topologies():
    cliques = Topology.disjoint_cliques(3, 4)
    a = torch.tensor([0, 0, 3, 4, 5, 11])
    b = torch.tensor([3, 4, 3, 7, 5, 8])
    assert cliques.are_neighbours(a, b).tolist() == [True, False, False, True, False, True]
    assert Topology.complete(3).are_neighbours(a[:1], b[:1] - 1).tolist() == [True]


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Topology.complete(0), "got 0"),
        (lambda: Topology.complete(2.5), "got 2.5"),
        (lambda: Topology.ring(10, k=5), "got k=5"),
        (lambda: Topology.ring(10, k=0), "got k=0"),
        (lambda: Topology.ring(2), "got 2"),
        (lambda: Topology.grid(2, 5), "got 2"),
        (lambda: Topology.grid(5, 0), "cols"),
        (lambda: Topology.small_world(20, k=4, p=1.5, seed=0), "p=1.5"),
        (lambda: Topology.small_world(20, k=3, p=0.1, seed=0), "k=3"),
        (lambda: Topology.small_world(20, k=4, p=0.1, seed=None), "None"),
        (lambda: Topology.disjoint_cliques(0, 4), "num_soups"),
        (lambda: Topology.from_graph(nx.DiGraph([(0, 1)])), "DiGraph"),
        (lambda: Topology.from_graph(nx.MultiGraph([(0, 1)])), "MultiGraph"),
        (lambda: Topology.from_graph([(0, 1)]), "list"),
        (lambda: as_topology(Topology.ring(5), 6), "at least n=6"),
        (lambda: as_topology("ring", 6), "'ring'"),
    ],
)
def test_bad_constructor_input_names_the_value(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()


def test_bad_sampling_input_names_the_value():
    topology = Topology.ring(6)
    gen = generator()
    with pytest.raises(ValueError, match=r"\(7,\)"):
        topology.sample_partners(torch.arange(6), all_occupied(7), generator=gen)
    with pytest.raises(ValueError, match="int64"):
        topology.sample_partners(torch.arange(6), torch.ones(6, dtype=torch.long), generator=gen)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        topology.sample_partners(
            torch.zeros(2, 3, dtype=torch.long), all_occupied(6), generator=gen
        )
    with pytest.raises(ValueError, match="got 6"):
        topology.sample_partners(torch.tensor([0, 6]), all_occupied(6), generator=gen)
    with pytest.raises(ValueError, match="got -1"):
        Topology.complete(6).sample_partners(torch.tensor([-1]), all_occupied(6), generator=gen)
    with pytest.raises(ValueError, match="float32"):
        topology.sample_partners(torch.zeros(2), all_occupied(6), generator=gen)
    with pytest.raises(ValueError, match="generator"):
        topology.sample_partners(torch.arange(6), all_occupied(6), generator=None)
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        topology.are_neighbours(torch.arange(3), torch.arange(2))
