"""Who made whom, and when: the genealogy of a soup, built only from the events its rules emit.

The source of truth is the columnar event log (:class:`chemistry.event_log.EventLog`): rows
``step, epoch, kind, actor, target, child`` recorded in batches (a few array copies per rule
call), plus the classes measured (``classes``: a row when a particle's class is first measured
or changes, and at its death). With a directory attached it streams there in ``.npz`` chunks.
networkx views are built from it on demand:

**Particle graph** (:attr:`Genealogy.graph`, ``nx.MultiDiGraph``; attacks go both ways, so it
has cycles). Nodes are particle uids.

================= ======= ==========================================================================
node attribute    type    meaning
================= ======= ==========================================================================
``birth``         int     epoch of its BIRTH event (absent if never recorded)
``birth_event``   int     index of that event in :attr:`Genealogy.events`
``architecture``  str     architecture name (BIRTH data; other BIRTH data items too, e.g. ``node``)
``node``          int     topology node it was born on
``death``         int     epoch of its DEATH event (absent while alive)
``death_event``   int     index of that event
``death_cause``   str     kind of the event that removed it: respawn, clone, melt (it was the
                          victim), or death (a plain kill)
``status``        str     class at death for the dead, else the last measured class
``status_epoch``  int     epoch of that classification
================= ======= ==========================================================================

One edge per event of a kind with an inheritance (``interactions.events.inheritance_of``):
horizontal (attack, learn) ``actor -> target``; vertical (clone, melt: one event per parent)
``actor -> child``; none (respawn) ``target -> child``.

================= ======= ==========================================================================
edge attribute    type    meaning
================= ======= ==========================================================================
``kind``          str     the event kind
``epoch``         int     when it happened
``inheritance``   str     "horizontal", "vertical" or "none"
``event``         int     index of the event in :attr:`Genealogy.events`
``replaced``      int     clone / melt: the particle the child replaced (absent if none)
other             scalar  the event's data items, e.g. ``overwritten`` (an attack whose result
                          was lost to another attacker of the same target), ``steps`` (learn)
================= ======= ==========================================================================

**Version DAG** (:meth:`Genealogy.version_graph`, ``nx.DiGraph``, acyclic). Node ``(uid, k)`` is
the k-th version of particle uid: k = 0 at birth, k + 1 after each event that changed its weights
(an effective attack, a learn step, an in-place change). Events of one record call (one rule
acting once) read the weights as they were before the call (SPEC D19).

================= ======= ==========================================================================
attribute         type    meaning
================= ======= ==========================================================================
node ``uid``      int     the particle
node ``k``        int     version number
node ``epoch``    int     epoch it was made
node ``kind``     str     event that made it: birth, clone, melt, respawn, attack, learn, ... or
                          ``unrecorded`` (a particle acting before any recorded birth)
node ``event``    int     index of that event (-1: none)
node ``status``   str     its class: the last one measured before it was replaced (absent if it
                          was never measured)
edge ``kind``     str     ``previous`` (its own earlier version), else the kind of the event
                          through which the source version shaped it (attack, learn, clone, melt)
edge ``epoch``    int     epoch of the target version
edge ``event``    int     index of the event
================= ======= ==========================================================================

``nx.ancestors`` of a version are exactly the versions that could have influenced its weights;
:meth:`Genealogy.ancestry`, :meth:`Genealogy.influencers`, :meth:`Genealogy.lineage_graph` ask it
as of an epoch, and ``version_graph(uid, epoch)`` builds only the part a query touches.

**Phylogeny** (:meth:`Genealogy.phylogeny`, ``nx.DiGraph``, a forest): an edge from each
particle's first vertical parent; attributes ``birth``, ``death``, ``death_cause``, ``status``,
``status_epoch``, ``error`` (fixpoint error q at that classification), ``parents`` (all vertical
parents, comma-separated), the BIRTH data items; edges ``kind``, ``epoch``. Written as the ALife
Data Standard CSV by :meth:`Genealogy.write_alife` (:mod:`chemistry.alife`).

Everything on the graphs is an int, float, bool or str, so it survives GraphML and node-link
JSON unchanged (:meth:`Genealogy.to_graphml`, :meth:`Genealogy.to_node_link_json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from chemistry.alife import write_alife
from chemistry.event_log import EventLog, scalar
from chemistry.lineage import (
    Particles,
    Versions,
    birth_items,
    build_versions,
    particle_table,
    reach,
)
from chemistry.storage import write_atomically
from interactions.events import (
    EDGE_KINDS,
    HORIZONTAL,
    INHERITANCE,
    VERTICAL,
    Event,
    EventBatch,
    EventBatches,
    EventKind,
    inheritance_of,
    register_event_kind,
)
from particles.classification import Status

__all__ = ["Genealogy", "EDGE_KINDS", "INHERITANCE"]

# Attributes the genealogy itself sets; event data items with these names get a "data_" prefix.
_RESERVED_EDGE_ATTRIBUTES = frozenset({"kind", "epoch", "inheritance", "event", "replaced"})
_RESERVED_NODE_ATTRIBUTES = frozenset(
    {"birth", "death", "birth_event", "death_event", "status", "status_epoch", "death_cause"}
)


def _numpy(values: Any) -> np.ndarray:
    """A tensor or array as a numpy array (on the host)."""
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _status_name(status: Any) -> str:
    """A status as a plain str: strings as they are, enum members by their ``name``."""
    if type(status) is str:
        return status
    name = getattr(status, "name", None)
    return name if isinstance(name, str) else str(status)


def _clean_data(data: dict[str, Any], reserved: frozenset[str]) -> dict[str, Any]:
    cleaned = {}
    for key, value in data.items():
        value = scalar(value)
        if value is None:
            continue
        name = f"data_{key}" if key in reserved else str(key)
        cleaned[name] = value
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
        self.log = EventLog()
        self._graph = nx.MultiDiGraph()
        self._num_materialised = 0
        self._classes_applied = -1
        self._versions: tuple[tuple[int, int], Versions] | None = None
        self.record(events)

    # ------------------------------------------------------------------ recording

    def record(self, events: Iterable[Event] | EventBatch | EventBatches) -> None:
        """Append events; the graphs are built from the log when read.

        Only the types are checked here (to keep recording cheap); the endpoints each kind needs
        are checked when the particle graph is built. The events of one call (one epoch of it)
        form one *step*: they read the weights as they were before the call (SPEC D19).

        Args:
            events: Event objects (or one EventBatch, or the EventBatches of one rule call),
                in the order they happened.

        Raises:
            ValueError: if an item is not an :class:`~interactions.events.Event` (nothing of the
                batch is recorded then).
        """
        self.log.record(events)

    def record_batch(
        self,
        epoch: int,
        kind: EventKind | str,
        actors: Any = None,
        targets: Any = None,
        children: Any = None,
        *,
        data: dict[str, Any] | None = None,
        columns: dict[str, Sequence[Any]] | None = None,
    ) -> None:
        """Record one step of ``n`` events of one kind from id tensors / arrays (-1: none).

        The cheap path for rules and the soup: a few array copies, no Python loop per event.
        See :meth:`chemistry.event_log.EventLog.record_batch`.
        """
        self.log.record_batch(epoch, kind, actors, targets, children, data=data, columns=columns)

    def record_classes(self, epoch: int, uids: Any, statuses: Any, errors: Any = None) -> None:
        """Record classes measured at ``epoch`` (``statuses``: ``Status`` codes or names).

        Only changes are stored as rows of the class history; the last class, its epoch and
        fixpoint error q of every particle are kept for the node attributes.
        """
        if hasattr(statuses, "detach") or isinstance(statuses, np.ndarray):
            codes = self._status_codes(np.asarray(_numpy(statuses)))
        else:
            codes = [self.log.status_code(status) for status in statuses]
        self.log.record_classes(epoch, uids, codes, errors)

    def _status_codes(self, values: np.ndarray) -> np.ndarray:
        """Map ``Status`` integer codes to the log's status codes (negative stays negative)."""
        table = np.array([self.log.status_code(s.name) for s in Status], dtype=np.int64)
        codes = np.full(values.shape, -1, dtype=np.int64)
        known = (values >= 0) & (values < len(table))
        codes[known] = table[values[known]]
        return codes

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
        codes = [self.log.status_code(_status_name(status)) for status in status_list]
        self.log.record_classes(epoch, uid_list, codes)

    # ------------------------------------------------------------------ streaming

    def use_log(self, log: EventLog) -> None:
        """Take ``log`` (e.g. :meth:`EventLog.open` of a run's ``events/``) as the event log.

        Its events must be those of the particle graph already built (same count), so the graph
        is kept; the version DAG and phylogeny are read from ``log``.

        Raises:
            ValueError: if ``log`` holds another number of events.
        """
        if len(log) != len(self.log):
            raise ValueError(
                f"the event log holds {len(log)} events, the genealogy {len(self.log)}"
            )
        self.log = log
        self._classes_applied = log.class_updates
        self._versions = None

    @classmethod
    def from_log(cls, log: EventLog) -> Genealogy:
        """A genealogy reading ``log`` (e.g. :meth:`EventLog.open` of a run's ``events/``); its
        graphs are built from the log on demand."""
        genealogy = cls()
        genealogy.log = log
        return genealogy

    def attach(self, directory: str | os.PathLike) -> None:
        """Stream the event log to ``directory`` (``events/``, ``classes/``, ...) from now on."""
        self.log.attach(directory)

    def flush(self) -> None:
        """Write the log's pending rows (with a directory attached)."""
        self.log.flush()

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything recorded, as numeric arrays and JSON-serialisable facts (for checkpoints).

        :meth:`from_state` rebuilds an equal genealogy (same steps, classes and history).
        """
        log = self.log
        arrays: dict[str, np.ndarray] = {}
        for table in ("events", "classes"):
            for column, values in log.tables[table].read().items():
                arrays[f"{table}/{column}"] = values
        for name in ("status", "epoch", "error"):
            arrays[f"last/{name}"] = getattr(log, f"_last_{name}").copy()
        meta: dict[str, Any] = {
            "kinds": list(log.kind_names),
            "statuses": list(log.status_names),
            "steps": log.steps,
            "class_updates": log.class_updates,
        }
        for table in ("step_data", "event_data"):
            data = log.tables[table].read()
            meta[table] = [data[c].tolist() for c in ("row", "name", "value")]
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, Any], meta: dict[str, Any]) -> Genealogy:
        """The genealogy saved by :meth:`state` (arrays may be numpy arrays or CPU tensors)."""
        genealogy = cls()
        log = genealogy.log
        for name in meta["kinds"]:
            log.kind_code(name)
        for name in meta["statuses"]:
            log.status_code(name)
        for table in ("events", "classes"):
            columns = {
                column: _numpy(arrays[f"{table}/{column}"]) for column in log.tables[table].columns
            }
            log.tables[table].append(**columns)
        for table in ("step_data", "event_data"):
            rows, names, values = meta[table]
            log.tables[table].append(row=rows, name=names, value=values)
        for name in ("status", "epoch", "error"):
            setattr(log, f"_last_{name}", _numpy(arrays[f"last/{name}"]).copy())
        log._steps = int(meta["steps"])
        log.class_updates = int(meta["class_updates"])
        return genealogy

    # ------------------------------------------------------------------ the graph

    @property
    def events(self) -> Sequence[Event]:
        """Every recorded event, in order (a read-only tuple of Event objects; small soups)."""
        return tuple(self.log)

    def events_frame(self) -> Any:
        """Every event as a ``pandas.DataFrame`` (see :meth:`EventLog.frame`)."""
        return self.log.frame()

    def __len__(self) -> int:
        """Number of recorded events."""
        return len(self.log)

    def __repr__(self) -> str:
        return f"Genealogy({len(self)} events)"

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The particle graph as a ``networkx.MultiDiGraph`` (see the module docstring).

        Built incrementally: only events recorded since the last access are added. Treat the
        graph as read-only; editing it is not reflected in :attr:`events`. Attacks can go both
        ways, so it has cycles: use :meth:`version_graph` for questions about time.

        Raises:
            ValueError: if a recorded event lacks an endpoint its kind needs (e.g. an attack
                without a target); the events before it are already in the graph.
        """
        self._materialise()
        return self._graph

    def _materialise(self) -> None:
        graph = self._graph
        log = self.log
        if self._num_materialised < len(log):
            start = self._num_materialised
            columns = log.columns(start)
            kinds = [log.kind_names[code] for code in columns["kind"].tolist()]
            ids = [columns[name].tolist() for name in ("epoch", "actor", "target", "child")]
            for offset, (kind, epoch, actor, target, child) in enumerate(
                zip(kinds, *ids, strict=True)
            ):
                index = start + offset
                self._add_event(graph, index, kind, epoch, actor, target, child)
                self._num_materialised = index + 1
        stamp = log.class_updates
        if stamp != self._classes_applied:
            uids, codes, epochs, _ = log.last_classes()
            names = log.status_names
            for uid, code, epoch in zip(
                uids.tolist(), codes.tolist(), epochs.tolist(), strict=True
            ):
                if uid in graph:
                    attributes = graph.nodes[uid]
                    attributes["status"] = names[code]
                    attributes["status_epoch"] = epoch
                else:
                    graph.add_node(uid, status=names[code], status_epoch=epoch)
            self._classes_applied = stamp

    def _add_event(
        self,
        graph: nx.MultiDiGraph,
        index: int,
        kind: str,
        epoch: int,
        actor: int,
        target: int,
        child: int,
    ) -> None:
        def need(name: str, value: int) -> int:
            if value < 0:
                raise ValueError(
                    f"event {index} ({self.log[index]!r}) is a {kind} event without {name}"
                )
            return value

        data = self.log.data_of(index)
        if kind == "birth":
            uid = need("child", child if child >= 0 else target)
            attributes = _clean_data(data, _RESERVED_NODE_ATTRIBUTES)
            graph.add_node(uid, birth=epoch, birth_event=index, **attributes)
            return
        if kind == "death":
            uid = need("target", target if target >= 0 else child)
            graph.add_node(uid, death=epoch, death_event=index)
            graph.nodes[uid].setdefault("death_cause", "death")
            return
        inheritance = inheritance_of(kind) or "none"
        extra: dict[str, Any] = {}
        if inheritance == "horizontal":
            source, destination = need("actor", actor), need("target", target)
        elif inheritance == "vertical":
            source, destination = need("actor", actor), need("child", child)
            if target >= 0:
                extra["replaced"] = target
        else:
            source, destination = need("target", target), need("child", child)
        if inheritance != "horizontal" and 0 <= target != child:
            graph.add_node(target, death_cause=kind)
        graph.add_edge(
            source,
            destination,
            kind=kind,
            epoch=epoch,
            inheritance=inheritance,
            event=index,
            **extra,
            **_clean_data(data, _RESERVED_EDGE_ATTRIBUTES),
        )

    def born_on(self, nodes: Iterable[int]) -> np.ndarray:
        """Uids of the particles born on the topology ``nodes`` (their BIRTH ``node`` item),
        ascending; array operations over the log, no graph built."""
        log = self.log
        data = log.tables["event_data"].read()
        is_node = data["name"] == "node"
        rows = data["row"][is_node]
        on = np.isin(data["value"][is_node].astype(np.int64), np.fromiter(nodes, np.int64))
        columns = log.columns()
        rows = rows[on]
        rows = rows[columns["kind"][rows] == log.kind_code(EventKind.BIRTH)]
        child, target = columns["child"][rows], columns["target"][rows]
        return np.unique(np.where(child >= 0, child, target))

    def sample_graph(self, uids: Iterable[int]) -> nx.MultiDiGraph:
        """The particle graph of ``uids`` only: their nodes and the events among them (an event
        that involves a particle outside is left out), built without building the whole graph.

        For pictures of soups too big to draw whole (e.g. :meth:`born_on` a few hundred nodes).
        """
        wanted = np.unique(np.fromiter(uids, np.int64))
        log = self.log
        columns = log.columns()
        ids = [columns[name] for name in ("actor", "target", "child")]
        inside = [(values < 0) | np.isin(values, wanted) for values in ids]
        involved = np.zeros(len(log), dtype=bool)
        for values in ids:
            involved |= values >= 0
        keep = np.flatnonzero(inside[0] & inside[1] & inside[2] & involved)
        graph = nx.MultiDiGraph()
        kinds = [log.kind_names[code] for code in columns["kind"][keep].tolist()]
        picked = [columns[n][keep].tolist() for n in ("epoch", "actor", "target", "child")]
        for index, kind, *event in zip(keep.tolist(), kinds, *picked, strict=True):
            self._add_event(graph, index, kind, *event)
        known, codes, epochs, _ = log.last_classes()
        mine = np.isin(known, wanted)
        for uid, code, epoch in zip(
            known[mine].tolist(), codes[mine].tolist(), epochs[mine].tolist(), strict=True
        ):
            graph.add_node(uid, status=log.status_names[code], status_epoch=epoch)
        return graph

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
            attack = self.log[best[1]]
            chain.append(attack)
            current, limit, inclusive = int(attack.actor), best[0], False

    def most_successful_lineages(
        self,
        k: int = 10,
        status: str | None = "FIXPOINT",
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
            status: the status to count, e.g. ``"FIXPOINT"`` (self-replicators); None counts
                every particle (the lineages' sizes). The status of a dead particle is its
                class at death. An empty list means no particle has that status (a soup without
                self-replicators gives ``[]`` for the default; ask with ``status=None``).
            include_horizontal: also follow attack and learn edges.

        Returns:
            Up to ``k`` ``(root uid, count)`` pairs with count > 0, by decreasing count, ties by
            increasing uid.

        Raises:
            ValueError: if ``k`` < 1.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        status = None if status is None else _status_name(status)
        graph = self.graph
        follow = {EventKind.CLONE, EventKind.MELT}
        if include_horizontal:
            follow |= set(HORIZONTAL)
        view = self._view(follow)
        vertical = self._view(VERTICAL)
        targets = [node for node, value in graph.nodes(data="status") if status in (None, value)]
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

    # ------------------------------------------------------------------ time-respecting views

    def versions(self) -> Versions:
        """The version DAG as arrays (:class:`chemistry.lineage.Versions`), cached."""
        stamp = (len(self.log), self.log.class_updates)
        if self._versions is None or self._versions[0] != stamp:
            self._versions = (stamp, build_versions(self.log))
        return self._versions[1]

    def version_classes(self) -> np.ndarray:
        """Per version node: the class in effect when it was replaced or last measured ("")."""
        versions = self.versions()
        classes = self.log.tables["classes"].read()
        out = np.full(len(versions), "", dtype=object)
        if not len(classes["uid"]) or not len(versions):
            return out
        span = int(max(classes["epoch"].max(), versions.epoch.max())) + 2
        keys = classes["uid"] * span + classes["epoch"]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        # A version is replaced at the epoch its successor is made ("never" for the last one).
        by_version = np.lexsort((versions.k, versions.uid))
        uids = versions.uid[by_version]
        has_next = np.r_[uids[1:] == uids[:-1], False]
        deadline = np.full(len(versions), span - 1, dtype=np.int64)
        deadline[by_version[has_next]] = versions.epoch[by_version[1:][has_next[:-1]]]
        found = np.searchsorted(keys, versions.uid * span + deadline, side="left") - 1
        valid = found >= 0
        rows = order[np.maximum(found, 0)]
        valid &= classes["uid"][rows] == versions.uid
        valid &= deadline > versions.epoch
        names = np.array(self.log.status_names, dtype=object)
        out[valid] = names[classes["status"][rows[valid]]]
        return out

    def version_graph(self, uid: int | None = None, epoch: int | None = None) -> nx.DiGraph:
        """The version DAG as an ``nx.DiGraph`` on nodes ``(uid, k)`` (see the module docstring).

        Args:
            uid: None for every version; else only the versions that influenced, or were
                influenced by, ``uid``'s version current at ``epoch`` (the part a query needs).
            epoch: with ``uid``: as of this epoch (None: its last version).

        Raises:
            ValueError: if ``uid`` has no version (at or before ``epoch``).
        """
        versions = self.versions()
        if uid is None:
            keep = np.arange(len(versions))
        else:
            seed = versions.current(int(uid), epoch)
            keep = np.union1d(
                reach(versions, np.array([seed]), forward=False),
                reach(versions, np.array([seed]), forward=True),
            )
        return self._version_subgraph(keep)

    def lineage_graph(self, uid: int, epoch: int | None = None) -> nx.MultiDiGraph:
        """The particle graph of what shaped ``uid`` and what it shaped, time-respecting.

        The particles with a version among the ancestors or descendants (in the version DAG) of
        ``uid``'s version as of ``epoch`` (None: its last), and only the edges whose events are
        links of that part of the DAG; a copy with every attribute.

        Raises:
            ValueError: if ``uid`` has no version at or before ``epoch``.
        """
        versions = self.versions()
        seed = np.array([versions.current(int(uid), epoch)])
        keep = np.union1d(reach(versions, seed, forward=False), reach(versions, seed, forward=True))
        inside = np.zeros(len(versions), dtype=bool)
        inside[keep] = True
        links = inside[versions.source] & inside[versions.target]
        events = set(versions.edge_event[links].tolist())
        graph = self.graph
        members = set(versions.uid[keep].tolist())
        lineage = nx.MultiDiGraph()
        lineage.add_nodes_from((n, graph.nodes[n]) for n in members if n in graph)
        lineage.add_edges_from(
            (u, v, k, d)
            for u, v, k, d in graph.edges(keys=True, data=True)
            if d["event"] in events and u in members and v in members
        )
        return lineage

    def _version_subgraph(self, keep: np.ndarray) -> nx.DiGraph:
        versions = self.versions()
        classes = self.version_classes()
        names = versions.kind_names
        graph = nx.DiGraph()
        for i in keep.tolist():
            attributes = {
                "uid": int(versions.uid[i]),
                "k": int(versions.k[i]),
                "epoch": int(versions.epoch[i]),
                "kind": names[versions.kind[i]],
                "event": int(versions.event[i]),
            }
            if classes[i]:
                attributes["status"] = classes[i]
            graph.add_node((attributes["uid"], attributes["k"]), **attributes)
        inside = np.zeros(len(versions), dtype=bool)
        inside[keep] = True
        chosen = np.flatnonzero(inside[versions.source] & inside[versions.target])
        for e in chosen.tolist():
            s, t = versions.source[e], versions.target[e]
            graph.add_edge(
                (int(versions.uid[s]), int(versions.k[s])),
                (int(versions.uid[t]), int(versions.k[t])),
                kind=names[versions.edge_kind[e]],
                epoch=int(versions.epoch[t]),
                event=int(versions.edge_event[e]),
            )
        return graph

    def ancestry(self, uid: int, epoch: int | None = None) -> nx.DiGraph:
        """The versions that could have influenced ``uid``'s weights as of ``epoch``, with it.

        Raises:
            ValueError: if ``uid`` has no version at or before ``epoch``.
        """
        versions = self.versions()
        seed = versions.current(int(uid), epoch)
        return self._version_subgraph(reach(versions, np.array([seed]), forward=False))

    def influencers(self, uid: int, epoch: int | None = None) -> dict[int, int]:
        """Who shaped ``uid`` by horizontal influence: ``{actor uid: influence edges}``.

        Counts the attack / learn (horizontal) edges from other particles into the versions of
        ``uid``'s ancestry as of ``epoch``, most first.
        """
        ancestry = self.ancestry(uid, epoch)
        counts: dict[int, int] = {}
        for source, target, kind in ancestry.edges(data="kind"):
            if inheritance_of(kind) == "horizontal" and source[0] != target[0]:
                counts[source[0]] = counts.get(source[0], 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def particles(self) -> Particles:
        """Births, deaths, parents, causes of death and last classes per particle (arrays)."""
        return particle_table(self.log)

    def phylogeny(self) -> nx.DiGraph:
        """The phylogeny: a forest on particle uids, an edge from each particle's first parent.

        A clone has one parent; a melt child's tree parent is its first parent and the node
        attribute ``parents`` names all of them (comma-separated). Node attributes: ``birth``,
        ``death`` (absent while alive), ``death_cause``, ``status``, ``status_epoch``, ``error``
        (fixpoint error q at the last classification), ``parents`` and the birth data items
        (``architecture``, ``node``). Edge attributes: ``kind`` ("clone", "melt"), ``epoch``.
        """
        table = self.particles()
        birth_data = self._birth_data(table)
        graph = nx.DiGraph()
        for i, uid in enumerate(table.uid.tolist()):
            attributes: dict[str, Any] = {
                name: values[i] for name, values in birth_data.items() if values[i] is not None
            }
            if table.birth[i] >= 0:
                attributes["birth"] = int(table.birth[i])
            if table.death[i] >= 0:
                attributes["death"] = int(table.death[i])
                attributes["death_cause"] = table.death_cause[i]
            if table.status[i]:
                attributes["status"] = table.status[i]
                attributes["status_epoch"] = int(table.status_epoch[i])
            if not np.isnan(table.error[i]):
                attributes["error"] = float(table.error[i])
            if i in table.parents:
                attributes["parents"] = ",".join(map(str, table.parents[i]))
            graph.add_node(uid, **attributes)
        columns = self.log.columns()
        for i, uid in enumerate(table.uid.tolist()):
            if i in table.parents:
                graph.add_edge(table.parents[i][0], uid)
        vertical = [
            code
            for code, name in enumerate(self.log.kind_names)
            if inheritance_of(name) == "vertical"
        ]
        rows = np.flatnonzero(np.isin(columns["kind"], vertical) & (columns["child"] >= 0))
        for row in rows[::-1].tolist():  # the first event of each edge wins
            parent, child = int(columns["actor"][row]), int(columns["child"][row])
            if graph.has_edge(parent, child):
                graph.edges[parent, child].update(
                    kind=self.log.kind_names[columns["kind"][row]],
                    epoch=int(columns["epoch"][row]),
                )
        return graph

    def _birth_data(self, table: Particles) -> dict[str, np.ndarray]:
        """The data items of each particle's birth event: ``{name: values [n]}`` (None: none)."""
        out = {}
        for name, (codes, values) in birth_items(self.log, table.birth_event).items():
            decoded = np.empty(len(values) + 1, dtype=object)
            decoded[:-1] = values
            out[name] = decoded[codes]  # code -1: the trailing None
        return out

    def replicator_lineages(self, status: str = "FIXPOINT") -> dict[int, list[int]]:
        """For every living particle of ``status``: its phylogeny path, root first."""
        tree = self.phylogeny()
        out = {}
        for uid, data in tree.nodes(data=True):
            if data.get("status") == status and "death" not in data:
                path = [uid]
                while True:
                    parents = list(tree.predecessors(path[-1]))
                    if not parents:
                        break
                    path.append(parents[0])
                out[uid] = path[::-1]
        return out

    def write_alife(self, path: str | os.PathLike) -> Path:
        """Write the phylogeny as an ALife Data Standard CSV (see :mod:`chemistry.alife`)."""
        return write_alife(self.log, path)

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
        for index in order:  # one step per event: the graph does not keep record calls
            genealogy.log.record([numbered[index]])
        statuses = [
            (node, data["status"], data.get("status_epoch", 0))
            for node, data in graph.nodes(data=True)
            if "status" in data
        ]
        for node, status, epoch in sorted(statuses, key=lambda item: item[2]):
            genealogy.set_status([node], [status], epoch)
        genealogy._graph = graph
        genealogy._num_materialised = len(genealogy.log)
        genealogy._classes_applied = genealogy.log.class_updates
        return genealogy
