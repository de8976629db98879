"""Respawn: replace divergent and zero particles by fresh ones (SPEC R4)."""

from __future__ import annotations

import torch

from interactions.base import Interaction, Soup
from interactions.events import EventBatch, EventBatches, EventKind


class Respawn(Interaction):
    """Replace each DIVERGENT particle and each particle with max|w_i| ≤ ε (a size test).

    The newcomer is freshly initialised, has a new unique id, no parents, and takes the node of
    the particle it replaces.

    Args:
        divergent: replace particles that ever held a non-finite weight.
        zero: replace particles whose weights are all within ``eps`` of 0.
        eps: the size threshold of the zero test (default: the soup's eps).
    """

    name = "respawn"

    def __init__(self, divergent: bool = True, zero: bool = True, eps: float | None = None):
        if eps is not None and not eps > 0:
            raise ValueError(f"eps={eps!r} is not allowed; it must be a number > 0 or None")
        self.divergent = bool(divergent)
        self.zero = bool(zero)
        self.eps = eps
        self.last_divergent = 0  # divergent particles replaced by the latest call (for a census)

    def __call__(self, soup: Soup, participants: torch.Tensor | None = None) -> EventBatches:
        """Find the particles to replace and respawn them, one batch per architecture."""
        nodes = soup.occupied_nodes() if participants is None else participants
        eps = self.eps if self.eps is not None else soup.eps
        batches = []
        self.last_divergent = 0
        for bank, positions, rows in soup.groups(nodes):
            # The whole bank is read in place (nothing is written here).
            whole = rows is bank.every_row()
            weights = bank.weights if whole else bank.read(rows)
            divergent = bank.divergent if whole else bank.divergent[rows]
            # max |w_i| per particle: NaN or inf exactly when a weight is not finite.
            size = weights.abs().amax(dim=1)
            # 2: diverged, 1: zero, 0: kept; one transfer to the host, where nodes live.
            fate = torch.zeros(rows.numel(), dtype=torch.int8, device=weights.device)
            if self.zero:
                fate[size <= eps] = 1
            if self.divergent:
                fate[divergent | ~torch.isfinite(size)] = 2
            fate = fate.cpu()
            doomed = fate > 0
            if not bool(doomed.any()):
                continue
            self.last_divergent += int((fate == 2).sum())
            targets = nodes[positions[doomed]]
            old = soup.uids_at(targets)
            fresh = bank.architecture.init(
                targets.numel(),
                generator=soup.weight_generator,
                device=bank.device,
                dtype=bank.dtype,
            )
            replaced, new = soup.replace(targets, bank.architecture, fresh)
            batches += [replaced, EventBatch(soup.epoch, EventKind.RESPAWN, None, old, new)]
        return EventBatches(batches)
