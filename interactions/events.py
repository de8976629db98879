"""The one record every rule emits: who did what to whom, in which epoch.

A rule returns a list of ``Event`` objects, or an ``EventBatch``: many events of one kind and
epoch held as columns, whose ``Event`` objects are only built when someone reads them (a
10,000-particle soup emits thousands of attack and learn events per epoch).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

import numpy as np

#: What an event passes on: "horizontal" (weights flow between living particles: attack,
#: learn), "vertical" (a child is born of parents: clone, melt) or "none" (respawn, an in-place
#: change). Birth and death are no edges and have no inheritance.
INHERITANCES = ("horizontal", "vertical", "none")

_KINDS: dict[str, EventKind] = {}


class _EventKindType(type):
    """The class of ``EventKind``: iterating it gives every registered kind, calling it looks
    one up by name (as for an enum)."""

    def __iter__(cls) -> Iterator[EventKind]:
        return iter(list(_KINDS.values()))

    def __len__(cls) -> int:
        return len(_KINDS)

    def __contains__(cls, kind: object) -> bool:
        return isinstance(kind, str) and kind in _KINDS

    def __call__(cls, kind: EventKind | str) -> EventKind:
        if isinstance(kind, str) and kind in _KINDS:
            return _KINDS[kind]
        allowed = ", ".join(_KINDS)
        raise ValueError(
            f"Event kind {kind!r} is unknown; allowed kinds: {allowed}. A rule declares its own "
            'kinds with the class attribute event_kinds, e.g. event_kinds = {"mutate": "none"}'
        )


class EventKind(str, metaclass=_EventKindType):
    """What happened: a registered name with its ``inheritance`` (None for birth and death).

    The built-in kinds are ``EventKind.ATTACK``, ``LEARN`` (horizontal), ``CLONE``, ``MELT``
    (vertical), ``RESPAWN`` (none), ``BIRTH`` and ``DEATH``. A rule adds its own with the class
    attribute ``event_kinds`` (see :func:`register_event_kind`). A kind equals its name
    (``EventKind.ATTACK == "attack"``); ``EventKind("attack")`` looks it up.
    """

    inheritance: str | None
    ATTACK: ClassVar[EventKind]
    LEARN: ClassVar[EventKind]
    CLONE: ClassVar[EventKind]
    MELT: ClassVar[EventKind]
    RESPAWN: ClassVar[EventKind]
    BIRTH: ClassVar[EventKind]
    DEATH: ClassVar[EventKind]

    @property
    def value(self) -> str:
        """The kind's name, a plain string."""
        return str.__str__(self)

    @property
    def name(self) -> str:
        return self.value.upper()

    def __repr__(self) -> str:
        return f"EventKind.{self.name}"

    def __str__(self) -> str:
        return self.value

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return EventKind, (self.value,)


def register_event_kind(name: str, inheritance: str | None) -> EventKind:
    """Register an event kind (or return it, when already registered the same way).

    Args:
        name: the kind's name, lower case letters, digits and _ (e.g. "mutate").
        inheritance: "horizontal", "vertical" or "none"; the genealogy draws an edge from actor
            to target (horizontal), from actor to child (vertical, the target is the replaced
            particle) or from target to child (none; for an in-place change target and child
            are the same particle). None only for the built-in birth and death.

    Raises:
        ValueError: for a bad name or inheritance, or a name registered with another inheritance.
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(
            f"event kind {name!r} is not allowed; use lower-case letters, digits and _"
        )
    if name in _KINDS:
        kind = _KINDS[name]
        if kind.inheritance != inheritance:
            raise ValueError(
                f"event kind {name!r} is already registered with inheritance "
                f"{kind.inheritance!r}; it cannot also be {inheritance!r}"
            )
        return kind
    if inheritance not in INHERITANCES and name not in ("birth", "death"):
        raise ValueError(
            f"inheritance {inheritance!r} of event kind {name!r} is not allowed; choose one of "
            + ", ".join(repr(i) for i in INHERITANCES)
        )
    kind = str.__new__(EventKind, name)
    kind.inheritance = inheritance
    _KINDS[name] = kind
    return kind


class KindsOf(Set):
    """The registered event kinds of one inheritance, as a live set (it grows with new kinds)."""

    def __init__(self, *inheritances: str) -> None:
        self.inheritances = inheritances

    @classmethod
    def _from_iterable(cls, iterable: Any) -> frozenset:
        return frozenset(iterable)

    def __contains__(self, kind: object) -> bool:
        found = _KINDS.get(kind) if isinstance(kind, str) else None
        return found is not None and found.inheritance in self.inheritances

    def __iter__(self) -> Iterator[EventKind]:
        return (k for k in list(_KINDS.values()) if k.inheritance in self.inheritances)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return "{" + ", ".join(repr(k) for k in self) + "}"


EventKind.ATTACK = register_event_kind("attack", "horizontal")
EventKind.LEARN = register_event_kind("learn", "horizontal")
EventKind.CLONE = register_event_kind("clone", "vertical")
EventKind.MELT = register_event_kind("melt", "vertical")
EventKind.RESPAWN = register_event_kind("respawn", "none")
EventKind.BIRTH = register_event_kind("birth", None)
EventKind.DEATH = register_event_kind("death", None)
#: The kinds every soup counts in its metrics, whatever rules it runs.
BUILTIN_KINDS: tuple[EventKind, ...] = tuple(_KINDS.values())

#: Kinds that pass weights between living particles (attack, learn, and registered ones).
HORIZONTAL = KindsOf("horizontal")
#: Kinds that give birth to a child of parents (clone, melt, and registered ones).
VERTICAL = KindsOf("vertical")
#: Kinds that become genealogy edges: every kind but birth and death.
EDGE_KINDS = KindsOf(*INHERITANCES)


class _Inheritance(Mapping):
    """Edge kind -> its inheritance, a live view of the registry."""

    def __getitem__(self, kind: str) -> str:
        if kind not in EDGE_KINDS:
            raise KeyError(kind)
        return _KINDS[kind].inheritance  # type: ignore[return-value]

    def __iter__(self) -> Iterator[EventKind]:
        return iter(EDGE_KINDS)

    def __len__(self) -> int:
        return len(EDGE_KINDS)


#: The ``inheritance`` of every edge kind (registered kinds included).
INHERITANCE: Mapping[str, str] = _Inheritance()


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
    return EventKind(kind)


def _size_of(name: str, values: Any) -> int:
    """Length of an id or data column (tensor, array or sequence)."""
    if hasattr(values, "numel"):
        if values.dim() != 1:
            raise ValueError(
                f"EventBatch column {name} must be 1-D, got shape {tuple(values.shape)}"
            )
        return int(values.numel())
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"EventBatch column {name} must be 1-D, got shape {values.shape}")
        return len(values)
    return len(values)


def _copy(values: Any) -> Any:
    """A private copy of a column (a tensor stays a tensor on its device: no host sync)."""
    if values is None:
        return None
    if hasattr(values, "clone"):
        return values.clone()
    if isinstance(values, np.ndarray):
        return values.copy()
    return list(values)


def _uid_list(values: Any) -> list[int | None]:
    """A column of unique ids as a list (-1 in an integer tensor or array means None)."""
    if hasattr(values, "tolist"):
        negative = bool((values < 0).any())  # one vectorised test spares a Python loop
        values = values.tolist()
        if negative:
            values = [None if v < 0 else v for v in values]
        return values
    return list(values)


def uid_array(values: Any, size: int) -> np.ndarray:
    """A uid column as an int64 numpy array, -1 for None (None itself: -1 for every event)."""
    if values is None:
        return np.full(size, -1, dtype=np.int64)
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.int64)
    except TypeError:  # a list holding None
        array = np.array([-1 if v is None else v for v in values], dtype=np.int64)
    return array.reshape(-1)


class EventBatch(Sequence[Event]):
    """Events of one kind from one epoch, stored as columns; ``Event`` objects are built on access.

    Iterating or indexing gives ordinary ``Event`` objects (a fresh ``data`` dict each), so an
    EventBatch can stand wherever a sequence of events is read. The soup and the genealogy keep
    batches as they are and build the events only when they are read (``Genealogy.events``, the
    genealogy graph, ``Soup.last_events``); the columns are kept as given (tensors stay
    tensors) until then.

    Args:
        epoch: the epoch of every event.
        kind: the ``EventKind`` of every event.
        actors, targets, children: one unique id per event, as a sequence of int / None or as a
            1-D integer tensor or array in which -1 means None; or None: None for every event.
            At least one of them must be given; they must have equal lengths.
        data: items every event carries (each event gets its own copy).
        columns: per-event data items, ``{name: sequence [n]}`` (a list, a 1-D tensor or
            array); an event carries ``name`` only where its entry is not None (e.g.
            ``{"overwritten": [None, True, None]}``).

    Raises:
        ValueError: for an unknown kind, no id column, or columns of different lengths.
    """

    __slots__ = ("epoch", "kind", "_ids", "_lists", "_data", "_columns", "_size")

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
        self._ids = {
            "actors": _copy(actors),
            "targets": _copy(targets),
            "children": _copy(children),
        }
        size = None
        for name, values in self._ids.items():
            if values is None:
                continue
            length = _size_of(name, values)
            if size is not None and length != size:
                raise ValueError(f"EventBatch column {name} has {length} entries, expected {size}")
            size = length
        if size is None:
            raise ValueError("EventBatch needs at least one of actors, targets, children")
        self._size = size
        self._data = dict(data) if data else {}
        self._columns = {name: _copy(values) for name, values in (columns or {}).items()}
        for name, values in self._columns.items():
            if _size_of(name, values) != size:
                raise ValueError(
                    f"EventBatch column {name!r} has {_size_of(name, values)} entries, "
                    f"expected {size}"
                )
        self._lists: dict[str, list | None] = {}

    def __len__(self) -> int:
        return self._size

    def _list(self, name: str) -> list | None:
        if name not in self._lists:
            values = self._ids[name]
            self._lists[name] = None if values is None else _uid_list(values)
        return self._lists[name]

    @property
    def actors(self) -> list[int | None] | None:
        """Actor unique ids, one per event (None: no actor for every event). Do not modify."""
        return self._list("actors")

    @property
    def targets(self) -> list[int | None] | None:
        """Target unique ids, one per event (None: no target for every event). Do not modify."""
        return self._list("targets")

    @property
    def children(self) -> list[int | None] | None:
        """Child unique ids, one per event (None: no child for every event). Do not modify."""
        return self._list("children")

    def id_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actors, targets, children) as int64 arrays [n], -1 for none (no per-event loop)."""
        return tuple(uid_array(self._ids[n], self._size) for n in ("actors", "targets", "children"))

    @property
    def data(self) -> Mapping[str, Any]:
        """Items every event carries. Do not modify."""
        return self._data

    @property
    def columns(self) -> Mapping[str, list[Any]]:
        """Per-event items ``{name: [value or None] * n}``. Do not modify."""
        if "columns" not in self._lists:
            self._lists["columns"] = {  # type: ignore[assignment]
                name: values.tolist() if hasattr(values, "tolist") else list(values)
                for name, values in self._columns.items()
            }
        return self._lists["columns"]  # type: ignore[return-value]

    def raw_columns(self) -> Mapping[str, Any]:
        """Per-event items as given (tensors, arrays or lists; None marks "no item")."""
        return self._columns

    def _event(self, i: int) -> Event:
        data = dict(self._data)
        for name, values in self.columns.items():
            if values[i] is not None:
                data[name] = values[i]
        actors, targets, children = self.actors, self.targets, self.children
        return Event(
            self.epoch,
            self.kind,
            None if actors is None else actors[i],
            None if targets is None else targets[i],
            None if children is None else children[i],
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


class EventBatches(Sequence[Event]):
    """The events of one rule call held as several ``EventBatch`` (e.g. Respawn's deaths, births
    and respawns), in order: the genealogy records them as one step, like a list of events.

    Args:
        batches: EventBatch or EventBatches objects (nested ones are flattened; empty ones
            are dropped).
    """

    __slots__ = ("batches", "_size")

    def __init__(self, batches: Iterable[EventBatch | EventBatches] = ()) -> None:
        flat: list[EventBatch] = []
        for batch in batches:
            if isinstance(batch, EventBatches):
                flat += batch.batches
            elif isinstance(batch, EventBatch):
                if len(batch):
                    flat.append(batch)
            else:
                raise TypeError(
                    f"EventBatches holds EventBatch objects, got {type(batch).__name__}"
                )
        self.batches: list[EventBatch] = flat
        self._size = sum(len(batch) for batch in flat)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Event]:
        for batch in self.batches:
            yield from batch

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return list(self)[index]
        if not -self._size <= index < self._size:
            raise IndexError(f"EventBatches index {index} out of range for {self._size} events")
        index %= self._size
        for batch in self.batches:
            if index < len(batch):
                return batch[index]
            index -= len(batch)
        raise AssertionError("unreachable")

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same events (a list of ``Event`` too)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: EventBatch | EventBatches) -> EventBatches:
        return EventBatches([self, other])

    def __repr__(self) -> str:
        kinds = ", ".join(f"{len(b)} {b.kind.value}" for b in self.batches)
        return f"EventBatches({kinds})"


def inheritance_of(kind: EventKind | str) -> str | None:
    """What an event kind passes on, from the registry: "horizontal", "vertical", "none", or
    None (birth, death); a kind never registered passes on nothing ("none")."""
    found = _KINDS.get(str(kind))
    return found.inheritance if found is not None else "none"
