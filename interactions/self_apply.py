"""SelfApply: every participant replaces its weights by its own application N ← N ◁ N."""

from __future__ import annotations

import torch

from interactions.base import Interaction, Soup
from interactions.events import Event
from particles.classification import self_apply
from particles.validation import check_count


class SelfApply(Interaction):
    """Every particle applies itself to itself ``times`` times per epoch (the operator evolves).

    Args:
        times: self-applications per epoch.
    """

    name = "self_apply"

    def __init__(self, times: int = 1) -> None:
        check_count("times", times, 0)
        self.times = times

    def __call__(self, soup: Soup, participants: torch.Tensor | None = None) -> list[Event]:
        """Self-apply all participants, one batched call per architecture."""
        nodes = soup.occupied_nodes() if participants is None else participants
        for bank, _, rows in soup.groups(nodes):
            new = self_apply(
                bank.architecture,
                bank.read(rows),
                times=self.times,
                generator=soup.weight_generator,
            )
            bank.write(rows, new)
        return []
