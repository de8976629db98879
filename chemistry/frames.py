"""A run directory as pandas DataFrames: ``chemistry.load(DIR)`` for notebooks and scripts.

>>> run = chemistry.load("runs/demo")
>>> run.metrics.plot(x="epoch", y=["fixpoint", "other"])      # one row per collected epoch
>>> run.trajectories.query("particle == 3")                    # one row per particle and epoch
>>> run.events.groupby("kind").size()                          # one row per event
>>> run.genealogy.most_successful_lineages(3)                  # chemistry.Genealogy

Every file is read through :class:`chemistry.runs.RunDirectory`, so a file that does not match
the run's manifest is refused with a clear error instead of being read half.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chemistry.runs import RunDirectory, RunFileError

if TYPE_CHECKING:
    from chemistry.config import RunConfig
    from chemistry.genealogy import Genealogy

__all__ = ["Run", "events_frame", "load"]


def load(directory: str | Path) -> Run:
    """The run in ``directory`` (written by ``chemistry run``, ``resume`` or a sweep point).

    Raises:
        RunFileError: (a ValueError) if ``directory`` is missing or not a directory.
    """
    return Run(directory)


def events_frame(genealogy: Genealogy) -> pd.DataFrame:
    """Every event of a genealogy, one row each, in order: epoch, kind, actor, target, child
    (nullable integer ids) and one column per data key (``overwritten``, ``architecture`` ...)."""
    events = list(genealogy.events)
    frame = pd.DataFrame(
        {
            "epoch": pd.array([e.epoch for e in events], dtype="Int64"),
            "kind": pd.Categorical([str(e.kind.value) for e in events]),
            "actor": pd.array([e.actor for e in events], dtype="Int64"),
            "target": pd.array([e.target for e in events], dtype="Int64"),
            "child": pd.array([e.child for e in events], dtype="Int64"),
        }
    )
    keys = sorted({key for e in events for key in e.data})
    for key in keys:
        frame[key] = [e.data.get(key) for e in events]
    return frame


class Run:
    """One run directory, read lazily; each table is read once, on first access.

    Attributes:
        path: the directory.
        metrics: ``metrics.csv``: one row per collected epoch (counts are integers).
        trajectories: ``trajectories.npz`` in long form: ``architecture``, ``epoch``,
            ``particle`` and the weights ``w0`` .. ``w{r-1}`` (NaN past an architecture's
            weight count in a mixed soup).
        events: every recorded event (see :func:`events_frame`).
        particles: one row per particle of the genealogy: birth, death, node, architecture,
            last known class.
        genealogy: the :class:`chemistry.Genealogy` (networkx graph and lineage queries).
        config: the resolved :class:`chemistry.config.RunConfig`.
    """

    def __init__(self, directory: str | Path) -> None:
        self._directory = RunDirectory(directory)
        self.path = self._directory.path

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @cached_property
    def metrics(self) -> pd.DataFrame:
        path = self._directory.verify("metrics.csv")
        try:
            return pd.read_csv(path)
        except (ValueError, pd.errors.ParserError) as error:
            raise RunFileError(f"metrics.csv in {self.path} is damaged ({error})") from None

    @cached_property
    def trajectories(self) -> pd.DataFrame:
        recorded = self._directory.trajectories()
        parts = []
        for name in recorded.names:
            epochs, uids, weights = recorded.arrays(name)
            part = pd.DataFrame(weights, columns=[f"w{i}" for i in range(weights.shape[1])])
            part.insert(0, "particle", np.asarray(uids, dtype=np.int64))
            part.insert(0, "epoch", np.asarray(epochs, dtype=np.int64))
            part.insert(0, "architecture", name)
            parts.append(part)
        if not parts:
            return pd.DataFrame(columns=["architecture", "epoch", "particle"])
        return pd.concat(parts, ignore_index=True)

    @cached_property
    def genealogy(self) -> Genealogy:
        return self._directory.genealogy()

    @cached_property
    def events(self) -> pd.DataFrame:
        return events_frame(self.genealogy)

    @cached_property
    def particles(self) -> pd.DataFrame:
        graph = self.genealogy.graph
        columns = ["birth", "death", "node", "architecture", "status", "status_epoch"]
        rows: dict[str, list[Any]] = {name: [] for name in columns}
        uids = sorted(graph.nodes)
        for uid in uids:
            data = graph.nodes[uid]
            for name in columns:
                rows[name].append(data.get(name))
        frame = pd.DataFrame(rows, index=pd.Index(uids, name="particle"))
        for name in ("birth", "death", "node", "status_epoch"):
            frame[name] = pd.array(frame[name], dtype="Int64")
        return frame

    @cached_property
    def config(self) -> RunConfig:
        return self._directory.config()
