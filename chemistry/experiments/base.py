"""The frame every paper experiment runs in: options, scale, seeds, results, claims, report.

An experiment is a function ``run(context, *, option=default, ...) -> Outcome`` (a batched one
takes a list of contexts, one per seed, and returns one Outcome each). Its keyword-only
parameters *are* its options: name, type (annotation) and default are declared once there, and
``--set NAME=VALUE`` accepts exactly those (anything else is an error with a suggestion). A
default that depends on the scale is written ``Scaled(paper, quick)``. Options shared by several
experiments are declared once, as the fields of an ``OptionBundle`` (a frozen dataclass) that each
of them takes as one keyword-only parameter; its fields are options like any other (flat names
for ``--set``, REPORT.md and options.json), and the run receives them as one bundle instance.

``reproduce`` runs an experiment for each seed, writes ``results.csv`` (one row per setting and
seed) and ``options.json``, keeps its figures and writes a section of ``REPORT.md``: per claim the
setting, the number of seeds, the measured quantity as mean ± sd over seeds, the fraction of
seeds in which the claim holds, the numeric threshold and the verdict.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import inspect
import io
import json
import math
import statistics
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from chemistry.storage import write_text_atomically
from particles.validation import check_choice

SCALES = ("paper", "quick")
PAPER_SEEDS = 10  # default seeds at paper scale (SPEC §7: verdicts over seeds)
YES, NO = 0.8, 0.2  # verdict: "yes" when a claim holds in ≥ 80 % of the seeds, "no" when ≤ 20 %
VERDICT_RULE = (
    f"Verdict over seeds: **yes** when the claim holds in ≥ {YES:.0%} of the seeds, **no** when in "
    f"≤ {NO:.0%}, otherwise **seed-dependent**. 'measured' is the claim's quantity as mean ± "
    "standard deviation over the seeds; the threshold is the numeric test applied to each seed."
)


@dataclass(frozen=True)
class Scaled:
    """An option default that depends on the scale: ``paper`` at paper scale, else ``quick``."""

    paper: Any
    quick: Any

    def pick(self, scale: str) -> Any:
        return self.paper if scale == "paper" else self.quick

    def __repr__(self) -> str:
        return f"{self.paper!r} (quick: {self.quick!r})"


@dataclass(frozen=True)
class Context:
    """What an experiment run may depend on besides its options.

    Attributes:
        scale: "paper" (the paper's sizes) or "quick" (small sizes for tests, same code path).
        seed: the seed of this run; every random draw derives from it.
        out: the experiment's output folder (figures go here).
        device: torch device.
        options: the run's resolved options (every declared option, given or default).
        workers: processes an experiment may start for its own sweeps (1: none).
    """

    scale: str
    seed: int
    out: Path
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    workers: int = 1

    def generator(self, stream: int = 0) -> torch.Generator:
        """A torch generator for this seed (``stream`` separates independent uses)."""
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + stream)

    def size(self, paper: int, quick: int) -> int:
        """The paper's size at paper scale, the small one at quick scale."""
        return paper if self.scale == "paper" else quick

    def option(self, name: str) -> Any:
        """The resolved value of a declared option (helpers use it instead of threading it)."""
        if name not in self.options:
            raise KeyError(f"option {name!r} is not declared by this experiment")
        return self.options[name]

    @property
    def dtype(self) -> torch.dtype:
        name = self.options.get("dtype", "float32")
        check_choice("dtype", name, ("float32", "float64"))
        return torch.float64 if name == "float64" else torch.float32


@dataclass
class Claim:
    """One checkable claim of the paper and what one seed measured for it.

    Attributes:
        key: the SPEC claim id ("C9").
        text: the paper's claim, short.
        holds: whether this seed's numbers pass ``threshold``.
        measured: this seed's numbers, in words.
        value: the one quantity the threshold tests (averaged over seeds in the report).
        quantity: what ``value`` counts, e.g. "DIVERGENT of 50 rnn".
        threshold: the test on ``value`` (or on the numbers in ``measured``), as numbers.
        setting: the setting this claim was measured in, e.g. "glorot+keras" or "torch init".
        remark: e.g. where the paper's text and its figure disagree, which one this matches.
    """

    key: str
    text: str
    holds: bool
    measured: str
    value: float = math.nan
    quantity: str = ""
    threshold: str = ""
    setting: str = ""
    remark: str = ""


@dataclass
class Outcome:
    """What one seed of an experiment produced."""

    rows: list[dict[str, Any]]
    claims: list[Claim]
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Options: declared once, as the keyword-only parameters of an experiment's run function


@dataclass(frozen=True)
class OptionBundle:
    """Base of a frozen dataclass whose fields are options shared by several experiments.

    An experiment takes a bundle as one keyword-only parameter annotated with its class, e.g.
    ``setting: Setting = Setting()``; each field is then one of its options (``--set init=torch``).
    """


@dataclass(frozen=True)
class Option:
    """One declared option of an experiment: its name, type and default.

    ``group`` names the run's parameter of the ``OptionBundle`` that declares it ("" when the run
    declares it itself), ``bundle`` is that bundle's class.
    """

    name: str
    kind: Any
    default: Any
    group: str = ""
    bundle: type[OptionBundle] | None = None

    def describe(self) -> str:
        return f"{self.name} ({_type_name(self.kind)}, default {self.default!r})"


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return " | ".join(repr(value) for value in typing.get_args(kind))
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_name(a) for a in typing.get_args(kind))
    if origin is tuple:
        return f"comma-separated {_type_name(typing.get_args(kind)[0])}s"
    return getattr(kind, "__name__", str(kind))


def _is_bundle(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, OptionBundle)


def declared_options(run: Callable[..., Outcome]) -> dict[str, Option]:
    """The keyword-only parameters of ``run`` as options (name → Option), in declaration order.

    A parameter annotated with an ``OptionBundle`` class stands for the bundle's fields.

    Raises:
        TypeError: if two parameters or bundle fields declare the same name.
    """
    hints = typing.get_type_hints(run)
    options: dict[str, Option] = {}
    for name, parameter in inspect.signature(run).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kind = hints.get(name, Any)
        if _is_bundle(kind):
            fields = typing.get_type_hints(kind)
            declared = [
                Option(f.name, fields[f.name], f.default, name, kind)
                for f in dataclasses.fields(kind)
            ]
        else:
            declared = [Option(name, kind, parameter.default)]
        for option in declared:
            if option.name in options:
                raise TypeError(f"{run.__name__} declares option {option.name!r} twice")
            options[option.name] = option
    return options


def _convert(name: str, value: Any, kind: Any) -> Any:
    """``value`` (a string from the command line, or a Python value) as ``kind``.

    Raises:
        ValueError: naming the option, the value and what is allowed.
    """

    def fail() -> ValueError:
        return ValueError(f"--set {name}={value!r} is not allowed; {name} takes {_type_name(kind)}")

    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        arguments = typing.get_args(kind)
        if type(None) in arguments and (value is None or str(value).lower() == "none"):
            return None
        for argument in arguments:
            if argument is type(None):
                continue
            try:
                return _convert(name, value, argument)
            except ValueError:
                pass
        raise fail()
    if origin is Literal:
        choices = typing.get_args(kind)
        if value in choices:
            return value
        for choice in choices:
            if str(choice) == str(value):
                return choice
        raise fail()
    if origin is tuple:
        element = typing.get_args(kind)[0]
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise fail()
        return tuple(_convert(name, item, element) for item in items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise fail()
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise fail()
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise fail()
    if kind is str:
        if isinstance(value, str):
            return value
        raise fail()
    return value


def unknown_option_message(experiment_name: str, name: str, options: dict[str, Option]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = ", ".join(options) or "none"
    return (
        f"--set {name}: experiment {experiment_name!r} has no option {name!r}{hint}; "
        f"its options are: {listing}"
    )


# ------------------------------------------------------------------------------------------------
# Experiments


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        key: SPEC id ("E2").
        name: command-line name ("fig2").
        title: heading in REPORT.md.
        preset: the default training preset (SPEC Table 2).
        run: ``run(context, **options) -> Outcome``; its keyword-only parameters are the options.
        setting: which setting the experiment runs in by default, and why (printed in REPORT.md).
        paper_seeds: default number of seeds at paper scale.
        cost: CPU seconds per seed at paper scale (measured; only orders the process pool,
            largest first).
        batched: ``run`` takes a list of contexts (one per seed) and returns one Outcome per
            context, running the seeds together as rows of one batch; each seed's numbers
            equal its run alone (``run([context])``), up to rounding.
    """

    key: str
    name: str
    title: str
    preset: str
    run: Callable[..., Outcome]
    setting: str = ""
    paper_seeds: int = PAPER_SEEDS
    cost: float = 1.0
    batched: bool = False

    def outcomes(self, contexts: list[Context], options: dict[str, Any]) -> list[Outcome]:
        """Run with resolved ``options`` for each context (together when ``batched``): one
        Outcome each. The fields of each option bundle are gathered into one instance."""
        arguments: dict[str, Any] = {}
        bundles: dict[str, dict[str, Any]] = {}
        for name, option in self.options.items():
            if option.bundle is None:
                arguments[name] = options[name]
            else:
                bundles.setdefault(option.group, {})[name] = options[name]
        for group, fields in bundles.items():
            arguments[group] = self.options[next(iter(fields))].bundle(**fields)
        if self.batched:
            return list(self.run(contexts, **arguments))
        return [self.run(context, **arguments) for context in contexts]

    @property
    def options(self) -> dict[str, Option]:
        return declared_options(self.run)

    def resolve(self, given: dict[str, Any] | None, scale: str) -> dict[str, Any]:
        """Every declared option's value: the given one (converted and checked) or the default.

        Raises:
            ValueError: for a name the experiment does not declare (with a suggestion) or a value
                of the wrong type.
        """
        declared = self.options
        given = dict(given or {})
        for name in given:
            if name not in declared:
                raise ValueError(unknown_option_message(self.name, name, declared))
        resolved = {}
        for name, option in declared.items():
            if name in given:
                resolved[name] = _convert(name, given[name], option.kind)
            else:
                default = option.default
                resolved[name] = default.pick(scale) if isinstance(default, Scaled) else default
        return resolved

    def call(self, context: Context, options: dict[str, Any]) -> Outcome:
        """Run for one seed's ``context`` with resolved ``options``."""
        return self.outcomes([context], options)[0]


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


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (sd 0 for one value; NaN if none)."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    if not finite:
        return math.nan, math.nan
    if len(finite) == 1:
        return finite[0], 0.0
    return statistics.fmean(finite), statistics.stdev(finite)


def _spread(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mean, sd = mean_sd(finite)
    if len(finite) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {sd:.2g} (min {min(finite):.4g}, max {max(finite):.4g})"


def seed_verdict(held: Sequence[bool], *, short: bool = False) -> str:
    """The verdict over seeds: "yes", "no" or "seed-dependent" (see ``VERDICT_RULE``)."""
    share = sum(held) / len(held)
    if share >= YES:
        return "yes"
    if share <= NO:
        return "no"
    return f"{sum(held)}/{len(held)}" if short else "seed-dependent"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _measured(claims: list[Claim]) -> str:
    values = [c.value for c in claims]
    if all(math.isnan(v) for v in values):
        return "see seed 0 below"
    mean, sd = mean_sd(values)
    quantity = f" {claims[0].quantity}" if claims[0].quantity else ""
    return f"{mean:.3g} ± {sd:.2g}{quantity}"


def _format_option(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def options_line(options: dict[str, Any]) -> str:
    return ", ".join(f"{name}={_format_option(value)}" for name, value in options.items())


def report_section(
    experiment: Experiment,
    outcomes: list[Outcome],
    scale: str,
    seconds: float,
    options: dict[str, Any] | None = None,
    first_seed: int = 0,
    wall: float | None = None,
) -> str:
    """The REPORT.md section of an experiment over all its seeds.

    ``seconds``: CPU seconds of all its seeds; ``wall``: the wall seconds of its seeds' tasks,
    added up (None: not stated).
    """
    seeds = len(outcomes)
    last = first_seed + seeds - 1
    span = f"seed {first_seed}" if seeds == 1 else f"seeds {first_seed}–{last}"
    lines = [
        f"## {experiment.key}: {experiment.title}",
        "",
        f"`chemistry reproduce {experiment.name} --scale {scale} --seeds {seeds}`; preset "
        f"`{experiment.preset}`; {span}; {seconds:.1f} CPU s ({seconds / seeds:.2f} per seed)"
        + (f", {wall:.1f} s wall in its tasks." if wall is not None else "."),
        "",
    ]
    if experiment.setting:
        lines += [f"Setting: {experiment.setting}", ""]
    if options is not None:
        lines += [f"Options: `{options_line(options)}`", ""]
    lines += [
        "| claim | paper | setting | seeds | measured (mean ± sd) | holds in | threshold "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    remarks = []
    for index, claim in enumerate(outcomes[0].claims):
        per_seed = [outcome.claims[index] for outcome in outcomes]
        held = [c.holds for c in per_seed]
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    claim.key,
                    claim.text,
                    claim.setting or "default",
                    str(seeds),
                    _measured(per_seed),
                    f"{sum(held)}/{seeds}",
                    claim.threshold or "see text",
                    seed_verdict(held),
                )
            )
            + " |"
        )
        if claim.remark:
            remarks.append(f"- {claim.key} ({claim.setting or 'default'}): {claim.remark}")
    lines += ["", VERDICT_RULE]
    if remarks:
        lines += ["", *remarks]
    lines += ["", f"Seed {first_seed} in detail:", ""]
    lines += [f"- {c.key} ({c.setting or 'default'}): {c.measured}" for c in outcomes[0].claims]
    if seeds > 1 and outcomes[0].metrics:
        lines += ["", "Over seeds (mean ± standard deviation):", ""]
        for key in outcomes[0].metrics:
            lines.append(f"- {key}: {_spread([o.metrics.get(key, math.nan) for o in outcomes])}")
    notes = [note for outcome in outcomes[:1] for note in outcome.notes]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    figures = [p.name for p in outcomes[0].figures]
    if figures:
        lines += ["", " ".join(f"![{name}]({experiment.name}/{name})" for name in figures)]
    return "\n".join(lines) + "\n"


def write_results(
    folder: Path, outcomes: list[Outcome], options: dict[str, Any], first_seed: int = 0
) -> None:
    """``results.csv`` (rows of every seed, with a seed column) and ``options.json``."""
    rows = [
        {"seed": first_seed + index, **row}
        for index, outcome in enumerate(outcomes)
        for row in outcome.rows
    ]
    write_rows(folder / "results.csv", rows)
    text = json.dumps({k: _format_option(v) for k, v in options.items()}, indent=2)
    write_text_atomically(folder / "options.json", text + "\n")


def seed_folder(folder: Path, seed: int, first_seed: int) -> Path:
    """Where a seed's figures go: the first seed's are the headline ones, later ones in seed-N/."""
    return folder if seed == first_seed else folder / f"seed-{seed}"
