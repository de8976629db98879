"""SelfTrain: every participant takes A self-training steps N ⇜ N (SPEC R3)."""

from __future__ import annotations

import torch

from interactions.base import (
    Interaction,
    Soup,
    TrainingMode,
    check_training,
    training_settings,
)
from interactions.events import Event
from particles.training import self_train
from particles.validation import check_count


class SelfTrain(Interaction):
    """Every particle trains on its own samples for ``steps`` steps.

    Args:
        steps: self-training steps A per epoch.
        lr: learning rate (default: the soup's preset's; keras2019 0.01, journal2021 0.04).
        training_mode: "full_batch" or "per_sample" SGD (default: the soup's preset's).
    """

    name = "self_train"

    def __init__(
        self,
        steps: int,
        *,
        lr: float | None = None,
        training_mode: TrainingMode | None = None,
    ) -> None:
        check_count("steps", steps, 0)
        check_training(lr, training_mode)
        self.steps = steps
        self.lr, self.training_mode = lr, training_mode

    def __call__(self, soup: Soup, participants: torch.Tensor | None = None) -> list[Event]:
        """Self-train all participants, one batched call per architecture."""
        nodes = soup.occupied_nodes() if participants is None else participants
        if self.steps == 0:
            return []
        lr, training_mode = training_settings(soup, self.lr, self.training_mode)
        for bank, _, rows in soup.groups(nodes):
            result = self_train(
                bank.architecture,
                bank.read(rows),
                steps=self.steps,
                lr=lr,
                mode=training_mode,
                generator=soup.weight_generator,
            )
            bank.write(rows, result.weights)
        return []
