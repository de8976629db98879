"""The ``chemistry`` command line: run a soup, show its progress, write its run directory."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from chemistry.runs import DTYPES, TOPOLOGIES, SoupConfig, write_run
from particles import ARCHITECTURES, PRESETS

EXIT_BAD_INPUT = 2


class ProgressBar:
    """A one-line progress bar on stderr with live class counts (plain lines when not a TTY)."""

    def __init__(self, total: int, stream=sys.stderr, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.width = width
        self.started = time.perf_counter()
        self.interactive = stream.isatty()
        self._last_tenth = -1

    def update(self, done: int, counts: dict[str, int]) -> None:
        """Show ``done`` of ``total`` epochs and the class counts."""
        filled = int(self.width * done / self.total)
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        shown = " ".join(f"{name}={count}" for name, count in counts.items() if count)
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} epochs "
            f"{rate:5.1f}/s  {shown}"
        )
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
            self.stream.flush()
        elif (tenth := 10 * done // self.total) != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SoupConfig()
    parser.add_argument("--out", type=Path, default=Path("runs/soup"), help="run directory")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing run directory"
    )
    parser.add_argument("--population", type=int, default=defaults.population)
    parser.add_argument(
        "--architecture", choices=sorted(ARCHITECTURES), default=defaults.architecture
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--attack", type=float, default=defaults.attack, help="attack chance")
    parser.add_argument("--learn", type=float, default=defaults.learn, help="learn chance")
    parser.add_argument("--severity", type=int, default=defaults.severity, help="learn steps")
    parser.add_argument(
        "--self-train", type=int, default=defaults.self_train, help="self-train steps per epoch"
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset)
    parser.add_argument(
        "--no-respawn", dest="respawn", action="store_false", help="keep zero/divergent particles"
    )
    parser.add_argument("--topology", choices=TOPOLOGIES, default=defaults.topology)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=defaults.dtype)
    parser.add_argument(
        "--record-every", type=int, default=defaults.record_every,
        help="record weights every k epochs (0: never)",
    )


def run_command(arguments: argparse.Namespace) -> int:
    """Run a soup from command-line settings, print its final counts, write its run directory."""
    config = SoupConfig(
        **{name: getattr(arguments, name) for name in SoupConfig.field_names()}
    )
    out: Path = arguments.out
    if out.exists() and any(out.iterdir()):
        if not arguments.overwrite:
            raise ValueError(
                f"run directory {out} already exists; pass --overwrite to replace it "
                "or choose another --out"
            )
    soup = config.build()
    if out.exists():
        shutil.rmtree(out)
    progress = ProgressBar(config.epochs)
    for done in range(1, config.epochs + 1):
        soup.step()
        progress.update(done, soup.status_counts())
    progress.close()
    written = write_run(soup, config, out)
    counts = soup.status_counts()
    print(f"soup of {len(soup)} {config.architecture} particles after {soup.epoch} epochs:")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"  {name.ljust(width)}  {count:6d}")
    print(f"self-replicators (non-zero fixpoints): {counts['FIXPOINT']}")
    print(f"run directory: {out}")
    for key in ("metrics", "genealogy_json", "counts_figure", "lineage_figure"):
        print(f"  {written[key]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chemistry`` command."""
    parser = argparse.ArgumentParser(
        prog="chemistry",
        description="An artificial chemistry of self-replicating neural networks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a soup and write its run directory")
    _add_run_arguments(run)
    run.set_defaults(handler=run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chemistry`` console script; returns the exit code."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ValueError as error:
        print(f"chemistry {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\nchemistry {arguments.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
