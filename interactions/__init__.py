"""Interactions: the rules a soup runs every epoch, and the events they return.

A rule is an ``Interaction``: called with the soup, it acts on all its participants at once
through the batched kernel in ``particles`` and returns a list of ``Event`` (or an
``EventBatch``, many events of one kind stored as columns). Pairwise rules subclass
``PairwiseInteraction`` and implement one batched ``act(soup, actors, partners)``.
"""

from interactions.attack import Attack
from interactions.base import Interaction, PairwiseInteraction, one_per_target, training_settings
from interactions.events import HORIZONTAL, VERTICAL, Event, EventBatch, EventKind
from interactions.learn import Learn
from interactions.reproduction import Melt, NoisyClone
from interactions.respawn import Respawn
from interactions.self_apply import SelfApply
from interactions.self_train import SelfTrain

__all__ = [
    "HORIZONTAL",
    "VERTICAL",
    "Attack",
    "Event",
    "EventBatch",
    "EventKind",
    "Interaction",
    "Learn",
    "Melt",
    "NoisyClone",
    "PairwiseInteraction",
    "Respawn",
    "SelfApply",
    "SelfTrain",
    "one_per_target",
    "training_settings",
]
