"""Weight trajectories of every particle, recorded every k epochs, and their PCA (SPEC D17)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class _Track:
    """Growable long-form arrays of one architecture: epoch, uid and weights per record."""

    def __init__(self, num_weights: int, capacity: int = 1024) -> None:
        self.size = 0
        self.epochs = np.empty(capacity, dtype=np.int64)
        self.uids = np.empty(capacity, dtype=np.int64)
        self.weights = np.empty((capacity, num_weights), dtype=np.float64)

    def reserve(self, extra: int) -> None:
        needed = self.size + extra
        if needed <= len(self.epochs):
            return
        capacity = max(needed, 2 * len(self.epochs))
        for name in ("epochs", "uids", "weights"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)


@dataclass(frozen=True)
class Projection:
    """A joint 2-D PCA of recorded states: ``points`` [M, 2] for rows ``epochs``/``uids`` [M]."""

    points: np.ndarray
    epochs: np.ndarray
    uids: np.ndarray
    architectures: np.ndarray
    explained_variance_ratio: np.ndarray


class Trajectories:
    """Every particle's weights over time, one long-form table per architecture.

    Args:
        sizes: {architecture name: number of weights}.
    """

    def __init__(self, sizes: dict[str, int]) -> None:
        self._tracks = {name: _Track(r) for name, r in sizes.items()}

    @property
    def names(self) -> list[str]:
        return list(self._tracks)

    def add(self, name: str, num_weights: int) -> None:
        """Start a table for a new architecture."""
        self._tracks.setdefault(name, _Track(num_weights))

    def record(self, name: str, epoch: int, uids: torch.Tensor, weights: torch.Tensor) -> None:
        """Append the states ``weights`` [n, r] of particles ``uids`` [n] at ``epoch``."""
        track = self._tracks[name]
        n = int(uids.numel())
        track.reserve(n)
        track.epochs[track.size : track.size + n] = epoch
        track.uids[track.size : track.size + n] = uids.cpu().numpy()
        track.weights[track.size : track.size + n] = weights.detach().double().cpu().numpy()
        track.size += n

    def replace(self, name: str, epochs: np.ndarray, uids: np.ndarray, weights: np.ndarray) -> None:
        """Replace one architecture's table by saved arrays (for checkpoints)."""
        track = _Track(weights.shape[1], capacity=max(len(epochs), 1024))
        track.reserve(len(epochs))
        track.epochs[: len(epochs)] = epochs
        track.uids[: len(epochs)] = uids
        track.weights[: len(epochs)] = weights
        track.size = len(epochs)
        self._tracks[name] = track

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(epochs [M], uids [M], weights [M, r]) of one architecture, in recording order."""
        track = self._tracks[name]
        return (
            track.epochs[: track.size].copy(),
            track.uids[: track.size].copy(),
            track.weights[: track.size].copy(),
        )

    def __len__(self) -> int:
        return sum(track.size for track in self._tracks.values())

    def pca(self, names: list[str] | None = None, *, whiten: bool = False) -> Projection:
        """Joint 2-D PCA of all finite recorded states of architectures with one weight count.

        The stack is centred and two principal components are fitted on it jointly (SPEC D17).
        """
        names = names if names is not None else self.names
        sizes = {self._tracks[n].weights.shape[1] for n in names}
        if len(sizes) > 1:
            raise ValueError(
                f"architectures {names} have different weight counts {sorted(sizes)}; "
                "a joint PCA needs one weight count: pass names= of one size"
            )
        parts = [self.arrays(n) + (n,) for n in names]
        epochs = np.concatenate([p[0] for p in parts])
        uids = np.concatenate([p[1] for p in parts])
        weights = np.concatenate([p[2] for p in parts])
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
