"""A soup run as a user configures it, and the run directory it writes.

A run directory holds ``config.json`` (the resolved configuration), ``metrics.csv`` (one row per
collected epoch), ``trajectories.npz`` (every recorded state with epoch and particle id),
``genealogy.graphml`` and ``genealogy.json``, and ``figures/`` (PCA trajectories, counts over
epochs, lineage graph). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from chemistry.plots import plot_counts, plot_lineage, plot_trajectories
from chemistry.soup import Soup
from chemistry.storage import write_atomically, write_text_atomically
from chemistry.topology import Topology
from interactions import Attack, Interaction, Learn, Respawn, SelfTrain
from particles import ARCHITECTURES, preset
from particles.validation import check_choice, check_count, check_probability

TOPOLOGIES = ("complete", "ring", "grid", "small_world")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class SoupConfig:
    """Settings of one soup run; the defaults are the paper's Fig 12 soup (SPEC E11)."""

    population: int = 20
    architecture: str = "ww"
    epochs: int = 100
    attack: float = 0.1
    learn: float = 0.0
    severity: int = 1
    self_train: int = 30
    preset: str = "keras2019"
    respawn: bool = True
    topology: str = "complete"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    record_every: int = 1

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        check_count("population", self.population, 1)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_count("epochs", self.epochs, 0)
        check_probability("attack", self.attack)
        check_probability("learn", self.learn)
        check_count("severity", self.severity, 0)
        check_count("self_train", self.self_train, 0)
        preset(self.preset)
        check_choice("topology", self.topology, TOPOLOGIES)
        check_count("seed", self.seed, 0)
        check_choice("dtype", self.dtype, DTYPES)
        check_count("record_every", self.record_every, 0)

    def rules(self) -> list[Interaction]:
        """The epoch schedule in SPEC's canonical order: attack → learn → self-train → respawn."""
        rules: list[Interaction] = []
        if self.attack > 0:
            rules.append(Attack(self.attack))
        if self.learn > 0:
            rules.append(Learn(self.learn, self.severity, preset=self.preset))
        if self.self_train > 0:
            rules.append(SelfTrain(self.self_train, preset=self.preset))
        if self.respawn:
            rules.append(Respawn())
        return rules

    def topology_for(self) -> Topology:
        """The partner graph over ``population`` nodes."""
        n = self.population
        if self.topology == "ring":
            return Topology.ring(n)
        if self.topology == "grid":
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(
                    f"topology='grid' needs a square population, got population={n}"
                )
            return Topology.grid(side, side)
        if self.topology == "small_world":
            return Topology.small_world(n, seed=self.seed)
        return Topology.complete(n)

    def build(self) -> Soup:
        """A fresh soup with these settings."""
        self.validate()
        return Soup(
            self.rules(),
            population=self.population,
            architecture=ARCHITECTURES[self.architecture](),
            topology=self.topology_for(),
            rng=self.seed,
            device=self.device,
            dtype=DTYPES[self.dtype],
            eps=preset(self.preset).eps,
            record_every=self.record_every,
        )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def metrics_table(soup: Soup) -> tuple[list[str], list[list[float]]]:
    """The DataCollector's model variables as (columns, rows)."""
    variables = soup.datacollector.model_vars
    columns = list(variables)
    rows = [list(values) for values in zip(*(variables[c] for c in columns))]
    return columns, rows


def write_run(soup: Soup, config: SoupConfig, directory: str | Path) -> dict[str, Path]:
    """Write config, metrics, trajectories, genealogy and figures of a finished soup."""
    directory = Path(directory)
    written: dict[str, Path] = {}
    written["config"] = write_text_atomically(
        directory / "config.json", json.dumps(asdict(config), indent=2) + "\n"
    )
    columns, rows = metrics_table(soup)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    written["metrics"] = write_text_atomically(directory / "metrics.csv", buffer.getvalue())

    arrays: dict[str, Any] = {}
    for name in soup.trajectories.names:
        epochs, uids, weights = soup.trajectories.arrays(name)
        arrays |= {f"{name}/epochs": epochs, f"{name}/uids": uids, f"{name}/weights": weights}

    def save_arrays(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    written["trajectories"] = write_atomically(directory / "trajectories.npz", save_arrays)
    genealogy = soup.genealogy
    written["genealogy_graphml"] = genealogy.to_graphml(directory / "genealogy.graphml")
    written["genealogy_json"] = genealogy.to_node_link_json(directory / "genealogy.json")

    figures = directory / "figures"
    written["counts_figure"] = plot_counts(soup.datacollector.model_vars, figures / "counts.png")
    final = {
        int(uid): status for uid, status in nx.get_node_attributes(genealogy.graph, "status").items()
    }
    for name in soup.trajectories.names:
        if len(soup.trajectories.arrays(name)[0]):
            written[f"trajectories_figure_{name}"] = plot_trajectories(
                soup.trajectories.pca([name]),
                figures / f"trajectories_{name}.png",
                final_status=final,
                title=f"{name} particle trajectories (joint PCA)",
            )
    written["lineage_figure"] = plot_lineage(genealogy.graph, figures / "lineage.png")
    return written
