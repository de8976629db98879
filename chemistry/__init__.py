"""Chemistry: the soup (a Mesa model) and its tooling: topology, genealogy, records, plots, CLI.

Compose a soup from rules in ``interactions`` and particles from ``particles``::

    from chemistry import Soup
    from interactions import Attack, SelfTrain, Respawn
    soup = Soup([Attack(0.1), SelfTrain(30), Respawn()], population=20, rng=42)
    soup.run_for(100)
"""

from chemistry.genealogy import Genealogy
from chemistry.soup import Soup
from chemistry.topology import Topology, as_topology
from chemistry.trajectories import Projection, Trajectories

__all__ = ["Genealogy", "Projection", "Soup", "Topology", "Trajectories", "as_topology"]
