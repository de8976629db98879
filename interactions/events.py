"""The one record every rule emits: who did what to whom, in which epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What happened. Attack and learn pass weights horizontally; clone and melt vertically."""

    ATTACK = "attack"
    LEARN = "learn"
    CLONE = "clone"
    MELT = "melt"
    RESPAWN = "respawn"
    BIRTH = "birth"
    DEATH = "death"


HORIZONTAL = frozenset({EventKind.ATTACK, EventKind.LEARN})
VERTICAL = frozenset({EventKind.CLONE, EventKind.MELT})


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to particles in an epoch.

    Args:
        epoch: the soup's epoch (``model.time``) when it happened.
        kind: an ``EventKind`` (or its string value).
        actor: unique id of the particle that acted (attacker, teacher, parent), or None.
        target: unique id of the particle acted upon (victim, learner, replaced particle), or None.
        child: unique id of a particle born by the event (clone, melt, respawn), or None.
        data: extra facts, JSON-serialisable scalars only (e.g. ``{"overwritten": True}``).
    """

    epoch: int
    kind: EventKind
    actor: int | None
    target: int | None
    child: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EventKind):
            try:
                object.__setattr__(self, "kind", EventKind(self.kind))
            except ValueError:
                allowed = ", ".join(k.value for k in EventKind)
                raise ValueError(
                    f"Event kind {self.kind!r} is unknown; allowed kinds: {allowed}"
                ) from None
