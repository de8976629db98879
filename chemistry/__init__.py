"""Chemistry: the soup (a Mesa model) and its tooling: topology, genealogy, records, plots, CLI.

Compose a soup from rules in ``interactions`` and particles from ``particles``::

    from chemistry import Soup
    from interactions import Attack, SelfTrain, Respawn
    soup = Soup([Attack(0.1), SelfTrain(30), Respawn()], population=20, rng=42)
    soup.run_for(100)

``chemistry.load(DIR)`` reads a run directory back as pandas DataFrames (``chemistry.frames``).

Names are imported on first use (PEP 562), so ``chemistry --help`` starts without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chemistry._package import __version__, check_distribution

if TYPE_CHECKING:
    from chemistry.frames import Run, load
    from chemistry.genealogy import Genealogy
    from chemistry.soup import Soup
    from chemistry.topology import Topology, as_topology
    from chemistry.trajectories import Projection, Trajectories

_EXPORTS = {
    "Genealogy": "chemistry.genealogy",
    "Projection": "chemistry.trajectories",
    "Run": "chemistry.frames",
    "Soup": "chemistry.soup",
    "Topology": "chemistry.topology",
    "Trajectories": "chemistry.trajectories",
    "as_topology": "chemistry.topology",
    "load": "chemistry.frames",
}

__all__ = [
    "Genealogy",
    "Projection",
    "Run",
    "Soup",
    "Topology",
    "Trajectories",
    "__version__",
    "as_topology",
    "load",
]

check_distribution()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'chemistry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
