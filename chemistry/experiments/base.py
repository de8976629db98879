"""The frame every paper experiment runs in: scale, seeds, output folder, results, claims, report.

An experiment is a function ``run(context) -> Outcome``. ``reproduce`` runs it for each seed,
writes ``results.csv`` (one row per setting and seed), keeps its figures, and appends a section to
``REPORT.md``: the paper's claims, the numbers measured here (mean and spread over seeds), and a
plain verdict per claim, including when the numbers do not show it.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from chemistry.storage import write_text_atomically
from chemistry.threads import DEFAULT_THREADS, torch_threads
from particles.validation import check_choice, check_count

SCALES = ("paper", "quick")


@dataclass(frozen=True)
class Context:
    """What an experiment run may depend on.

    Attributes:
        scale: "paper" (the paper's sizes) or "quick" (small sizes for tests, same code path).
        seed: the seed of this run; every random draw derives from it.
        out: the experiment's output folder (figures go here).
        device: torch device.
        options: experiment switches (e.g. ``{"dtype": "float64", "mode": "per_sample"}``).
    """

    scale: str
    seed: int
    out: Path
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    def generator(self, stream: int = 0) -> torch.Generator:
        """A torch generator for this seed (``stream`` separates independent uses)."""
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + stream)

    def size(self, paper: int, quick: int) -> int:
        """The paper's size at paper scale, the small one at quick scale."""
        return paper if self.scale == "paper" else quick

    def option(self, name: str, default: Any) -> Any:
        return self.options.get(name, default)

    @property
    def dtype(self) -> torch.dtype:
        name = self.option("dtype", "float32")
        check_choice("dtype", name, ("float32", "float64"))
        return torch.float64 if name == "float64" else torch.float32


@dataclass
class Claim:
    """One checkable claim of the paper and what this run measured for it.

    Attributes:
        key: the SPEC claim id ("C9").
        text: the paper's claim, short.
        holds: whether the measured numbers show it.
        measured: the numbers, in words.
    """

    key: str
    text: str
    holds: bool
    measured: str


@dataclass
class Outcome:
    """What one seed of an experiment produced."""

    rows: list[dict[str, Any]]
    claims: list[Claim]
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: SPEC id, command-line name, title, default preset and its run."""

    key: str
    name: str
    title: str
    preset: str
    run: Callable[[Context], Outcome]


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write dict rows as CSV, columns in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomically(path, buffer.getvalue())


def _spread(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    if len(finite) == 1:
        return f"{mean:.4g}"
    spread = statistics.stdev(finite)
    return f"{mean:.4g} ± {spread:.2g} (min {min(finite):.4g}, max {max(finite):.4g})"


def seed_verdict(held: Sequence[bool], *, short: bool = False) -> str:
    """ "yes" or "no" when all seeds agree, else how many of them showed the claim."""
    if all(held):
        return "yes"
    if not any(held):
        return "no"
    return f"{sum(held)}/{len(held)}" if short else f"in {sum(held)} of {len(held)} seeds"


def report_section(
    experiment: Experiment, outcomes: list[Outcome], scale: str, seconds: float
) -> str:
    """The REPORT.md section of an experiment over all its seeds."""
    seeds = len(outcomes)
    lines = [
        f"## {experiment.key}: {experiment.title}",
        "",
        f"`chemistry reproduce {experiment.name} --scale {scale}`; preset `{experiment.preset}`; "
        f"{seeds} seed{'s' if seeds > 1 else ''}; {seconds:.1f} s.",
        "",
        "| claim | paper | measured here | shown? |",
        "|---|---|---|---|",
    ]
    for index, claim in enumerate(outcomes[0].claims):
        verdicts = [outcome.claims[index].holds for outcome in outcomes]
        verdict = seed_verdict(verdicts)
        measured = claim.measured if seeds == 1 else f"seed 0: {claim.measured}"
        lines.append(f"| {claim.key} | {claim.text} | {measured} | {verdict} |")
    if seeds > 1 and outcomes[0].metrics:
        lines += ["", "Over seeds (mean ± standard deviation):", ""]
        for key in outcomes[0].metrics:
            lines.append(f"- {key}: {_spread([o.metrics.get(key, math.nan) for o in outcomes])}")
        changed = [
            c.key
            for i, c in enumerate(outcomes[0].claims)
            if len({o.claims[i].holds for o in outcomes}) > 1
        ]
        if changed:
            lines.append(
                f"\nMore seeds change the picture for {', '.join(changed)}: the verdict differs "
                "between seeds, so a single run (as in the paper) does not settle it."
            )
    notes = [note for outcome in outcomes[:1] for note in outcome.notes]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    figures = [p.name for p in outcomes[0].figures]
    if figures:
        lines += ["", " ".join(f"![{name}]({experiment.name}/{name})" for name in figures)]
    return "\n".join(lines) + "\n"


def run_experiment(
    experiment: Experiment,
    *,
    scale: str,
    seeds: int,
    out: Path,
    device: str = "cpu",
    options: dict[str, Any] | None = None,
    first_seed: int = 0,
    threads: int = DEFAULT_THREADS,
) -> tuple[list[Outcome], float]:
    """Run one experiment for ``seeds`` seeds into ``out/<name>/``; returns outcomes and seconds.

    Runs use ``threads`` torch threads (one by default: see ``chemistry.threads``).
    """
    check_choice("scale", scale, SCALES)
    check_count("seeds", seeds, 1)
    folder = out / experiment.name
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcomes = []
    rows: list[dict[str, Any]] = []
    for seed in range(first_seed, first_seed + seeds):
        # Figures of later seeds go into a subfolder so that seed 0's stay the headline ones.
        target = folder if seed == first_seed else folder / f"seed-{seed}"
        target.mkdir(parents=True, exist_ok=True)
        context = Context(scale, seed, target, device, dict(options or {}))
        with torch_threads(threads):
            outcome = experiment.run(context)
        rows += [{"seed": seed, **row} for row in outcome.rows]
        outcomes.append(outcome)
    write_rows(folder / "results.csv", rows)
    return outcomes, time.perf_counter() - started
