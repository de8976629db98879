"""Incremental checkpoints: a checkpoint stores its soup's history only from where its base ended.

A soup's state has two kinds of parts. The *state* (weights, node tables, random generators, the
particles) is bounded by the population and stored whole in every checkpoint. The *history*
grows with the epochs; its parts are sequences that only grow at the end:

=========================== ============================================================
``trajectories/*`` tensors  recorded weights, particle ids and epochs (rows appended)
``genealogy/*`` tensors     columnar genealogy records, where present (rows appended)
``events``                  genealogy events (a list)
``model_vars/NAME``         each collected metric (a list)
``statuses``                last class of each particle: a mapping, stored as the entries set
                            since the base's epoch (a status carries the epoch it was set at)
=========================== ============================================================

For each sequence the base checkpoint records its length ``n`` and the SHA-256 of its content
(:func:`records`). A new checkpoint stores only the rows from ``n`` on when its first ``n`` rows
hash to the base's digest, and the whole sequence otherwise, so a checkpoint's bytes are its
state plus the history of its own interval, and a damaged or foreign base can never be spliced
in: :func:`merge` checks every length and the chain's records. With the history streamed to the
run directory's logs, these parts can become references to stream lengths without changing the
two calls (:func:`split`, :func:`merge`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

TENSOR_PREFIXES = ("trajectories/", "genealogy/")
LIST_KEYS = ("events",)
TABLE_OF_LISTS = "model_vars"
STATUSES = "statuses"


def _parts(tensors: dict[str, Any], meta: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, sequence) of every history part."""
    for key, value in tensors.items():
        if key.startswith(TENSOR_PREFIXES) and isinstance(value, torch.Tensor) and value.ndim:
            yield f"tensor:{key}", value
    for key in LIST_KEYS:
        if isinstance(meta.get(key), list):
            yield f"list:{key}", meta[key]
    for name, values in (meta.get(TABLE_OF_LISTS) or {}).items():
        yield f"list:{TABLE_OF_LISTS}/{name}", values


def _put(tensors: dict[str, Any], meta: dict[str, Any], part: str, value: Any) -> None:
    kind, key = part.split(":", 1)
    if kind == "tensor":
        tensors[key] = value
    elif key.startswith(TABLE_OF_LISTS + "/"):
        meta[TABLE_OF_LISTS][key[len(TABLE_OF_LISTS) + 1 :]] = value
    else:
        meta[key] = value


def _digests(sequence: Any, n: int) -> tuple[str, str]:
    """SHA-256 of the first ``n`` rows and of the whole ``sequence``."""
    if isinstance(sequence, torch.Tensor):
        array = np.ascontiguousarray(sequence.numpy()).reshape(len(sequence), -1).view(np.uint8)
        digest = hashlib.sha256(array[:n])
        prefix = digest.hexdigest()
        digest.update(array[n:])
        return prefix, digest.hexdigest()
    prefix = hashlib.sha256(json.dumps(sequence[:n]).encode()).hexdigest()
    whole = hashlib.sha256(json.dumps(sequence).encode()).hexdigest()
    return prefix, whole


def records(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, list]:
    """``{part: [length, sha256]}`` of every history part of a (complete) soup state."""
    return {part: [len(seq), _digests(seq, 0)[1]] for part, seq in _parts(tensors, meta)}


def split(
    tensors: dict[str, Any],
    meta: dict[str, Any],
    base: dict[str, Any] | None,
) -> dict[str, list]:
    """Cut a complete soup state down to an increment over ``base`` (in place).

    Args:
        tensors, meta: the complete state (``meta`` gains ``history``, ``base`` and
            ``records``).
        base: ``{"epoch": E, "records": {...}}`` of the base checkpoint, or None (a full one).

    Returns:
        The records of the complete state (what a later increment is based on).
    """
    complete: dict[str, list] = {}
    starts: dict[str, int] = {}
    base_records = base["records"] if base is not None else {}
    if isinstance(meta.get(TABLE_OF_LISTS), dict):  # the soup's own table: never cut it
        meta[TABLE_OF_LISTS] = dict(meta[TABLE_OF_LISTS])
    for part, sequence in list(_parts(tensors, meta)):
        start = 0
        if part in base_records:
            n, digest = base_records[part]
            prefix, whole = _digests(sequence, min(n, len(sequence)))
            if n <= len(sequence) and prefix == digest:
                start = n
        else:
            whole = _digests(sequence, 0)[1]
        complete[part] = [len(sequence), whole]
        starts[part] = start
        if start:  # a tensor slice is cloned: torch.save would write its whole storage
            tail = sequence[start:]
            _put(tensors, meta, part, tail.clone() if isinstance(tail, torch.Tensor) else tail)
    if base is not None and isinstance(meta.get(STATUSES), dict):
        since = base["epoch"]  # set at the base's epoch or later: the base may predate them
        meta[STATUSES] = {u: s for u, s in meta[STATUSES].items() if s[1] >= since}
    meta["history"] = starts
    meta["base"] = None if base is None else {"epoch": base["epoch"], "records": base_records}
    meta["records"] = complete
    return complete


def merge(chain: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[dict, dict]:
    """The complete state of the last checkpoint of ``chain`` (oldest first, the first one full).

    Raises:
        ValueError: when an increment does not continue the one before it.
    """
    tensors, meta = chain[0]
    if meta.get("base") is not None:
        raise ValueError("the oldest checkpoint of the chain is an increment, not a full one")
    history = {part: seq for part, seq in _parts(tensors, meta)}
    statuses = dict(meta.get(STATUSES) or {})
    previous = meta
    for tensors, meta in chain[1:]:
        if meta["base"]["records"] != previous["records"]:
            raise ValueError(
                f"the increment of epoch {meta['epoch']} does not continue the checkpoint of "
                f"epoch {previous['epoch']} (their history records differ)"
            )
        for part, tail in list(_parts(tensors, meta)):
            start = meta["history"].get(part, 0)
            if start == 0:
                history[part] = tail
                continue
            head = history.get(part)
            if head is None or len(head) != start:
                raise ValueError(
                    f"the increment of epoch {meta['epoch']} continues {part} at row {start}, "
                    f"but the checkpoints before it hold {0 if head is None else len(head)} rows"
                )
            history[part] = (
                torch.cat([head, tail]) if isinstance(tail, torch.Tensor) else head + tail
            )
        statuses.update(meta.get(STATUSES) or {})
        previous = meta
    tensors = dict(tensors)
    for part, sequence in history.items():
        _put(tensors, meta, part, sequence)
    if STATUSES in meta:
        meta[STATUSES] = statuses
    if records(tensors, meta) != meta["records"]:
        raise ValueError(f"the history assembled for epoch {meta['epoch']} fails its checksums")
    meta["history"] = {}
    meta["base"] = None
    return tensors, meta
