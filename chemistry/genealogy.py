"""Who made whom: the genealogy of a soup, built only from the events its rules emit.

:class:`Genealogy` records :class:`~interactions.events.Event` objects cheaply (an append per
batch) and turns them into a ``networkx.MultiDiGraph`` only when :attr:`Genealogy.graph` is read,
adding just the events recorded since the last read.

The graph (DESIGN.md, "Genealogy"):

* Nodes are particle unique ids (int). Attributes: ``birth`` (epoch, from a BIRTH event),
  ``death`` (epoch, from a DEATH event; absent while alive), ``architecture`` (str), ``status``
  and ``status_epoch`` (last class set by :meth:`Genealogy.set_status`), ``birth_event`` /
  ``death_event`` (index of that event in :attr:`Genealogy.events`), plus any other scalar
  data items of the BIRTH event. A node first mentioned by an edge but never born has no
  ``birth``.
* One edge per ATTACK / LEARN / CLONE / MELT / RESPAWN event:

  ======== ================= ===============
  kind     edge              ``inheritance``
  ======== ================= ===============
  attack   actor -> target   horizontal
  learn    actor -> target   horizontal
  clone    actor -> child    vertical
  melt     actor -> child    vertical (one event per parent)
  respawn  target -> child   none (the replaced particle to its replacement)
  ======== ================= ===============

  Edge attributes: ``kind`` (the EventKind value), ``epoch``, ``inheritance``, ``event`` (index
  of the event in :attr:`Genealogy.events`), ``replaced`` (for clone / melt events with a
  ``target``: the particle the child replaced), plus the event's ``data`` items.

Everything on the graph is an int, float, bool or str, so it survives GraphML and node-link
JSON unchanged (:meth:`Genealogy.to_graphml`, :meth:`Genealogy.to_node_link_json`).
"""

from __future__ import annotations

import bisect
import json
import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import networkx as nx

from chemistry.storage import write_atomically
from interactions.events import (
    EDGE_KINDS,
    HORIZONTAL,
    INHERITANCE,
    VERTICAL,
    Event,
    EventBatch,
    EventKind,
    register_event_kind,
)

__all__ = ["Genealogy", "EDGE_KINDS", "INHERITANCE"]

# Attributes the genealogy itself sets; event data items with these names get a "data_" prefix.
_RESERVED_EDGE_ATTRIBUTES = frozenset({"kind", "epoch", "inheritance", "event", "replaced"})
_RESERVED_NODE_ATTRIBUTES = frozenset(
    {"birth", "death", "birth_event", "death_event", "status", "status_epoch"}
)


def _scalar(value: Any) -> int | float | bool | str | None:
    """A GraphML/JSON-safe scalar for an event data value (None means: leave it out).

    bool, int, float and str pass through; numpy / torch scalars become Python scalars; anything
    else is stored as its JSON text (or ``str`` if it is not JSON-serialisable).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _scalar(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return str(value)


def _status_name(status: Any) -> str:
    """A status as a plain str: strings as they are, enum members by their ``name``."""
    if type(status) is str:
        return status
    name = getattr(status, "name", None)
    return name if isinstance(name, str) else str(status)


def _clean_data(data: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    cleaned = {}
    for key, value in data.items():
        scalar = _scalar(value)
        if scalar is None:
            continue
        name = f"data_{key}" if key in reserved else str(key)
        cleaned[name] = scalar
    return cleaned


def _restore_data(attributes: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    """Undo :func:`_clean_data`'s renaming: the event data items among graph attributes."""
    restored = {}
    for name, value in attributes.items():
        if name in reserved:
            continue
        if name.startswith("data_") and name[5:] in reserved:
            name = name[5:]
        restored[name] = value
    return restored


def _parse_kinds(kinds: Iterable[EventKind | str] | EventKind | str | None) -> frozenset[str]:
    """Validate an edge-kind filter; None means every edge kind."""
    if kinds is None:
        return frozenset(kind.value for kind in EDGE_KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    parsed = set()
    allowed = ", ".join(kind.value for kind in EDGE_KINDS)
    for kind in kinds:
        try:
            event_kind = EventKind(kind)
        except ValueError:
            raise ValueError(f"kinds: {kind!r} is not an edge kind; allowed: {allowed}") from None
        if event_kind not in EDGE_KINDS:
            raise ValueError(
                f"kinds: {event_kind.value!r} events make no edges; allowed: {allowed}"
            )
        parsed.add(event_kind.value)
    return frozenset(parsed)


def _canonical(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """The same graph with nodes in uid order and every attribute dict sorted by key.

    Exports go through it so that equal graphs give equal files, whatever the order in which
    attributes arrived (e.g. a run resumed from a checkpoint and the same run left alone).
    """
    canonical = nx.MultiDiGraph()
    canonical.graph.update(sorted(graph.graph.items()))
    for node in sorted(graph.nodes):
        canonical.add_node(node, **dict(sorted(graph.nodes[node].items())))
    for source, target, key, data in graph.edges(keys=True, data=True):
        canonical.add_edge(source, target, key=key, **dict(sorted(data.items())))
    return canonical


class _EventLog(Sequence[Event]):
    """The recorded events as one sequence, stored as chunks: lists of Events and EventBatches.

    Consecutive lists are merged into one chunk (copied, never the caller's list). The Event
    objects of a batch are built when the batch is first read by index or iteration, then kept.
    """

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._chunks: list[list[Event] | EventBatch] = []
        self._starts: list[int] = []
        self._size = 0
        self.append(list(events))

    def append(self, chunk: list[Event] | EventBatch) -> None:
        """Add a chunk at the end (an empty chunk is ignored)."""
        if not len(chunk):
            return
        if isinstance(chunk, list) and self._chunks and isinstance(self._chunks[-1], list):
            self._chunks[-1].extend(chunk)
        else:
            self._starts.append(self._size)
            self._chunks.append(list(chunk) if isinstance(chunk, list) else chunk)
        self._size += len(chunk)

    def _expanded(self, k: int) -> list[Event]:
        chunk = self._chunks[k]
        if not isinstance(chunk, list):
            chunk = self._chunks[k] = list(chunk)
        return chunk

    def chunks_from(self, index: int) -> Iterator[tuple[int, Sequence[Event]]]:
        """(start index, chunk as stored) of every chunk that holds events from ``index`` on."""
        first = max(bisect.bisect_right(self._starts, index) - 1, 0)
        for k in range(first, len(self._chunks)):
            yield self._starts[k], self._chunks[k]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int | slice) -> Event | list[Event]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if not -self._size <= index < self._size:
            raise IndexError(f"event index {index} out of range for {self._size} events")
        index %= self._size
        k = bisect.bisect_right(self._starts, index) - 1
        return self._expanded(k)[index - self._starts[k]]

    def __iter__(self) -> Iterator[Event]:
        for k in range(len(self._chunks)):
            yield from self._expanded(k)


class Genealogy:
    """The family tree (and attack web) of a soup, built only from events.

    ``record`` is cheap (a list extend); the ``networkx.MultiDiGraph`` in :attr:`graph` is
    materialised on first access and then updated incrementally with the events recorded since.
    See the module docstring for the node and edge attributes.

    Example:
        >>> genealogy = Genealogy()
        >>> genealogy.record([
        ...     Event(0, EventKind.BIRTH, None, None, child=1, data={"architecture": "ww"}),
        ...     Event(0, EventKind.BIRTH, None, None, child=2, data={"architecture": "ww"}),
        ...     Event(3, EventKind.CLONE, actor=1, target=2, child=4),
        ... ])
        >>> genealogy.parents(4)
        [1]
    """

    def __init__(self, events: Iterable[Event] = ()) -> None:
        """Create a genealogy, optionally recording ``events`` right away.

        Args:
            events: events to record (see :meth:`record`).
        """
        self._events = _EventLog()
        self._graph = nx.MultiDiGraph()
        self._num_materialised = 0
        # uid -> (status, epoch), applied to the graph on the next materialisation.
        self._pending_status: dict[int, tuple[str, int]] = {}
        self.record(events)

    # ------------------------------------------------------------------ recording

    def record(self, events: Iterable[Event] | EventBatch) -> None:
        """Append events; the graph is updated lazily on the next :attr:`graph` access.

        Only the types are checked here (to keep recording cheap); the endpoints each kind needs
        are checked when the graph is built. An :class:`~interactions.events.EventBatch` is kept
        as it is and turned into Event objects only when the events or the graph are read.

        Args:
            events: Event objects (or one EventBatch), in the order they happened.

        Raises:
            ValueError: if an item is not an :class:`~interactions.events.Event` (nothing of the
                batch is recorded then).
        """
        if isinstance(events, EventBatch):
            self._events.append(events)
            return
        batch = events if isinstance(events, list) else list(events)
        if not all(map(isinstance, batch, repeat(Event))):
            bad = next(item for item in batch if not isinstance(item, Event))
            raise ValueError(f"events must be Event objects, got {type(bad).__name__}: {bad!r}")
        self._events.append(batch)

    def set_status(self, uids: Sequence[int], statuses: Sequence[str], epoch: int) -> None:
        """Record the last known class of particles (node attributes ``status``, ``status_epoch``).

        The last call wins for each particle. Particles not yet in the graph are added.

        Args:
            uids: ``[m]`` particle unique ids (a list, or a 1-D integer tensor / array).
            statuses: ``[m]`` class names, e.g. ``"FIXPOINT"``; enum members are stored by
                their ``name``.
            epoch: the epoch the classes were measured at.

        Raises:
            ValueError: if ``uids`` and ``statuses`` differ in length.
        """
        uid_list = uids.tolist() if hasattr(uids, "tolist") else list(uids)
        status_list = statuses.tolist() if hasattr(statuses, "tolist") else list(statuses)
        if len(uid_list) != len(status_list):
            raise ValueError(
                f"uids and statuses must have the same length, got {len(uid_list)} uids "
                f"and {len(status_list)} statuses"
            )
        if status_list and set(map(type, status_list)) != {str}:
            status_list = [_status_name(status) for status in status_list]
        pairs = zip(status_list, repeat(int(epoch), len(status_list)), strict=True)
        self._pending_status.update(zip(map(int, uid_list), pairs, strict=True))

    # ------------------------------------------------------------------ the graph

    @property
    def events(self) -> Sequence[Event]:
        """Every recorded event, in order (a read-only view)."""
        return tuple(self._events)

    def __len__(self) -> int:
        """Number of recorded events."""
        return len(self._events)

    def __repr__(self) -> str:
        return f"Genealogy({len(self)} events)"

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The genealogy as a ``networkx.MultiDiGraph`` (see the module docstring).

        Built incrementally: only events recorded since the last access are added. Treat the
        graph as read-only; editing it is not reflected in :attr:`events`.

        Raises:
            ValueError: if a recorded event lacks an endpoint its kind needs (e.g. an attack
                without a target); the events before it are already in the graph.
        """
        self._materialise()
        return self._graph

    def _materialise(self) -> None:
        graph = self._graph
        for start, chunk in self._events.chunks_from(self._num_materialised):
            if (
                isinstance(chunk, EventBatch)
                and start == self._num_materialised
                and self._add_batch(graph, start, chunk)
            ):
                self._num_materialised = start + len(chunk)
                continue
            for offset in range(self._num_materialised - start, len(chunk)):
                self._add_event(graph, start + offset, chunk[offset])
                self._num_materialised = start + offset + 1
        if self._pending_status:
            for uid, (status, epoch) in self._pending_status.items():
                if uid in graph:
                    attributes = graph.nodes[uid]
                    attributes["status"] = status
                    attributes["status_epoch"] = epoch
                else:
                    graph.add_node(uid, status=status, status_epoch=epoch)
            self._pending_status.clear()

    @staticmethod
    def _add_batch(graph: nx.MultiDiGraph, start: int, batch: EventBatch) -> bool:
        """Add the edges of a batch of attack / learn events straight from its columns.

        Gives the same edges as :meth:`_add_event` on each event, without building the Event
        objects. Returns False (nothing added) for batches it does not handle.
        """
        actors, targets = batch.actors, batch.targets
        if batch.kind not in HORIZONTAL or actors is None or targets is None:
            return False
        if None in actors or None in targets:
            return False
        common = {
            "kind": batch.kind.value,
            "epoch": int(batch.epoch),
            "inheritance": INHERITANCE[batch.kind],
        }
        shared = _clean_data(dict(batch.data), _RESERVED_EDGE_ATTRIBUTES)
        columns = [
            (f"data_{name}" if name in _RESERVED_EDGE_ATTRIBUTES else str(name), values)
            for name, values in batch.columns.items()
        ]

        def attributes(offset: int) -> dict[str, Any]:
            edge = {**common, "event": start + offset, **shared}
            for name, values in columns:
                value = values[offset]
                if value is not None and (value := _scalar(value)) is not None:
                    edge[name] = value
            return edge

        graph.add_edges_from(
            (int(actor), int(target), attributes(offset))
            for offset, (actor, target) in enumerate(zip(actors, targets, strict=True))
        )
        return True

    @staticmethod
    def _add_event(graph: nx.MultiDiGraph, index: int, event: Event) -> None:
        kind = event.kind
        epoch = int(event.epoch)

        def need(name: str, value: int | None) -> int:
            if value is None:
                raise ValueError(
                    f"event {index} ({event!r}) is a {kind.value} event without {name}"
                )
            return int(value)

        if kind is EventKind.BIRTH:
            uid = need("child", event.child if event.child is not None else event.target)
            attributes = _clean_data(event.data, _RESERVED_NODE_ATTRIBUTES)
            if "architecture" in event.data:
                attributes["architecture"] = str(event.data["architecture"])
            graph.add_node(uid, birth=epoch, birth_event=index, **attributes)
            return
        if kind is EventKind.DEATH:
            uid = need("target", event.target if event.target is not None else event.child)
            graph.add_node(uid, death=epoch, death_event=index)
            return
        if kind in HORIZONTAL:
            source, destination = need("actor", event.actor), need("target", event.target)
            extra = {}
        elif kind in VERTICAL:
            source, destination = need("actor", event.actor), need("child", event.child)
            extra = {} if event.target is None else {"replaced": int(event.target)}
        else:  # inheritance "none": respawn, or a registered kind (target == child: in place)
            source, destination = need("target", event.target), need("child", event.child)
            extra = {}
        graph.add_edge(
            source,
            destination,
            kind=kind.value,
            epoch=epoch,
            inheritance=INHERITANCE[kind],
            event=index,
            **extra,
            **_clean_data(event.data, _RESERVED_EDGE_ATTRIBUTES),
        )

    # ------------------------------------------------------------------ queries

    def _require(self, uid: int) -> int:
        graph = self.graph
        if uid not in graph:
            raise ValueError(f"uid {uid!r} is not a particle of this genealogy")
        return uid

    def _view(self, kinds: Iterable[EventKind | str] | EventKind | str | None) -> nx.MultiDiGraph:
        """The graph restricted to edges of ``kinds`` (all nodes kept), as a read-only view."""
        wanted = _parse_kinds(kinds)
        graph = self.graph
        if len(wanted) == len(EDGE_KINDS):
            return graph
        return nx.subgraph_view(
            graph, filter_edge=lambda u, v, key: graph[u][v][key]["kind"] in wanted
        )

    def ancestors(
        self, uid: int, kinds: Iterable[EventKind | str] | EventKind | str | None = None
    ) -> set[int]:
        """Every particle with a directed path of edges of ``kinds`` to ``uid``.

        Structural: paths need not run forward in time (use :meth:`attack_chain` for a
        time-respecting attack history).

        Args:
            uid: a particle unique id.
            kinds: edge kinds to follow (default all: attack, learn, clone, melt, respawn);
                e.g. ``interactions.events.VERTICAL`` for blood relatives only.

        Raises:
            ValueError: if ``uid`` is unknown or a kind is not an edge kind.
        """
        return nx.ancestors(self._view(kinds), self._require(uid))

    def descendants(
        self, uid: int, kinds: Iterable[EventKind | str] | EventKind | str | None = None
    ) -> set[int]:
        """Every particle reachable from ``uid`` along edges of ``kinds`` (see :meth:`ancestors`).

        Raises:
            ValueError: if ``uid`` is unknown or a kind is not an edge kind.
        """
        return nx.descendants(self._view(kinds), self._require(uid))

    def lineage(
        self, uid: int, kinds: Iterable[EventKind | str] | EventKind | str | None = None
    ) -> nx.MultiDiGraph:
        """The subgraph of ``uid``, its ancestors and its descendants along edges of ``kinds``.

        Returns:
            An independent ``MultiDiGraph`` copy holding only edges of ``kinds`` between those
            particles, with all attributes.

        Raises:
            ValueError: if ``uid`` is unknown or a kind is not an edge kind.
        """
        view = self._view(kinds)
        self._require(uid)
        members = nx.ancestors(view, uid) | nx.descendants(view, uid) | {uid}
        return nx.MultiDiGraph(view.subgraph(members))

    def parents(self, uid: int) -> list[int]:
        """The vertical parents of ``uid`` (clone / melt), in the order they were recorded.

        Raises:
            ValueError: if ``uid`` is unknown.
        """
        graph = self.graph
        self._require(uid)
        edges = sorted(
            (data["event"], source)
            for source, _, data in graph.in_edges(uid, data=True)
            if data["inheritance"] == "vertical"
        )
        return list(dict.fromkeys(source for _, source in edges))

    def children(self, uid: int) -> list[int]:
        """The particles ``uid`` is a vertical parent of, in the order they were recorded.

        Raises:
            ValueError: if ``uid`` is unknown.
        """
        graph = self.graph
        self._require(uid)
        edges = sorted(
            (data["event"], target)
            for _, target, data in graph.out_edges(uid, data=True)
            if data["inheritance"] == "vertical"
        )
        return list(dict.fromkeys(target for _, target in edges))

    def attack_chain(self, uid: int, epoch: int | None = None) -> list[Event]:
        """The chain of attacks that shaped ``uid``'s weights, newest first.

        Rule: start with the last effective attack ON ``uid`` at or before ``epoch`` (None: any
        epoch). "Last" means greatest epoch, ties broken by recording order (the later recorded
        wins). An attack is effective unless its data has a truthy ``"overwritten"`` item (an
        attack whose result was discarded because another attacker hit the same target in the
        same epoch, SPEC R1). Then take that attack's attacker and its epoch t, and find the last
        effective attack on the attacker at an epoch STRICTLY before t (under the synchronous
        schedule a rule reads a snapshot, so an attack at the same epoch t could not have shaped
        the weights the attacker used). Repeat until a particle has no such attack. Epochs
        strictly decrease, so the chain ends. Only attacks are followed (not learning, cloning or
        self-training in between).

        Args:
            uid: the particle whose weights to explain.
            epoch: consider attacks up to and including this epoch (None: all).

        Returns:
            The attack events, newest first: ``chain[0].target == uid`` and
            ``chain[i + 1].target == chain[i].actor``. Empty if ``uid`` was never attacked.

        Raises:
            ValueError: if ``uid`` is unknown.
        """
        graph = self.graph
        self._require(uid)
        chain: list[Event] = []
        current, limit, inclusive = uid, epoch, True
        while True:
            best: tuple[int, int] | None = None
            for _, _, data in graph.in_edges(current, data=True):
                if data["kind"] != EventKind.ATTACK.value or data.get("overwritten"):
                    continue
                when = data["epoch"]
                if limit is not None and (when > limit or (not inclusive and when == limit)):
                    continue
                candidate = (when, data["event"])
                if best is None or candidate > best:
                    best = candidate
            if best is None:
                return chain
            attack = self._events[best[1]]
            chain.append(attack)
            current, limit, inclusive = int(attack.actor), best[0], False

    def most_successful_lineages(
        self,
        k: int = 10,
        status: str = "FIXPOINT",
        *,
        include_horizontal: bool = False,
    ) -> list[tuple[int, int]]:
        """Root particles ranked by how many particles of ``status`` descend from them.

        A root is a particle without vertical (clone / melt) parents: an initial particle or a
        respawned one. Its count is the number of particles whose last status (see
        :meth:`set_status`) is ``status`` among the root itself and everything reachable from it
        along vertical edges, and, with ``include_horizontal``, also along attack / learn edges
        (structurally, ignoring time order). Respawn edges are never followed.

        Args:
            k: how many lineages to return, at least 1.
            status: the status to count, e.g. ``"FIXPOINT"`` (self-replicators).
            include_horizontal: also follow attack and learn edges.

        Returns:
            Up to ``k`` ``(root uid, count)`` pairs with count > 0, by decreasing count, ties by
            increasing uid.

        Raises:
            ValueError: if ``k`` < 1.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        status = _status_name(status)
        graph = self.graph
        follow = {EventKind.CLONE, EventKind.MELT}
        if include_horizontal:
            follow |= set(HORIZONTAL)
        view = self._view(follow)
        vertical = self._view(VERTICAL)
        targets = [node for node, value in graph.nodes(data="status") if value == status]
        if not targets:
            return []
        bit_of = {node: 1 << position for position, node in enumerate(targets)}
        # Reachable targets per strongly connected component, as bitsets (Python ints), in
        # reverse topological order of the condensation: O(edges * targets / 64).
        condensation = nx.condensation(view)
        members = condensation.graph["mapping"]
        reach: dict[int, int] = {}
        own: dict[int, int] = {}
        for node, component in members.items():
            own[component] = own.get(component, 0) | bit_of.get(node, 0)
        for component in reversed(list(nx.topological_sort(condensation))):
            bits = own.get(component, 0)
            for successor in condensation.successors(component):
                bits |= reach[successor]
            reach[component] = bits
        ranking = []
        for node in graph.nodes:
            if vertical.in_degree(node) == 0:
                count = reach[members[node]].bit_count()
                if count:
                    ranking.append((node, count))
        ranking.sort(key=lambda pair: (-pair[1], pair[0]))
        return ranking[:k]

    # ------------------------------------------------------------------ export / import

    def to_graphml(self, path: str | os.PathLike) -> Path:
        """Write the graph as GraphML, atomically (temp file in the same folder, then replace).

        Args:
            path: the file to write.

        Returns:
            The path written.
        """
        graph = _canonical(self.graph)
        return write_atomically(path, lambda temporary: nx.write_graphml(graph, temporary))

    def to_node_link_json(self, path: str | os.PathLike) -> Path:
        """Write the graph as node-link JSON (``networkx.node_link_data``), atomically.

        Args:
            path: the file to write.

        Returns:
            The path written.
        """
        data = nx.node_link_data(_canonical(self.graph), edges="edges")

        def write(temporary: str) -> None:
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(data, file)

        return write_atomically(path, write)

    @classmethod
    def from_graphml(cls, path: str | os.PathLike) -> Genealogy:
        """Load a genealogy written by :meth:`to_graphml`; its graph equals the saved one.

        Args:
            path: the GraphML file.

        Returns:
            A Genealogy whose :attr:`events` are rebuilt from the graph (see :meth:`from_graph`).
        """
        graph = nx.read_graphml(path, node_type=int, edge_key_type=int, force_multigraph=True)
        graph.graph.pop("node_default", None)
        graph.graph.pop("edge_default", None)
        return cls.from_graph(graph)

    @classmethod
    def from_node_link_json(cls, path: str | os.PathLike) -> Genealogy:
        """Load a genealogy written by :meth:`to_node_link_json`; its graph equals the saved one.

        Args:
            path: the JSON file.

        Returns:
            A Genealogy whose :attr:`events` are rebuilt from the graph (see :meth:`from_graph`).
        """
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        graph = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
        return cls.from_graph(graph)

    @classmethod
    def from_graph(cls, graph: nx.MultiDiGraph) -> Genealogy:
        """A genealogy holding ``graph`` (a graph made by this class), with events rebuilt.

        Events are rebuilt from the ``event`` index on edges and ``birth_event`` /
        ``death_event`` on nodes, in their original order. If indices have gaps (a particle
        born or dead twice keeps only its last birth / death on the graph) they are renumbered
        in place so that ``event`` stays the position in :attr:`events`.
        Edge events get back their kind, epoch, endpoints (including a clone / melt ``target``
        from ``replaced``) and data (with data values as stored on the graph); BIRTH events get
        back the node attributes that came from their data; DEATH event data and the actor of a
        RESPAWN event are not stored and come back empty / None.

        Args:
            graph: a ``MultiDiGraph`` as produced by :attr:`graph`.

        Raises:
            ValueError: if ``graph`` is not a MultiDiGraph or an edge lacks ``kind``, ``epoch``
                or ``event``.
        """
        if not isinstance(graph, nx.MultiDiGraph):
            raise ValueError(f"graph must be a networkx.MultiDiGraph, got {type(graph).__name__}")
        numbered: dict[int, Event] = {}
        for source, destination, data in graph.edges(data=True):
            try:
                kind, epoch, index = data["kind"], data["epoch"], data["event"]
                # A file names each kind with its inheritance: a rule's own kind is known here
                # even where the rule's module is not imported.
                kind = register_event_kind(kind, data.get("inheritance", INHERITANCE.get(kind)))
            except KeyError as missing:
                raise ValueError(
                    f"edge {source}->{destination} has no {missing} attribute: {data!r}"
                ) from None
            extra = _restore_data(data, _RESERVED_EDGE_ATTRIBUTES)
            if kind in HORIZONTAL:
                event = Event(epoch, kind, source, destination, data=extra)
            elif kind in VERTICAL:
                event = Event(epoch, kind, source, data.get("replaced"), destination, data=extra)
            else:
                event = Event(epoch, kind, None, source, destination, data=extra)
            numbered[index] = event
        for node, data in graph.nodes(data=True):
            if "birth_event" in data:
                birth_data = _restore_data(data, _RESERVED_NODE_ATTRIBUTES)
                numbered[data["birth_event"]] = Event(
                    data["birth"], EventKind.BIRTH, None, None, node, data=birth_data
                )
            if "death_event" in data:
                numbered[data["death_event"]] = Event(data["death"], EventKind.DEATH, None, node)
        order = sorted(numbered)
        if order != list(range(len(order))):
            # Gaps (a particle born or dead twice keeps only its last birth / death on the
            # graph): renumber so that ``event`` is again the position in ``events``.
            position_of = {index: position for position, index in enumerate(order)}
            for _, _, data in graph.edges(data=True):
                data["event"] = position_of[data["event"]]
            for _, data in graph.nodes(data=True):
                for name in ("birth_event", "death_event"):
                    if name in data:
                        data[name] = position_of[data[name]]
        genealogy = cls()
        genealogy._events = _EventLog([numbered[index] for index in order])
        genealogy._graph = graph
        genealogy._num_materialised = len(genealogy._events)
        return genealogy
