"""Parameter sweeps: one base configuration, a grid (or list) of overrides, several seeds.

A sweep file is TOML, strictly validated like a run configuration (:mod:`chemistry.config`)::

    description = "non-zero fixpoints against self-training steps"
    base = "soup.toml"          # a run configuration file, relative to this file,
                                # or an inline [base] table with the run configuration schema
    seeds = 3                   # 3 means seeds 0, 1, 2; or a list: [0, 7, 42]
                                # (default: the base's seed)

    [grid]                      # the cartesian product of these values
    "rules.self_train.steps" = [0, 10, 20]
    "population.0.count" = [10, 20]

    [[points]]                  # and/or explicit points: each table is one set of overrides
    "topology.kind" = "ring"    # (with a grid as well, every point is crossed with the grid)

    [summary]
    metric = "fixpoint"         # a column of metrics.csv
    reduce = "final"            # final | mean | max | min over the collected epochs
    parameter = "rules.self_train.steps"   # x axis (default: the first swept key)

Override keys are dotted paths into the run configuration (``epochs``, ``rules.self_train.steps``,
``rules.1.chance``, ``population.ww.width``, ``topology.kind``, ...; every path is listed in
:mod:`chemistry.config.overrides`, which ``chemistry run --set`` shares). ``seed`` is not an
override: it comes from ``seeds``. A rule's keys are its constructor's arguments.

Paths into ``[[population]]`` and ``[[rules]]`` address the base's tables, or the default soup's
when the base has none. Overrides are applied to the base as written (not to its resolved form),
so derived defaults follow: a topology without explicit ``nodes`` follows a new population count,
a rule without ``lr`` follows a new ``preset``.

Each point (overrides + seed) is a normal run directory ``OUT/points/<point id>/``, written by
:mod:`chemistry.runs` exactly as ``chemistry run`` writes it. The point id is readable and stable:
the overrides, a hash of them and the seed (``rules.self_train.steps=10-1a2b3c4d-seed0``). A point
whose ``manifest.json`` is complete and whose data files match it is done and never run again; a
point with checkpoints continues from its latest one (bit for bit as an uninterrupted run); any
other point is run from the start. A point that fails writes ``failed.json`` (its error and
traceback) in its directory and never stops the others. The sweep then writes
``OUT/results.csv`` (one row per point and seed: id, seed, status, overrides, final metrics,
error) and ``OUT/summary.png`` (the summary metric against the parameter, mean ± standard
deviation over seeds, one line per combination of the other swept keys when there are few).

Backends: ``local`` runs points in a process pool (one torch thread per worker); ``ray`` runs the
same point function as Ray tasks, on a local Ray instance or an existing cluster. Both give the
same numbers for the same seeds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chemistry.config import ConfigError, Key, RunConfig, closest, read_config_file
from chemistry.config import toml_value as _toml_value
from chemistry.config import type_name as _type_name
from chemistry.config.overrides import apply_settings, check_path
from chemistry.config.schema import _check, _check_keys, _read
from chemistry.lock import hold, release, unlocked_entries
from chemistry.runs import (
    DATA_FILES,
    MANIFEST_NAME,
    RunDirectory,
    RunFileError,
    final_counts,
    resume_run,
    run_soup,
    write_config,
    write_run,
)
from chemistry.storage import write_text_atomically
from chemistry.threads import DEFAULT_THREADS, torch_threads

__all__ = [
    "BACKENDS",
    "REDUCERS",
    "SWEEP_KEYS",
    "Point",
    "SweepConfig",
    "SweepError",
    "SweepReport",
    "apply_point",
    "load_sweep",
    "plot_summary",
    "point_id",
    "run_point",
    "run_sweep",
    "write_results",
]

BACKENDS = ("local", "ray")
REDUCERS = ("final", "mean", "max", "min")
SWEEP_KEYS = ("description", "base", "seeds", "grid", "points", "summary")
SUMMARY: tuple[Key, ...] = (
    Key("metric", "str", "fixpoint", doc="a column of metrics.csv"),
    Key("reduce", "choice", "final", choices=REDUCERS, doc="how epochs reduce to one number"),
    Key("parameter", "str", "", doc="the swept key on the x axis (default: the first one)"),
)
SWEEP_NAME = "sweep.json"
RESULTS_NAME = "results.csv"
SUMMARY_NAME = "summary.png"
FAILED_NAME = "failed.json"
POINTS_DIR = "points"
# Lines of the summary figure: one per combination of the other swept keys up to this many.
MAX_LINES = 8
# A local pool whose worker died is restarted for the points it had not finished, this often.
POOL_RESTARTS = 2


class SweepError(ValueError):
    """A sweep that cannot run (bad sweep file, output folder, backend); the message says why."""


# ----------------------------------------------------------------------------------------------
# Override paths


def _check_path(path: Any, where: str, base: Mapping[str, Any]) -> list[str]:
    return _wrap(check_path, path, where, base)


def apply_point(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw configuration ``base`` with the ``overrides`` (path → value) applied.

    Raises:
        SweepError: if a path does not address a table of ``base``.
    """
    return _wrap(apply_settings, base, overrides)


def _plain(value: Any) -> str:
    """A value as text for ids, tables and labels."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return _toml_value(value)


def point_id(overrides: Mapping[str, Any], seed: int) -> str:
    """The stable directory name of a point: readable overrides, their hash and the seed.

    The same overrides (in any order) and seed always give the same id.
    """
    canonical = json.dumps(dict(overrides), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:8]
    slug = "_".join(f"{path}={_plain(overrides[path])}" for path in sorted(overrides)) or "base"
    slug = re.sub(r"[^A-Za-z0-9.=_+-]+", "-", slug)[:64].strip("-._") or "point"
    return f"{slug}-{digest}-seed{seed}"


# ----------------------------------------------------------------------------------------------
# The sweep file


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its overrides, seed, id and resolved configuration (or its error)."""

    index: int
    overrides: dict[str, Any]
    seed: int
    id: str
    config: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep (build it with :func:`load_sweep` or :meth:`from_dict`)."""

    base: dict[str, Any]
    base_dir: Path
    base_source: str
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ()
    metric: str = "fixpoint"
    reduce: str = "final"
    parameter: str = ""
    description: str = ""

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | Path = ".", source: str = ""
    ) -> SweepConfig:
        """Validate a sweep (as read from TOML).

        Args:
            data: the sweep's tables.
            base_dir: folder that a ``base`` file name (and the base's own relative paths) are
                relative to.
            source: the sweep file's name, for messages.

        Raises:
            SweepError: (a ValueError) naming the first unknown key, wrong type or bad value.
        """
        base_dir = Path(base_dir)
        data = _wrap(_check_keys, data, list(SWEEP_KEYS), "at the top level of the sweep")
        description = _wrap(_check, Key("description", "str"), data.get("description", ""), "sweep")
        base_value = data.get("base", {})
        if isinstance(base_value, str):
            path = Path(base_value).expanduser()
            path = path if path.is_absolute() else base_dir / path
            try:
                base = read_config_file(path)
            except ConfigError as error:
                raise SweepError(f"base = {_toml_value(base_value)}: {error}") from None
            base_source, config_dir = str(path), path.parent
        elif isinstance(base_value, dict):
            base, base_source, config_dir = base_value, "[base]", base_dir
        else:
            raise SweepError(
                f"base = {_toml_value(base_value)} is {_type_name(base_value)}; it must be a "
                "run configuration file name (a string) or a [base] table"
            )
        try:
            resolved = RunConfig.from_dict(base, base=config_dir)
        except ConfigError as error:
            raise SweepError(
                f"the base configuration ({base_source}) is invalid: {error}"
            ) from None

        seeds_value = data.get("seeds", resolved.seed)
        seeds = _seeds(seeds_value) if "seeds" in data else (resolved.seed,)

        grid_table = data.get("grid", {})
        if not isinstance(grid_table, dict):
            raise SweepError(
                f"grid = {_toml_value(grid_table)} is {_type_name(grid_table)}; it must be a "
                '[grid] table of key paths and arrays of values, e.g. "rules.1.steps" = [0, 10]'
            )
        grid: dict[str, list[Any]] = {}
        for path, values in grid_table.items():
            _check_path(path, "[grid]", base)
            where = f"[grid]: key {_toml_value(path)}"
            if not isinstance(values, list) or not values:
                raise SweepError(
                    f"{where} = {_toml_value(values)} is {_type_name(values)}"
                    f"{' (empty)' if values == [] else ''}; it must be a non-empty array of the "
                    "values to sweep, e.g. [0, 10, 20] (one value: [10]; for points use [[points]])"
                )
            canonical = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(canonical)) != len(canonical):
                raise SweepError(f"{where} = {_toml_value(values)} repeats a value")
            grid[path] = list(values)

        points_value = data.get("points", [])
        if isinstance(points_value, dict) or not isinstance(points_value, list):
            raise SweepError(
                f"points = {_toml_value(points_value)} is {_type_name(points_value)}; write each "
                "point under its own [[points]] header (an array of tables of overrides)"
            )
        points: list[dict[str, Any]] = []
        for number, table in enumerate(points_value, 1):
            where = f"[[points]] #{number}"
            if not isinstance(table, dict):
                raise SweepError(
                    f"{where} must be a table of overrides, got {_type_name(table)} "
                    f"{_toml_value(table)}"
                )
            for path in table:
                _check_path(path, where, base)
                if path in grid:
                    raise SweepError(
                        f"{where}: key {_toml_value(path)} is also in [grid]; sweep a key in "
                        "one place only"
                    )
            points.append(dict(table))
        canonical_points = [json.dumps(p, sort_keys=True) for p in points]
        if len(set(canonical_points)) != len(canonical_points):
            raise SweepError("[[points]]: two points have the same overrides")

        summary = _wrap(
            _check_keys, data.get("summary", {}), [k.name for k in SUMMARY], "[summary]"
        )
        summary = _wrap(_read, summary, SUMMARY, "[summary]", {})
        swept = _swept(grid, points)
        parameter = summary["parameter"]
        if parameter and parameter not in swept:
            suggestion = closest(parameter, swept)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise SweepError(
                f"[summary]: parameter = {_toml_value(parameter)} is not a swept key{hint}; it "
                f"must be one of the keys of [grid] or [[points]]: {', '.join(swept) or 'none'}"
            )
        _check_metric(summary["metric"])
        del source  # messages carry the file name through load_sweep
        return cls(
            base=base,
            base_dir=config_dir,
            base_source=base_source,
            seeds=seeds,
            grid=grid,
            points=tuple(points),
            metric=summary["metric"],
            reduce=summary["reduce"],
            parameter=parameter or (swept[0] if swept else ""),
            description=description,
        )

    @property
    def swept(self) -> list[str]:
        """The swept keys: those of ``[grid]``, then those of ``[[points]]``, in order."""
        return _swept(self.grid, list(self.points))

    def combinations(self) -> list[dict[str, Any]]:
        """Every set of overrides: each explicit point crossed with the grid."""
        grid = [
            dict(zip(self.grid, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]
        return [{**point, **cell} for point in (list(self.points) or [{}]) for cell in grid]

    def expand(self) -> list[Point]:
        """Every point (overrides × seeds, in that order) with its resolved configuration.

        A point whose configuration is invalid carries its error instead; it does not stop the
        sweep.
        """
        expanded = []
        for overrides in self.combinations():
            for seed in self.seeds:
                identifier = point_id(overrides, seed)
                try:
                    raw = apply_point(self.base, overrides)
                    raw["seed"] = seed
                    config = RunConfig.from_dict(raw, base=self.base_dir).to_dict()
                except ValueError as error:
                    expanded.append(
                        Point(len(expanded), overrides, seed, identifier, error=f"{error}")
                    )
                    continue
                config = json.loads(json.dumps(config))
                expanded.append(Point(len(expanded), overrides, seed, identifier, config))
        return expanded

    def to_dict(self) -> dict[str, Any]:
        """The sweep with its base resolved (written to ``OUT/sweep.json``)."""
        return {
            "description": self.description,
            "base_source": self.base_source,
            "base": RunConfig.from_dict(self.base, base=self.base_dir).to_dict(),
            "seeds": list(self.seeds),
            "grid": self.grid,
            "points": list(self.points),
            "summary": {"metric": self.metric, "reduce": self.reduce, "parameter": self.parameter},
        }


def _wrap(function: Callable, *args: Any) -> Any:
    """Call a checker of :mod:`chemistry.config`, raising its ConfigError as a SweepError."""
    try:
        return function(*args)
    except SweepError:
        raise
    except ConfigError as error:
        raise SweepError(str(error)) from None


def _seeds(value: Any) -> tuple[int, ...]:
    allowed = "an integer >= 1 (that many seeds: 0, 1, ...) or an array of distinct integers >= 0"
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SweepError(f"seeds = {value} is out of range; it must be {allowed}")
        return tuple(range(value))
    if isinstance(value, list) and value:
        for seed in value:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise SweepError(
                    f"seeds = {_toml_value(value)} holds {_toml_value(seed)}; it must be {allowed}"
                )
        if len(set(value)) != len(value):
            raise SweepError(f"seeds = {_toml_value(value)} repeats a seed; it must be {allowed}")
        return tuple(value)
    raise SweepError(
        f"seeds = {_toml_value(value)} is {_type_name(value)}"
        f"{' (empty)' if value == [] else ''}; it must be {allowed}"
    )


def _swept(grid: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> list[str]:
    names = dict.fromkeys(grid)
    for point in points:
        names |= dict.fromkeys(point)
    return list(names)


def _check_metric(metric: str) -> None:
    from particles.classification import Status

    statuses = [s.name.lower() for s in Status]
    from interactions.events import EventKind

    known = (
        ["epoch", "particles", *statuses]
        + ["fixpoint_error_median", "fixpoint_error_mean", "fixpoint_error_min"]
        + [f"events_{kind.value}" for kind in EventKind]
    )
    per_architecture = re.fullmatch(r"([a-z_]+)\[.+\]", metric)
    if metric in known or (per_architecture and per_architecture.group(1) in statuses):
        return
    suggestion = closest(metric, known)
    hint = f" (did you mean {_toml_value(suggestion)}?)" if suggestion else ""
    raise SweepError(
        f"[summary]: metric = {_toml_value(metric)} is not a column of metrics.csv{hint}; it must "
        f'be one of {", ".join(known)}, or STATUS[ARCH] (e.g. "fixpoint[ww]") in mixed soups'
    )


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep file.

    Raises:
        SweepError: if the file is missing, not TOML or not a valid sweep; the message starts
            with the file's name.
    """
    path = Path(path)
    try:
        data = read_config_file(path)
    except ConfigError as error:
        raise SweepError(str(error).replace("config file", "sweep file", 1)) from None
    try:
        return SweepConfig.from_dict(data, base_dir=path.parent, source=str(path))
    except SweepError as error:
        raise SweepError(f"sweep file {path}: {error}") from None


# ----------------------------------------------------------------------------------------------
# One point (runs in a worker process or a Ray task)


def _normalised(config: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(config))


def _is_done(directory: Path) -> bool:
    """True if the run directory has its manifest and every data file matches it."""
    try:
        run = RunDirectory(directory)
        manifest = run.manifest
        if manifest is None or manifest.get("epoch") != manifest.get("epochs"):
            return False
        for name in DATA_FILES:
            run.verify(name)
    except (RunFileError, OSError):
        return False
    return True


def _different(directory: Path, stored: Any, expected: Any) -> SweepError:
    changed = sorted(
        key for key in set(stored) | set(expected) if stored.get(key) != expected.get(key)
    )
    return SweepError(
        f"{directory} holds a run of a different configuration (differs in: "
        f"{', '.join(changed)}): the sweep or its base changed since that point ran. Delete the "
        "point's directory to run it again, or give the sweep another --out"
    )


def _complete_point(directory: Path, expected: dict[str, Any]) -> str:
    """Bring a point's run directory to completion: "skipped", "resumed" or "ran"."""
    config = RunConfig.from_dict(expected)
    stored_path = directory / "config.json"
    if stored_path.is_file():
        try:
            stored = json.loads(stored_path.read_text(encoding="utf-8"))
        except ValueError:
            stored = None
        if isinstance(stored, dict) and stored != expected:
            raise _different(directory, stored, expected)
    if _is_done(directory):
        return "skipped"
    if (directory / "checkpoints").is_dir():
        try:
            soup, stored_config = resume_run(directory)
        except RunFileError:
            soup = None  # no usable checkpoint: run the point again from the start
        if soup is not None:
            stored = _normalised(stored_config.to_dict())
            if stored != expected:
                raise _different(directory, stored, expected)
            if soup.epoch <= config.epochs:
                (directory / MANIFEST_NAME).unlink(missing_ok=True)
                write_config(config, directory)
                run_soup(soup, config, directory)
                write_run(soup, config, directory)
                return "resumed"
    for stale in unlocked_entries(directory):  # the lock file stays: this process holds it
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    soup = config.build()
    write_config(config, directory)
    run_soup(soup, config, directory)
    write_run(soup, config, directory)
    return "ran"


def _write_failure(directory: Path, task: Mapping[str, Any], message: str, trace: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "point": task["id"],
        "seed": task["seed"],
        "overrides": task["overrides"],
        "error": message,
        "traceback": trace,
    }
    write_text_atomically(directory / FAILED_NAME, json.dumps(record, indent=1) + "\n")


def run_point(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run (or skip, or resume) one point of a sweep; never raises for the point's own errors.

    Args:
        task: ``id``, ``seed``, ``overrides``, ``directory`` (absolute), ``config`` (resolved,
            as :meth:`RunConfig.to_dict`), ``metric`` (the summary column) and ``threads``.

    Returns:
        ``id``, ``status`` ("ok" or "failed"), ``action`` ("skipped", "resumed", "ran" or ""),
        ``final`` (the last row of metrics.csv), ``series`` (the summary metric per collected
        epoch), ``error`` (None or a one-line message) and ``seconds``.
    """
    started = time.perf_counter()
    directory = Path(task["directory"])
    result: dict[str, Any] = {
        "id": task["id"],
        "status": "failed",
        "action": "",
        "final": {},
        "series": [],
        "error": None,
    }
    try:
        with torch_threads(task.get("threads", DEFAULT_THREADS)):
            hold(directory)  # one writer per point, also across sweeps into the same --out
            try:
                action = _complete_point(directory, _normalised(task["config"]))
            finally:
                release(directory)
        columns = RunDirectory(directory).metrics()
        (directory / FAILED_NAME).unlink(missing_ok=True)
        result |= {
            "status": "ok",
            "action": action,
            "final": final_counts(columns),
            "series": list(columns.get(task["metric"], [])),
        }
    except Exception as error:  # a point's failure is its result, never the sweep's end
        message = " ".join((f"{type(error).__name__}: {error}").split())
        result["error"] = message
        try:
            _write_failure(directory, task, message, traceback.format_exc())
        except OSError:
            pass
    result["seconds"] = time.perf_counter() - started
    return result


def _failed(task: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The result of a point that failed outside :func:`run_point` (a dead worker, Ray)."""
    try:
        _write_failure(Path(task["directory"]), task, message, "")
    except OSError:
        pass
    return {
        "id": task["id"],
        "status": "failed",
        "action": "",
        "final": {},
        "series": [],
        "error": message,
        "seconds": 0.0,
    }


# ----------------------------------------------------------------------------------------------
# Backends


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fresh worker processes without fork's hazards in a threaded parent (forkserver, else
    spawn), with this module preloaded once."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["chemistry.sweep"])
        return context
    return multiprocessing.get_context("spawn")


def _run_local(
    tasks: list[dict[str, Any]], workers: int, report: Callable[[dict[str, Any]], None]
) -> None:
    if workers == 1:
        for task in tasks:
            report(run_point(task))
        return
    pending = list(tasks)
    for attempt in range(POOL_RESTARTS + 1):
        broken: list[dict[str, Any]] = []
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(pending)), mp_context=_pool_context()
        )
        try:
            futures = {pool.submit(run_point, task): task for task in pending}
            waiting = set(futures)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        report(future.result())
                    except BrokenProcessPool:
                        broken.append(futures[future])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if not broken:
            return
        pending = sorted(broken, key=lambda task: task["index"])
        if attempt == POOL_RESTARTS:
            for task in pending:
                report(
                    _failed(
                        task,
                        f"a worker process died (killed, or out of memory) {POOL_RESTARTS + 1} "
                        "times while this point was queued or running",
                    )
                )


def _run_ray(
    tasks: list[dict[str, Any]],
    workers: int,
    address: str | None,
    report: Callable[[dict[str, Any]], None],
) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError(
            "the ray backend needs Ray, which is not installed: pip install "
            "'self-replicating-chemistry[ray]' (or pip install ray), or use --backend local"
        ) from None
    try:
        if address:
            import chemistry
            import interactions
            import particles

            # The cluster's workers get this version of the engine's code with the tasks.
            ray.init(
                address=address,
                runtime_env={"py_modules": [chemistry, interactions, particles]},
                log_to_driver=False,
            )
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    except Exception as error:
        ray.shutdown()
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SweepError(
            f"cannot connect to {where} ({type(error).__name__}: {' '.join(str(error).split())})"
        ) from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(run_point)
        refs = {remote.remote(task): task for task in tasks}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except Exception as error:  # a lost node or worker after Ray's own retries
                    result = _failed(
                        refs[ref],
                        f"Ray task failed: {type(error).__name__}: {' '.join(str(error).split())}",
                    )
                report(result)
    finally:
        ray.shutdown()


# ----------------------------------------------------------------------------------------------
# The sweep


@dataclass
class SweepReport:
    """What a sweep did: its points, their results (in point order) and the files written."""

    out: Path
    points: list[Point]
    results: list[dict[str, Any]]
    results_path: Path
    summary_path: Path | None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] != "ok"]

    def count(self, action: str) -> int:
        """Number of points that were "skipped" (done before), "resumed" or "ran"."""
        return sum(r["action"] == action for r in self.results)


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} is a file, not a sweep directory; choose another --out")
    if out.is_dir() and unlocked_entries(out) and not (out / SWEEP_NAME).exists():
        raise SweepError(
            f"{out} is not empty and is not a sweep directory (it has no {SWEEP_NAME}); nothing "
            "was changed. Choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)


def run_sweep(
    sweep: SweepConfig,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    threads: int = DEFAULT_THREADS,
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
) -> SweepReport:
    """Run every point of ``sweep`` not yet done into ``out``, then write the results.

    Args:
        sweep: the validated sweep.
        out: the sweep directory (created; an existing sweep directory is continued).
        backend: "local" (a process pool) or "ray".
        workers: processes of the local pool, or CPUs of a local Ray instance
            (default: ``os.cpu_count()``).
        address: a Ray cluster ("auto", "HOST:PORT", "ray://HOST:PORT"); None starts a local
            Ray instance. Only with ``backend="ray"``.
        threads: torch threads per point.
        progress: called as ``progress(result, finished, total)`` after each point.

    Raises:
        SweepError: for a bad backend, worker count or output folder, or an unreachable Ray.
    """
    if backend not in BACKENDS:
        raise SweepError(f"backend {backend!r} is not allowed; it must be one of {BACKENDS}")
    if address is not None and backend != "ray":
        raise SweepError("--address names a Ray cluster; it needs --backend ray")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepError(f"workers = {workers!r} is not allowed; it must be an integer >= 1")
    out = Path(out)
    _prepare_out(out)
    hold(out)  # a second sweep into the same --out is refused while this one runs
    try:
        return _run_sweep(sweep, out, backend, workers, address, threads, progress)
    finally:
        release(out)


def _run_sweep(
    sweep: SweepConfig,
    out: Path,
    backend: str,
    workers: int,
    address: str | None,
    threads: int,
    progress: Callable[[dict[str, Any], int, int], None] | None,
) -> SweepReport:
    write_text_atomically(out / SWEEP_NAME, json.dumps(sweep.to_dict(), indent=1) + "\n")
    points = sweep.expand()
    root = (out / POINTS_DIR).resolve()
    results: dict[str, dict[str, Any]] = {}
    tasks = []
    by_id = {}
    for point in points:
        task = {
            "index": point.index,
            "id": point.id,
            "seed": point.seed,
            "overrides": point.overrides,
            "directory": str(root / point.id),
            "config": point.config,
            "metric": sweep.metric,
            "threads": threads,
        }
        by_id[point.id] = task
        if point.config is None:
            results[point.id] = _failed(task, f"invalid configuration: {point.error}")
        else:
            tasks.append(task)

    def report(result: dict[str, Any]) -> None:
        results[result["id"]] = result
        if progress is not None:
            progress(result, len(results), len(points))

    if progress is not None:
        for number, result in enumerate(list(results.values()), 1):
            progress(result, number, len(points))
    if tasks:
        if backend == "local":
            _run_local(tasks, min(workers, len(tasks)), report)
        else:
            _run_ray(tasks, min(workers, len(tasks)), address, report)
    ordered = [results[point.id] for point in points]
    if backend == "ray":  # a multi-node cluster writes where its nodes see OUT: check it is here
        for index, (point, result) in enumerate(zip(points, ordered, strict=True)):
            if result["status"] == "ok" and not (root / point.id / MANIFEST_NAME).exists():
                ordered[index] = _failed(
                    by_id[point.id],
                    f"the point finished on a Ray node but {root / point.id} is not visible "
                    "here: the sweep directory must be on a file system shared by all nodes",
                )
    results_path = write_results(out / RESULTS_NAME, sweep, points, ordered)
    summary_path = plot_summary(out / SUMMARY_NAME, sweep, points, ordered)
    return SweepReport(out, points, ordered, results_path, summary_path)


# ----------------------------------------------------------------------------------------------
# Results


def _reduce(series: Sequence[float], reducer: str) -> float:
    values = [v for v in series if not math.isnan(v)] if reducer != "final" else list(series)
    if not values:
        return math.nan
    if reducer == "final":
        return float(values[-1])
    if reducer == "mean":
        return float(sum(values) / len(values))
    return float(max(values) if reducer == "max" else min(values))


def _summary_column(sweep: SweepConfig) -> str:
    return sweep.metric if sweep.reduce == "final" else f"{sweep.reduce}({sweep.metric})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return _plain(value)


def write_results(
    path: Path, sweep: SweepConfig, points: list[Point], results: list[dict[str, Any]]
) -> Path:
    """Write ``results.csv``: one row per point and seed, in the sweep's order."""
    metric_columns: dict[str, None] = {}
    for result in results:
        metric_columns |= dict.fromkeys(result["final"])
    summary = _summary_column(sweep)
    extra = [summary] if summary not in metric_columns else []
    header = ["point", "seed", "status", *sweep.swept, *metric_columns, *extra, "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for point, result in zip(points, results, strict=True):
        row = [point.id, point.seed, result["status"]]
        row += [_cell(point.overrides.get(path)) for path in sweep.swept]
        row += [_cell(result["final"].get(name)) for name in metric_columns]
        if extra:
            row.append(_cell(_reduce(result["series"], sweep.reduce)) if result["series"] else "")
        row.append(result["error"] or "")
        writer.writerow(row)
    return write_text_atomically(path, buffer.getvalue())


def plot_summary(
    path: Path, sweep: SweepConfig, points: list[Point], results: list[dict[str, Any]]
) -> Path | None:
    """Draw the summary metric against the parameter, mean ± standard deviation over seeds.

    One line per combination of the other swept keys (pooled into one line when there are more
    than ``MAX_LINES``). Returns None (and draws nothing) when nothing is swept.
    """
    if not sweep.parameter:
        return None
    from matplotlib.figure import Figure

    from chemistry.plots import save_figure

    parameter = sweep.parameter
    others = [p for p in sweep.swept if p != parameter]
    samples: dict[tuple[str, ...], dict[str, list[float]]] = {}
    x_values: dict[str, Any] = {}
    for point, result in zip(points, results, strict=True):
        if result["status"] != "ok" or parameter not in point.overrides:
            continue
        value = _reduce(result["series"], sweep.reduce)
        if math.isnan(value):
            continue
        x = point.overrides[parameter]
        x_values.setdefault(_plain(x), x)
        group = tuple(f"{o}={_plain(point.overrides[o])}" for o in others if o in point.overrides)
        samples.setdefault(group, {}).setdefault(_plain(x), []).append(value)
    pooled = len(samples) > MAX_LINES
    if pooled:
        merged: dict[str, list[float]] = {}
        for by_x in samples.values():
            for x, values in by_x.items():
                merged.setdefault(x, []).extend(values)
        samples = {("all other settings pooled",): merged}
    numeric = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in x_values.values()
    )
    keys = sorted(x_values, key=lambda k: x_values[k]) if numeric else list(x_values)
    position = {k: (float(x_values[k]) if numeric else i) for i, k in enumerate(keys)}

    figure = Figure(figsize=(6.5, 4))
    axes = figure.subplots()
    for group, by_x in samples.items():
        xs = [k for k in keys if k in by_x]
        means = [sum(by_x[k]) / len(by_x[k]) for k in xs]
        spreads = [_std(by_x[k]) for k in xs]
        label = ", ".join(group) or None
        line = axes.errorbar(
            [position[k] for k in xs],
            means,
            yerr=spreads,
            marker="o",
            markersize=4,
            capsize=3,
            label=label,
        )
        colour = line[0].get_color()
        for k in xs:
            axes.scatter(
                [position[k]] * len(by_x[k]), by_x[k], color=colour, alpha=0.3, s=10, zorder=1
            )
    if not numeric:
        axes.set_xticks([position[k] for k in keys], keys)
    axes.set_xlabel(parameter)
    what = sweep.metric if sweep.reduce == "final" else f"{sweep.reduce} of {sweep.metric}"
    axes.set_ylabel(f"{what} ({'final epoch' if sweep.reduce == 'final' else 'over epochs'})")
    seeds = len(sweep.seeds)
    axes.set_title(
        (sweep.description + "\n" if sweep.description else "")
        + f"mean ± sd over {seeds} seed{'s' if seeds > 1 else ''}",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    if any(group for group in samples):
        axes.legend(loc="best", fontsize=8)
    return save_figure(figure, path)


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
