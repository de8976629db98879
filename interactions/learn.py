"""Learn: a learner trains on a neighbour's weights, M ⇜ N (SPEC R2)."""

from __future__ import annotations

import torch

from interactions.base import (
    Pairing,
    PairwiseInteraction,
    Soup,
    TrainingMode,
    check_training,
    training_settings,
)
from interactions.events import EventBatch, EventKind
from particles.training import learn
from particles.validation import check_count


class Learn(PairwiseInteraction):
    """Each learner, with probability ``chance``, takes ``severity`` training steps on a neighbour.

    The teacher's samples come from its weights at the start of the rule. The event runs from
    teacher (actor) to learner (target): the direction in which weights are inherited.

    Args:
        chance: learning probability λ (per particle, or per epoch with ``pairing="single"``).
        severity: training steps s per learning event.
        lr: learning rate (default: the soup's preset's).
        training_mode: "full_batch" or "per_sample" SGD (default: the soup's preset's).
        pairing: "per_particle" or "single".
        allow_self: a particle may learn from itself.
    """

    name = "learn"

    def __init__(
        self,
        chance: float,
        severity: int = 1,
        *,
        lr: float | None = None,
        training_mode: TrainingMode | None = None,
        pairing: Pairing = "per_particle",
        allow_self: bool = False,
    ) -> None:
        super().__init__(chance, pairing=pairing, allow_self=allow_self)
        check_count("severity", severity, 0)
        check_training(lr, training_mode)
        self.severity = severity
        self.lr, self.training_mode = lr, training_mode

    def check(self, soup: Soup) -> None:
        """Every learner architecture must be able to read every teacher architecture."""
        for learner in soup.banks:
            for teacher in soup.banks:
                if teacher.num_weights < learner.minimum_target_size:
                    raise ValueError(
                        f"Learn cannot combine learner {learner} with teacher {teacher}: the "
                        f"{learner.reduction} reduction needs at least "
                        f"{learner.minimum_target_size} weights, the teacher has "
                        f"{teacher.num_weights}"
                    )

    def act(self, soup: Soup, actors: torch.Tensor, partners: torch.Tensor) -> EventBatch:
        """Train every learner (actor) on its teacher (partner), one batch per architecture pair."""
        lr, training_mode = training_settings(soup, self.lr, self.training_mode)
        results = []
        for learner_bank, learner_rows, teacher_bank, teacher_rows, _ in soup.pair_groups(
            actors, partners
        ):
            result = learn(
                learner_bank.architecture,
                learner_bank.read(learner_rows),
                teacher_bank.architecture,
                teacher_bank.read(teacher_rows),
                steps=self.severity,
                lr=lr,
                mode=training_mode,
                generator=soup.weight_generator,
            )
            results.append((learner_bank, learner_rows, result.weights))
        for learner_bank, learner_rows, new in results:
            learner_bank.write(learner_rows, new)
        return EventBatch(
            soup.epoch,
            EventKind.LEARN,
            soup.uids_at(partners),
            soup.uids_at(actors),
            data={"steps": self.severity},
        )
