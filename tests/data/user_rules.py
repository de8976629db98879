"""A user's rule that lives outside the package, for the tests: it is loaded as a plugin.

``Mutate`` adds Gaussian noise of scale ``scale`` to each particle with chance ``chance``, in
place, and records each mutation as its own event kind ``mutate`` (no inheritance: the edge runs
from the particle to itself).
"""

from __future__ import annotations

import torch

from interactions import EventBatch, Interaction


class Mutate(Interaction):
    """Gaussian noise on a random subset of the particles, recorded as ``mutate`` events.

    Args:
        chance: probability that a particle mutates in an epoch.
        scale: standard deviation of the noise.
    """

    name = "mutate"
    event_kinds = {"mutate": "none"}

    def __init__(self, chance: float = 0.1, scale: float = 0.01) -> None:
        if not 0 <= chance <= 1:
            raise ValueError(f"chance={chance!r} is not allowed; it must be a number in [0, 1]")
        if not scale >= 0:
            raise ValueError(f"scale={scale!r} is not allowed; it must be a number >= 0")
        self.chance = chance
        self.scale = scale

    def __call__(self, soup, participants=None):
        nodes = soup.occupied_nodes() if participants is None else participants
        drawn = torch.rand(nodes.numel(), generator=soup.index_generator) < self.chance
        chosen = nodes[drawn]
        if chosen.numel() == 0:
            return []
        for bank, _, rows in soup.groups(chosen):
            weights = bank.read(rows)
            noise = torch.randn(
                weights.shape,
                generator=soup.weight_generator,
                dtype=weights.dtype,
                device=weights.device,
            )
            bank.write(rows, weights + self.scale * noise)
        uids = soup.uids_at(chosen)
        return EventBatch(soup.epoch, "mutate", targets=uids, children=uids)
