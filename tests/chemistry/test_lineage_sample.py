"""The lineage figure of a big soup draws a sample of the particle graph, never the whole graph."""

from __future__ import annotations

import networkx as nx
import pytest

from chemistry import Soup, Topology
from chemistry.cli import main
from chemistry.genealogy import Genealogy
from interactions import Attack, Learn, Respawn, SelfTrain
from tests.chemistry.test_cli import write_config


@pytest.fixture(scope="module")
def genealogy() -> Genealogy:
    rules = [Attack(0.3), Learn(0.3, 2, lr=0.5), SelfTrain(5), Respawn()]
    soup = Soup(rules, population=30, topology=Topology.ring(30), rng=4, record_every=0)
    soup.run_for(10)
    return soup.genealogy


def test_born_on_gives_the_particles_whose_birth_was_on_those_nodes(genealogy):
    graph = genealogy.graph
    expected = sorted(uid for uid, node in graph.nodes(data="node") if node in (2, 3, 17))
    got = genealogy.born_on([2, 3, 17])
    assert got.tolist() == expected
    assert len(expected) > 3  # respawns put successors on the same nodes


def test_sample_graph_is_the_whole_graph_restricted_to_the_sample(genealogy):
    uids = genealogy.born_on(range(12))
    sample = genealogy.sample_graph(uids)
    whole = genealogy.graph.subgraph(uids.tolist())
    assert sorted(sample.nodes(data=True)) == sorted(whole.nodes(data=True))
    key = lambda edge: edge[3]["event"]  # noqa: E731
    assert sorted(sample.edges(keys=True, data=True), key=key) == sorted(
        whole.edges(keys=True, data=True), key=key
    )
    assert sample.number_of_edges() > 10
    assert isinstance(sample, nx.MultiDiGraph)


def test_a_run_above_whole_exports_up_to_draws_a_sampled_lineage(tmp_path, monkeypatch):
    config = write_config(tmp_path / "small.toml", extra="")
    config.write_text(
        config.read_text()
        .replace("[record]\n", "[record]\nwhole_exports_up_to = 5\n")
        .replace("figures = false", "figures = true"),
        encoding="utf-8",
    )

    def whole_graph(self):
        raise AssertionError("the whole particle graph was built")

    monkeypatch.setattr(Genealogy, "graph", property(whole_graph))
    assert main(["run", str(config), "--out", str(tmp_path / "big")]) == 0
    figure = tmp_path / "big" / "figures" / "lineage.png"
    assert figure.stat().st_size > 1000
