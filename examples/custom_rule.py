"""Write your own soup rule in a few lines, without touching the library, and use it everywhere.

Two user rules:

* ``Average`` (a ``PairwiseInteraction``): each chosen particle moves halfway towards a
  neighbour of its architecture. The soup draws the pairs through its topology; the rule only
  says what a batch of pairs does. Its events are its own kind, ``average``, which passes
  weights horizontally (from the neighbour to the particle), as attack and learn do.
* ``Mutate`` (a plain ``Interaction``): Gaussian noise of scale ``scale`` on each particle with
  chance ``chance``, in place, recorded as the kind ``mutate`` with no inheritance.

Each class declares its configuration name (``name``) and its event kinds (``event_kinds``)
once; its constructor's arguments are its configuration keys. Two routes use them:

* Python (this script): ``Soup([Average(0.1), Mutate(0.05, 0.01), ...])``, and ``soup.save(DIR)``
  writes the run directory ``chemistry run`` writes (``--out DIR``)::

      python examples/custom_rule.py
      python examples/custom_rule.py --epochs 5 --particles 12 --out runs/custom

* TOML: ``examples/custom_rule.toml`` lists this file in ``plugins``, so the command line, sweeps,
  ``chemistry resume`` and the live view run the same rules::

      chemistry run examples/custom_rule.toml
      chemistry run examples/custom_rule.toml --set rules.mutate.scale=0.05
      chemistry rules --plugin examples/custom_rule.py
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
    EventBatch,
    Interaction,
    PairwiseInteraction,
    Respawn,
    SelfTrain,
)


class Average(PairwiseInteraction):
    """Move each actor halfway towards its partner (pairs of one architecture only).

    Args:
        chance: probability that a particle averages with a neighbour in an epoch.
        pairing: "per_particle" (every particle with the chance) or "single" (one pair).
        allow_self: a particle may pick itself.
    """

    name = "average"
    event_kinds = {"average": "horizontal"}

    def act(self, soup, actors, partners):
        same = soup.node_bank[actors] == soup.node_bank[partners]
        actors, partners = actors[same], partners[same]
        # One batch per architecture; both rows are read before any is written (synchronous).
        for bank, rows, _, partner_rows, _ in soup.pair_groups(actors, partners):
            bank.write(rows, (bank.read(rows) + bank.read(partner_rows)) / 2)
        # Weights flow from the partner (actor of the event) to the particle (its target).
        return EventBatch(soup.epoch, "average", soup.uids_at(partners), soup.uids_at(actors))


class Mutate(Interaction):
    """Gaussian noise of scale ``scale`` on each particle with chance ``chance``, in place.

    Args:
        chance: probability that a particle mutates in an epoch.
        scale: standard deviation of the noise.
    """

    name = "mutate"
    event_kinds = {"mutate": "none"}

    def __init__(self, chance: float = 0.05, scale: float = 0.01) -> None:
        if not 0 <= chance <= 1:
            raise ValueError(f"chance={chance!r} is not allowed; it must be a number in [0, 1]")
        if not scale >= 0:
            raise ValueError(f"scale={scale!r} is not allowed; it must be a number >= 0")
        self.chance, self.scale = chance, scale  # each argument under its own name

    def __call__(self, soup, participants=None):
        nodes = soup.occupied_nodes() if participants is None else participants
        nodes = nodes[torch.rand(nodes.numel(), generator=soup.index_generator) < self.chance]
        if nodes.numel() == 0:
            return []
        for bank, _, rows in soup.groups(nodes):
            w = bank.read(rows)
            noise = torch.randn(
                w.shape, generator=soup.weight_generator, dtype=w.dtype, device=w.device
            )
            bank.write(rows, w + self.scale * noise)
        uids = soup.uids_at(nodes)  # an in-place change: target and child are the particle
        return EventBatch(soup.epoch, "mutate", targets=uids, children=uids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A soup with two user-written rules.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the run directory here")
    args = parser.parse_args(argv)

    soup = Soup(
        [Average(0.1), Mutate(0.05, 0.01), SelfTrain(20), Respawn()],
        population=args.particles,
        rng=args.seed,
    )
    soup.run_for(args.epochs)
    graph = soup.genealogy.graph

    by_kind = Counter(data["kind"] for _, _, data in graph.edges(data=True))
    print(f"after {soup.epoch} epochs, genealogy edges by kind: {dict(by_kind)}")
    print("census:", ", ".join(f"{k} {v}" for k, v in soup.status_counts().items()))
    mutated = Counter(u for u, _, d in graph.edges(data=True) if d["kind"] == "mutate")
    if mutated:
        uid, times = mutated.most_common(1)[0]
        teachers = {u for u, _, d in graph.in_edges(uid, data=True) if d["kind"] == "average"}
        print(f"particle {uid} mutated {times} times, averaged with {sorted(teachers)}")
    if args.out is not None:
        soup.save(args.out, overwrite=True)
        print(f"run directory: {args.out} (try: chemistry info {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
