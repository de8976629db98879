"""Attack: an attacker rewrites a neighbour's weights, M ← N ◁ M (SPEC R1)."""

from __future__ import annotations

import numpy as np
import torch

from interactions.base import PairwiseInteraction, Soup, one_per_target
from interactions.events import EventBatch, EventKind


class Attack(PairwiseInteraction):
    """Each attacker applies itself to a partner drawn from its neighbours.

    Args:
        chance: attack probability α, per particle (``pairing="per_particle"``, canonical) or
            per epoch (``pairing="single"``).
        pairing: "per_particle": every particle attacks with the chance; "single": one attack
            per epoch.
        allow_self: a particle may attack itself.

    All attacks read the weights as they were when the rule started. When several attackers hit
    the same victim, one result, chosen uniformly at random, is kept; the other attacks are still
    recorded, with ``data={"overwritten": True}``.
    """

    name = "attack"

    def check(self, soup: Soup) -> None:
        """Every architecture must be able to read every other one."""
        for attacker in soup.banks:
            for victim in soup.banks:
                if victim.num_weights < attacker.minimum_target_size:
                    raise ValueError(
                        f"Attack cannot combine attacker {attacker} with victim {victim}: the "
                        f"{attacker.reduction} reduction needs targets of at least "
                        f"{attacker.minimum_target_size} weights, the victim has "
                        f"{victim.num_weights}"
                    )

    def act(self, soup: Soup, actors: torch.Tensor, partners: torch.Tensor) -> EventBatch:
        """Apply every kept attacker to its victim in one batch per pair of architectures."""
        kept, overwritten = one_per_target(partners, soup.index_generator)
        results = []
        for attacker_bank, attacker_rows, victim_bank, victim_rows, _ in soup.pair_groups(
            actors[kept], partners[kept]
        ):
            new = attacker_bank.architecture.apply(
                attacker_bank.read(attacker_rows),
                victim_bank.architecture,
                victim_bank.read(victim_rows),
                generator=soup.weight_generator,
            )
            results.append((victim_bank, victim_rows, new))
        for victim_bank, victim_rows, new in results:
            victim_bank.write(victim_rows, new)
        flags = np.full(actors.numel(), None, dtype=object)  # None: no "overwritten" item
        flags[overwritten.numpy()] = True
        return EventBatch(
            soup.epoch,
            EventKind.ATTACK,
            soup.uids_at(actors),
            soup.uids_at(partners),
            columns={"overwritten": flags},
        )
