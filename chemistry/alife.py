"""The phylogeny as an ALife Data Standard CSV (``phylogeny.csv``), written and read back.

One row per particle (https://alife-data-standards.github.io/alife-data-standards/phylogeny):

=================  ===========================================================================
column             meaning
=================  ===========================================================================
``id``             particle uid
``ancestor_list``  its vertical parents (clone / melt), e.g. ``[3]`` or ``[3,8]``; ``[none]``
                   for a root (an initial or respawned particle)
``origin_time``    birth epoch (``-1`` if the birth was not recorded)
``destruction_time``  death epoch, ``inf`` while alive
``status``         class at death, or the last measured class of a living particle
``status_epoch``   epoch of that class (-1: never measured)
``fixpoint_error`` fixpoint error q at that measurement (empty: unknown)
``death_cause``    the kind of event that removed it (respawn, clone, melt, death; empty: alive)
``architecture``, ``node``  from its birth event
=================  ===========================================================================
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from chemistry.event_log import EventLog
from chemistry.lineage import BLOCK_ROWS, Particles, birth_items, particle_table
from chemistry.storage import write_atomically

__all__ = ["COLUMNS", "write_alife", "read_alife"]

COLUMNS = (
    "id",
    "ancestor_list",
    "origin_time",
    "destruction_time",
    "status",
    "status_epoch",
    "fixpoint_error",
    "death_cause",
    "architecture",
    "node",
)


#: Rows formatted and written at a time: bounded memory for millions of particles.
ROWS_PER_BLOCK = 65536


def _ancestor_lists(table: Particles) -> tuple[np.ndarray, np.ndarray]:
    """(rows with parents, their ``ancestor_list`` cells): ``[3]``, or ``"[3,8]"`` quoted."""
    rows, starts, counts = np.unique(table.parent_row, return_index=True, return_counts=True)
    text = table.parent_uid[starts].astype(str)
    for rank in range(1, int(counts.max(initial=1))):
        more = counts > rank
        text[more] = np.strings.add(
            np.strings.add(text[more], ","), table.parent_uid[starts[more] + rank].astype(str)
        )
    cells = np.strings.add(np.strings.add("[", text), "]")
    cells[counts > 1] = np.strings.add(np.strings.add('"', cells[counts > 1]), '"')
    return rows, cells


def _item_text(items: dict[str, tuple[np.ndarray, list[Any]]], name: str, n: int) -> np.ndarray:
    """A birth item as CSV text per particle ("" where absent)."""
    if name not in items:
        return np.full(n, "", dtype=object)
    codes, values = items[name]
    texts = np.array([*map(str, values), ""], dtype=object)
    return texts[codes]


def write_alife(
    log: EventLog,
    path: str | os.PathLike,
    *,
    block_rows: int = ROWS_PER_BLOCK,
    event_rows: int = BLOCK_ROWS,
) -> Path:
    """Write the phylogeny of ``log`` as ``path``, atomically.

    The per-particle table is made in one pass over the log a block at a time
    (:func:`chemistry.lineage.particle_table`); rows are formatted with numpy string operations
    and written ``block_rows`` at a time (events read ``event_rows`` at a time), so memory is a
    few integers per particle.
    """
    table = particle_table(log, event_rows)
    items = birth_items(log, table.birth_event, event_rows)
    n = len(table.uid)
    architecture = _item_text(items, "architecture", n)
    node = _item_text(items, "node", n)
    ancestor_rows, ancestor_cells = _ancestor_lists(table)

    def block(lo: int, hi: int) -> str:
        ancestors = np.full(hi - lo, "[none]", dtype=object)
        a, b = np.searchsorted(ancestor_rows, [lo, hi])
        ancestors[ancestor_rows[a:b] - lo] = ancestor_cells[a:b]
        death = table.death[lo:hi]
        error = table.error[lo:hi].astype(np.float64)
        errors = np.full(hi - lo, "", dtype=object)
        known = ~np.isnan(error)
        if known.any():
            errors[known] = np.char.mod("%.9g", error[known])  # exact float32
        columns = [
            table.uid[lo:hi].astype(str),
            ancestors,
            table.birth[lo:hi].astype(str),
            np.where(death >= 0, death.astype(str), "inf"),
            table.status[lo:hi],
            table.status_epoch[lo:hi].astype(str),
            errors,
            table.death_cause[lo:hi],
            architecture[lo:hi],
            node[lo:hi],
        ]
        cells = zip(*(column.tolist() for column in columns), strict=True)
        return "\n".join(map(",".join, cells)) + "\n"

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(",".join(COLUMNS) + "\n")
            for lo in range(0, n, block_rows):
                handle.write(block(lo, min(lo + block_rows, n)))

    return write_atomically(Path(path), write)


def read_alife(path: str | os.PathLike) -> nx.DiGraph:
    """Read an ALife phylogeny CSV as a forest: an edge from each row's first ancestor.

    Node attributes are the other columns (``ancestor_list`` as the list of ints; times as int,
    ``destruction_time`` absent for ``inf``; ``fixpoint_error`` as float; empty cells left out).

    Raises:
        ValueError: if the file lacks ``id`` or ``ancestor_list``, or names an unknown ancestor.
    """
    graph = nx.DiGraph()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if "id" not in row or "ancestor_list" not in row:
            raise ValueError(f"{path} is no ALife phylogeny: it needs id and ancestor_list")
        ancestors = row["ancestor_list"].strip("[]").strip()
        parents = (
            [] if ancestors.lower() in ("", "none") else [int(a) for a in ancestors.split(",")]
        )
        attributes: dict[str, Any] = {"ancestor_list": parents}
        for name, value in row.items():
            if name in ("id", "ancestor_list") or value in ("", None):
                continue
            if name == "destruction_time" and value == "inf":
                continue
            if name in ("origin_time", "destruction_time", "status_epoch", "node"):
                attributes[name] = int(value)
            elif name == "fixpoint_error":
                attributes[name] = float(value)
            else:
                attributes[name] = value
        graph.add_node(int(row["id"]), **attributes)
    for node, parents in list(graph.nodes(data="ancestor_list")):
        if parents:
            if parents[0] not in graph:
                raise ValueError(f"{path}: particle {node} names unknown ancestor {parents[0]}")
            graph.add_edge(parents[0], node)
    return graph


def frame(path: str | os.PathLike) -> Any:
    """The CSV as a ``pandas.DataFrame`` (``destruction_time`` ``inf`` while alive)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"status": str, "death_cause": str, "architecture": str})
