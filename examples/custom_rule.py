"""Write your own soup rule in a few lines, without touching the library.

Two user rules:

* ``Average`` (a ``PairwiseInteraction``): each chosen particle moves halfway towards a
  neighbour of its architecture. The soup draws the pairs through its topology; the rule only
  says what a batch of pairs does. It logs LEARN events (weights flow from the neighbour).
* ``Mutate`` (a plain ``Interaction``): a random fraction of particles is replaced by noisy
  copies of themselves, logged as CLONE events, so the mutants are children in the genealogy.

Both plug into a soup next to built-in rules; their events land in the genealogy graph.

    python examples/custom_rule.py
    python examples/custom_rule.py --epochs 5 --particles 12
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from chemistry import Soup  # noqa: E402
from interactions import (  # noqa: E402
    VERTICAL,
    Event,
    EventBatch,
    EventKind,
    Interaction,
    PairwiseInteraction,
    Respawn,
    SelfTrain,
)


class Average(PairwiseInteraction):
    """Move each actor halfway towards its partner (pairs of one architecture only)."""

    def act(self, soup, actors, partners):
        same = soup.node_bank[actors] == soup.node_bank[partners]
        actors, partners = actors[same], partners[same]
        # One batch per architecture; each reads both rows before writing (synchronous rule).
        for bank, rows, _, partner_rows, _ in soup.pair_groups(actors, partners):
            bank.write(rows, (bank.read(rows) + bank.read(partner_rows)) / 2)
        # A list of Event objects works too; an EventBatch is cheaper for many pairs.
        return EventBatch(
            soup.epoch,
            EventKind.LEARN,
            soup.uids_at(partners),
            soup.uids_at(actors),
            data={"rule": "average"},
        )


class Mutate(Interaction):
    """Replace a random ``fraction`` of the particles by copies with Gaussian noise of ``scale``."""

    def __init__(self, fraction: float, scale: float) -> None:
        self.fraction, self.scale = fraction, scale

    def __call__(self, soup, participants=None):
        nodes = soup.occupied_nodes() if participants is None else participants
        nodes = nodes[torch.rand(nodes.numel(), generator=soup.index_generator) < self.fraction]
        events = []
        for bank, positions, rows in soup.groups(nodes):
            w = bank.read(rows)
            noise = torch.randn(
                w.shape, generator=soup.weight_generator, dtype=w.dtype, device=w.device
            )
            parents = soup.uids_at(nodes[positions]).tolist()
            born, children = soup.replace(
                nodes[positions], bank.architecture, w + self.scale * noise, [(p,) for p in parents]
            )
            events += born + [
                Event(soup.epoch, EventKind.CLONE, p, p, c, {"rule": "mutate"})
                for p, c in zip(parents, children.tolist(), strict=True)
            ]
        return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A soup with two user-written rules.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    soup = Soup(
        [Average(0.1), Mutate(0.05, 0.01), SelfTrain(20), Respawn()],
        population=args.particles,
        rng=args.seed,
    )
    soup.run_for(args.epochs)
    genealogy = soup.genealogy
    graph = genealogy.graph

    by_rule = Counter(data.get("rule", data["kind"]) for _, _, data in graph.edges(data=True))
    print(f"after {soup.epoch} epochs, genealogy edges by rule: {dict(by_rule)}")
    print("census:", ", ".join(f"{k} {v}" for k, v in soup.status_counts().items()))

    mutants = [uid for uid in soup.particles if soup.particles[uid].parents]
    if mutants:
        uid = max(mutants, key=lambda u: len(genealogy.ancestors(u, kinds=VERTICAL)))
        line = sorted(genealogy.ancestors(uid, kinds=VERTICAL)) + [uid]
        print(f"longest line of mutants alive: {' -> '.join(map(str, line))}")
        averaged_with = {u for u, _, d in graph.in_edges(uid, data=True) if d.get("rule")}
        print(f"particle {uid} was averaged with or mutated from: {sorted(averaged_with)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
