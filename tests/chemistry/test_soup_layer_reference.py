"""The batched soup layer (agents created and removed in batches, events and records kept as
columns) reproduces what the per-particle soup layer produced, bit for bit.

``tests/data/soup_layer_reference.npz`` was written by the soup layer before batching (branch
s10-souplayer at 720bbf5, ``python tests/chemistry/test_soup_layer_reference.py OUT.npz``): the
event log (step, epoch, kind and ids; each event decoded with its data items), class history,
trajectories, weights, nodes, collected data and Mesa agents of two float64 soups with attacks,
learning, self-training and respawns (synchronous and sequential schedules). Their particle
updates run on the eager torch path (``particles.fused.disabled()``), the one they took when the
reference was written: small per_sample batches have since been routed to the fused kernel,
which agrees with it to rounding only, and this test is about the soup layer, not the kernels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chemistry import Soup, Topology
from interactions import Attack, Learn, Respawn, SelfTrain
from particles import fused

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "soup_layer_reference.npz"
SCENARIOS = ("sync", "sequential")


def scenario(kind: str) -> Soup:
    """A small float64 soup whose large learning rate makes particles diverge and respawn."""
    if kind == "sync":
        rules = [Attack(0.3), Learn(0.3, 2, lr=0.5), SelfTrain(10), Respawn()]
        soup = Soup(
            rules,
            population=40,
            rng=3,
            dtype=torch.float64,
            preset="journal2021",
            record_every=1,
        )
    else:
        rules = [Attack(0.2), Learn(0.2, 1, lr=0.5), SelfTrain(3), Respawn()]
        soup = Soup(
            rules,
            population=12,
            topology=Topology.ring(14),
            rng=5,
            dtype=torch.float64,
            record_every=2,
            schedule="sequential",
        )
    with fused.disabled():
        soup.run_for(12)
    return soup


def _text(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(str)


def arrays(soup: Soup) -> dict[str, np.ndarray]:
    """Everything the soup recorded and holds, as arrays."""
    out: dict[str, np.ndarray] = {}
    log = soup.genealogy.log
    for table in ("events", "classes"):  # data items are compared as decoded below
        for name, values in log.tables[table].read().items():
            out[f"{table}/{name}"] = values
    out["events/decoded"] = np.array(
        [
            json.dumps([e.epoch, e.kind.value, e.actor, e.target, e.child, e.data], sort_keys=True)
            for e in log
        ]
    )
    for name in soup.trajectories.names:
        epochs, uids, weights = soup.trajectories.arrays(name)
        out[f"traj/{name}/epoch"], out[f"traj/{name}/uid"] = epochs, uids
        out[f"traj/{name}/weights"] = weights
    for bank in soup.banks.values():
        rows = bank.rows_in_use()
        out["bank/uids"] = bank.uids[rows].cpu().numpy()
        out["bank/weights"] = bank.weights[rows].cpu().numpy()
    out["node_uid"] = soup.node_uid.numpy()
    out["node_status"] = soup.node_status.numpy()
    out["node_error"] = soup.node_error.numpy()
    out["model_vars"] = soup.datacollector.get_model_vars_dataframe().to_numpy(dtype=float)
    agents = soup.datacollector.get_agent_vars_dataframe().reset_index()
    out["agent_vars"] = _text(agents.astype(str).to_numpy())
    out["agents"] = np.array(sorted((a.unique_id, a.node, a.birth, a.row) for a in soup.agents))
    return out


@pytest.mark.parametrize("kind", SCENARIOS)
def test_soup_layer_matches_the_per_particle_reference(kind):
    reference = np.load(REFERENCE)
    expected = {
        key.split(":", 1)[1]: reference[key] for key in reference if key.startswith(kind + ":")
    }
    got = arrays(scenario(kind))
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=key, strict=True)


if __name__ == "__main__":  # write the reference: python tests/chemistry/... OUT.npz
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    np.savez_compressed(
        sys.argv[1],
        **{f"{kind}:{k}": v for kind in SCENARIOS for k, v in arrays(scenario(kind)).items()},
    )
