"""The time-respecting genealogy: particle versions, their DAG, and the phylogeny, as arrays.

A *version* is a particle's weights between two events that changed them: version 0 at birth,
version k+1 after each horizontal event on it (an effective attack, a learn step, or an
in-place change such as a user "mutate" kind whose target is its child). Its parents in the DAG
are its previous version and the version of the actor at that moment; a clone or melt child's
version 0 has the parents' versions as parents. Events of one record call (one rule acting
once, SPEC D19) read the weights as they were before the call, so an actor contributes the
version it had when the call began. Edges therefore always point forward in (epoch, step) and
the graph is acyclic whatever attacks go both ways.

:func:`build_versions` does this with array operations per record call; networkx graphs are
made from the arrays on demand (:func:`version_graph`), for everything or for the part a query
reaches (:func:`reach`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chemistry.event_log import EventLog
from interactions.events import inheritance_of

__all__ = ["Versions", "build_versions", "reach", "Particles", "particle_table"]

_NONE, _HORIZONTAL, _VERTICAL = 0, 1, 2
#: Pseudo kinds of version edges and nodes (besides the event kinds).
PREVIOUS = "previous"
UNRECORDED = "unrecorded"


def _inheritance_codes(kind_names: list[str]) -> np.ndarray:
    table = {"horizontal": _HORIZONTAL, "vertical": _VERTICAL}
    return np.array([table.get(inheritance_of(n) or "", _NONE) for n in kind_names], np.int8)


def effective(log: EventLog) -> np.ndarray:
    """Per event: False where its data says ``overwritten`` (an attack whose result was lost)."""
    flags = np.ones(len(log), dtype=bool)
    data = log.tables["event_data"].read()
    lost = data["row"][(data["name"] == "overwritten") & (data["value"] == "true")]
    flags[lost] = False
    return flags


@dataclass
class Versions:
    """Versions (nodes) and influence edges as arrays. Node ``i`` is ``(uid[i], k[i])``.

    ``kind`` of a node / edge indexes :attr:`kind_names` (event kinds, then ``previous`` and
    ``unrecorded``); ``event`` is the index of the event that made it (-1: none).
    """

    uid: np.ndarray
    k: np.ndarray
    epoch: np.ndarray
    kind: np.ndarray
    event: np.ndarray
    source: np.ndarray
    target: np.ndarray
    edge_kind: np.ndarray
    edge_event: np.ndarray
    kind_names: list[str]

    def __len__(self) -> int:
        return len(self.uid)

    def index(self, uid: int, k: int) -> int:
        """The node index of version ``k`` of ``uid`` (ValueError if there is none)."""
        found = np.flatnonzero((self.uid == uid) & (self.k == k))
        if not len(found):
            raise ValueError(f"particle {uid} has no version {k}")
        return int(found[0])

    def current(self, uid: int, epoch: int | None = None) -> int:
        """The node index of ``uid``'s last version made at or before ``epoch`` (None: last)."""
        mask = self.uid == uid
        if epoch is not None:
            mask &= self.epoch <= epoch
        found = np.flatnonzero(mask)
        if not len(found):
            raise ValueError(
                f"particle {uid} has no version"
                + (f" at or before epoch {epoch}" if epoch is not None else "")
            )
        return int(found[np.argmax(self.k[found])])


def build_versions(log: EventLog) -> Versions:
    """The version DAG of a log (see the module docstring), step by step with array operations."""
    columns = log.columns()
    kinds = columns["kind"]
    kind_names = [*log.kind_names, PREVIOUS, UNRECORDED]
    previous, unrecorded = len(log.kind_names), len(log.kind_names) + 1
    inherit = _inheritance_codes(log.kind_names)[kinds] if len(kinds) else np.zeros(0, np.int8)
    works = effective(log)
    actor, target, child = columns["actor"], columns["target"], columns["child"]
    size = int(max(actor.max(initial=-1), target.max(initial=-1), child.max(initial=-1))) + 1
    count = np.zeros(size, dtype=np.int64)  # versions per uid
    node_of = np.full(size, -1, dtype=np.int64)  # current version node per uid
    nodes: dict[str, list[np.ndarray]] = {n: [] for n in ("uid", "k", "epoch", "kind", "event")}
    edges: dict[str, list[np.ndarray]] = {n: [] for n in ("source", "target", "kind", "event")}
    total = 0

    def create(uids: np.ndarray, node_kinds: np.ndarray, events: np.ndarray, epoch: int) -> None:
        """Version 0 of the uids that have none yet (first occurrence wins)."""
        nonlocal total
        fresh = (uids >= 0) & (node_of[np.maximum(uids, 0)] < 0)
        if not fresh.any():
            return
        uids, first = np.unique(uids[fresh], return_index=True)
        order = np.argsort(first)
        uids, first = uids[order], first[order]
        n = len(uids)
        node_of[uids] = np.arange(total, total + n)
        count[uids] = 1
        nodes["uid"].append(uids)
        nodes["k"].append(np.zeros(n, np.int64))
        nodes["epoch"].append(np.full(n, epoch, np.int64))
        nodes["kind"].append(node_kinds[fresh][first])
        nodes["event"].append(events[fresh][first])
        total += n

    def link(sources: np.ndarray, targets: np.ndarray, kind: np.ndarray, event: np.ndarray) -> None:
        keep = sources >= 0
        edges["source"].append(sources[keep])
        edges["target"].append(targets[keep])
        edges["kind"].append(kind[keep])
        edges["event"].append(event[keep])

    steps = columns["step"]
    bounds = np.flatnonzero(np.diff(steps)) + 1 if len(steps) else np.zeros(0, np.int64)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(steps)], strict=True):
        if lo == hi:
            continue
        index = np.arange(lo, hi)
        kind, inh = kinds[lo:hi], inherit[lo:hi]
        a, t, c = actor[lo:hi], target[lo:hi], child[lo:hi]
        epoch = int(columns["epoch"][lo])
        vertical = (inh == _VERTICAL) & (c >= 0)
        in_place = (inh == _NONE) & (c >= 0) & (c == t)
        newborn = (inh == _NONE) & (c >= 0) & (c != t)
        create(c[vertical], kind[vertical], index[vertical], epoch)
        create(c[newborn], kind[newborn], index[newborn], epoch)
        mentioned = np.r_[a, t, c]
        create(
            mentioned,
            np.full(len(mentioned), unrecorded, np.int64),
            np.full(len(mentioned), -1, np.int64),
            epoch,
        )
        actor_node = np.where(a >= 0, node_of[np.maximum(a, 0)], -1)  # the snapshot
        if vertical.any():
            link(
                actor_node[vertical],
                node_of[c[vertical]],
                kind[vertical].astype(np.int64),
                index[vertical],
            )
        changed = ((inh == _HORIZONTAL) & (t >= 0) & works[lo:hi]) | in_place
        if changed.any():
            who = t[changed]
            order = np.argsort(who, kind="stable")
            sorted_who = who[order]
            starts = np.r_[0, np.flatnonzero(np.diff(sorted_who)) + 1]
            rank = np.empty(len(who), np.int64)
            rank[order] = np.arange(len(who)) - np.repeat(starts, np.diff(np.r_[starts, len(who)]))
            new_nodes = np.empty(len(who), np.int64)
            new_nodes[order] = total + np.arange(len(who))
            # Node numbering follows the sorted order, so a uid's versions are consecutive.
            prev = np.where(rank == 0, node_of[who], new_nodes - 1)
            nodes["uid"].append(sorted_who)
            nodes["k"].append(count[sorted_who] + rank[order])
            nodes["epoch"].append(np.full(len(who), epoch, np.int64))
            nodes["kind"].append(kind[changed][order].astype(np.int64))
            nodes["event"].append(index[changed][order])
            total += len(who)
            link(prev, new_nodes, np.full(len(who), previous, np.int64), index[changed])
            link(actor_node[changed], new_nodes, kind[changed].astype(np.int64), index[changed])
            last = np.r_[starts[1:] - 1, len(who) - 1]
            node_of[sorted_who[last]] = new_nodes[order][last]
            count[sorted_who[last]] += rank[order][last] + 1

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    return Versions(
        *(joined(nodes[n]) for n in ("uid", "k", "epoch", "kind", "event")),
        *(joined(edges[n]) for n in ("source", "target", "kind", "event")),
        kind_names,
    )


def reach(versions: Versions, seeds: np.ndarray, *, forward: bool) -> np.ndarray:
    """Node indices reachable from ``seeds`` (seeds included), along edges or against them."""
    source, target = (
        (versions.source, versions.target) if forward else (versions.target, versions.source)
    )
    order = np.argsort(source, kind="stable")
    ends = target[order]
    indptr = np.searchsorted(source[order], np.arange(len(versions) + 1))
    seen = np.zeros(len(versions), dtype=bool)
    frontier = np.unique(np.asarray(seeds, dtype=np.int64))
    seen[frontier] = True
    while len(frontier):
        starts, stops = indptr[frontier], indptr[frontier + 1]
        sizes = stops - starts
        if not sizes.sum():
            break
        offsets = np.repeat(starts - np.r_[0, np.cumsum(sizes)[:-1]], sizes)
        neighbours = ends[offsets + np.arange(sizes.sum())]
        neighbours = np.unique(neighbours[~seen[neighbours]])
        seen[neighbours] = True
        frontier = neighbours
    return np.flatnonzero(seen)


@dataclass
class Particles:
    """One row per particle uid ever mentioned (ascending ``uid``).

    ``birth`` / ``death``: epochs (-1: not recorded / alive); ``birth_event`` / ``death_event``:
    event indices (-1: none); ``parents``: row -> vertical parents in recording order (rows
    without parents are absent);
    ``death_cause``: kind of the event that removed it ("death" for a plain kill, "" alive);
    ``status`` / ``status_epoch`` / ``error``: last measured class ("" none), when, and its q.
    """

    uid: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    birth_event: np.ndarray
    death_event: np.ndarray
    parents: dict[int, list[int]]
    death_cause: list[str]
    status: np.ndarray
    status_epoch: np.ndarray
    error: np.ndarray


def particle_table(log: EventLog) -> Particles:
    """Births, deaths, parents, causes of death and last classes, per particle, from the log."""
    columns = log.tables["events"].read(["epoch", "kind", "actor", "target", "child"])
    kinds, epochs = columns["kind"], columns["epoch"]
    actor, target, child = columns["actor"], columns["target"], columns["child"]
    known = log.last_classes()[0]
    size = 1 + max(int(ids.max(initial=-1)) for ids in (actor, target, child, known))
    present = np.zeros(size, dtype=bool)
    for ids in (actor, target, child, known):
        present[ids[ids >= 0]] = True
    uids = np.flatnonzero(present)
    index_of = np.full(size, -1, dtype=np.int64)
    index_of[uids] = np.arange(len(uids))
    n = len(uids)

    def per_uid(mask: np.ndarray, who: np.ndarray, last: bool) -> np.ndarray:
        """Event index per uid of the first (or last) masked event naming it; -1 if none."""
        rows = np.flatnonzero(mask)
        if last:
            out = np.full(n, -1, np.int64)
            np.maximum.at(out, index_of[who[rows]], rows)
            return out
        out = np.full(n, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(out, index_of[who[rows]], rows)
        return np.where(out == np.iinfo(np.int64).max, -1, out)

    birth_event = per_uid((kinds == log.kind_code("birth")) & (child >= 0), child, last=True)
    death_event = per_uid((kinds == log.kind_code("death")) & (target >= 0), target, last=True)
    birth = np.where(birth_event >= 0, epochs[np.maximum(birth_event, 0)], -1)
    death = np.where(death_event >= 0, epochs[np.maximum(death_event, 0)], -1)
    inherit = _inheritance_codes(log.kind_names)[kinds] if len(kinds) else np.zeros(0, np.int8)
    parents: dict[int, list[int]] = {}
    vertical = np.flatnonzero((inherit == _VERTICAL) & (child >= 0) & (actor >= 0))
    for c, a in zip(child[vertical].tolist(), actor[vertical].tolist(), strict=True):
        mine = parents.setdefault(int(index_of[c]), [])
        if a not in mine:
            mine.append(a)
    replaced = np.flatnonzero((inherit != _HORIZONTAL) & (target >= 0) & (child >= 0))
    replaced = replaced[target[replaced] != child[replaced]]
    is_cause = np.zeros(len(kinds), dtype=bool)
    is_cause[replaced] = True
    cause_event = per_uid(is_cause, target, last=True)
    death_cause = [
        ("" if d < 0 else log.kind_names[kinds[e]] if e >= 0 else "death")
        for d, e in zip(death_event.tolist(), cause_event.tolist(), strict=True)
    ]
    status = np.full(n, "", dtype=object)
    status_epoch = np.full(n, -1, np.int64)
    error = np.full(n, np.nan, np.float32)
    known, codes, when, errors = log.last_classes()
    at = index_of[known]
    status[at] = np.array(log.status_names, dtype=object)[codes]
    status_epoch[at] = when
    error[at] = errors
    return Particles(
        uids,
        birth,
        death,
        birth_event,
        death_event,
        parents,
        death_cause,
        status,
        status_epoch,
        error,
    )
