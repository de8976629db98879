"""The event log as columns: the source of truth of a genealogy.

Every event is one row of :class:`EventLog` (columns ``step``, ``epoch``, ``kind``, ``actor``,
``target``, ``child``; -1 means "no particle"), recorded in batches of arrays: a rule's whole
output costs a few array copies, never a Python loop per event. ``step`` numbers the record
calls: the events of one call (one rule acting once) read the weights as they were before the
call (SPEC D19), which is what the version DAG of :mod:`chemistry.lineage` needs. ``kind`` is a
code into :attr:`EventLog.kind_names` (the built-in kinds first, then any other kind in the
order met). Event data items live in two side tables, ``step_data`` (items every event of a
record call carries, e.g. ``steps`` of a learn batch) and ``event_data`` (per-event items, e.g.
``overwritten`` on some attacks), each row a name and the value as JSON text.

Classes (``Status`` names or any string) are a third table, ``classes``: a row ``(epoch, uid,
status, error)`` each time a particle's class is first measured or changes, and at death.

With a directory attached (:meth:`EventLog.attach`) the tables stream there in ``.npz`` chunks
(:class:`chemistry.columnar.ChunkedTable`), so memory stays bounded however long the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chemistry.columnar import ChunkedTable
from interactions.events import Event, EventBatch, EventBatches, EventKind

__all__ = ["EventLog", "NO_PARTICLE", "scalar"]

NO_PARTICLE = -1
ID_COLUMNS = ("actor", "target", "child")
_EVENT_COLUMNS = {
    "step": (np.int64, ()),
    "epoch": (np.int64, ()),
    "kind": (np.int16, ()),
    "actor": (np.int64, ()),
    "target": (np.int64, ()),
    "child": (np.int64, ()),
}
_DATA_COLUMNS = {"row": (np.int64, ()), "name": ("<U0", ()), "value": ("<U0", ())}
_CLASS_COLUMNS = {
    "epoch": (np.int64, ()),
    "uid": (np.int64, ()),
    "status": (np.int16, ()),
    "error": (np.float32, ()),
}
TABLES = ("events", "step_data", "event_data", "classes")


def scalar(value: Any) -> int | float | bool | str | None:
    """A GraphML/JSON-safe scalar for an event data value (None means: leave it out).

    bool, int, float and str pass through; numpy / torch scalars become Python scalars; anything
    else is stored as its JSON text (or ``str`` if it is not JSON-serialisable).
    """
    if value is None or isinstance(value, bool | str | int | float):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return scalar(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return str(value)


def _ids(values: Any, size: int | None) -> np.ndarray:
    """A uid column as int64 with -1 for None (tensor, array or list of int / None)."""
    if values is None:
        return np.full(size or 0, NO_PARTICLE, dtype=np.int64)
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.int64)
    except TypeError:  # a list holding None
        array = np.array([NO_PARTICLE if v is None else v for v in values], dtype=np.int64)
    return array.reshape(-1)


def _encoded_column(values: Any) -> tuple[np.ndarray, list[str] | np.ndarray]:
    """(rows holding an item, their values as JSON text) of a per-event data column.

    None marks "no item". Columns of bools or ints (the usual case: attack's ``overwritten``,
    birth's ``node``) are encoded with array operations; other values one by one.
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind in "biu":
        rows = np.arange(len(values))
        picked = values
    else:
        array = np.asarray(values, dtype=object)  # None marks "no item" (one C loop)
        rows = np.flatnonzero(np.not_equal(array, None))
        picked = array[rows]
    if not len(rows):
        return rows, []
    types = set(map(type, picked.tolist())) if picked.dtype == object else {picked.dtype.kind}
    if types <= {bool, np.bool_, "b"}:
        return rows, np.where(picked.astype(bool), "true", "false")
    if types <= {int, "i", "u"}:
        return rows, picked.astype(np.int64).astype(str)
    return rows, [json.dumps(scalar(v)) for v in picked.tolist()]


def _status_name(status: Any) -> str:
    if type(status) is str:
        return status
    name = getattr(status, "name", None)
    return name if isinstance(name, str) else str(status)


class EventLog(Sequence[Event]):
    """Events, data items and classes as chunked columns (see the module docstring).

    Reading it as a sequence builds ``Event`` objects (fine for small soups); large analyses
    read the columns with :meth:`columns` or :meth:`frame`.
    """

    def __init__(self) -> None:
        self.kind_names: list[str] = [kind.value for kind in EventKind]
        self._kind_code = {name: code for code, name in enumerate(self.kind_names)}
        self.status_names: list[str] = []
        self._status_code: dict[str, int] = {}
        self.tables = {
            "events": ChunkedTable(_EVENT_COLUMNS),
            "step_data": ChunkedTable(_DATA_COLUMNS),
            "event_data": ChunkedTable(_DATA_COLUMNS),
            "classes": ChunkedTable(_CLASS_COLUMNS),
        }
        self._steps = 0
        # uid -> last class code (-1: none yet) and its epoch / error, for change detection.
        self._last_status = np.full(0, -1, dtype=np.int16)
        self._last_epoch = np.full(0, -1, dtype=np.int64)
        self._last_error = np.full(0, np.nan, dtype=np.float32)
        self._cache: tuple[int, dict[str, np.ndarray], dict, dict] | None = None
        self.class_updates = 0  # record_classes calls, to tell when last classes changed

    # ------------------------------------------------------------------ codes

    def kind_code(self, kind: EventKind | str) -> int:
        """The code of a kind in the ``kind`` column (new kinds get the next code)."""
        name = str(getattr(kind, "value", kind))
        code = self._kind_code.get(name)
        if code is None:
            code = self._kind_code[name] = len(self.kind_names)
            self.kind_names.append(name)
        return code

    def status_code(self, status: Any) -> int:
        """The code of a class name in the ``status`` column of ``classes``."""
        name = _status_name(status)
        code = self._status_code.get(name)
        if code is None:
            code = self._status_code[name] = len(self.status_names)
            self.status_names.append(name)
        return code

    # ------------------------------------------------------------------ recording

    def record_batch(
        self,
        epoch: int,
        kind: EventKind | str,
        actors: Any = None,
        targets: Any = None,
        children: Any = None,
        *,
        data: Mapping[str, Any] | None = None,
        columns: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Record ``n`` events of one kind and epoch as one step, from id columns.

        Args:
            epoch: the epoch of every event.
            kind: their kind.
            actors, targets, children: ``[n]`` uids (tensor, array or list; -1 or None: none),
                or None for "none for every event". At least one must be given.
            data: items every event carries.
            columns: per-event items ``{name: [value or None] * n}``.
        """
        given = [c for c in (actors, targets, children) if c is not None]
        if not given:
            raise ValueError("record_batch needs at least one of actors, targets, children")
        size = len(_ids(given[0], None))
        ids = [_ids(c, size) for c in (actors, targets, children)]
        if any(len(column) != size for column in ids):
            raise ValueError(f"id columns of different lengths: {[len(c) for c in ids]}")
        if size == 0:
            return
        self._steps += 1
        self._append(self._steps - 1, epoch, kind, ids, data, columns, whole_step=True)

    def _append(
        self,
        step: int,
        epoch: int,
        kind: EventKind | str,
        ids: Sequence[np.ndarray],
        data: Mapping[str, Any] | None,
        columns: Mapping[str, Any] | None,
        *,
        whole_step: bool,
    ) -> None:
        """Append ``n`` events of one kind as part of ``step`` (ids: three int64 arrays [n]).

        ``data`` (items every event carries) is stored once for the step when these events are
        the ``whole_step``, else as per-event items (other events of the step lack them).
        """
        size = len(ids[0])
        start = len(self)
        self.tables["events"].append(
            step=np.full(size, step),
            epoch=np.full(size, int(epoch)),
            kind=np.full(size, self.kind_code(kind)),
            actor=ids[0],
            target=ids[1],
            child=ids[2],
        )
        items = [(n, scalar(v)) for n, v in (data or {}).items() if scalar(v) is not None]
        if items and whole_step:
            self.tables["step_data"].append(
                row=np.full(len(items), step),
                name=[n for n, _ in items],
                value=[json.dumps(v) for _, v in items],
            )
        elif items:  # event by event: item by item, each event's items in order
            self.tables["event_data"].append(
                row=np.repeat(np.arange(start, start + size), len(items)),
                name=np.tile([n for n, _ in items], size),
                value=np.tile([json.dumps(v) for _, v in items], size),
            )
        for name, values in (columns or {}).items():
            rows, texts = _encoded_column(values)
            if len(rows):
                self.tables["event_data"].append(
                    row=rows + start, name=np.full(len(rows), str(name)), value=texts
                )

    def record_batches(self, batches: EventBatches) -> None:
        """Record several batches (one rule call's events) as one step."""
        if not len(batches):
            return
        step = self._steps
        self._steps += 1
        whole = len(batches.batches) == 1
        for batch in batches.batches:
            ids, data = batch.id_arrays(), batch.data
            self._append(
                step, batch.epoch, batch.kind, ids, data, batch.raw_columns(), whole_step=whole
            )

    def record(self, events: Iterable[Event] | EventBatch | EventBatches) -> None:
        """Record Event objects (one step per maximal run of one epoch), an EventBatch or
        EventBatches (one step each).

        Raises:
            ValueError: if an item is not an Event (nothing is recorded then).
        """
        if isinstance(events, EventBatch):
            events = EventBatches([events])
        if isinstance(events, EventBatches):
            self.record_batches(events)
            return
        batch = events if isinstance(events, list) else list(events)
        for item in batch:
            if not isinstance(item, Event):
                raise ValueError(
                    f"events must be Event objects, got {type(item).__name__}: {item!r}"
                )
        start = 0
        while start < len(batch):
            stop = start + 1
            while stop < len(batch) and batch[stop].epoch == batch[start].epoch:
                stop += 1
            self._record_events(batch[start:stop])
            start = stop

    def _record_events(self, events: list[Event]) -> None:
        step = self._steps
        self._steps += 1
        first = len(self)
        none = NO_PARTICLE
        self.tables["events"].append(
            step=np.full(len(events), step),
            epoch=np.full(len(events), int(events[0].epoch)),
            kind=[self.kind_code(e.kind) for e in events],
            actor=[none if e.actor is None else e.actor for e in events],
            target=[none if e.target is None else e.target for e in events],
            child=[none if e.child is None else e.child for e in events],
        )
        rows, names, values = [], [], []
        encoded: dict[tuple[type, Any], str] = {}  # JSON text of repeated values, made once
        for offset, event in enumerate(events):
            for name, value in event.data.items():
                if type(value) is int:
                    text = str(value)
                else:
                    value = scalar(value)
                    if value is None:
                        continue
                    key = (type(value), value)
                    text = encoded.get(key) or encoded.setdefault(key, json.dumps(value))
                rows.append(first + offset)
                names.append(str(name))
                values.append(text)
        if rows:
            self.tables["event_data"].append(row=rows, name=names, value=values)

    def record_classes(self, epoch: int, uids: Any, codes: Any, errors: Any = None) -> None:
        """Record measured classes: a ``classes`` row where a particle's class is new or changed.

        Args:
            epoch: when they were measured.
            uids: ``[m]`` particle uids (tensor, array or list).
            codes: ``[m]`` codes from :meth:`status_code` (negative: not measured, skipped).
            errors: ``[m]`` fixpoint errors q, or None.
        """
        uids = _ids(uids, None)
        codes = _ids(codes, len(uids)).astype(np.int16)
        if errors is None:
            errors = np.full(len(uids), np.nan, dtype=np.float32)
        elif hasattr(errors, "detach"):
            errors = errors.detach().cpu().numpy()
        errors = np.asarray(errors, dtype=np.float32).reshape(-1)
        keep = codes >= 0
        uids, codes, errors = uids[keep], codes[keep], errors[keep]
        self.class_updates += 1
        if not len(uids):
            return
        self._grow(int(uids.max()) + 1)
        changed = self._last_status[uids] != codes
        self._last_status[uids] = codes
        self._last_epoch[uids] = int(epoch)
        self._last_error[uids] = errors
        if changed.any():
            self.tables["classes"].append(
                epoch=np.full(int(changed.sum()), int(epoch)),
                uid=uids[changed],
                status=codes[changed],
                error=errors[changed],
            )

    def _grow(self, size: int) -> None:
        if size <= len(self._last_status):
            return
        size = max(size, 2 * len(self._last_status))
        for name, fill in (("_last_status", -1), ("_last_epoch", -1), ("_last_error", np.nan)):
            old = getattr(self, name)
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def last_classes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(uids, status codes, epochs, errors) of every particle with a measured class."""
        uids = np.flatnonzero(self._last_status >= 0)
        return uids, self._last_status[uids], self._last_epoch[uids], self._last_error[uids]

    # ------------------------------------------------------------------ streaming

    @classmethod
    def open(cls, directory: str | os.PathLike) -> EventLog:
        """Reopen a log streamed to ``directory`` (see :meth:`attach`); it stays attached.

        The last class of each particle is that of its last ``classes`` row (the epoch is that
        of the row: when the class was last measured to change).

        Raises:
            ValueError: if a table folder is missing or damaged.
        """
        log = cls()
        for name in TABLES:
            log.tables[name] = ChunkedTable.open(Path(directory) / name)
        for name in log.tables["events"].meta.get("kinds", []):
            log.kind_code(name)
        for name in log.tables["classes"].meta.get("statuses", []):
            log.status_code(name)
        log._steps = int(log.tables["events"].meta.get("steps", 0))
        classes = log.tables["classes"].read()
        if len(classes["uid"]):
            order = np.arange(len(classes["uid"]))[::-1]
            uids, last = np.unique(classes["uid"][order], return_index=True)
            rows = order[last]
            log._grow(int(uids.max()) + 1)
            log._last_status[uids] = classes["status"][rows]
            log._last_epoch[uids] = classes["epoch"][rows]
            log._last_error[uids] = classes["error"][rows]
            log.class_updates = 1
        return log

    def attach(self, directory: str | os.PathLike) -> None:
        """Stream every table to ``directory/<table>/`` from now on (see ChunkedTable)."""
        self._save_meta()  # before: attaching writes each table's index with its meta
        for name, table in self.tables.items():
            table.attach(Path(directory) / name)

    def flush(self) -> None:
        """Write pending rows of every table (with a directory attached)."""
        self._save_meta()
        for table in self.tables.values():
            table.flush()

    def _save_meta(self) -> None:
        self.tables["events"].meta = {"kinds": self.kind_names, "steps": self._steps}
        self.tables["classes"].meta = {"statuses": self.status_names}

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self.tables["events"].length

    @property
    def steps(self) -> int:
        """Record calls so far."""
        return self._steps

    def columns(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """The event columns (rows ``start:stop``) as numpy arrays."""
        return self.tables["events"].read(start=start, stop=stop)

    def _decoded(self) -> tuple[dict[str, np.ndarray], dict, dict]:
        if self._cache is None or self._cache[0] != len(self):
            per_step: dict[int, dict[str, Any]] = {}
            per_event: dict[int, dict[str, Any]] = {}
            for table, target in (("step_data", per_step), ("event_data", per_event)):
                data = self.tables[table].read()
                for row, name, value in zip(
                    data["row"].tolist(),
                    data["name"].tolist(),
                    data["value"].tolist(),
                    strict=True,
                ):
                    target.setdefault(row, {})[name] = json.loads(value)
            self._cache = (len(self), self.columns(), per_step, per_event)
        return self._cache[1:]

    def data_of(self, index: int) -> dict[str, Any]:
        """The data items of event ``index``."""
        columns, per_step, per_event = self._decoded()
        return {**per_step.get(int(columns["step"][index]), {}), **per_event.get(index, {})}

    def __getitem__(self, index: int | slice) -> Event | list[Event]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"event index {index} out of range for {len(self)} events")
        index %= len(self)
        columns, _, _ = self._decoded()
        ids = [int(columns[name][index]) for name in ID_COLUMNS]
        actor, target, child = (None if v < 0 else v for v in ids)
        return Event(
            int(columns["epoch"][index]),
            EventKind(self.kind_names[int(columns["kind"][index])]),
            actor,
            target,
            child,
            self.data_of(index),
        )

    def __iter__(self) -> Iterator[Event]:
        return (self[i] for i in range(len(self)))

    def frame(self) -> Any:
        """Every event as a ``pandas.DataFrame``: one row per event, in order.

        Columns: ``event`` (index), ``step``, ``epoch``, ``kind`` (a categorical of kind names),
        ``actor``, ``target``, ``child`` (nullable ints, <NA> for none), then one column per
        data item name (None where an event lacks it).
        """
        import pandas as pd

        columns, per_step, per_event = self._decoded()
        frame = pd.DataFrame({"event": np.arange(len(self), dtype=np.int64)})
        frame["step"] = columns["step"]
        frame["epoch"] = columns["epoch"]
        frame["kind"] = pd.Categorical.from_codes(columns["kind"], categories=self.kind_names)
        for name in ID_COLUMNS:
            values = pd.array(columns[name], dtype="Int64")
            values[columns[name] < 0] = pd.NA
            frame[name] = values
        names = sorted({n for d in (*per_step.values(), *per_event.values()) for n in d})
        steps = columns["step"].tolist()
        for name in names:
            frame[name] = [
                per_event.get(i, {}).get(name, per_step.get(steps[i], {}).get(name))
                for i in range(len(self))
            ]
        return frame
