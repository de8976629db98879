"""The one record every rule emits: who did what to whom, in which epoch.

A rule returns a list of ``Event`` objects, or an ``EventBatch``: many events of one kind and
epoch held as columns, whose ``Event`` objects are only built when someone reads them (a
10,000-particle soup emits thousands of attack and learn events per epoch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, overload


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
            object.__setattr__(self, "kind", _event_kind(self.kind))


def _event_kind(kind: EventKind | str) -> EventKind:
    """``kind`` as an EventKind; ValueError naming the allowed kinds otherwise."""
    try:
        return EventKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in EventKind)
        raise ValueError(f"Event kind {kind!r} is unknown; allowed kinds: {allowed}") from None


def _uid_column(name: str, values: Any, size: int | None) -> list[int | None] | None:
    """A column of unique ids as a list (-1 in an integer tensor or array means None)."""
    if values is None:
        return None
    if hasattr(values, "tolist"):
        negative = bool((values < 0).any())  # one vectorised test spares a Python loop
        values = values.tolist()
        if negative:
            values = [None if v < 0 else v for v in values]
    else:
        values = list(values)
    if size is not None and len(values) != size:
        raise ValueError(f"EventBatch column {name} has {len(values)} entries, expected {size}")
    return values


class EventBatch(Sequence[Event]):
    """Events of one kind from one epoch, stored as columns; ``Event`` objects are built on access.

    Iterating or indexing gives ordinary ``Event`` objects (a fresh ``data`` dict each), so an
    EventBatch can stand wherever a sequence of events is read. The soup and the genealogy keep
    batches as they are and build the events only when they are read (``Genealogy.events``, the
    genealogy graph, ``Soup.last_events``).

    Args:
        epoch: the epoch of every event.
        kind: the ``EventKind`` of every event.
        actors, targets, children: one unique id per event, as a sequence of int / None or as a
            1-D integer tensor or array in which -1 means None; or None: None for every event.
            At least one of them must be given; they must have equal lengths.
        data: items every event carries (each event gets its own copy).
        columns: per-event data items, ``{name: sequence [n]}``; an event carries ``name`` only
            where its entry is not None (e.g. ``{"overwritten": [None, True, None]}``).

    Raises:
        ValueError: for an unknown kind, no id column, or columns of different lengths.
    """

    __slots__ = ("epoch", "kind", "_actors", "_targets", "_children", "_data", "_columns", "_size")

    def __init__(
        self,
        epoch: int,
        kind: EventKind | str,
        actors: Any = None,
        targets: Any = None,
        children: Any = None,
        data: Mapping[str, Any] | None = None,
        columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.epoch = int(epoch)
        self.kind = _event_kind(kind)
        size = None
        self._actors = _uid_column("actors", actors, size)
        size = len(self._actors) if self._actors is not None else size
        self._targets = _uid_column("targets", targets, size)
        size = len(self._targets) if self._targets is not None else size
        self._children = _uid_column("children", children, size)
        size = len(self._children) if self._children is not None else size
        if size is None:
            raise ValueError("EventBatch needs at least one of actors, targets, children")
        self._size = size
        self._data = dict(data) if data else {}
        self._columns = {}
        for name, values in (columns or {}).items():
            values = values.tolist() if hasattr(values, "tolist") else list(values)
            if len(values) != size:
                raise ValueError(
                    f"EventBatch column {name!r} has {len(values)} entries, expected {size}"
                )
            self._columns[name] = values

    def __len__(self) -> int:
        return self._size

    @property
    def actors(self) -> list[int | None] | None:
        """Actor unique ids, one per event (None: no actor for every event). Do not modify."""
        return self._actors

    @property
    def targets(self) -> list[int | None] | None:
        """Target unique ids, one per event (None: no target for every event). Do not modify."""
        return self._targets

    @property
    def children(self) -> list[int | None] | None:
        """Child unique ids, one per event (None: no child for every event). Do not modify."""
        return self._children

    @property
    def data(self) -> Mapping[str, Any]:
        """Items every event carries. Do not modify."""
        return self._data

    @property
    def columns(self) -> Mapping[str, list[Any]]:
        """Per-event items ``{name: [value or None] * n}``. Do not modify."""
        return self._columns

    def _event(self, i: int) -> Event:
        data = dict(self._data)
        for name, values in self._columns.items():
            if values[i] is not None:
                data[name] = values[i]
        return Event(
            self.epoch,
            self.kind,
            None if self._actors is None else self._actors[i],
            None if self._targets is None else self._targets[i],
            None if self._children is None else self._children[i],
            data,
        )

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [self._event(i) for i in range(*index.indices(self._size))]
        if not -self._size <= index < self._size:
            raise IndexError(f"EventBatch index {index} out of range for {self._size} events")
        return self._event(index % self._size)

    def __iter__(self) -> Iterator[Event]:
        return (self._event(i) for i in range(self._size))

    def __repr__(self) -> str:
        return f"EventBatch(epoch={self.epoch}, kind={self.kind.value}, {self._size} events)"


#: Inheritance of the built-in kinds (a registry of user kinds may add its own).
_BUILT_IN_INHERITANCE: dict[str, str | None] = {
    "attack": "horizontal",
    "learn": "horizontal",
    "clone": "vertical",
    "melt": "vertical",
    "respawn": "none",
    "birth": None,
    "death": None,
}


def inheritance_of(kind: EventKind | str) -> str | None:
    """What an event kind passes on: "horizontal", "vertical", "none", or None (birth, death).

    Read from the kind itself where it carries an ``inheritance`` attribute (registered kinds),
    else from the built-in table; an unknown kind passes on nothing ("none").
    """
    registered = getattr(kind, "inheritance", _BUILT_IN_INHERITANCE)
    if registered is not _BUILT_IN_INHERITANCE:
        return registered
    return _BUILT_IN_INHERITANCE.get(str(getattr(kind, "value", kind)), "none")
