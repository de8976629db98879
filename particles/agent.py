"""Particle: the thin Mesa agent that stands for one network, a row of a WeightBank."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import torch

from particles.architectures import Architecture
from particles.bank import WeightBank

if TYPE_CHECKING:
    from collections.abc import Sequence


class Particle(mesa.Agent):
    """One small neural network living in a soup.

    Its weights are not stored on the agent but in row ``row`` of ``bank``, so rules can act on a
    whole population with batched tensor operations. Mesa assigns ``unique_id``.

    Args:
        model: the Mesa model (the soup) the particle lives in.
        bank: the WeightBank of its architecture.
        row: its row in the bank.
        birth: the epoch it was born.
        parents: unique ids of its parents (clone, melt), empty for a fresh particle.
        node: its node in the soup's topology, or None.
    """

    def __init__(
        self,
        model: mesa.Model,
        bank: WeightBank,
        row: int,
        *,
        birth: int,
        parents: Sequence[int] = (),
        node: int | None = None,
    ) -> None:
        super().__init__(model)
        self.bank = bank
        self.row = row
        self.birth = birth
        self.parents = tuple(parents)
        self.node = node

    @property
    def architecture(self) -> Architecture:
        return self.bank.architecture

    @property
    def weights(self) -> torch.Tensor:
        """A copy of the particle's weights: [num_weights]."""
        return self.bank.weights[self.row].clone()

    @property
    def divergent(self) -> bool:
        """True once the particle has held a non-finite weight (sticky)."""
        return bool(self.bank.divergent[self.row])

    def __repr__(self) -> str:
        return (
            f"Particle(unique_id={self.unique_id}, architecture={self.architecture.reduction}, "
            f"birth={self.birth}, node={self.node})"
        )
