"""Per-epoch numbers of a soup and the Mesa DataCollector that stores them (and per-agent data).

Counts (particles, classes, events) are integers; fixpoint-error statistics are floats. The
column ``particles`` is the number of living particles (not ``population``, so that
``mesa.batch_run`` keeps the ``population`` parameter in its own column).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np
import pandas as pd
import torch

from particles.classification import Status

if TYPE_CHECKING:
    from chemistry.soup import Soup

#: Per-agent columns of ``get_agent_vars_dataframe()`` and the Particle attribute each reads.
AGENT_REPORTERS = {
    "status": "status",
    "fixpoint_error": "fixpoint_error",
    "architecture": "architecture_name",
    "birth": "birth",
    "node": "node",
}
_STATUS_NAMES = np.array([None] + [s.name for s in Status], dtype=object)  # code + 1 -> name


def metric_names(soup: Soup) -> list[str]:
    """Column names collected every epoch, fixed when the soup is built."""
    names = ["epoch", "particles"] + [s.name.lower() for s in Status]
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


def epoch_metrics(soup: Soup) -> dict[str, int | float]:
    """Counts per class (overall, per architecture), fixpoint error statistics, events per kind."""
    nodes = soup.occupied_nodes()
    at = soup.occupied_index()  # a view of all nodes when every node is occupied
    statuses = soup.node_status[at]
    metrics: dict[str, int | float] = {"epoch": soup.epoch, "particles": nodes.numel()}
    for status, count in zip(Status, _status_counts(statuses), strict=True):
        metrics[status.name.lower()] = count
    if len(soup.banks) > 1:  # an architecture without living particles counts 0, not "missing"
        for name in soup.architecture_names.values():
            for status in Status:
                metrics[f"{status.name.lower()}[{name}]"] = 0
        for bank, positions, _ in soup.groups(nodes):
            name = soup.architecture_names[bank.architecture]
            counts = _status_counts(statuses[positions])
            for status, count in zip(Status, counts, strict=True):
                metrics[f"{status.name.lower()}[{name}]"] = count
    errors = soup.node_error[at]
    # masked_select: the same elements as errors[mask], several times faster on the CPU.
    finite = torch.masked_select(errors, torch.isfinite(errors))
    empty = finite.numel() == 0
    metrics["fixpoint_error_median"] = math.nan if empty else float(finite.median())
    metrics["fixpoint_error_mean"] = math.nan if empty else float(finite.mean())
    metrics["fixpoint_error_min"] = math.nan if empty else float(finite.min())
    for kind, count in soup.last_event_counts().items():
        metrics[f"events_{kind.value}"] = count
    return metrics


class AgentRecords(Sequence):
    """One collected epoch of per-agent data, stored as columns (no Python object per agent).

    Iterating yields Mesa's record tuples ``(time, unique_id, status, fixpoint_error,
    architecture, birth, node)``, so Mesa's own readers (``batch_run``) work unchanged.
    """

    def __init__(self, soup: Soup) -> None:
        at = soup.occupied_index()
        self.time = soup.time
        # compact types: about 26 bytes per particle and collected epoch
        self.uids = soup.node_uid[at].numpy().copy()
        self.status = soup.node_status[at].numpy().astype(np.int8)
        self.error = soup.node_error[at].numpy().copy()
        self.bank = (
            soup.node_bank[at].numpy().astype(np.int8 if len(soup.banks) < 128 else np.int64)
        )
        self.birth = soup.node_birth[at].numpy().astype(np.int32)
        self.node = soup.occupied_nodes().numpy().astype(np.int32)
        self.bank_names = np.array(
            [soup.architecture_names[bank.architecture] for bank in soup.bank_list], dtype=object
        )

    def columns(self) -> dict[str, np.ndarray]:
        """The agent columns, in ``AGENT_REPORTERS`` order."""
        return {
            "status": _STATUS_NAMES[self.status + 1],
            "fixpoint_error": self.error,
            "architecture": self.bank_names[self.bank],
            "birth": self.birth.astype(np.int64),
            "node": self.node.astype(np.int64),
        }

    def __len__(self) -> int:
        return len(self.uids)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        columns = [values.tolist() for values in self.columns().values()]
        return zip(repeat(self.time), self.uids.tolist(), *columns, strict=False)

    def __getitem__(self, index):  # Sequence protocol; rarely used
        return list(self)[index]


class SoupDataCollector(mesa.DataCollector):
    """Mesa's DataCollector with per-agent data gathered from the soup's tensors in one batch.

    Its agent reporters are ordinary Mesa attribute reporters (``AGENT_REPORTERS``), so the data
    are what Mesa would record agent by agent, without a Python call per agent.
    """

    def collect(self, model: Soup) -> None:
        reporters, self.agent_reporters = self.agent_reporters, {}
        try:
            super().collect(model)
        finally:
            self.agent_reporters = reporters
        if reporters:
            self._agent_records[model.time] = AgentRecords(model)

    def get_agent_vars_dataframe(self) -> pd.DataFrame:
        """One row per particle per collected epoch, indexed by (Step, AgentID)."""
        if not self.agent_reporters:
            raise UserWarning(
                "No agent reporters: this soup was built with collect_agents=False; build it "
                "with collect_agents=True for per-particle data"
            )
        records = list(self._agent_records.values())
        steps = np.concatenate([np.full(len(r), r.time) for r in records]) if records else []
        uids = np.concatenate([r.uids for r in records]) if records else []
        index = pd.MultiIndex.from_arrays([steps, uids], names=["Step", "AgentID"])
        columns = {
            name: np.concatenate([r.columns()[name] for r in records]) if records else []
            for name in AGENT_REPORTERS
        }
        return pd.DataFrame(columns, index=index)


def build_datacollector(soup: Soup, *, agents: bool = True) -> mesa.DataCollector:
    """A DataCollector with one model reporter per metric (read from ``soup.metrics``) and,
    with ``agents``, the per-particle reporters of ``AGENT_REPORTERS``."""
    return SoupDataCollector(
        model_reporters={
            name: (lambda model, name=name: model.metrics.get(name, math.nan))
            for name in metric_names(soup)
        },
        agent_reporters=dict(AGENT_REPORTERS) if agents else None,
    )
