"""Who made whom: export a soup's genealogy, load it back and question it with networkx.

A weightwise soup with attack, learn, noisy cloning and respawn runs for a while. Its genealogy
(a ``networkx.MultiDiGraph``: nodes are particle unique ids, edges are attack / learn / clone /
melt / respawn events) is written as node-link JSON and GraphML, read back, and asked:

* which root particle has the most self-replicators (FIXPOINT) among its descendants,
* which particle is attacked most (in-degree of attack edges) and who attacks most,
* the longest time-ordered chain of attacks that shaped a living particle,
* the ancestors of the best particle (smallest fixpoint error), by blood and by any edge.

Each question is answered with plain networkx on the loaded graph, and with the ``Genealogy``
query helpers where there is one.

    python examples/lineage_analysis.py                    # files go to a temporary directory
    python examples/lineage_analysis.py --out /tmp/lineage --epochs 10 --particles 12
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx  # noqa: E402

from chemistry import Genealogy, Soup  # noqa: E402
from interactions import VERTICAL, Attack, Learn, NoisyClone, Respawn, SelfTrain  # noqa: E402
from particles import fixpoint_error  # noqa: E402


def run_soup(particles: int, epochs: int, seed: int) -> Soup:
    soup = Soup(
        [
            Attack(0.1),
            Learn(0.1, 5),
            SelfTrain(30),
            NoisyClone(0.3, 0.01),
            Respawn(),
        ],
        population=particles,
        rng=seed,
        eps=1e-4,
        record_every=0,
    )
    soup.run_for(epochs)
    return soup


def best_particle(soup: Soup) -> int:
    """The living particle with the smallest fixpoint error q (SPEC D14)."""
    best, best_q = -1, float("inf")
    for bank in soup.banks.values():
        rows = bank.rows_in_use()
        q = fixpoint_error(bank.architecture, bank.weights[rows])
        index = int(q.argmin())
        if float(q[index]) < best_q:
            best, best_q = int(bank.uids[rows[index]]), float(q[index])
    return best


def edges_of(graph: nx.MultiDiGraph, kind: str) -> nx.MultiDiGraph:
    """The subgraph of one edge kind (all nodes kept)."""
    view = nx.MultiDiGraph()
    view.add_nodes_from(graph.nodes(data=True))
    view.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True) if d["kind"] == kind)
    return view


def analyse(soup: Soup, out: Path) -> None:
    genealogy = soup.genealogy
    json_path = genealogy.to_node_link_json(out / "genealogy.json")
    graphml_path = genealogy.to_graphml(out / "genealogy.graphml")
    print(f"wrote {json_path} and {graphml_path}")

    # Load back: once as plain networkx graphs, once as Genealogy objects.
    with open(json_path, encoding="utf-8") as file:
        graph = nx.node_link_graph(json.load(file), directed=True, multigraph=True, edges="edges")
    from_graphml = nx.read_graphml(graphml_path, node_type=int, force_multigraph=True)
    assert nx.utils.edges_equal(graph.edges(), from_graphml.edges())
    loaded = Genealogy.from_node_link_json(json_path)
    assert loaded.events == genealogy.events
    kinds = Counter(d["kind"] for _, _, d in graph.edges(data=True))
    print(f"{graph.number_of_nodes()} particles, {graph.number_of_edges()} edges: {dict(kinds)}")

    # 1. Who made the most self-replicators? Roots are particles without clone/melt parents.
    vertical = nx.MultiDiGraph(
        (u, v) for u, v, d in graph.edges(data=True) if d["inheritance"] == "vertical"
    )
    vertical.add_nodes_from(graph)
    fixpoints = {n for n, s in graph.nodes(data="status") if s == "FIXPOINT"}
    made = {
        root: len(fixpoints & (nx.descendants(vertical, root) | {root}))
        for root in vertical
        if vertical.in_degree(root) == 0
    }
    top = sorted(((r, n) for r, n in made.items() if n), key=lambda item: (-item[1], item[0]))[:3]
    print(f"\nself-replicators alive or dead: {len(fixpoints)}")
    print(f"  most self-replicators by lineage (networkx): {top}")
    print(f"  Genealogy.most_successful_lineages(3):      {loaded.most_successful_lineages(3)}")

    # 2. In-degree of attacks: who is attacked most, who attacks most.
    attacks = edges_of(graph, "attack")
    victims = Counter(dict(attacks.in_degree())).most_common(3)
    attackers = Counter(dict(attacks.out_degree())).most_common(3)
    print(f"\nmost attacked (uid, attacks): {victims}")
    print(f"most active attackers:        {attackers}")

    # 3. The longest time-ordered attack chain that shaped a living particle.
    chains = {uid: loaded.attack_chain(uid) for uid in soup.particles}
    uid, chain = max(chains.items(), key=lambda item: (len(item[1]), -item[0]))
    print(f"\nlongest attack chain ends at {uid} ({len(chain)} attacks, newest first):")
    for event in chain:
        print(f"  epoch {event.epoch:>3}: {event.actor} attacked {event.target}")

    # 4. Ancestors of the best particle.
    best = best_particle(soup)
    blood = nx.ancestors(vertical, best)
    anyhow = nx.ancestors(graph, best)
    assert blood == loaded.ancestors(best, kinds=VERTICAL)
    assert anyhow == loaded.ancestors(best)
    print(f"\nbest particle {best} (status {graph.nodes[best].get('status')}):")
    print(f"  ancestors by clone/melt: {sorted(blood) or 'none'}")
    print(f"  ancestors along any edge: {len(anyhow)} particles")
    teachers = sorted({u for u, _, d in graph.in_edges(best, data=True) if d["kind"] == "learn"})
    print(f"  learned from: {teachers or 'nobody'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export and question a soup's genealogy.")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="directory (default: a temp dir)")
    args = parser.parse_args(argv)

    soup = run_soup(args.particles, args.epochs, args.seed)
    print("census:", ", ".join(f"{k} {v}" for k, v in soup.status_counts().items()))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        analyse(soup, args.out)
    else:
        with tempfile.TemporaryDirectory() as directory:
            analyse(soup, Path(directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
