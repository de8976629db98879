"""Figures in the paper's style shared by the experiments: censuses, box plots, PCA trajectories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from chemistry.plots import STATUS_COLOURS, save_figure
from particles.classification import Status


def census_figure(counts: Mapping[str, Mapping[str, int]], path: Path, *, title: str) -> Path:
    """Stacked bars of final classes per particle type (SPEC §7 census)."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    types = list(counts)
    bottom = np.zeros(len(types))
    for status in Status:
        values = np.array([counts[t].get(status.name, 0) for t in types], dtype=float)
        if values.any():
            axes.bar(
                types, values, bottom=bottom, label=status.name, color=STATUS_COLOURS[status.name]
            )
            bottom += values
    axes.set_ylabel("particles")
    axes.set_title(title)
    axes.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


def box_figure(
    groups: Mapping[str, Sequence[Sequence[float]]],
    labels: Sequence[str],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log: bool = False,
    references: Sequence[float] = (),
) -> Path:
    """Side-by-side box plots: one box per label for each named group."""
    figure = Figure(figsize=(9, 4))
    axes = figure.subplots()
    width = 0.8 / max(len(groups), 1)
    palette = matplotlib.colormaps.get_cmap("tab10")
    for index, (name, series) in enumerate(groups.items()):
        positions = np.arange(len(labels)) + (index - (len(groups) - 1) / 2) * width
        data = [np.asarray(values, dtype=float) for values in series]
        boxes = axes.boxplot(
            data,
            positions=positions,
            widths=width * 0.9,
            patch_artist=True,
            manage_ticks=False,
            showfliers=True,
        )
        for box in boxes["boxes"]:
            box.set_facecolor(palette(index))
            box.set_alpha(0.6)
        axes.plot([], [], color=palette(index), linewidth=6, alpha=0.6, label=name)
    for value in references:
        axes.axhline(value, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xticks(np.arange(len(labels)), labels, rotation=45, fontsize=8)
    if log:
        axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if len(groups) > 1:
        axes.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


def lines_figure(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """One line per named series against a shared x axis."""
    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    for name, values in series.items():
        axes.plot(x, values, marker="o", markersize=3, label=name)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


def trajectory_figure(
    projection,
    path: Path,
    *,
    title: str,
    time_label: str,
    final_status: Mapping[int, str] | None = None,
) -> Path:
    """3-D joint-PCA trajectories (SPEC D17): (PC1, PC2) against time, one line per particle.

    ``projection`` is a ``chemistry.trajectories.Projection`` whose ``epochs`` hold the time
    (application or step) and whose ``uids`` name the particles; the last point of each path is
    drawn in the colour of ``final_status[uid]`` (a ``Status`` name) when given.
    """
    figure = Figure(figsize=(7.5, 6))
    axes = figure.add_subplot(projection="3d")
    palette = matplotlib.colormaps.get_cmap("tab10")
    for index, uid in enumerate(np.unique(projection.uids)):
        mask = projection.uids == uid
        order = np.argsort(projection.epochs[mask], kind="stable")
        points, times = projection.points[mask][order], projection.epochs[mask][order]
        colour = palette(index % 10)
        axes.plot(points[:, 0], points[:, 1], times, color=colour, linewidth=1.0, alpha=0.85)
        axes.scatter(points[:1, 0], points[:1, 1], times[:1], color=colour, s=10, marker="x")
        end = STATUS_COLOURS.get((final_status or {}).get(int(uid), ""), colour)
        axes.scatter(points[-1:, 0], points[-1:, 1], times[-1:], color=end, s=22)
    ratio = projection.explained_variance_ratio
    axes.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
    axes.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)" if len(ratio) > 1 else "PC2")
    axes.set_zlabel(time_label)
    axes.set_title(title)
    if final_status:
        shown = sorted(set(final_status.values()), key=lambda name: Status[name])
        handles = [
            Line2D([], [], marker="o", linestyle="", color=STATUS_COLOURS[name], label=name)
            for name in shown
        ]
        axes.legend(handles=handles, loc="upper left", fontsize=7, title="final class")
    return save_figure(figure, path)


def paired_figure(
    labels: Sequence[str],
    before: Sequence[Sequence[float]],
    after: Sequence[Sequence[float]],
    kinds: Sequence[Sequence[str]],
    colours: Mapping[str, str],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    floor: float | None = None,
    annotations: Sequence[str] = (),
) -> Path:
    """Paired before/after values per group on a log axis: one line per item, coloured by kind.

    Values ≤ 0 (which a log axis cannot show) are drawn at ``floor``, marked by a dotted line.
    ``annotations`` (one per label) are written above each group.
    """
    from matplotlib.collections import LineCollection

    figure = Figure(figsize=(10, 4.5))
    axes = figure.subplots()
    positive = [v for series in (*before, *after) for v in series if v > 0]
    floor = floor if floor is not None else (min(positive) / 10 if positive else 1e-12)
    segments, segment_colours = [], []
    for index, (pre, post, kind) in enumerate(zip(before, after, kinds, strict=True)):
        pre = np.where(np.asarray(pre, dtype=float) > 0, pre, floor)
        post = np.where(np.asarray(post, dtype=float) > 0, post, floor)
        for a, b, k in zip(pre, post, kind, strict=True):
            segments.append([(index - 0.25, a), (index + 0.25, b)])
            segment_colours.append(colours.get(k, "black"))
    if segments:
        ends = np.asarray(segments).reshape(-1, 2)
        axes.add_collection(
            LineCollection(segments, colors=segment_colours, linewidths=0.7, alpha=0.6)
        )
        axes.scatter(ends[:, 0], ends[:, 1], s=2, c=np.repeat(segment_colours, 2), alpha=0.6)
    axes.axhline(floor, color="grey", linestyle=":", linewidth=0.8)
    axes.set_yscale("log")
    top = max(positive) if positive else 1.0
    for index, text in enumerate(annotations):
        axes.text(index, top * 3, text, ha="center", va="bottom", fontsize=7)
    axes.set_ylim(floor / 3, top * 30)
    axes.set_xticks(np.arange(len(labels)), labels, rotation=45, fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    handles = [Line2D([], [], color=c, label=k) for k, c in colours.items()]
    handles.append(Line2D([], [], color="grey", linestyle=":", label="≤ 0 drawn here"))
    axes.legend(handles=handles, fontsize=7, loc="lower left")
    return save_figure(figure, path)


def scatter_figure(
    x: Sequence[float],
    y: Sequence[float],
    colour: Sequence[float],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colour_label: str,
    diagonal: bool = True,
    cmap: str = "viridis_r",
) -> Path:
    """Scatter of y against x with points coloured by a value (colour bar) and the diagonal."""
    figure = Figure(figsize=(6, 5.5))
    axes = figure.subplots()
    points = axes.scatter(x, y, c=colour, cmap=cmap, s=10, alpha=0.8)
    if diagonal:
        axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    figure.colorbar(points, ax=axes, label=colour_label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def family_trajectories_figure(
    projection,
    family_of: Mapping[int, int],
    path: Path,
    *,
    title: str,
    emphasised: set[int] | frozenset[int] = frozenset(),
) -> Path:
    """Joint PCA trajectories (SPEC D17) in (PC1, PC2, epoch), one colour per family.

    ``projection`` is a ``chemistry.trajectories.Projection``; ``family_of`` maps a uid to its
    family index; uids in ``emphasised`` (e.g. parents) are drawn thicker and dashed.
    """
    figure = Figure(figsize=(8, 6))
    axes = figure.add_subplot(projection="3d")
    palette = matplotlib.colormaps.get_cmap("tab10")
    for uid in np.unique(projection.uids):
        mask = projection.uids == uid
        order = np.argsort(projection.epochs[mask], kind="stable")
        points, epochs = projection.points[mask][order], projection.epochs[mask][order]
        family = family_of.get(int(uid), -1)
        colour = palette(family % 10) if family >= 0 else "#999999"
        bold = int(uid) in emphasised
        axes.plot(
            points[:, 0],
            points[:, 1],
            epochs,
            color=colour,
            linewidth=2.0 if bold else 0.9,
            linestyle="--" if bold else "-",
            alpha=0.8,
        )
        axes.scatter(
            points[-1:, 0],
            points[-1:, 1],
            epochs[-1:],
            color=colour,
            s=30 if bold else 12,
            marker="*" if bold else "o",
        )
    ratio = projection.explained_variance_ratio
    axes.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)")
    axes.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)" if len(ratio) > 1 else "PC2")
    axes.set_zlabel("epoch")
    axes.set_title(title)
    families = sorted({f for f in family_of.values() if f >= 0})
    handles = [Line2D([], [], color=palette(f % 10), label=f"family {f}") for f in families]
    if emphasised:
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=2, label="parent"))
    axes.legend(handles=handles, loc="upper left", fontsize=7)
    return save_figure(figure, path)


def epoch_lines_figure(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Lines against a shared x axis on a log y axis; series whose names start alike
    (up to the first space) share a line style, the rest of the name picks the colour."""
    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    styles = ["-", "--", ":", "-."]
    prefixes = list(dict.fromkeys(name.split(" ", 1)[0] for name in series))
    suffixes = list(dict.fromkeys(name.split(" ", 1)[-1] for name in series))
    palette = matplotlib.colormaps.get_cmap("tab10")
    for name, values in series.items():
        prefix, suffix = name.split(" ", 1)[0], name.split(" ", 1)[-1]
        values = np.asarray(values, dtype=float)
        axes.plot(
            x,
            np.where(values > 0, values, np.nan),
            marker="o",
            markersize=3,
            linestyle=styles[prefixes.index(prefix) % len(styles)],
            color=palette(suffixes.index(suffix) % 10),
            label=name,
        )
    axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="best", fontsize=7)
    return save_figure(figure, path)
