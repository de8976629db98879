"""Figures of a soup: PCA trajectories, class counts over epochs, and the lineage graph."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from chemistry.storage import write_atomically
from chemistry.trajectories import Projection
from particles.classification import Status

STATUS_COLOURS = {
    "DIVERGENT": "#d62728",
    "ZERO": "#7f7f7f",
    "FIXPOINT": "#2ca02c",
    "SECOND_ORDER": "#9467bd",
    "OTHER": "#1f77b4",
}
EDGE_COLOURS = {
    "attack": "#d62728",
    "learn": "#1f77b4",
    "clone": "#2ca02c",
    "melt": "#ff7f0e",
    "respawn": "#bbbbbb",
}
# colours for rules' own event kinds, picked by a stable hash of the kind's name
USER_KIND_COLOURS = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#9467bd", "#393b79")


def kind_colour(kind: str) -> str:
    """The colour of an event kind: fixed for the built-in kinds, stable for any other name."""
    if kind in EDGE_COLOURS:
        return EDGE_COLOURS[kind]
    return USER_KIND_COLOURS[zlib.crc32(kind.encode()) % len(USER_KIND_COLOURS)]


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save a figure atomically (format from the suffix, PNG by default).

    Figures here are ``matplotlib.figure.Figure`` objects, not pyplot's: nothing is registered
    with pyplot (nothing to close) and the backend is never changed, so a notebook keeps its own.
    """
    path = Path(path)
    file_format = path.suffix.lstrip(".") or "png"
    return write_atomically(
        path,
        lambda temporary: figure.savefig(
            temporary, dpi=110, bbox_inches="tight", format=file_format
        ),
    )


def plot_trajectories(
    projection: Projection,
    path: str | Path,
    *,
    final_status: Mapping[int, str] | None = None,
    title: str = "Particle trajectories (joint PCA)",
) -> Path:
    """Draw every particle's path in (PC1, PC2) against the epoch, one colour per particle.

    The last point of each trajectory is marked with the colour of ``final_status[uid]``.
    """
    figure = Figure(figsize=(8, 6))
    axes = figure.add_subplot(projection="3d")
    uids = np.unique(projection.uids)
    palette = matplotlib.colormaps.get_cmap("tab20")
    for index, uid in enumerate(uids):
        mask = projection.uids == uid
        order = np.argsort(projection.epochs[mask], kind="stable")
        points, epochs = projection.points[mask][order], projection.epochs[mask][order]
        colour = palette(index % 20)
        axes.plot(points[:, 0], points[:, 1], epochs, color=colour, linewidth=0.9, alpha=0.8)
        end_colour = STATUS_COLOURS.get((final_status or {}).get(int(uid), ""), colour)
        axes.scatter(points[-1:, 0], points[-1:, 1], epochs[-1:], color=end_colour, s=18)
    ratio = projection.explained_variance_ratio
    axes.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
    axes.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)" if len(ratio) > 1 else "PC2")
    axes.set_zlabel("epoch")
    axes.set_title(title)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=s)
        for s, c in STATUS_COLOURS.items()
    ]
    axes.legend(handles=handles, loc="upper left", fontsize=7, title="final class")
    return save_figure(figure, path)


def plot_counts(
    columns: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str = "Particles per class over epochs",
) -> Path:
    """Draw the number of particles of each class against the epoch (DataCollector columns)."""
    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    epochs = np.asarray(columns["epoch"], dtype=float)
    for status in Status:
        values = np.asarray(columns[status.name.lower()], dtype=float)
        if values.any():
            axes.plot(
                epochs, values, label=status.name, color=STATUS_COLOURS[status.name], linewidth=1.8
            )
    axes.set_xlabel("epoch")
    axes.set_ylabel("particles")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    # loc="best" given explicitly: matplotlib warns only for the implicit default, and only when
    # placing it took over a second (a loaded machine turned that into a failed test)
    axes.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


def _lineage_rows(graph: nx.MultiDiGraph) -> tuple[dict[int, int], list[str]]:
    """A row per particle: by topology node where known (successors on a node share a row,
    rows compacted to the nodes present), else in birth order after them."""
    rows: dict[int, int] = {}
    nodes = sorted({d["node"] for _, d in graph.nodes(data=True) if isinstance(d.get("node"), int)})
    row_of_node = {node: row for row, node in enumerate(nodes)}
    for uid, data in graph.nodes(data=True):
        if isinstance(data.get("node"), int):
            rows[uid] = row_of_node[data["node"]]
    rest = sorted(
        (n for n in graph.nodes if n not in rows), key=lambda n: (graph.nodes[n].get("birth", 0), n)
    )
    for offset, uid in enumerate(rest):
        rows[uid] = len(nodes) + offset
    labels = [str(node) for node in nodes] + [f"uid {uid}" for uid in rest]
    return rows, labels


def plot_lineage(
    graph: nx.MultiDiGraph,
    path: str | Path,
    *,
    title: str = "Genealogy",
    end: int | None = None,
    highlight: int | None = None,
) -> Path:
    """Draw a genealogy as lifelines: epoch (x) against topology node (y).

    Each particle is a horizontal line from its birth to its death (or ``end``), coloured by its
    class (the class at death for the dead); particles that succeeded each other on a node share
    its row. Clones and melts are vertical links from the parent's row to the child's birth;
    respawns are crosses at the newcomer's birth; attacks and learning are small marks on the
    target's lifeline at their epoch (lines between rows would tangle at hundreds of particles).
    Only kinds and classes present get a legend entry. Readable at several hundred particles.

    Args:
        graph: a genealogy particle graph (``Genealogy.graph`` or a part of it).
        path: the image file.
        title: the figure title.
        end: the last epoch (default: the latest epoch in the graph).
        highlight: a particle uid drawn thicker, in black outline.
    """
    rows, labels = _lineage_rows(graph)
    epochs = [
        d.get(k) for _, d in graph.nodes(data=True) for k in ("birth", "death", "status_epoch")
    ]
    epochs += [d.get("epoch") for _, _, d in graph.edges(data=True)]
    known = [e for e in epochs if isinstance(e, int)]
    last = end if end is not None else max(known, default=0)
    first = min(known, default=0)
    height = min(max(3.0, 0.03 * len(set(rows.values())) + 2.0), 14.0)
    figure = Figure(figsize=(10, height))
    axes = figure.subplots()
    lines, colours, present_status = [], [], []
    for uid, data in graph.nodes(data=True):
        start, stop = data.get("birth", first), data.get("death", last)
        status = data.get("status", "")
        colour = STATUS_COLOURS.get(status, "#cccccc")
        lines.append([(start, rows[uid]), (max(stop, start + 0.2), rows[uid])])
        colours.append(colour)
        present_status.append(status or "unclassified")
    axes.add_collection(LineCollection(lines, colors=colours, linewidths=1.6, zorder=1))
    if highlight is not None and highlight in graph:
        data = graph.nodes[highlight]
        y = rows[highlight]
        axes.plot(
            [data.get("birth", first), data.get("death", last)],
            [y, y],
            color="black",
            linewidth=3.2,
            zorder=0,
        )
    links: dict[str, list] = {}
    marks: dict[str, list] = {}
    for source, target, data in graph.edges(data=True):
        kind, epoch = data.get("kind", ""), data.get("epoch", 0)
        inheritance = data.get("inheritance", "none")
        if inheritance == "vertical":
            links.setdefault(kind, []).append([(epoch, rows[source]), (epoch, rows[target])])
        else:  # horizontal: the target changed; none (respawn): the newcomer arrived
            marks.setdefault(kind, []).append((epoch, rows[target]))
    handles = []
    for kind, segments in sorted(links.items()):
        colour = kind_colour(kind)
        axes.add_collection(
            LineCollection(segments, colors=colour, linewidths=0.8, alpha=0.7, zorder=2)
        )
        ends = np.array([segment[1] for segment in segments], dtype=float)
        axes.scatter(ends[:, 0], ends[:, 1], s=10, color=colour, zorder=3)
        handles.append(
            Line2D(
                [], [], color=colour, marker="o", markersize=3, label=f"{kind} (parent to child)"
            )
        )
    for kind, points in sorted(marks.items()):
        colour = kind_colour(kind)
        xy = np.array(points, dtype=float)
        marker = "x" if kind == "respawn" else "|"
        axes.scatter(
            xy[:, 0],
            xy[:, 1],
            s=30 if marker == "x" else 24,
            marker=marker,
            color=colour,
            linewidths=0.9,
            zorder=3,
        )
        label = "respawn (newcomer)" if kind == "respawn" else f"{kind} (mark on the target)"
        handles.append(Line2D([], [], color=colour, marker=marker, linestyle="", label=label))
    for status in [s for s in STATUS_COLOURS if s in present_status]:
        handles.append(Line2D([], [], color=STATUS_COLOURS[status], linewidth=2, label=status))
    if "unclassified" in present_status:
        handles.append(Line2D([], [], color="#cccccc", linewidth=2, label="unclassified"))
    count = max(rows.values(), default=0) + 1
    axes.set_xlim(first - 0.5, last + 0.5)
    axes.set_ylim(-0.5, count - 0.5)
    axes.yaxis.set_major_locator(MaxNLocator(nbins=min(count, 12), integer=True))
    axes.yaxis.set_major_formatter(
        FuncFormatter(lambda y, _: labels[int(y)] if 0 <= int(y) < len(labels) else "")
    )
    axes.set_xlabel("epoch")
    axes.set_ylabel(
        "topology node" if any("node" in d for _, d in graph.nodes(data=True)) else "particle"
    )
    axes.set_title(title)
    axes.grid(alpha=0.2)
    if handles:
        axes.legend(
            handles=handles,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            title="lifelines: class; links and marks: events",
            title_fontsize=7,
        )
    return save_figure(figure, path)
