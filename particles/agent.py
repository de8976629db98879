"""Particle: the thin Mesa agent that stands for one network, a row of a WeightBank.

Per-particle state that the soup keeps in node-indexed tensors (class and fixpoint error at the
last classification) is read through the agent, so a Mesa user finds it where Mesa puts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import torch

from particles.architectures import Architecture
from particles.bank import WeightBank
from particles.classification import Status

if TYPE_CHECKING:
    from collections.abc import Sequence


class Particle(mesa.Agent):
    """One small neural network living in a soup.

    Attributes a Mesa user reads per agent: ``status`` (class name at the last classification),
    ``fixpoint_error`` (q at that classification), ``architecture`` / ``architecture_name``,
    ``birth`` (epoch), ``node`` (topology node), ``parents``, ``weights``.

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
    def architecture_name(self) -> str:
        """The soup's name of its architecture ("ww", "agg", ...; "ww#1" for a second kind)."""
        names = getattr(self.model, "architecture_names", {})
        return names.get(self.architecture, self.architecture.reduction)

    @property
    def status(self) -> str | None:
        """Its class at the soup's last classification (a ``Status`` name), None before any."""
        code = self._node_value("node_status")
        return Status(int(code)).name if code is not None and code >= 0 else None

    @property
    def fixpoint_error(self) -> float:
        """Its fixpoint error q at the soup's last classification (nan before any)."""
        value = self._node_value("node_error")
        return float(value) if value is not None else float("nan")

    def _node_value(self, name: str) -> float | int | None:
        # The soup stores per-node values in tensors ``node_status`` / ``node_error``.
        values = getattr(self.model, name, None)
        if values is None or self.node is None:
            return None
        return values[self.node].item()

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
