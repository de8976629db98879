"""Weight trajectories of every particle, recorded every k epochs, and their PCA (SPEC D17).

States are kept as float32 in a :class:`chemistry.columnar.ChunkedTable` per architecture
(columns ``epoch``, ``uid``, ``weights`` [r]); with a directory attached
(:meth:`Trajectories.attach`) they stream there in chunks, so a million particles over a
thousand epochs need disk, not RAM (float64 in memory would take 112 GB).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from chemistry.columnar import ChunkedTable

#: The dtype trajectories are stored in.
DTYPE = np.float32


def _track(num_weights: int) -> ChunkedTable:
    return ChunkedTable(
        {"epoch": (np.int64, ()), "uid": (np.int64, ()), "weights": (DTYPE, (num_weights,))}
    )


@dataclass(frozen=True)
class Projection:
    """A joint 2-D PCA of recorded states: ``points`` [M, 2] for rows ``epochs``/``uids`` [M]."""

    points: np.ndarray
    epochs: np.ndarray
    uids: np.ndarray
    architectures: np.ndarray
    explained_variance_ratio: np.ndarray


class Trajectories:
    """Every particle's weights over time (float32), one long-form table per architecture.

    Args:
        sizes: {architecture name: number of weights}.
    """

    def __init__(self, sizes: dict[str, int]) -> None:
        self._tracks = {name: _track(r) for name, r in sizes.items()}
        self._directory: Path | None = None

    @property
    def names(self) -> list[str]:
        return list(self._tracks)

    def add(self, name: str, num_weights: int) -> None:
        """Start a table for a new architecture."""
        if name not in self._tracks:
            self._tracks[name] = _track(num_weights)
            if self._directory is not None:
                self._tracks[name].attach(self._folder(name))

    def _folder(self, name: str) -> Path:
        assert self._directory is not None
        return self._directory / name.replace("#", "-")

    def attach(self, directory: str | os.PathLike) -> None:
        """Stream every table to ``directory/<architecture>/`` in chunks from now on."""
        self._directory = Path(directory)
        for name, track in self._tracks.items():
            track.attach(self._folder(name))

    def flush(self) -> None:
        """Write pending states (with a directory attached)."""
        for track in self._tracks.values():
            track.flush()

    def record(self, name: str, epoch: int, uids: torch.Tensor, weights: torch.Tensor) -> None:
        """Append the states ``weights`` [n, r] of particles ``uids`` [n] at ``epoch``."""
        n = int(uids.numel())
        self._tracks[name].append(
            epoch=np.full(n, int(epoch), dtype=np.int64),
            uid=uids.cpu().numpy(),
            weights=weights.detach().to(torch.float32).cpu().numpy(),
        )

    def replace(self, name: str, epochs: np.ndarray, uids: np.ndarray, weights: np.ndarray) -> None:
        """Replace one architecture's table by saved arrays (for checkpoints)."""
        track = _track(weights.shape[1])
        track.append(epoch=epochs, uid=uids, weights=weights)
        if self._directory is not None:
            track.attach(self._folder(name))
        self._tracks[name] = track

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(epochs [M], uids [M], weights [M, r] float32) of one architecture, in recorded order."""
        data = self._tracks[name].read()
        return data["epoch"], data["uid"], data["weights"]

    def __len__(self) -> int:
        return sum(track.length for track in self._tracks.values())

    def pca(self, names: list[str] | None = None, *, whiten: bool = False) -> Projection:
        """Joint 2-D PCA of all finite recorded states of architectures with one weight count.

        The stack is centred and two principal components are fitted on it jointly (SPEC D17).
        """
        names = names if names is not None else self.names
        sizes = {self._tracks[n].columns["weights"][1][0] for n in names}
        if len(sizes) > 1:
            raise ValueError(
                f"architectures {names} have different weight counts {sorted(sizes)}; "
                "a joint PCA needs one weight count: pass names= of one size"
            )
        parts = [self.arrays(n) + (n,) for n in names]
        epochs = np.concatenate([p[0] for p in parts])
        uids = np.concatenate([p[1] for p in parts])
        weights = np.concatenate([p[2] for p in parts]).astype(np.float64)
        labels = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
        finite = np.isfinite(weights).all(axis=1)
        epochs, uids, weights, labels = (
            epochs[finite],
            uids[finite],
            weights[finite],
            labels[finite],
        )
        if len(weights) == 0:
            raise ValueError("no finite recorded states to project")
        centred = weights - weights.mean(axis=0)
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        k = min(2, components.shape[0])
        points = centred @ components[:k].T
        if whiten:
            scale = singular[:k] / np.sqrt(max(len(weights) - 1, 1))
            points = points / np.where(scale > 0, scale, 1.0)
        if k < 2:
            points = np.hstack([points, np.zeros((len(points), 2 - k))])
        variance = singular**2
        ratio = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
        return Projection(points, epochs, uids, labels, ratio)
