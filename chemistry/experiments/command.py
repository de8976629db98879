"""``chemistry reproduce EXPERIMENT``: run paper experiments; write results, figures, REPORT.md."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from chemistry.experiments import EXPERIMENTS
from chemistry.experiments.base import SCALES, report_section, run_experiment, seed_verdict
from chemistry.storage import write_text_atomically

REPORT_TITLE = (
    "# Reproduction report: Self-Replication in Neural Networks (Gabor, Illium et al. 2022)\n"
)


def _parse_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ValueError(
            f"--set {text!r} is not allowed; write NAME=VALUE, e.g. --set dtype=float64"
        )
    name, value = text.split("=", 1)
    for convert in (int, float):
        try:
            return name, convert(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    return name, value


def update_report(path: Path, key: str, section: str) -> None:
    """Put an experiment's section into REPORT.md, replacing an older section of the same key."""
    text = path.read_text(encoding="utf-8") if path.exists() else REPORT_TITLE
    pattern = re.compile(rf"^## {re.escape(key)}: .*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    write_text_atomically(path, text)


def reproduce(
    names: list[str],
    *,
    scale: str = "paper",
    seeds: int = 1,
    out: Path = Path("reproduction"),
    device: str = "cpu",
    options: dict | None = None,
    stream=sys.stdout,
) -> Path:
    """Run the named experiments ("all" for every one) and return the report's path."""
    if "all" in names:
        names = list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(
            f"experiment {unknown[0]!r} is unknown; choose from: all, {', '.join(EXPERIMENTS)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    report = out / "REPORT.md"
    started = time.perf_counter()
    for name in names:
        experiment = EXPERIMENTS[name]
        print(f"{experiment.key:>4} {name:<22} ...", end="", file=stream, flush=True)
        outcomes, seconds = run_experiment(
            experiment, scale=scale, seeds=seeds, out=out, device=device, options=options
        )
        update_report(report, experiment.key, report_section(experiment, outcomes, scale, seconds))
        verdicts = " ".join(
            f"{claim.key}:{seed_verdict([o.claims[i].holds for o in outcomes], short=True)}"
            for i, claim in enumerate(outcomes[0].claims)
        )
        print(f" {seconds:7.1f} s  {verdicts}", file=stream, flush=True)
    print(f"total {time.perf_counter() - started:.1f} s; report: {report}", file=stream)
    return report


def add_reproduce_parser(
    commands: argparse._SubParsersAction, *, help: str | None = None
) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand (with its one-line ``help``) to the ``chemistry`` parser."""
    parser = commands.add_parser("reproduce", help=help)
    parser.add_argument("experiments", nargs="+", help=f"all, or any of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--scale", choices=SCALES, default="paper")
    parser.add_argument("--seeds", type=int, default=1, help="repeat over this many seeds")
    parser.add_argument("--out", type=Path, default=Path("reproduction"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="experiment switch, e.g. --set dtype=float64 (repeatable)",
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
    )
    return 0
