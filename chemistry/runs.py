"""Run directories: what a soup run writes, and reading it back for plots, lineages and info.

A run directory holds:

=========================================== ==================================================
``config.toml``                             the resolved configuration (feed it back to
                                            ``chemistry run``); ``config.json``: the same as JSON
``metrics.csv``                             one row per collected epoch
``trajectories.npz``                        every recorded state with its epoch and particle id
``genealogy.graphml``, ``genealogy.json``   the genealogy graph (GraphML, node-link JSON)
                                            (these three only up to ``record.whole_exports_up_to``
                                            particles: readers use ``events/``, ``trajectories/``)
``phylogeny.csv``                           the phylogeny, ALife Data Standard (chemistry.alife)
``events/``                                 the columnar event log, ``.npz`` chunks per table
``trajectories/``                           the float32 weight states, ``.npz`` chunks per arch
``checkpoints/``                            ``epoch-XXXXXX.pt`` and ``index.json`` (checksums)
``figures/``                                PCA trajectories, counts over epochs, lineage graph
                                            (above ``record.whole_exports_up_to`` particles:
                                            of the particles born on the first
                                            ``LINEAGE_SAMPLE_NODES`` topology nodes)
``manifest.json``                           written last: size and SHA-256 of every data file,
                                            so a truncated or damaged file is detected
=========================================== ==================================================

Every file is written atomically (a temporary file renamed into place), so a reader never sees a
half-written file and an interrupted run never damages the files of an earlier one.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from chemistry.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from chemistry.config import ConfigError, RunConfig, build_soup, load_config
from chemistry.config.soup import config_of, rule_table
from chemistry.event_log import EventLog
from chemistry.genealogy import Genealogy
from chemistry.lock import hold, release, unlocked_entries
from chemistry.plots import plot_counts, plot_lineage, plot_trajectories
from chemistry.soup import Soup
from chemistry.storage import (
    file_sha256,
    remove_stale_temporaries,
    write_atomically,
    write_text_atomically,
)
from chemistry.trajectories import Trajectories
from interactions.events import VERTICAL, EventKind
from particles.classification import Status

__all__ = [
    "DATA_FILES",
    "RunDirectory",
    "RunFileError",
    "claim_run",
    "describe_lineage",
    "draw_figures",
    "metrics_table",
    "prepare_directory",
    "resume_run",
    "run_soup",
    "save_soup",
    "write_config",
    "write_run",
]

CONFIG_NAME = "config.toml"
MANIFEST_NAME = "manifest.json"
#: Above ``record.whole_exports_up_to`` particles, ``figures/lineage.png`` draws the particles
#: born on this many topology nodes (the whole particle graph is not built).
LINEAGE_SAMPLE_NODES = 300
# Data files checked against the manifest (config.toml is meant to be read and edited by people).
DATA_FILES = (
    "metrics.csv",
    "trajectories.npz",
    "genealogy.graphml",
    "genealogy.json",
    "phylogeny.csv",
)
MARKERS = (CONFIG_NAME, "config.json", MANIFEST_NAME, "metrics.csv", "checkpoints")


class RunFileError(ValueError):
    """A run directory or one of its files is missing, truncated or damaged."""


# ----------------------------------------------------------------------------------------------
# Writing


def metrics_table(soup: Soup) -> tuple[list[str], list[list[float]]]:
    """The DataCollector's model variables as (columns, rows)."""
    variables = soup.datacollector.model_vars
    columns = list(variables)
    rows = [list(values) for values in zip(*(variables[c] for c in columns), strict=True)]
    return columns, rows


def write_config(config: RunConfig, directory: str | Path) -> dict[str, Path]:
    """Write ``config.toml`` (resolved, readable by ``chemistry run``) and ``config.json``."""
    directory = Path(directory)
    header = (
        "Resolved configuration of this run, every default filled in.\n"
        "Run it again with: chemistry run config.toml --out NEW_DIR"
    )
    return {
        "config": write_text_atomically(directory / CONFIG_NAME, config.to_toml(header=header)),
        "config_json": write_text_atomically(
            directory / "config.json", json.dumps(config.to_dict(), indent=2) + "\n"
        ),
    }


def write_run(soup: Soup, config: RunConfig, directory: str | Path) -> dict[str, Path]:
    """Write the configuration, metrics, trajectories, genealogy, figures and manifest of a soup.

    The manifest is written last: a run directory with a manifest is complete.
    """
    directory = Path(directory)
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    written = write_config(config, directory)
    columns, rows = metrics_table(soup)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    written["metrics"] = write_text_atomically(directory / "metrics.csv", buffer.getvalue())

    whole = 0 < config.record.whole_exports_up_to and len(soup) <= config.record.whole_exports_up_to
    if whole:
        written["trajectories"] = _write_trajectories(soup.trajectories, directory)
    else:
        soup.trajectories.attach(directory / "trajectories")  # a flush if streamed already
    genealogy = soup.genealogy
    written["phylogeny"] = genealogy.write_alife(directory / "phylogeny.csv")
    genealogy.attach(directory / "events")  # the columnar event log (a flush if streamed)
    if whole:
        written["genealogy_graphml"] = genealogy.to_graphml(directory / "genealogy.graphml")
        written["genealogy_json"] = genealogy.to_node_link_json(directory / "genealogy.json")
    else:
        for name in ("trajectories.npz", "genealogy.graphml", "genealogy.json"):
            (directory / name).unlink(missing_ok=True)  # never a stale one from an earlier end
    if config.record.figures:
        if whole:
            graph, title = genealogy.graph, "Genealogy"
        else:  # the whole particle graph of a big soup is too big to build and to draw
            graph = genealogy.sample_graph(genealogy.born_on(range(LINEAGE_SAMPLE_NODES)))
            title = (
                f"Genealogy of the particles born on topology nodes 0-"
                f"{LINEAGE_SAMPLE_NODES - 1} ({len(soup):,} particles in the soup)"
            )
        written |= draw_figures(
            directory,
            soup.datacollector.model_vars,
            soup.trajectories,
            graph,
            lineage_title=title,
        )
    written["manifest"] = _write_manifest(directory, soup.epoch, config.epochs)
    return written


def _write_trajectories(trajectories: Trajectories, directory: Path) -> Path:
    """``trajectories.npz``: every recorded state of every architecture, in one file."""
    arrays: dict[str, Any] = {}
    for name in trajectories.names:
        epochs, uids, weights = trajectories.arrays(name)
        arrays |= {f"{name}/epochs": epochs, f"{name}/uids": uids, f"{name}/weights": weights}

    def save_arrays(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    return write_atomically(directory / "trajectories.npz", save_arrays)


def save_soup(
    soup: Soup, directory: str | Path, *, overwrite: bool = False, figures: bool = True
) -> dict[str, Path]:
    """Write the run directory of a soup built in Python, as ``chemistry run`` writes one.

    The configuration is read off the soup (:func:`chemistry.config.soup.config_of`), with
    ``epochs`` = the soup's epoch, and a checkpoint of the current state is written, so
    ``chemistry info``, ``plot``, ``lineage`` read the directory and ``chemistry resume DIR
    --epochs N`` continues the soup bit for bit (a user rule's module must be importable there).

    Raises:
        ValueError: if a rule cannot be written as configuration (see ``config_of``).
        RunFileError: if ``directory`` holds files and ``overwrite`` is False.
    """
    directory = Path(directory)
    for rule in soup.rules:
        rule_table(rule)  # a rule that cannot be written fails before anything is touched
    clear = prepare_directory(directory, overwrite=overwrite)
    try:
        clear()  # locks the directory: one writer
        config = config_of(soup, directory, figures=figures)  # writes the topology file, if any
        save_checkpoint(soup, directory, config.to_dict())
        return write_run(soup, config, directory)
    finally:
        release(directory)


def draw_figures(
    directory: str | Path,
    columns: dict[str, list[float]],
    trajectories: Trajectories,
    graph: nx.MultiDiGraph,
    *,
    lineage_title: str = "Genealogy",
) -> dict[str, Path]:
    """Draw ``figures/counts.png``, ``figures/trajectories_<arch>.png`` and ``figures/lineage.png``.

    Figures without data (no collected metrics, no recorded weights) are skipped. ``graph``:
    the particle graph drawn in ``lineage.png`` (a sample of it for big soups).
    """
    figures = Path(directory) / "figures"
    written: dict[str, Path] = {}
    if columns.get("epoch"):
        written["counts_figure"] = plot_counts(columns, figures / "counts.png")
    final = {int(uid): status for uid, status in nx.get_node_attributes(graph, "status").items()}
    for name in trajectories.names:
        epochs, _, weights = trajectories.arrays(name)
        if len(epochs) and np.isfinite(weights).all(axis=1).any():
            written[f"trajectories_figure_{name}"] = plot_trajectories(
                trajectories.pca([name]),
                figures / f"trajectories_{name.replace('#', '-')}.png",
                final_status=final,
                title=f"{name} particle trajectories (joint PCA)",
            )
    written["lineage_figure"] = plot_lineage(graph, figures / "lineage.png", title=lineage_title)
    return written


def _write_manifest(directory: Path, epoch: int, epochs: int) -> Path:
    files = {
        name: {"bytes": (directory / name).stat().st_size, "sha256": file_sha256(directory / name)}
        for name in DATA_FILES
        if (directory / name).exists()
    }
    manifest = {"format": 1, "epoch": epoch, "epochs": epochs, "files": files}
    return write_text_atomically(directory / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------
# Running


def prepare_directory(directory: str | Path, *, overwrite: bool) -> Callable[[], None]:
    """Check that ``directory`` may receive a new run; returns the call that clears it.

    Nothing is deleted here: call the returned function once the new soup has been built. An
    existing run directory is locked here (a live run is never replaced); the returned call
    leaves the new, empty directory locked by this process (see :mod:`chemistry.lock`).

    Raises:
        RunFileError: if the directory holds files and ``overwrite`` is False, or it holds files
            but is not a run directory (never deleted, even with ``overwrite``), or it is a file.
        RunLockedError: if another live process writes the run directory.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunFileError(f"{directory} is a file, not a run directory; choose another --out")
    if not directory.exists() or not unlocked_entries(directory):

        def claim() -> None:
            hold(directory)

        return claim
    is_run = any((directory / marker).exists() for marker in MARKERS)
    if not is_run:
        raise RunFileError(
            f"{directory} is not empty and is not a run directory (it has no {CONFIG_NAME}); "
            "nothing was changed. Choose another --out: --overwrite only replaces run directories"
        )
    hold(directory)
    if not overwrite:
        release(directory)
        hint = ""
        if (directory / "checkpoints").exists() and not (directory / MANIFEST_NAME).exists():
            hint = f", continue it with `chemistry resume {directory}`"
        raise RunFileError(
            f"run directory {directory} already exists; nothing was changed. Pass --overwrite "
            f"to replace it{hint}, or choose another --out"
        )
    cwd = Path.cwd().resolve()
    if directory.resolve() == cwd or directory.resolve() in cwd.parents:
        release(directory)
        raise RunFileError(f"{directory} contains the current directory; refusing to replace it")

    def clear() -> None:
        # Move it aside in one rename, then delete: the run directory is never half deleted.
        # The old lock moves with it and is held until the new directory is locked.
        parked = Path(tempfile.mkdtemp(prefix=f".{directory.name}.replaced-", dir=directory.parent))
        directory.replace(parked / directory.name)
        hold(directory)
        shutil.rmtree(parked)

    return clear


def run_soup(
    soup: Soup,
    config: RunConfig,
    directory: str | Path,
    *,
    on_epoch: Callable[[Soup], None] | None = None,
) -> bool:
    """Step ``soup`` to ``config.epochs``, writing checkpoints into ``directory`` as configured.

    A checkpoint is written every ``record.checkpoint_every`` epochs (epoch 0 included) and at
    the end. Returns True when checkpoints were written (False if they are off).
    """
    every = config.record.checkpoint_every
    resolved = config.to_dict()
    saved_at = None

    def save() -> None:
        nonlocal saved_at
        if every and saved_at != soup.epoch:
            save_checkpoint(soup, directory, resolved, keep=config.record.checkpoint_keep)
            saved_at = soup.epoch

    # Stream the event log and the trajectories in chunks: bounded memory however long the run.
    soup.genealogy_record.attach(Path(directory) / "events")
    soup.trajectories.attach(Path(directory) / "trajectories")
    if soup.epoch == 0:
        save()
    while soup.epoch < config.epochs:
        soup.step()
        if on_epoch is not None:
            on_epoch(soup)
        if every and soup.epoch % every == 0:
            save()
    save()
    return bool(every)


def claim_run(directory: str | Path) -> list[Path]:
    """Lock an existing run directory for this process (see :mod:`chemistry.lock`) and remove
    the temporary files that killed writers left behind; returns the removed files.

    Raises:
        RunFileError: if the directory does not exist.
        RunLockedError: if another live process writes it.
    """
    directory = Path(directory)
    _require_directory(directory)
    hold(directory)
    return remove_stale_temporaries(directory)


def resume_run(
    directory: str | Path, *, epoch: int | None = None, epochs: int | None = None
) -> tuple[Soup, RunConfig]:
    """The soup of the latest valid checkpoint of a run directory (or of ``epoch``), rebuilt
    from the configuration stored with it, after checking that the checkpoint belongs to this
    run and that ``config.toml`` was not edited (``epochs``: the run's new length, if changed).

    Raises:
        RunFileError: if the directory or its checkpoints are missing, a checkpoint is damaged
            (the message names the earlier checkpoints) or foreign, or the config was edited.
    """
    directory = Path(directory)
    _require_directory(directory)
    try:
        recorded = _recorded_config(directory)
        _check_unedited(directory, recorded, epochs)
        soup, stored = load_checkpoint(directory, build_soup, epoch=epoch, run_config=recorded)
    except RunFileError:
        raise
    except ConfigError as error:
        if str(error).startswith("plugins:"):
            raise RunFileError(
                f"cannot resume {directory}: its rules come from a plugin that cannot be "
                f"imported here: {error}"
            ) from None
        raise RunFileError(
            f"the configuration stored in the checkpoint is invalid: {error}"
        ) from None
    except ValueError as error:
        raise RunFileError(f"cannot resume {directory}: {error}") from None
    except Exception as error:  # a damaged checkpoint file can raise anything while unpacking
        raise RunFileError(
            f"cannot resume {directory}: the checkpoint cannot be read ({type(error).__name__}: "
            f"{error})"
        ) from None
    return soup, RunConfig.from_dict(stored)


def _recorded_config(directory: Path) -> dict[str, Any]:
    """The configuration the run started with (``config.json``, written by the program)."""
    path = directory / "config.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, ValueError) as error:
        problem = f"is damaged ({error})"
    else:
        return RunConfig.from_dict(recorded).to_dict()
    raise RunFileError(
        f"cannot resume {directory}: config.json {problem}; it records the configuration the run "
        "started with, which its checkpoints are checked against"
    )


def _check_unedited(directory: Path, recorded: dict[str, Any], epochs: int | None) -> None:
    """Refuse a ``config.toml`` that differs from the recorded configuration (beyond
    ``epochs`` when the run is given a new length)."""
    path = directory / CONFIG_NAME
    if not path.exists():
        return  # the resumed run writes it again
    new_run = (
        f"to run the edited configuration start a new run: `chemistry run {path} --out NEW_DIR`"
    )
    try:
        edited = load_config(path).to_dict()
    except ConfigError as error:
        raise RunFileError(
            f"{path} was edited since the run started and is no longer valid ({error}); nothing "
            f"was changed. Undo the edit to continue the run, or fix it and {new_run}"
        ) from None
    changed = sorted(key for key in recorded if edited.get(key) != recorded[key])
    if not changed or (changed == ["epochs"] and epochs is not None):
        return
    if changed == ["epochs"]:
        raise RunFileError(
            f"{path} was edited since the run started (epochs {recorded['epochs']} → "
            f"{edited['epochs']}); nothing was changed. A run continues with the configuration it "
            f"started with: to run it to epoch {edited['epochs']} use "
            f"`chemistry resume {directory} --epochs {edited['epochs']}`, or {new_run}"
        )
    raise RunFileError(
        f"{path} was edited since the run started (it differs in: {', '.join(changed)}); nothing "
        f"was changed. A resumed run continues with the configuration it started with: undo the "
        f"edit to continue it (`chemistry resume {directory} --epochs N` changes only its "
        f"length), or {new_run}"
    )


# ----------------------------------------------------------------------------------------------
# Reading


def _require_directory(directory: Path) -> None:
    if not directory.exists():
        raise RunFileError(f"run directory {directory} does not exist")
    if not directory.is_dir():
        raise RunFileError(f"{directory} is not a directory")


def _number(text: str) -> int | float:
    """An int for a whole-number literal ("20"; counts), else a float ("0.5", "nan", "20.0")."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class RunDirectory:
    """Read the files of a run directory, with clear errors for missing or damaged files.

    Every data file named in ``manifest.json`` is checked against its size and SHA-256 before it
    is read; without a manifest (a run that has not finished) files are checked by parsing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _require_directory(self.path)
        self._manifest: dict[str, Any] | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def _missing(self, name: str) -> RunFileError:
        hint = ""
        if (self.path / "checkpoints").exists() and not (self.path / MANIFEST_NAME).exists():
            hint = f"; the run has not finished: continue it with `chemistry resume {self.path}`"
        elif not any((self.path / marker).exists() for marker in MARKERS):
            hint = "; is this a run directory?"
        return RunFileError(f"{name} is missing in run directory {self.path}{hint}")

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest of a finished run, or None if the run has not finished."""
        if self._manifest is None and (self.path / MANIFEST_NAME).exists():
            try:
                manifest = json.loads((self.path / MANIFEST_NAME).read_text(encoding="utf-8"))
                if not isinstance(manifest.get("files"), dict):
                    raise ValueError("no 'files' table")
            except (ValueError, AttributeError, UnicodeDecodeError) as error:
                raise RunFileError(
                    f"{MANIFEST_NAME} in {self.path} is truncated or damaged ({error})"
                ) from None
            self._manifest = manifest
        return self._manifest

    def verify(self, name: str) -> Path:
        """The path of data file ``name`` after checking it exists and matches the manifest."""
        path = self.path / name
        if not path.is_file():
            raise self._missing(name)
        entry = (self.manifest or {}).get("files", {}).get(name)
        if entry is not None:
            size = path.stat().st_size
            if size != entry.get("bytes") or file_sha256(path) != entry.get("sha256"):
                state = "truncated" if size < entry.get("bytes", 0) else "damaged"
                raise RunFileError(
                    f"{name} in {self.path} is {state}: its size or SHA-256 does not match "
                    f"{MANIFEST_NAME} ({size} bytes, expected {entry.get('bytes')}). Re-create it "
                    f"with `chemistry resume {self.path}` if the run has checkpoints, or re-run"
                )
        return path

    def _streamed_instead(self, name: str, folder: str) -> bool:
        """True for a finished run that wrote no file ``name`` (see ``record.whole_exports_up_to``)
        but has the streamed table ``folder``; a file the manifest lists is never skipped."""
        return (
            not (self.path / name).exists()
            and self.manifest is not None
            and name not in self.manifest.get("files", {})
            and (self.path / folder).is_dir()
        )

    def config(self) -> RunConfig:
        """The run's resolved configuration (``config.toml``)."""
        path = self.path / CONFIG_NAME
        if not path.is_file():
            raise self._missing(CONFIG_NAME)
        try:
            return load_config(path)
        except ConfigError as error:
            raise RunFileError(str(error)) from None

    def metrics(self) -> dict[str, list[int | float]]:
        """The metrics table as {column: values}, checked to be complete (counts as ints)."""
        path = self.verify("metrics.csv")
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                rows = list(csv.reader(handle))
        except (UnicodeDecodeError, csv.Error) as error:
            raise RunFileError(f"metrics.csv in {self.path} is damaged ({error})") from None
        if not rows or not rows[0]:
            raise RunFileError(f"metrics.csv in {self.path} is empty (truncated?)")
        header = rows[0]
        required = ["epoch"] + [status.name.lower() for status in Status]
        missing = [name for name in required if name not in header]
        if missing:
            raise RunFileError(
                f"metrics.csv in {self.path} has no column {missing[0]!r} (truncated or damaged "
                f"header: {','.join(header)[:80]})"
            )
        columns: dict[str, list[int | float]] = {name: [] for name in header}
        for number, row in enumerate(rows[1:], 2):
            if len(row) != len(header):
                raise RunFileError(
                    f"metrics.csv in {self.path} is truncated or damaged: line {number} has "
                    f"{len(row)} values, the header has {len(header)}"
                )
            try:
                values = [_number(value) for value in row]
            except ValueError:
                raise RunFileError(
                    f"metrics.csv in {self.path} is damaged: line {number} holds a value that "
                    "is not a number"
                ) from None
            for name, value in zip(header, values, strict=True):
                columns[name].append(value)
        epochs = columns["epoch"]
        if any(b <= a for a, b in pairwise(epochs)):
            raise RunFileError(f"metrics.csv in {self.path} is damaged: epochs are not increasing")
        return columns

    def trajectories(self) -> Trajectories:
        """The recorded weight trajectories, per architecture (from ``trajectories.npz``, or the
        streamed ``trajectories/`` tables where a large run wrote no such file)."""
        if self._streamed_instead("trajectories.npz", "trajectories"):
            try:
                return Trajectories.open(self.path / "trajectories")
            except ValueError as error:
                raise RunFileError(f"trajectories/ in {self.path} is damaged ({error})") from None
        path = self.verify("trajectories.npz")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except Exception as error:  # a damaged zip can raise BadZipFile, EOFError, ValueError...
            raise RunFileError(
                f"trajectories.npz in {self.path} is truncated or damaged "
                f"({type(error).__name__}: {error})"
            ) from None
        names = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in arrays))
        sizes = {}
        for name in names:
            parts = [arrays.get(f"{name}/{part}") for part in ("epochs", "uids", "weights")]
            if (
                any(part is None for part in parts)
                or parts[2].ndim != 2
                or not (len(parts[0]) == len(parts[1]) == len(parts[2]))
            ):
                raise RunFileError(
                    f"trajectories.npz in {self.path} is damaged: the arrays of {name!r} are "
                    "missing or of different lengths"
                )
            sizes[name] = parts[2].shape[1]
        trajectories = Trajectories(sizes)
        for name in names:
            epochs, uids, weights = (arrays[f"{name}/{p}"] for p in ("epochs", "uids", "weights"))
            for epoch in np.unique(epochs):
                mask = epochs == epoch
                trajectories.record(
                    name, int(epoch), torch.from_numpy(uids[mask]), torch.from_numpy(weights[mask])
                )
        return trajectories

    def genealogy(self) -> Genealogy:
        """The genealogy (from ``genealogy.json``, or the streamed ``events/`` log where a large
        run wrote no such file: then ``status_epoch`` is when the class last changed)."""
        events = self.path / "events"
        if self._streamed_instead("genealogy.json", "events/events"):
            try:
                return Genealogy.from_log(EventLog.open(events))
            except ValueError as error:
                raise RunFileError(f"events/ in {self.path} is damaged ({error})") from None
        path = self.verify("genealogy.json")
        try:
            genealogy = Genealogy.from_node_link_json(path)
            if (self.path / "events" / "events" / "index.json").is_file():
                # The streamed columnar log keeps the record calls (steps) the version DAG needs.
                log = EventLog.open(self.path / "events")
                if len(log) == len(genealogy):
                    genealogy.use_log(log)
            return genealogy
        except Exception as error:  # json / networkx / our own checks
            raise RunFileError(
                f"genealogy.json in {self.path} is truncated or damaged "
                f"({type(error).__name__}: {error})"
            ) from None

    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoint entries (epoch, file, sha256) with ``state``: "ok", "missing", "corrupted"."""
        if not (self.path / "checkpoints").exists():
            return []
        try:
            entries = list_checkpoints(self.path)
        except ValueError as error:
            raise RunFileError(str(error)) from None
        result = []
        for entry in entries:
            path = self.path / "checkpoints" / str(entry.get("file"))
            if not path.is_file():
                state = "missing"
            elif file_sha256(path) != entry.get("sha256"):
                state = "corrupted"
            else:
                state = "ok"
            result.append({**entry, "state": state})
        return result

    def files(self) -> list[tuple[str, int]]:
        """(relative path, size in bytes) of every file, sorted; hidden temporary files skipped."""
        return sorted(
            (str(p.relative_to(self.path)), p.stat().st_size)
            for p in self.path.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
        )


# ----------------------------------------------------------------------------------------------
# Lineages


def default_particle(genealogy: Genealogy) -> tuple[int, str]:
    """The particle ``chemistry lineage`` shows by default, and why it was chosen.

    The root of the most successful lineage: the particle without clone / melt parents with the
    most self-replicators among itself and its clone / melt descendants; when no lineage has
    more than one (no reproduction took place, as in attack-only soups), attacks and learning
    are followed too. Without any self-replicator: the particle with the most interactions.
    """
    vertical = genealogy.most_successful_lineages(1)
    if vertical and vertical[0][1] > 1:
        uid, count = vertical[0]
        return uid, (
            f"root of the most successful lineage: {count} self-replicators among it and its "
            "clone / melt descendants"
        )
    horizontal = genealogy.most_successful_lineages(1, include_horizontal=True)
    if horizontal:
        uid, count = horizontal[0]
        return uid, (
            f"root of the most successful lineage: {count} self-replicators among it and the "
            "particles it shaped by attacks, learning, cloning or melting"
        )
    graph = genealogy.graph
    if graph.number_of_nodes() == 0:
        raise RunFileError("the genealogy is empty: it holds no particle")
    uid = max(graph.nodes, key=lambda node: (graph.degree(node), -node))
    return uid, "the particle with the most interactions (this run has no self-replicator)"


def _listing(items: list[Any], limit: int) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    if len(items) > limit:
        shown += f", … ({len(items) - limit} more)"
    return shown or "none"


def describe_lineage(genealogy: Genealogy, uid: int, *, limit: int = 12) -> str:
    """A readable summary of particle ``uid``: birth and death, parents, children, attackers,
    the attack chain and the self-replicators among its descendants.

    Raises:
        ValueError: if ``uid`` is not a particle of the genealogy.
    """
    graph = genealogy.graph
    if uid not in graph:
        uids = sorted(graph.nodes)
        span = f"{uids[0]}..{uids[-1]}" if uids else "none"
        raise RunFileError(f"particle {uid} is not in this run's genealogy (particle ids: {span})")
    node = graph.nodes[uid]
    lines = []
    where = f" on node {node['node']}" if "node" in node else ""
    architecture = f" ({node['architecture']})" if "architecture" in node else ""
    born = f"born at epoch {node['birth']}{where}" if "birth" in node else "birth not recorded"
    fate = f"died at epoch {node['death']}" if "death" in node else "alive at the end"
    status = node.get("status", "unknown")
    status_epoch = f" at epoch {node['status_epoch']}" if "status_epoch" in node else ""
    lines.append(f"particle {uid}{architecture}: {born}, {fate}; last class {status}{status_epoch}")

    def edges(direction: str, kinds: set[str]) -> list[tuple[int, int, dict]]:
        found = (
            graph.in_edges(uid, data=True) if direction == "in" else graph.out_edges(uid, data=True)
        )
        chosen = [
            (u if direction == "in" else v, data["epoch"], data)
            for u, v, data in found
            if data["kind"] in kinds
        ]
        return sorted(chosen, key=lambda item: (item[1], item[2]["event"]))

    parents = edges("in", {k.value for k in VERTICAL})
    respawned = edges("in", {EventKind.RESPAWN.value})
    if parents:
        lines.append(
            "parents: " + _listing([f"{p} ({d['kind']}, epoch {e})" for p, e, d in parents], limit)
        )
    elif respawned:
        lines.append(
            f"parents: none (respawned in place of {respawned[0][0]} at epoch {respawned[0][1]})"
        )
    else:
        lines.append("parents: none (an initial particle)")
    children = edges("out", {k.value for k in VERTICAL})
    lines.append(
        f"children ({len(children)}): "
        + _listing([f"{c} ({d['kind']}, epoch {e})" for c, e, d in children], limit)
    )
    replaced_by = edges("out", {EventKind.RESPAWN.value})
    if replaced_by:
        lines.append(f"replaced by {replaced_by[0][0]} (respawn) at epoch {replaced_by[0][1]}")
    attackers = edges("in", {EventKind.ATTACK.value})
    effective = [a for a in attackers if not a[2].get("overwritten")]
    lines.append(
        f"attacked by ({len(attackers)}, {len(effective)} effective): "
        + _listing([f"{a} (epoch {e})" for a, e, _ in effective], limit)
    )
    victims = edges("out", {EventKind.ATTACK.value})
    lines.append(
        f"attacked ({len(victims)}): "
        + _listing([f"{v} (epoch {e})" for v, e, _ in victims], limit)
    )
    teachers = edges("in", {EventKind.LEARN.value})
    learners = edges("out", {EventKind.LEARN.value})
    if teachers or learners:
        lines.append(
            f"learned from ({len(teachers)}): "
            + _listing([f"{t} (epoch {e})" for t, e, _ in teachers], limit)
        )
        lines.append(
            f"taught ({len(learners)}): "
            + _listing([f"{t} (epoch {e})" for t, e, _ in learners], limit)
        )
    chain = genealogy.attack_chain(uid)
    if chain:
        steps = [str(uid)] + [f"{event.actor} (epoch {event.epoch})" for event in chain]
        lines.append(
            f"attack chain (newest first, {len(chain)} attacks): " + " ← ".join(steps[: limit + 1])
        )
        if len(steps) > limit + 1:
            lines[-1] += f" ← … ({len(steps) - limit - 1} more)"
    else:
        lines.append("attack chain: none (never attacked effectively)")
    fixpoint = Status.FIXPOINT.name
    by_descent = sorted(
        d for d in genealogy.descendants(uid, VERTICAL) if graph.nodes[d].get("status") == fixpoint
    )
    by_any = sorted(
        d
        for d in genealogy.descendants(
            uid, [EventKind.CLONE, EventKind.MELT, EventKind.ATTACK, EventKind.LEARN]
        )
        if graph.nodes[d].get("status") == fixpoint
    )
    lines.append(
        f"self-replicating descendants by descent (clone, melt): {len(by_descent)}: "
        + _listing(by_descent, limit)
    )
    lines.append(
        f"self-replicating descendants through any inheritance (also attack, learn): "
        f"{len(by_any)}: " + _listing(by_any, limit)
    )
    return "\n".join(lines)


def format_bytes(size: int) -> str:
    """``size`` in B, kB or MB."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def final_counts(columns: dict[str, list[float]]) -> dict[str, float]:
    """The last row of a metrics table (empty if no epoch was collected)."""
    if not columns.get("epoch"):
        return {}
    return {name: values[-1] for name, values in columns.items()}
