"""Per-epoch numbers of a soup (floats only) and the Mesa DataCollector that stores them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mesa
import torch

from particles.classification import Status

if TYPE_CHECKING:
    from chemistry.soup import Soup


def metric_names(soup: Soup) -> list[str]:
    """Column names collected every epoch, fixed when the soup is built."""
    names = ["epoch", "population"] + [s.name.lower() for s in Status]
    if len(soup.banks) > 1:
        for arch_name in soup.architecture_names.values():
            names += [f"{s.name.lower()}[{arch_name}]" for s in Status]
    names += ["fixpoint_error_median", "fixpoint_error_mean", "fixpoint_error_min"]
    names += [f"events_{kind.value}" for kind in soup.event_kinds]
    return names


def _status_counts(statuses: torch.Tensor) -> list[int]:
    """Number of particles per Status code (unclassified entries, -1, are left out)."""
    # Shifted by one, -1 lands in bin 0 and is dropped: cheaper than selecting statuses >= 0.
    return torch.bincount(statuses + 1, minlength=len(Status) + 1)[1:].tolist()


def epoch_metrics(soup: Soup) -> dict[str, float]:
    """Counts per class (overall, per architecture), fixpoint error statistics, events per kind."""
    nodes = soup.occupied_nodes()
    at = soup.occupied_index()  # a view of all nodes when every node is occupied
    statuses = soup.node_status[at]
    metrics: dict[str, float] = {"epoch": float(soup.epoch), "population": float(nodes.numel())}
    for status, count in zip(Status, _status_counts(statuses), strict=True):
        metrics[status.name.lower()] = float(count)
    if len(soup.banks) > 1:  # an architecture without living particles counts 0, not "missing"
        for name in soup.architecture_names.values():
            for status in Status:
                metrics[f"{status.name.lower()}[{name}]"] = 0.0
        for bank, positions, _ in soup.groups(nodes):
            name = soup.architecture_names[bank.architecture]
            counts = _status_counts(statuses[positions])
            for status, count in zip(Status, counts, strict=True):
                metrics[f"{status.name.lower()}[{name}]"] = float(count)
    errors = soup.node_error[at]
    # masked_select: the same elements as errors[mask], several times faster on the CPU.
    finite = torch.masked_select(errors, torch.isfinite(errors))
    empty = finite.numel() == 0
    metrics["fixpoint_error_median"] = math.nan if empty else float(finite.median())
    metrics["fixpoint_error_mean"] = math.nan if empty else float(finite.mean())
    metrics["fixpoint_error_min"] = math.nan if empty else float(finite.min())
    for kind, count in soup.last_event_counts().items():
        metrics[f"events_{kind.value}"] = float(count)
    return metrics


def build_datacollector(soup: Soup) -> mesa.DataCollector:
    """A DataCollector with one model reporter per metric, read from ``soup.metrics``."""
    return mesa.DataCollector(
        model_reporters={
            name: (lambda model, name=name: float(model.metrics.get(name, math.nan)))
            for name in metric_names(soup)
        }
    )
