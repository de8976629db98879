"""Who made whom, and when: question a soup's genealogy with plain networkx.

A weightwise soup with attack, learn, self-training, noisy cloning and respawn runs for a while.
Its genealogy is then read through the documented views (README, "Lineage analysis"):

* ``soup.genealogy.version_graph()``: a DAG on particle versions ``(uid, k)`` (a particle at
  birth, and again after every event that changed its weights), edges from the versions that
  produced it; node attributes ``uid``, ``k``, ``epoch``, ``kind``, ``status``;
* ``soup.genealogy.phylogeny()``: the clone / melt forest on particle uids;
* ``phylogeny.csv`` (ALife Data Standard) and the events as a pandas DataFrame.

and asked, with networkx only: the longest lineage, the ancestry of every self-replicator alive
at the end, the particle whose attacks reached the most descendants, and the time from birth to
fixpoint along a lineage.

    python examples/lineage_analysis.py                    # files go to a temporary directory
    python examples/lineage_analysis.py --out /tmp/lineage --epochs 60 --particles 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import networkx as nx  # noqa: E402

from chemistry import Soup  # noqa: E402
from chemistry.alife import read_alife  # noqa: E402
from interactions import Attack, Learn, NoisyClone, Respawn, SelfTrain  # noqa: E402


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


def analyse(soup: Soup, out: Path) -> None:
    genealogy = soup.genealogy
    versions = genealogy.version_graph()
    tree = genealogy.phylogeny()
    csv_path = genealogy.write_alife(out / "phylogeny.csv")
    events = genealogy.events_frame()
    print(
        f"{tree.number_of_nodes()} particles, {len(events)} events "
        f"({', '.join(f'{k} {n}' for k, n in events['kind'].value_counts().items() if n)})"
    )
    print(
        f"version DAG: {versions.number_of_nodes()} versions, {versions.number_of_edges()} "
        f"edges, acyclic: {nx.is_directed_acyclic_graph(versions)}; phylogeny a forest: "
        f"{nx.is_forest(tree)}"
    )
    loaded = read_alife(csv_path)
    assert set(loaded.edges) == set(tree.edges), "the ALife CSV must give back the same tree"
    print(f"wrote {csv_path} ({loaded.number_of_nodes()} rows; read back: the same tree)")

    # 1. The longest lineage: most generations of clones, and the longest influence chain.
    generations = nx.dag_longest_path(tree)
    print(f"\nlongest lineage (clone / melt generations): {len(generations) - 1} generations")
    print("  " + " -> ".join(map(str, generations)))
    chain = nx.dag_longest_path(versions)
    print(
        f"longest chain of influence: {len(chain)} versions over "
        f"{len({uid for uid, _ in chain})} particles, epochs {versions.nodes[chain[0]]['epoch']}"
        f" to {versions.nodes[chain[-1]]['epoch']}"
    )

    # 2. The ancestry of every self-replicator alive at the end.
    alive = [uid for uid, data in tree.nodes(data=True) if "death" not in data]
    replicators = [uid for uid in alive if tree.nodes[uid].get("status") == "FIXPOINT"]
    last_version = {}
    for uid, k in versions.nodes:
        last_version[uid] = max(k, last_version.get(uid, -1))
    print(f"\nself-replicators alive at the end: {len(replicators)} of {len(alive)}")
    for uid in replicators[:8]:
        mine = (uid, last_version[uid])
        ancestry = nx.ancestors(versions, mine)
        shapers = {a for a, _ in ancestry} - {uid}
        blood = list(nx.ancestors(tree, uid))
        print(
            f"  {uid}: {len(ancestry)} ancestor versions from {len(shapers)} other particles; "
            f"clone ancestors {sorted(blood) or 'none'}"
        )
    if len(replicators) > 8:
        print(f"  ... and {len(replicators) - 8} more")

    # 3. The particle whose attacks reached the most descendants (time-respecting).
    reached = defaultdict(set)
    for source, target, kind in versions.edges(data="kind"):
        if kind == "attack":
            below = nx.descendants(versions, target) | {target}
            reached[source[0]] |= {uid for uid, _ in below}
    if reached:
        champion, particles = max(reached.items(), key=lambda item: (len(item[1]), -item[0]))
        attacks = sum(
            1 for s, _, k in versions.edges(data="kind") if k == "attack" and s[0] == champion
        )
        print(
            f"\nattacks that reached the most particles: {champion}'s {attacks} attacks reached "
            f"{len(particles - {champion})} other particles"
        )

    # 4. Time from birth to fixpoint along a lineage: the first FIXPOINT version on the path
    # from the root of a replicator's phylogeny down to it.
    deepest = sorted(replicators, key=lambda uid: (-len(nx.ancestors(tree, uid)), uid))
    for uid in deepest[:3]:
        path = [*nx.ancestors(tree, uid), uid]
        path.sort(key=lambda n: tree.nodes[n].get("birth", 0))
        root = path[0]
        fixpoints = [
            data["epoch"]
            for node, data in versions.nodes(data=True)
            if node[0] in path and data.get("status") == "FIXPOINT"
        ]
        born = tree.nodes[root].get("birth", 0)
        if not fixpoints:
            continue
        print(
            f"\nlineage {' -> '.join(map(str, path))}: root born at epoch {born}, first "
            f"self-replicator version at epoch {min(fixpoints)}: {min(fixpoints) - born} epochs"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Question a soup's genealogy with networkx.")
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
