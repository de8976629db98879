"""Tools shared by the soup experiments (SPEC E11–E14: fig12, fig13, fig14, learn_soup).

E11 and E13 build ``chemistry.Soup`` objects from the rules in ``interactions``; ``TrackedAttack``
subclasses ``interactions.Attack`` and keeps each victim's weights just before and just after the
rule. E12 and E14 are sweeps: a base run configuration (``chemistry.config``) and a grid over the
self-training steps A (E12) or the learn severity s (E14), run with the run's seed by
``chemistry.sweep.run_sweep`` (local backend) into ``<experiment folder>/sweep*/``; their
measurements are read back from the points' run directories. Many small soups of one setting run
as one population on a ``disjoint_cliques`` topology and are told apart by its components: a
particle's clique is that of its node, read from ``genealogy.json`` (birth ``node``, last
``status``, ``death``), since particles never move.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch

from chemistry.config import RunConfig
from chemistry.experiments.base import Context
from chemistry.runs import RunDirectory, RunFileError, final_counts
from chemistry.soup import Soup
from chemistry.sweep import POINTS_DIR, SweepConfig, run_sweep
from interactions import Attack, EventKind
from particles import (
    Status,
    distance,
)

Tensor = torch.Tensor
SWEEP_FOLDER = "sweep"  # an experiment's sweep directory, inside its output folder
STATUS_NAMES = [s.name for s in Status]


# ------------------------------------------------------------------------------------------------
# Helpers on top of the public soup API


def _soup_seed(context: Context, stream: int) -> int:
    """A Mesa seed for one soup, drawn from the run's generator ``stream``."""
    return int(torch.randint(0, 2**62, (1,), generator=context.generator(stream)))


def _weights_at(soup: Soup, nodes: Tensor) -> Tensor:
    """Weights of the particles on ``nodes`` (one weight count): [n, r] in the soup's dtype."""
    groups = soup.groups(nodes)
    if not groups:
        size = next(iter(soup.banks)).num_weights
        return torch.empty(0, size, dtype=soup.dtype, device=soup.device)
    out = torch.empty(
        nodes.numel(), groups[0][0].architecture.num_weights, dtype=soup.dtype, device=soup.device
    )
    for bank, positions, rows in groups:
        out[positions.to(out.device)] = bank.read(rows)
    return out


def _status_by_component(soup: Soup) -> Tensor:
    """Particles per class in each connected component (one small soup): int64 [C, 5]."""
    soup.classify()
    nodes = soup.occupied_nodes()
    component = soup.topology.components().cpu()[nodes]
    status = soup.node_status[nodes]
    count = soup.topology.num_components
    flat = torch.bincount(component * len(Status) + status, minlength=count * len(Status))
    return flat.view(count, len(Status))


def _mae(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise MAE (SPEC D16), broadcasting ``b`` [1, r] over ``a`` [n, r]."""
    return distance(a, b.expand_as(a), "mae")


def _pairwise_mae(w: Tensor) -> Tensor:
    """MAE between every two rows: [n, r] -> [n, n] (float64)."""
    w = w.double()
    return torch.cdist(w, w, p=1) / w.shape[1]


def _spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when a side is constant."""

    def ranks(values: list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        order = values.argsort(kind="stable")
        result = np.empty(len(values))
        result[order] = np.arange(len(values), dtype=float)
        for value in np.unique(values):
            tied = values == value
            result[tied] = result[tied].mean()
        return result

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}"


@dataclass
class AttackLog:
    """Every attack of a soup run: who hit whom, and the victim's weights around the rule."""

    epochs: list[int] = field(default_factory=list)
    attackers: list[int] = field(default_factory=list)
    victims: list[int] = field(default_factory=list)
    applied: list[bool] = field(default_factory=list)
    before: list[Tensor] = field(default_factory=list)
    after: list[Tensor] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epochs)

    def stacked(self) -> tuple[Tensor, Tensor]:
        """(before [n, r], after [n, r]) as float64."""
        return torch.stack(self.before).double(), torch.stack(self.after).double()


class TrackedAttack(Attack):
    """``Attack`` that also logs each victim's weights just before and just after the rule.

    An attack is *applied* when its result was kept; attacks on the same victim that were
    overwritten (SPEC R1) are logged with ``applied=False`` and share the kept one's weights.
    """

    def __init__(
        self, chance: float, *, pairing: str = "per_particle", allow_self: bool = False
    ) -> None:
        super().__init__(chance, pairing=pairing, allow_self=allow_self)
        self.log = AttackLog()

    def act(self, soup: Soup, actors: Tensor, partners: Tensor):  # type: ignore[override]
        before = _weights_at(soup, partners)
        attackers = soup.uids_at(actors).tolist()
        victims = soup.uids_at(partners).tolist()
        events = super().act(soup, actors, partners)
        after = _weights_at(soup, partners)
        for index, event in enumerate(events):
            self.log.epochs.append(soup.epoch)
            self.log.attackers.append(attackers[index])
            self.log.victims.append(victims[index])
            self.log.applied.append(not event.data.get("overwritten", False))
            self.log.before.append(before[index])
            self.log.after.append(after[index])
        return events


# ------------------------------------------------------------------------------------------------
# Sweeps: settings of E12 and E14 as points of a chemistry.sweep sweep


@dataclass(frozen=True)
class SweepPoint:
    """One finished point of an experiment's sweep: its overrides, run directory and config."""

    overrides: dict
    run: RunDirectory
    config: RunConfig


def _run_config_base(context: Context, epochs: int, eps: float, schedule: str) -> dict:
    """The top-level keys and [record] of an experiment's base run configuration.

    Metrics (whole-population counts) are collected at epoch 0 and at the end; figures and
    checkpoints are off: the experiment reads the run directories and draws its own figures.
    """
    every = max(epochs, 1)
    return {
        "epochs": epochs,
        "device": context.device,
        "dtype": context.option("dtype"),
        "preset": "keras2019",
        "eps": eps,
        "schedule": schedule,
        "record": {
            "trajectories_every": 0,
            "metrics_every": every,
            "checkpoint_every": 0,
            "figures": False,
        },
    }


def _given(**keys) -> dict:
    """The keys whose value is not None (a rule's optional keys follow the preset otherwise)."""
    return {key: value for key, value in keys.items() if value is not None}


def _run_experiment_sweep(
    context: Context,
    base: dict,
    grid: dict[str, list],
    *,
    parameter: str,
    description: str,
    folder: str = SWEEP_FOLDER,
) -> list[SweepPoint]:
    """Run ``base`` × ``grid`` with the run's seed through :func:`chemistry.sweep.run_sweep`.

    The sweep goes to ``<out>/<folder>`` (run directories in ``points/``, ``results.csv``,
    ``summary.png``), started afresh. Points run on the local backend with ``context.workers``
    processes (1 runs them in this process); every point is seeded by the sweep, so the worker
    count never changes a number.

    Raises:
        RuntimeError: if a point failed (its error is in the message).
    """
    out = context.out / folder
    if out.exists():
        shutil.rmtree(out)
    sweep = SweepConfig.from_dict(
        {
            "description": description,
            "base": base,
            "seeds": [context.seed],
            "grid": grid,
            "summary": {"metric": "fixpoint", "parameter": parameter},
        },
        base_dir=context.out,
    )
    report = run_sweep(
        sweep,
        out,
        backend="local",
        workers=context.workers,
        threads=torch.get_num_threads(),
    )
    if report.failed:
        first = report.failed[0]
        raise RuntimeError(
            f"{len(report.failed)} point(s) of the sweep in {out} failed; {first['id']}: "
            f"{first['error']}"
        )
    return [
        SweepPoint(
            point.overrides,
            RunDirectory(out / POINTS_DIR / point.id),
            RunConfig.from_dict(point.config),
        )
        for point in report.points
    ]


def _final_status_by_component(point: SweepPoint, graph: nx.MultiDiGraph) -> Tensor:
    """Living particles per final class in each connected component (one small soup): [C, 5].

    Read from the run directory: ``graph`` (its ``genealogy.json``) holds every particle's birth
    ``node``, its last class (``status``, set whenever the soup classifies) and its ``death`` if
    it died; particles never move, and the components come from the configured topology. The
    totals are checked against the last row of ``metrics.csv`` (collected at the final epoch).
    """
    config = point.config
    topology = config.build_topology()
    component = topology.components().cpu()
    counts = torch.zeros(topology.num_components, len(Status), dtype=torch.int64)
    for uid, data in graph.nodes(data=True):
        if "death" in data:
            continue
        if data.get("status_epoch") != config.epochs or "node" not in data:
            raise RunFileError(
                f"{point.run.path}: particle {uid} has no class of the final epoch "
                f"{config.epochs} in genealogy.json (metrics_every must divide epochs)"
            )
        counts[component[int(data["node"])], Status[data["status"]]] += 1
    final = final_counts(point.run.metrics())
    expected = [final.get(s.name.lower()) for s in Status]
    if final.get("epoch") != config.epochs or counts.sum(dim=0).tolist() != expected:
        raise RunFileError(
            f"{point.run.path}: the final classes in genealogy.json ({counts.sum(dim=0).tolist()}) "
            f"do not match the last row of metrics.csv ({expected})"
        )
    return counts


def _sweep_note(soups: int, size: int) -> str:
    """The REPORT note on how a sweep experiment ran and was counted."""
    return (
        f"Each setting is one point of a chemistry.sweep sweep of one base run configuration "
        f"(run directories, results.csv and summary.png in this experiment's {SWEEP_FOLDER}*/ "
        f"folders); its {soups} soups run as one population of {soups * size} on disjoint "
        "cliques and are counted per clique (connected component) from each particle's final "
        "class and node in the point's genealogy.json. Every point is seeded with the run's seed "
        "(the runner's convention), so the settings of one architecture start from the same "
        "particles and random stream [decision]."
    )


def _events(graph: nx.MultiDiGraph, kind: EventKind) -> int:
    """Number of events of ``kind`` in a run: the edges of that kind of its genealogy ``graph``."""
    return sum(1 for *_, value in graph.edges(data="kind") if value == kind.value)


def _recorded_weights(point: SweepPoint, architecture: str, epoch: int) -> Tensor:
    """Weights of every particle recorded at ``epoch`` in ``trajectories.npz``, by uid: [n, r]."""
    epochs, uids, weights = point.run.trajectories().arrays(architecture)
    mask = epochs == epoch
    if not mask.any():
        raise RunFileError(f"{point.run.path}: trajectories.npz records no epoch {epoch}")
    order = np.argsort(uids[mask], kind="stable")
    return torch.from_numpy(weights[mask][order])
