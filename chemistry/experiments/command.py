"""``chemistry reproduce EXPERIMENT``: run paper experiments; write results, figures, REPORT.md.

Every (experiment, seed) pair is one task (a batched experiment's seeds are one task, run as rows
of one batch). With more than one worker the tasks run in a process
pool (the sweep runner's worker start method, ``chemistry.sweep``), slowest experiments first;
every task is seeded by its own seed, so the worker count never changes a number. Each task's
CPU and wall seconds go into its experiment's REPORT section, and a closing "Timing" section
lists every experiment of the run and the run's total.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chemistry.experiments import EXPERIMENTS
from chemistry.experiments.base import (
    SCALES,
    Context,
    Outcome,
    report_section,
    seed_folder,
    seed_verdict,
    write_results,
)
from chemistry.limits import check_device
from chemistry.storage import write_text_atomically
from chemistry.threads import DEFAULT_THREADS, torch_threads
from particles.validation import check_choice, check_count

REPORT_TITLE = (
    "# Reproduction report: Self-Replication in Neural Networks (Gabor, Illium et al. 2022) "
    "and Neural Network Quine (Chang & Lipson 2018)\n"
)
CLAIMS_HEADER = (
    "| experiment | claim | paper | setting | seeds | measured (mean ± sd) | threshold | holds in "
    "| verdict |"
)
TIMING_KEY = "Timing"  # the REPORT.md section of the last run's timing, kept at the end


def _parse_option(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` from ``--set``; the value stays a string (the experiment converts it)."""
    if "=" not in text:
        raise ValueError(
            f"--set {text!r} is not allowed; write NAME=VALUE, e.g. --set dtype=float64"
        )
    name, value = text.split("=", 1)
    return name.strip(), value


def update_report(path: Path, key: str, section: str) -> None:
    """Put a section into REPORT.md, replacing an older section of the same key. Sections stay
    in the experiments' registry order whatever order they finish in; any other section (the
    Timing) comes last."""
    text = path.read_text(encoding="utf-8") if path.exists() else REPORT_TITLE
    head, *sections = re.split(r"^(?=## )", text, flags=re.MULTILINE)
    sections = [s for s in sections if _section_key(s) != key] + [section]
    rank = {experiment.key: i for i, experiment in enumerate(EXPERIMENTS.values())}
    sections.sort(key=lambda s: rank.get(_section_key(s), len(rank)))  # stable
    body = "\n\n".join(s.strip("\n") for s in sections)
    write_text_atomically(path, head.rstrip("\n") + "\n\n" + body + "\n")


def _section_key(section: str) -> str:
    return section[3:].split(":", 1)[0]


def claims_table(report: str) -> str:
    """The one-line-per-claim summary of a REPORT.md (the README's claims table is made from it).

    Columns: experiment, claim, the paper's claim, setting, seeds, measured (mean ± sd),
    threshold, holds in, verdict.
    """
    lines = [CLAIMS_HEADER, "|---|---|---|---|---|---|---|---|---|"]
    experiment = ""
    for line in report.splitlines():
        if line.startswith("## "):
            experiment = _section_key(line)
        elif line.startswith("| ") and not line.startswith(("| claim ", "|---")):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            if len(cells) == 8:
                key, text, setting, seeds, measured, held, threshold, verdict = cells
                lines.append(
                    f"| {experiment} | {key} | {text} | {setting} | {seeds} | {measured} | "
                    f"{threshold} | {held} | {verdict} |"
                )
    return "\n".join(lines) + "\n"


@dataclass
class TaskResult:
    """One seed's outcome and its CPU and wall seconds (a batched task's seeds share its time
    equally)."""

    outcome: Outcome
    cpu: float
    wall: float


def _run_task(task: dict[str, Any]) -> list[tuple[int, TaskResult]]:
    """Run one experiment for its seeds (in this process or a pool worker): (seed, result) each.

    A batched experiment runs its seeds as one call. The CPU time covers this process only:
    with one worker, the sweeps of fig13 and learn-soup run in a pool of their own whose time it
    does not include.
    """
    experiment = EXPERIMENTS[task["name"]]
    contexts = [
        Context(
            task["scale"],
            seed,
            seed_folder(task["out"], seed, task["first_seed"]),
            task["device"],
            task["options"],
            task["workers"],
        )
        for seed in task["seeds"]
    ]
    for context in contexts:
        context.out.mkdir(parents=True, exist_ok=True)
    started, wall = time.process_time(), time.perf_counter()  # CPU s: meaningful when busy
    with torch_threads(task["threads"]):
        outcomes = experiment.outcomes(contexts, task["options"])
    cpu = (time.process_time() - started) / len(contexts)
    wall = (time.perf_counter() - wall) / len(contexts)
    return [
        (c.seed, TaskResult(outcome, cpu, wall))
        for c, outcome in zip(contexts, outcomes, strict=True)
    ]


def _pool_context():
    from chemistry.sweep import _pool_context  # the sweep runner's worker start method

    return _pool_context()


def timing_section(
    rows: list[tuple[str, int, float, float]],
    wall: float,
    workers: int,
    sweep_workers: int,
    load: tuple[str, str],
) -> str:
    """The REPORT.md "Timing" section of one ``reproduce`` run.

    Args:
        rows: (experiment, seeds, CPU s, wall s of its tasks added up) per experiment.
        wall: wall seconds of the whole run; workers, sweep_workers: as in ``reproduce``;
        load: the 1-minute load average at its start and at its end.
    """
    lines = [
        "## Timing: the last `chemistry reproduce` run",
        "",
        f"{len(rows)} experiments in {workers} worker process{'es' if workers > 1 else ''} on "
        f"{os.cpu_count()} CPUs; load average (1 min) {load[0]} at the start, {load[1]} at the "
        "end. CPU s count the task processes"
        + (
            f" (the sweep points of fig13 and learn-soup ran in {sweep_workers} processes of "
            "their own and are not counted)."
            if sweep_workers > 1
            else " (the sweeps of fig13 and learn-soup run inside them)."
        ),
        "",
        "| experiment | seeds | CPU s | CPU s per seed | wall s of its tasks |",
        "|---|---|---|---|---|",
    ]
    for name, seeds, cpu, task_wall in rows:
        lines.append(f"| {name} | {seeds} | {cpu:.1f} | {cpu / seeds:.2f} | {task_wall:.1f} |")
    cpu = sum(row[2] for row in rows)
    lines += [
        f"| total | {sum(row[1] for row in rows)} | {cpu:.1f} | | "
        f"{sum(row[3] for row in rows):.1f} |",
        "",
        f"Wall time of the whole run: {wall:.1f} s ({wall / 60:.1f} min).",
    ]
    return "\n".join(lines) + "\n"


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover - not available on this platform
        return "n/a"


def resolve_names(names: list[str]) -> list[str]:
    """Experiment names in order, ``all`` expanded; an unknown name is a ValueError."""
    expanded: list[str] = []
    for name in names:
        if name == "all":
            expanded += list(EXPERIMENTS)
        elif name in EXPERIMENTS:
            expanded.append(name)
        else:
            raise ValueError(
                f"experiment {name!r} is unknown; choose from: all, {', '.join(EXPERIMENTS)}"
            )
    return list(dict.fromkeys(expanded))


def reproduce(
    names: list[str],
    *,
    scale: str = "paper",
    seeds: int | None = None,
    out: Path = Path("reproduction"),
    device: str = "cpu",
    options: dict | None = None,
    workers: int = 1,
    sweep_workers: int | None = None,
    first_seed: int = 0,
    threads: int = DEFAULT_THREADS,
    stream=sys.stdout,
) -> Path:
    """Run the named experiments ("all": every experiment, the quines too) and return the report.

    Args:
        seeds: seeds per experiment; None: the experiment's default at paper scale (10, quines
            5), 1 at quick scale.
        options: ``--set`` values; every name must be an option of every named experiment.
        workers: processes running (experiment, seed) tasks at once.
        sweep_workers: processes of the sweeps inside fig13 and learn-soup (None: one per CPU
            when ``workers`` is 1, else 1, so that the two pools never nest).

    Raises:
        ValueError: for an unknown experiment or option, or a bad option value (before anything
            runs).
    """
    check_choice("scale", scale, SCALES)
    check_count("workers", workers, 1)
    check_device(device, available=True)
    if seeds is not None:
        check_count("seeds", seeds, 1)
    names = resolve_names(names)
    resolved = {name: EXPERIMENTS[name].resolve(options, scale) for name in names}
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    started, load = time.perf_counter(), _load_average()
    sweep_workers = sweep_workers or (1 if workers > 1 else (os.cpu_count() or 1))
    tasks = []
    for name in names:
        experiment = EXPERIMENTS[name]
        count = seeds if seeds is not None else (experiment.paper_seeds if scale == "paper" else 1)
        seeds_of = list(range(first_seed, first_seed + count))
        for group in [seeds_of] if experiment.batched else [[seed] for seed in seeds_of]:
            tasks.append(
                {
                    "name": name,
                    "scale": scale,
                    "seeds": group,
                    "out": out / name,
                    "first_seed": first_seed,
                    "device": device,
                    "options": resolved[name],
                    "threads": threads,
                    "workers": sweep_workers,
                }
            )
    results: dict[tuple[str, int], TaskResult] = {}
    remaining = {name: sum(t["name"] == name for t in tasks) for name in names}
    timings: dict[str, tuple[str, int, float, float]] = {}

    def finished(task: dict[str, Any], per_seed: list[tuple[int, TaskResult]]) -> None:
        name = task["name"]
        for seed, result in per_seed:
            results[(name, seed)] = result
        remaining[name] -= 1
        if remaining[name]:
            return
        experiment = EXPERIMENTS[name]
        mine = [r for _, r in sorted((seed, r) for (n, seed), r in results.items() if n == name)]
        outcomes = [r.outcome for r in mine]
        seconds, wall = sum(r.cpu for r in mine), sum(r.wall for r in mine)
        timings[name] = (name, len(outcomes), seconds, wall)
        write_results(out / name, outcomes, resolved[name], first_seed)
        section = report_section(
            experiment, outcomes, scale, seconds, resolved[name], first_seed=first_seed, wall=wall
        )
        update_report(report, experiment.key, section)
        verdicts = " ".join(
            f"{claim.key}:{seed_verdict([o.claims[i].holds for o in outcomes], short=True)}"
            for i, claim in enumerate(outcomes[0].claims)
        )
        print(
            f"{experiment.key:>5} {name:<11} {len(outcomes):>3} seeds {seconds:7.1f} CPU s "
            f"{wall:7.1f} s wall  {verdicts}",
            file=stream,
            flush=True,
        )

    if workers == 1:
        for task in tasks:
            finished(task, _run_task(task))
    else:
        order = sorted(tasks, key=lambda t: -EXPERIMENTS[t["name"]].cost * len(t["seeds"]))
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = [(task, pool.submit(_run_task, task)) for task in order]
            for task, future in futures:
                finished(task, future.result())
    total = time.perf_counter() - started
    rows = [timings[name] for name in names]
    timing = timing_section(rows, total, workers, sweep_workers, (load, _load_average()))
    update_report(report, TIMING_KEY, timing)
    write_text_atomically(out / "CLAIMS.md", claims_table(report.read_text(encoding="utf-8")))
    print(
        f"total {total:.1f} s (wall, {workers} worker{'s' if workers > 1 else ''}), "
        f"{sum(row[2] for row in rows):.1f} CPU s; report: {report}",
        file=stream,
    )
    return report


def add_reproduce_parser(
    commands: argparse._SubParsersAction, *, help: str | None = None
) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand (with its one-line ``help``) to the ``chemistry`` parser."""
    parser = commands.add_parser("reproduce", help=help)
    parser.add_argument(
        "experiments",
        nargs="+",
        help=f"all (every experiment of both papers, the quines included), or any of: "
        f"{', '.join(EXPERIMENTS)}",
    )
    parser.add_argument("--scale", choices=SCALES, default="paper")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per experiment (default: 10 at paper scale, 5 for the quines; 1 at quick)",
    )
    parser.add_argument("--out", type=Path, default=Path("reproduction"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes running (experiment, seed) tasks at once (default: one per CPU)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the experiment, e.g. --set init=torch (repeatable); an unknown name "
        "is an error that lists the experiment's options",
    )
    parser.set_defaults(handler=reproduce_command)
    return parser


def reproduce_command(arguments: argparse.Namespace) -> int:
    """Handler of ``chemistry reproduce``."""
    options = dict(_parse_option(text) for text in arguments.set)
    reproduce(
        arguments.experiments,
        scale=arguments.scale,
        seeds=arguments.seeds,
        out=arguments.out,
        device=arguments.device,
        options=options,
        workers=arguments.workers,
    )
    return 0
