"""Interactions: the rules a soup runs every epoch, and the events they return.

A rule is an ``Interaction``: called with the soup, it acts on all its participants at once
through the batched kernel in ``particles`` and returns a list of ``Event`` (or an
``EventBatch``, many events of one kind stored as columns). Pairwise rules subclass
``PairwiseInteraction`` and implement one batched ``act(soup, actors, partners)``.

A rule class with a ``name`` class attribute is registered in ``RULES`` when it is defined, so a
configuration can name it; its ``event_kinds`` class attribute registers its own event kinds.
"""

from interactions.attack import Attack
from interactions.base import (
    PAIRINGS,
    RULES,
    Interaction,
    Pairing,
    PairwiseInteraction,
    TrainingMode,
    one_per_target,
    register_rule,
    training_settings,
)
from interactions.events import (
    EDGE_KINDS,
    HORIZONTAL,
    VERTICAL,
    Event,
    EventBatch,
    EventBatches,
    EventKind,
    register_event_kind,
)
from interactions.learn import Learn
from interactions.reproduction import Melt, NoisyClone
from interactions.respawn import Respawn
from interactions.self_apply import SelfApply
from interactions.self_train import SelfTrain

__all__ = [
    "EDGE_KINDS",
    "HORIZONTAL",
    "PAIRINGS",
    "RULES",
    "VERTICAL",
    "Attack",
    "Event",
    "EventBatch",
    "EventBatches",
    "EventKind",
    "Interaction",
    "Learn",
    "Melt",
    "NoisyClone",
    "Pairing",
    "PairwiseInteraction",
    "Respawn",
    "SelfApply",
    "SelfTrain",
    "TrainingMode",
    "one_per_target",
    "register_event_kind",
    "register_rule",
    "training_settings",
]
