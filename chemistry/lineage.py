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

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from chemistry.event_log import EventLog
from interactions.events import inheritance_of

__all__ = ["Versions", "build_versions", "reach", "Particles", "particle_table", "birth_items"]

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


#: Event rows read at a time by :func:`particle_table` and :func:`birth_items`.
BLOCK_ROWS = 1 << 20


@dataclass
class Particles:
    """One row per particle uid ever mentioned (ascending ``uid``).

    ``birth`` / ``death``: epochs (-1: not recorded / alive); ``birth_event`` / ``death_event``:
    event indices (-1: none); ``parent_row`` / ``parent_uid``: vertical parents, one pair per
    (row, parent), grouped by row and in recording order within a row (:attr:`parents` as a
    dict); ``death_cause``: kind of the event that removed it ("death" for a plain kill, ""
    alive); ``status`` / ``status_epoch`` / ``error``: last measured class ("" none), when, and
    its q.
    """

    uid: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    birth_event: np.ndarray
    death_event: np.ndarray
    parent_row: np.ndarray
    parent_uid: np.ndarray
    death_cause: np.ndarray
    status: np.ndarray
    status_epoch: np.ndarray
    error: np.ndarray

    @cached_property
    def parents(self) -> dict[int, list[int]]:
        """Row -> its vertical parents in recording order (rows without parents are absent)."""
        out: dict[int, list[int]] = {}
        for row, parent in zip(self.parent_row.tolist(), self.parent_uid.tolist(), strict=True):
            out.setdefault(row, []).append(parent)
        return out


def _keep_last(who: np.ndarray, mask: np.ndarray, targets: list[tuple[np.ndarray, np.ndarray]]):
    """``array[who[i]] = values[i]`` for the masked i, the last i of each uid winning."""
    chosen = np.flatnonzero(mask)[::-1]
    uids, first = np.unique(who[chosen], return_index=True)
    for array, values in targets:
        array[uids] = values[chosen[first]]


def particle_table(log: EventLog, block_rows: int = BLOCK_ROWS) -> Particles:
    """Births, deaths, parents, causes of death and last classes, per particle, from the log.

    One pass over the events a block at a time (bounded memory); per-uid arrays only.
    """
    birth_code, death_code = log.kind_code("birth"), log.kind_code("death")
    inherit_of = _inheritance_codes(log.kind_names)
    known, codes, when, errors = log.last_classes()
    size = int(known.max(initial=-1)) + 1
    fills = {"present": False, "birth_event": -1, "birth": -1, "death_event": -1, "death": -1}
    fills |= {"cause_event": -1, "cause_kind": -1}
    per_uid = {
        name: np.full(size, fill, np.bool_ if fill is False else np.int64)
        for name, fill in fills.items()
    }
    per_uid["present"][known] = True
    children: list[np.ndarray] = []
    actors: list[np.ndarray] = []
    names = ["epoch", "kind", "actor", "target", "child"]
    for start, columns in log.tables["events"].blocks(names, block_rows):
        kinds, epochs = columns["kind"], columns["epoch"]
        actor, target, child = columns["actor"], columns["target"], columns["child"]
        top = 1 + max(int(ids.max(initial=-1)) for ids in (actor, target, child))
        if top > size:
            size = max(top, 2 * size)
            for name, old in per_uid.items():
                new = np.full(size, fills[name], old.dtype)
                new[: len(old)] = old
                per_uid[name] = new
        present = per_uid["present"]
        for ids in (actor, target, child):
            present[ids[ids >= 0]] = True
        rows = np.arange(start, start + len(kinds), dtype=np.int64)
        _keep_last(
            child,
            (kinds == birth_code) & (child >= 0),
            [(per_uid["birth_event"], rows), (per_uid["birth"], epochs)],
        )
        _keep_last(
            target,
            (kinds == death_code) & (target >= 0),
            [(per_uid["death_event"], rows), (per_uid["death"], epochs)],
        )
        inherit = inherit_of[kinds]
        vertical = (inherit == _VERTICAL) & (child >= 0) & (actor >= 0)
        children.append(child[vertical])
        actors.append(actor[vertical])
        replaced = (inherit != _HORIZONTAL) & (target >= 0) & (child >= 0) & (target != child)
        _keep_last(
            target,
            replaced,
            [(per_uid["cause_event"], rows), (per_uid["cause_kind"], kinds.astype(np.int64))],
        )
    uids = np.flatnonzero(per_uid["present"])
    index_of = np.full(size, -1, dtype=np.int64)
    index_of[uids] = np.arange(len(uids))
    got = {name: values[uids] for name, values in per_uid.items() if name != "present"}
    child = np.concatenate(children) if children else np.zeros(0, np.int64)
    actor = np.concatenate(actors) if actors else np.zeros(0, np.int64)
    pairs, first = np.unique(np.stack([child, actor], axis=1), axis=0, return_index=True)
    first = np.sort(first)  # each (child, parent) once, at its first event
    parent_row = index_of[child[first]]
    order = np.argsort(parent_row, kind="stable")
    kind_names = np.array([*log.kind_names, "death"], dtype=object)
    death_cause = np.where(got["death"] < 0, "", kind_names[got["cause_kind"]]).astype(object)
    status = np.full(len(uids), "", dtype=object)
    status_epoch = np.full(len(uids), -1, np.int64)
    error = np.full(len(uids), np.nan, np.float32)
    at = index_of[known]
    status[at] = np.array(log.status_names, dtype=object)[codes]
    status_epoch[at] = when
    error[at] = errors
    return Particles(
        uids,
        got["birth"],
        got["death"],
        got["birth_event"],
        got["death_event"],
        parent_row[order],
        actor[first][order],
        death_cause,
        status,
        status_epoch,
        error,
    )


def birth_items(
    log: EventLog, birth_event: np.ndarray, block_rows: int = BLOCK_ROWS
) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """The data items of each particle's birth event, ``{name: (codes [n], values)}``.

    ``codes[i]`` indexes ``values`` (the distinct decoded values; -1: particle ``i`` has no such
    item). One pass over ``event_data`` a block at a time: memory per particle is one int.
    """
    order = np.argsort(birth_event)
    births = birth_event[order]
    out: dict[str, tuple[np.ndarray, list[Any]]] = {}
    code_of: dict[str, dict[str, int]] = {}
    for _, data in log.tables["event_data"].blocks(None, block_rows):
        if not len(births):
            break
        at = np.minimum(np.searchsorted(births, data["row"]), len(births) - 1)
        hit = births[at] == data["row"]
        owners = order[at[hit]]
        names, values = data["name"][hit], data["value"][hit]
        for name in np.unique(names).tolist():
            mine = names == name
            distinct, inverse = np.unique(values[mine], return_inverse=True)
            if name not in out:
                out[name] = (np.full(len(birth_event), -1, np.int64), [])
                code_of[name] = {}
            codes, decoded = out[name]
            table = code_of[name]
            texts = distinct.tolist()
            new = [text for text in texts if text not in table]
            table.update(zip(new, range(len(decoded), len(decoded) + len(new)), strict=True))
            decoded += _decoded_json(new)
            mapped = np.fromiter(map(table.__getitem__, texts), np.int64, len(texts))
            codes[owners[mine]] = mapped[inverse]
    return out


def _decoded_json(texts: list[str]) -> list[Any]:
    """``json.loads`` of each text; integers and booleans (birth nodes, flags) as array ops."""
    if not texts:
        return []
    array = np.array(texts)
    unsigned = np.where(np.strings.startswith(array, "-"), np.strings.slice(array, 1), array)
    if bool(np.strings.isdecimal(unsigned).all()) and max(map(len, texts)) < 19:  # int64
        return array.astype(np.int64).tolist()
    if bool(np.isin(array, ["true", "false"]).all()):
        return (array == "true").tolist()
    return [json.loads(text) for text in texts]
