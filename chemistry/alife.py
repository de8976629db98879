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
import io
import math
import os
from pathlib import Path
from typing import Any

import networkx as nx

from chemistry.storage import write_text_atomically

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


def write_alife(table: Any, birth_data: dict[int, dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``table`` (a :class:`chemistry.lineage.Particles`) as ``path``, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    errors = [("" if math.isnan(e) else repr(float(e))) for e in table.error.tolist()]
    for i, uid in enumerate(table.uid.tolist()):
        parents = table.parents[i]
        data = birth_data.get(uid, {})
        death = int(table.death[i])
        writer.writerow(
            (
                uid,
                "[" + (",".join(map(str, parents)) if parents else "none") + "]",
                int(table.birth[i]),
                death if death >= 0 else "inf",
                table.status[i],
                int(table.status_epoch[i]),
                errors[i],
                table.death_cause[i],
                data.get("architecture", ""),
                data.get("node", ""),
            )
        )
    return write_text_atomically(Path(path), buffer.getvalue())


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
