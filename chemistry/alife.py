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


def _text(values: np.ndarray) -> list[str]:
    """Cells of an object column: "" for None, else the value as text."""
    return ["" if v is None else str(v) for v in values.tolist()]


#: Rows formatted and written at a time: bounded memory for millions of particles.
ROWS_PER_BLOCK = 65536


def write_alife(table: Any, birth_data: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write ``table`` (a :class:`chemistry.lineage.Particles`) as ``path``, atomically.

    ``birth_data``: the birth event items per particle (``architecture``, ``node``), as
    columns aligned with ``table``. Rows are formatted a block at a time.
    """
    n = len(table.uid)
    empty = np.full(n, None, dtype=object)
    architecture = birth_data.get("architecture", empty)
    node = birth_data.get("node", empty)

    def block(lo: int, hi: int) -> str:
        ancestors = [
            '"[' + ",".join(map(str, p)) + ']"' if len(p) > 1 else f"[{p[0]}]" if p else "[none]"
            for p in (table.parents.get(i, ()) for i in range(lo, hi))
        ]
        columns = [
            [str(uid) for uid in table.uid[lo:hi].tolist()],
            ancestors,
            [str(epoch) for epoch in table.birth[lo:hi].tolist()],
            [str(epoch) if epoch >= 0 else "inf" for epoch in table.death[lo:hi].tolist()],
            list(table.status[lo:hi]),
            [str(epoch) for epoch in table.status_epoch[lo:hi].tolist()],
            [f"{q:.9g}" if q == q else "" for q in table.error[lo:hi].tolist()],  # exact float32
            list(table.death_cause[lo:hi]),
            _text(architecture[lo:hi]),
            _text(node[lo:hi]),
        ]
        return "".join(",".join(row) + "\n" for row in zip(*columns, strict=True))

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            handle.write(",".join(COLUMNS) + "\n")
            for lo in range(0, n, ROWS_PER_BLOCK):
                handle.write(block(lo, min(lo + ROWS_PER_BLOCK, n)))

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
