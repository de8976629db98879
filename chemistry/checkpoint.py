"""Checkpoints: everything needed to continue a soup bit for bit, written atomically, loaded safely.

A checkpoint is one file ``checkpoints/epoch-XXXXXX.pt`` holding only tensors and a JSON string
(loaded with ``torch.load(weights_only=True)``, which never unpickles arbitrary objects), and a
line in ``checkpoints/index.json`` with its SHA-256. The file is written and renamed into place
before the index names it, so a crash at any moment leaves the previous checkpoint as the latest.

What is saved: the weight banks (weights, sticky divergence flags, owners, free-row order), the
node tables, every particle's birth, parents and node, the clocks (Mesa time, next unique id),
every random generator (numpy, Python ``random``, both torch generators), the genealogy events and
statuses, the collected data and the trajectories. Rules and architectures are not saved: the
soup is first rebuilt from the run's configuration, then its state is replaced. The history
(events, statuses, collected data, trajectories) is stored as an increment over the previous
checkpoint (:mod:`chemistry.increments`), so checkpoint bytes grow linearly with the epochs.

A checkpoint is self-describing: it records its format version, its epoch and the hash of its
run's configuration (:func:`config_hash`), and reading one checks all three against the index
and, given the run directory's configuration, against the run, before anything is restored.
Index entries may only name plain files ``epoch-NNNNNN.pt`` inside ``checkpoints/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from mesa.time import EventGenerator, Priority, Schedule

from chemistry.genealogy import Genealogy
from chemistry.increments import merge, records, split
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
    bank_index = {id(bank): index for index, bank in enumerate(soup.bank_list)}
    particles = [
        [p.unique_id, bank_index[id(p.bank)], p.row, p.birth, list(p.parents), p.node]
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


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of a run's configuration without ``epochs`` (how long a run goes is not what it
    is: ``resume --epochs N`` continues the same run), as hex of its canonical JSON."""
    identity = {key: value for key, value in config.items() if key != "epochs"}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


_FILE_NAME = re.compile(r"epoch-[0-9]{6,}(\.full)?\.pt")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _checked_entry(entry: Any, number: int, path: Path) -> dict[str, Any]:
    """An index entry after checking its fields: a damaged or crafted entry is a ValueError."""

    def damaged(problem: str) -> ValueError:
        return ValueError(
            f"checkpoint index {path} is damaged: entry #{number} {problem}; it cannot be used"
        )

    if not isinstance(entry, dict):
        raise damaged("is not a table")
    epoch, name, digest = entry.get("epoch"), entry.get("file"), entry.get("sha256")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise damaged(f"has no valid epoch (epoch = {epoch!r})")
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise damaged(
            f"names the file {name!r}; only plain names epoch-NNNNNN.pt inside "
            f"{path.parent} are allowed"
        )
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise damaged(f"has no valid sha256 (sha256 = {digest!r})")
    return entry


def _read_index(directory: Path) -> list[dict[str, Any]]:
    path = directory / INDEX_NAME
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["checkpoints"]
        if not isinstance(entries, list):
            raise TypeError("'checkpoints' is not a list")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"checkpoint index {path} is damaged ({error}); it cannot be read"
        ) from None
    except OSError as error:
        raise ValueError(f"checkpoint index {path} cannot be read ({error.strerror})") from None
    return [_checked_entry(entry, number, path) for number, entry in enumerate(entries, 1)]


def save_checkpoint(
    soup: Soup, run_directory: str | os.PathLike, config: dict[str, Any], *, keep: int = 0
) -> Path:
    """Write a checkpoint of ``soup`` with the run's ``config`` into ``checkpoints/``.

    The checkpoint is an increment over the latest earlier one (see :mod:`chemistry.increments`);
    checkpoints of this epoch or later (an abandoned continuation) leave the index. With
    ``keep`` > 0 only the newest ``keep`` checkpoints stay: the oldest of them is first folded
    into a full one, so nothing of the history is lost.
    """
    directory = Path(run_directory) / "checkpoints"
    entries = [e for e in _read_index(directory) if e["epoch"] < soup.epoch]
    tensors, meta = soup_state(soup)
    base = _increment_base(directory, entries[-1]) if entries else None
    split(tensors, meta, base)
    meta["config"] = config
    meta["config_hash"] = config_hash(config)
    path = _write_payload(directory / f"epoch-{soup.epoch:06d}.pt", tensors, meta)
    entries.append(_entry(soup.epoch, path, meta))
    if keep and len(entries) > keep:
        entries = _prune(directory, entries, keep)
    _write_index(directory, entries)
    return path


def _write_payload(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save({"tensors": tensors, "meta": json.dumps(meta)}, buffer)

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())

    return write_atomically(path, write)


def _entry(epoch: int, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    entry = {"epoch": epoch, "file": path.name, "sha256": file_sha256(path)}
    entry["config_hash"] = meta["config_hash"]
    if meta["base"] is not None:
        entry["base"] = meta["base"]["epoch"]
    return entry


def _write_index(directory: Path, entries: list[dict[str, Any]]) -> None:
    """Write the index, then remove checkpoint files it no longer names (this process holds the
    run directory's lock: no other writer's files are among them)."""
    write_text_atomically(
        directory / INDEX_NAME, json.dumps({"checkpoints": entries}, indent=1) + "\n"
    )
    named = {entry["file"] for entry in entries}
    for path in directory.iterdir():
        if _FILE_NAME.fullmatch(path.name) and path.name not in named:
            path.unlink(missing_ok=True)


def _increment_base(directory: Path, entry: dict[str, Any]) -> dict[str, Any] | None:
    """``{"epoch", "records"}`` of the checkpoint ``entry`` to continue, or None (write a full
    checkpoint) when it cannot be read."""
    try:
        _, meta = _load_payload(_plain_file(directory, entry))
        return {"epoch": entry["epoch"], "records": meta["records"]}
    except (ValueError, KeyError, TypeError, pickle.UnpicklingError):
        return None


def _prune(directory: Path, entries: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """The newest ``keep`` entries, the oldest of them folded into a full checkpoint."""
    kept = entries[-keep:]
    oldest = kept[0]
    if "base" in oldest:
        tensors, meta = merge(_chain(directory, entries, oldest, None))
        meta["records"] = records(tensors, meta)
        meta["base"] = None
        path = _write_payload(directory / f"epoch-{oldest['epoch']:06d}.full.pt", tensors, meta)
        kept[0] = _entry(oldest["epoch"], path, meta)
    return kept


def list_checkpoints(run_directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The checkpoints named by the index, oldest first: dicts with epoch, file, sha256."""
    return _read_index(Path(run_directory) / "checkpoints")


def read_checkpoint(
    run_directory: str | os.PathLike,
    epoch: int | None = None,
    *,
    run_config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and verify the latest checkpoint (or the one of ``epoch``): (tensors, metadata),
    its history assembled from the chain of increments it continues.

    Verified for every checkpoint of the chain: a plain file inside ``checkpoints/`` with the
    index's SHA-256; its format version, epoch and config hash match the index; its
    configuration is ``run_config`` (the run directory's, when given) up to ``epochs``; and each
    increment continues the one before it.

    Raises:
        ValueError: when there is no checkpoint, or it fails one of these checks (nothing is
            restored from it).
    """
    directory = Path(run_directory) / "checkpoints"
    entries = _read_index(directory)
    chosen = [e for e in entries if epoch is None or e["epoch"] == epoch]
    if not chosen:
        wanted = f" for epoch {epoch}" if epoch is not None else ""
        raise ValueError(f"no checkpoint{wanted} in {directory}")
    return merge(_chain(directory, entries, chosen[-1], run_config))


def _plain_file(directory: Path, entry: dict[str, Any]) -> Path:
    path = directory / entry["file"]
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"checkpoint {path} is not a plain file; it is not read")
    if not path.exists():
        raise ValueError(f"checkpoint {path} named in {directory / INDEX_NAME} is missing")
    return path


def _chain(
    directory: Path,
    entries: list[dict[str, Any]],
    entry: dict[str, Any],
    run_config: Mapping[str, Any] | None,
) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
    """The verified checkpoints from the last full one to ``entry``, oldest first."""
    chain = []
    needed_by = ""
    while True:
        path = _plain_file(directory, entry)
        if file_sha256(path) != entry["sha256"]:
            older = [e["epoch"] for e in entries if e["epoch"] < entry["epoch"]]
            raise ValueError(
                f"checkpoint {path}{needed_by} is corrupted (its SHA-256 does not match the "
                f"index); earlier checkpoints: epochs {older or 'none'}"
            )
        tensors, meta = _load_payload(path)
        _verify(meta, entry, path, run_config)
        chain.append((tensors, meta))
        base = meta.get("base")
        if base is None:
            return chain[::-1]
        found = [e for e in entries if e["epoch"] == base.get("epoch")]
        if not found or base["epoch"] >= entry["epoch"]:
            raise ValueError(
                f"checkpoint {path} continues the checkpoint of epoch {base.get('epoch')}, which "
                f"is not in {directory / INDEX_NAME}; resume from an earlier full checkpoint"
            )
        needed_by = f" (continued by the checkpoint of epoch {entry['epoch']})"
        entry = found[-1]


def _load_payload(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and metadata of a checkpoint file (never unpickling objects)."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"checkpoint {path} is refused: {error}") from None
    except Exception as error:  # a truncated zip: RuntimeError, OSError (Errno 22), EOFError...
        raise ValueError(
            f"checkpoint {path} is truncated or damaged ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    try:
        tensors, meta = payload["tensors"], json.loads(payload["meta"])
        if not isinstance(tensors, dict) or not isinstance(meta, dict):
            raise TypeError("not tables")
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"{path} is not a checkpoint of this program ({error})") from None
    return tensors, meta


def _verify(
    meta: dict[str, Any], entry: dict[str, Any], path: Path, run_config: Mapping[str, Any] | None
) -> None:
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format {meta.get('format')!r}; this version reads format "
            f"{FORMAT_VERSION} only"
        )
    if meta.get("epoch") != entry["epoch"]:
        raise ValueError(
            f"checkpoint {path} holds epoch {meta.get('epoch')!r} but the index names it as epoch "
            f"{entry['epoch']}; the index or the file was replaced"
        )
    config = meta.get("config")
    if not isinstance(config, dict) or meta.get("config_hash") != config_hash(config):
        raise ValueError(f"checkpoint {path} is damaged: its configuration does not match its hash")
    if entry.get("config_hash", meta["config_hash"]) != meta["config_hash"]:
        raise ValueError(
            f"checkpoint {path} is not the one the index names (its config hash differs)"
        )
    if run_config is not None and config_hash(run_config) != meta["config_hash"]:
        changed = sorted(
            key
            for key in set(config) | set(run_config)
            if key != "epochs" and config.get(key) != run_config.get(key)
        )
        raise ValueError(
            f"checkpoint {path} belongs to another run: its configuration differs from this run "
            f"directory's in {', '.join(changed)}; it was not used"
        )


def load_checkpoint(
    run_directory: str | os.PathLike,
    build: Callable[[dict[str, Any]], Soup],
    *,
    epoch: int | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> tuple[Soup, dict[str, Any]]:
    """Rebuild a soup from the run's config with ``build(config)`` and restore the checkpoint
    (verified as in :func:`read_checkpoint`).

    Returns the restored soup and the config stored with the checkpoint.
    """
    tensors, meta = read_checkpoint(run_directory, epoch, run_config=run_config)
    config = meta.pop("config")
    soup = build(config)
    restore_soup_state(soup, tensors, meta)
    return soup, config
