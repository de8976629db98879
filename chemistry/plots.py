"""Figures of a soup: PCA trajectories, class counts over epochs, and the lineage graph."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
    axes.legend(fontsize=8)
    return save_figure(figure, path)


def plot_lineage(
    graph: nx.MultiDiGraph,
    path: str | Path,
    *,
    title: str = "Genealogy",
    max_nodes: int = 300,
) -> Path:
    """Draw a genealogy graph: birth epoch (x) against topology node (y); edges coloured by kind.

    Particles that succeeded each other on one node form a row; nodes are coloured by last class.

    Graphs larger than ``max_nodes`` are cut to the nodes with the most edges.
    """
    if graph.number_of_nodes() > max_nodes:
        busiest = sorted(graph.degree, key=lambda item: item[1], reverse=True)[:max_nodes]
        graph = graph.subgraph([node for node, _ in busiest])
    figure = Figure(figsize=(10, 6))
    axes = figure.subplots()
    positions = {
        n: (graph.nodes[n].get("birth", 0), graph.nodes[n].get("node", n)) for n in graph.nodes
    }
    for kind, colour in EDGE_COLOURS.items():
        edges = [(u, v) for u, v, d in graph.edges(data=True) if d.get("kind") == kind]
        if edges:
            nx.draw_networkx_edges(
                graph,
                positions,
                edgelist=edges,
                edge_color=colour,
                ax=axes,
                alpha=0.5,
                arrows=True,
                arrowsize=6,
                width=0.8,
                connectionstyle="arc3,rad=0.15",
            )
    for dead in (False, True):  # the dead are drawn hollow, in the colour of their last class
        nodes = [n for n in graph.nodes if ("death" in graph.nodes[n]) == dead]
        colours = [STATUS_COLOURS.get(graph.nodes[n].get("status", ""), "#cccccc") for n in nodes]
        nx.draw_networkx_nodes(
            graph,
            positions,
            nodelist=nodes,
            node_size=30,
            ax=axes,
            linewidths=1.2,
            node_color="white" if dead else colours,
            edgecolors=colours,
        )
    handles = (
        [Line2D([], [], color=c, label=k) for k, c in EDGE_COLOURS.items()]
        + [
            Line2D([], [], marker="o", linestyle="", color=c, label=s)
            for s, c in STATUS_COLOURS.items()
        ]
        + [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color="grey",
                markerfacecolor="white",
                label="dead (last class)",
            )
        ]
    )
    axes.legend(handles=handles, fontsize=7, loc="upper left", ncol=2)
    axes.set_xlabel("birth epoch")
    axes.set_ylabel("topology node")
    axes.tick_params(left=True, bottom=True, labelleft=True, labelbottom=True)
    axes.set_title(title)
    return save_figure(figure, path)
