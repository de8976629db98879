"""SelfTrain: every participant takes A self-training steps N ⇜ N (SPEC R3)."""

from __future__ import annotations

import torch

from interactions.base import Interaction, Soup, training_settings
from interactions.events import Event
from particles.training import self_train
from particles.validation import check_count


class SelfTrain(Interaction):
    """Every particle trains on its own samples for ``steps`` steps.

    Args:
        steps: self-training steps per epoch (A).
        lr: learning rate (default from ``preset``).
        mode: "full_batch" or "per_sample" (default from ``preset``).
        preset: "journal2021" (default: full_batch, lr 0.04) or "keras2019" (per_sample, lr 0.01).
    """

    def __init__(
        self,
        steps: int,
        *,
        lr: float | None = None,
        mode: str | None = None,
        preset: str | None = None,
    ) -> None:
        check_count("steps", steps, 0)
        self.steps = steps
        self.lr, self.mode = training_settings(lr, mode, preset)

    def __call__(self, soup: Soup, participants: torch.Tensor | None = None) -> list[Event]:
        """Self-train all participants, one batched call per architecture."""
        nodes = soup.occupied_nodes() if participants is None else participants
        if self.steps == 0:
            return []
        for bank, _, rows in soup.groups(nodes):
            result = self_train(
                bank.architecture,
                bank.read(rows),
                steps=self.steps,
                lr=self.lr,
                mode=self.mode,
                generator=soup.weight_generator,
            )
            bank.write(rows, result.weights)
        return []
