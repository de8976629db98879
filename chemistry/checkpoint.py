"""Checkpoints: everything needed to continue a soup bit for bit, written atomically, loaded safely.

A checkpoint is one file ``checkpoints/epoch-XXXXXX.pt`` holding only tensors and a JSON string
(loaded with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects), and a
line in ``checkpoints/index.json`` with its SHA-256. The file is written and renamed into place
before the index names it, so a crash at any moment leaves the previous checkpoint as the latest.

What is saved: the weight banks (weights, sticky divergence flags, owners, free-row order), the
node tables, every particle's birth, parents and node, the clocks (Mesa time, next unique id),
every random generator (numpy, Python ``random``, both torch generators), the genealogy events and
statuses, the collected data and the trajectories. Rules and architectures are not saved: the
soup is first rebuilt from the run's configuration, then its state is replaced.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from mesa.time import EventGenerator, Priority, Schedule

from chemistry.genealogy import Genealogy
from chemistry.metrics import AgentRecords
from chemistry.soup import Soup
from chemistry.storage import file_sha256, write_atomically, write_text_atomically
from particles.agent import Particle

FORMAT_VERSION = 2
INDEX_NAME = "index.json"


def soup_state(soup: Soup) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The complete mutable state of a soup as (tensors, JSON-serialisable metadata)."""
    tensors: dict[str, torch.Tensor] = {
        "index_generator": soup.index_generator.get_state(),
        "weight_generator": soup.weight_generator.get_state(),
        "node_bank": soup.node_bank,
        "node_row": soup.node_row,
        "node_uid": soup.node_uid,
        "node_status": soup.node_status,
        "node_error": soup.node_error,
    }
    banks = []
    for index, (arch, bank) in enumerate(soup.banks.items()):
        for key, value in bank.state_dict().items():
            tensors[f"bank{index}/{key}"] = value.cpu()
        banks.append({"name": soup.architecture_names[arch], "repr": repr(arch)})
    for name in soup.trajectories.names:
        epochs, uids, weights = soup.trajectories.arrays(name)
        tensors[f"trajectories/{name}/epochs"] = torch.from_numpy(epochs)
        tensors[f"trajectories/{name}/uids"] = torch.from_numpy(uids)
        tensors[f"trajectories/{name}/weights"] = torch.from_numpy(weights)
    genealogy_arrays, genealogy_meta = soup.genealogy.state()
    for key, values in genealogy_arrays.items():
        tensors[f"genealogy/{key}"] = torch.from_numpy(values)
    particles = [
        [p.unique_id, soup.bank_list.index(p.bank), p.row, p.birth, list(p.parents), p.node]
        for p in soup.particles.values()
    ]
    meta = {
        "format": FORMAT_VERSION,
        "epoch": soup.epoch,
        "time": soup.time,
        "agent_id_counter": soup.agent_id_counter,
        "numpy_rng": soup.rng.bit_generator.state,
        "python_random": list(soup.random.getstate()),
        "banks": banks,
        "particles": particles,
        "genealogy": genealogy_meta,
        "model_vars": soup.datacollector.model_vars,
        "trajectory_names": soup.trajectories.names,
    }
    return tensors, meta


def _restore_python_random(state: list[Any]) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def restore_soup_state(soup: Soup, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Replace a freshly built soup's state (same configuration) by a saved one."""
    names = [soup.architecture_names[a] for a in soup.banks]
    saved = [b["name"] for b in meta["banks"]]
    if names[: len(saved)] != saved[: len(names)] or len(saved) < len(names):
        raise ValueError(
            f"checkpoint architectures {saved} do not match the configured soup's {names}"
        )
    for agent in list(soup.particles.values()):
        agent.remove()
    soup.particles.clear()
    banks = list(soup.banks.values())
    for index, bank in enumerate(banks):
        prefix = f"bank{index}/"
        bank.load_state_dict(
            {key: tensors[prefix + key] for key in ("weights", "divergent", "uids", "free")}
        )
    for name in ("node_bank", "node_row", "node_uid", "node_status", "node_error"):
        setattr(soup, name, tensors[name].clone())
    soup.invalidate_occupancy()
    soup.index_generator.set_state(tensors["index_generator"])
    soup.weight_generator.set_state(tensors["weight_generator"])
    for uid, bank_index, row, birth, parents, node in meta["particles"]:
        agent = Particle(soup, banks[bank_index], row, birth=birth, parents=parents, node=node)
        agent.unique_id = uid
        soup.particles[uid] = agent
    births = [(node, birth) for _, _, _, birth, _, node in meta["particles"]]
    soup.node_birth.fill_(-1)
    if births:
        nodes, values = zip(*births, strict=True)
        soup.node_birth[list(nodes)] = torch.tensor(values, dtype=torch.long)
    soup.agent_id_counter = meta["agent_id_counter"]
    soup.rng.bit_generator.state = meta["numpy_rng"]
    soup.random.setstate(_restore_python_random(meta["python_random"]))

    prefix = "genealogy/"
    soup.genealogy_record = Genealogy.from_state(
        {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)},
        meta["genealogy"],
    )

    for name, values in meta["model_vars"].items():
        soup.datacollector.model_vars[name] = list(values)
    # Per-particle data are not checkpointed: they restart at the restored epoch.
    soup.datacollector._collection_steps = [float(e) for e in meta["model_vars"].get("epoch", [])]
    for name in meta["trajectory_names"]:
        prefix = f"trajectories/{name}/"
        soup.trajectories.replace(
            name,
            tensors[prefix + "epochs"].numpy(),
            tensors[prefix + "uids"].numpy(),
            tensors[prefix + "weights"].numpy(),
        )
    _set_clock(soup, float(meta["time"]))
    if soup.datacollector.agent_reporters:
        soup.datacollector._agent_records = {soup.time: AgentRecords(soup)}
    soup._check_end()


def _set_clock(soup: Soup, time: float) -> None:
    """Move Mesa's clock to ``time`` with the next epoch due at ``time + 1``.

    Mesa 3.5 has no public call for this: the model's default step schedule is an
    ``EventGenerator`` started at time 1; it is replaced by one starting at ``time + 1``.
    """
    soup._default_schedule.stop()
    soup.time = time
    soup._default_schedule = EventGenerator(
        soup, soup._do_step, Schedule(interval=1.0, start=time + 1.0), priority=Priority.HIGH
    ).start()


def _read_index(directory: Path) -> list[dict[str, Any]]:
    path = directory / INDEX_NAME
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["checkpoints"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"checkpoint index {path} is damaged ({error}); it cannot be read"
        ) from None
    return entries


def save_checkpoint(soup: Soup, run_directory: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write a checkpoint of ``soup`` with the run's ``config`` into ``checkpoints/``."""
    directory = Path(run_directory) / "checkpoints"
    tensors, meta = soup_state(soup)
    meta["config"] = config
    payload = {"tensors": tensors, "meta": json.dumps(meta)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    name = f"epoch-{soup.epoch:06d}.pt"

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())

    path = write_atomically(directory / name, write)
    entries = [e for e in _read_index(directory) if e["file"] != name]
    entries.append({"epoch": soup.epoch, "file": name, "sha256": file_sha256(path)})
    entries.sort(key=lambda e: e["epoch"])
    write_text_atomically(
        directory / INDEX_NAME, json.dumps({"checkpoints": entries}, indent=1) + "\n"
    )
    return path


def list_checkpoints(run_directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The checkpoints named by the index, oldest first: dicts with epoch, file, sha256."""
    return _read_index(Path(run_directory) / "checkpoints")


def read_checkpoint(
    run_directory: str | os.PathLike, epoch: int | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and verify the latest checkpoint (or the one of ``epoch``): (tensors, metadata).

    Raises:
        ValueError: when there is no checkpoint, or its file is missing or fails its checksum.
    """
    directory = Path(run_directory) / "checkpoints"
    entries = _read_index(directory)
    if epoch is not None:
        entries = [e for e in entries if e["epoch"] == epoch]
    if not entries:
        wanted = f" for epoch {epoch}" if epoch is not None else ""
        raise ValueError(f"no checkpoint{wanted} in {directory}")
    entry = entries[-1]
    path = directory / entry["file"]
    if not path.exists():
        raise ValueError(f"checkpoint {path} named in {directory / INDEX_NAME} is missing")
    if file_sha256(path) != entry["sha256"]:
        older = [e["epoch"] for e in entries[:-1]]
        raise ValueError(
            f"checkpoint {path} is corrupted (its SHA-256 does not match the index); "
            f"earlier checkpoints: epochs {older or 'none'}"
        )
    payload = torch.load(path, weights_only=True, map_location="cpu")
    return payload["tensors"], json.loads(payload["meta"])


def load_checkpoint(
    run_directory: str | os.PathLike,
    build: Callable[[dict[str, Any]], Soup],
    *,
    epoch: int | None = None,
) -> tuple[Soup, dict[str, Any]]:
    """Rebuild a soup from the run's config with ``build(config)`` and restore the checkpoint.

    Returns the restored soup and the config stored with the checkpoint.
    """
    tensors, meta = read_checkpoint(run_directory, epoch)
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint format {meta.get('format')!r} is not supported (expected {FORMAT_VERSION})"
        )
    config = meta.pop("config")
    soup = build(config)
    restore_soup_state(soup, tensors, meta)
    return soup, config
