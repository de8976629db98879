"""How long the ``chemistry`` command takes to start: ``--help``, ``--version``, argument errors.

Each command runs in a fresh interpreter (as a user's shell runs it) ``--repeat`` times; the
table shows the median and the fastest wall time. ``--imports`` lists the slowest imports of
``chemistry --help`` (``python -X importtime``).

With ``--device D`` one more row times a whole small run on that device (``chemistry run``,
one epoch of 4 particles, figures off): the start-up of the device's runtime included.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeat 10 --imports
    python benchmarks/startup.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "chemistry --help": ["--help"],
    "chemistry --version": ["--version"],
    "chemistry (no command: usage error)": [],
    "chemistry run --help": ["run", "--help"],
    "chemistry run --population abc (argument error)": ["run", "--population", "abc"],
    "chemistry info (missing argument)": ["info"],
}


def _environment() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def time_command(arguments: list[str], repeat: int) -> tuple[float, float, int]:
    """(median, fastest) wall seconds of ``python -m chemistry.cli ARGUMENTS``; its exit code."""
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "chemistry.cli", *arguments],
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        times.append(time.perf_counter() - start)
        code = result.returncode
    return statistics.median(times), min(times), code


def slowest_imports(count: int) -> list[tuple[float, str]]:
    """The ``count`` imports of ``chemistry --help`` with the largest cumulative time (s)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "chemistry.cli", "--help"],
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1e6, parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--imports", action="store_true", help="list the slowest imports")
    parser.add_argument("--device", help="also time a small run on this torch device")
    arguments = parser.parse_args(argv)
    commands = dict(COMMANDS)
    scratch = Path(tempfile.mkdtemp(prefix="startup-"))
    if arguments.device:
        commands[f"chemistry run (1 epoch, 4 particles, {arguments.device})"] = [
            "run", "--epochs", "1", "--population", "4", "--no-figures", "--overwrite",
            "--device", arguments.device, "--out", str(scratch / "run"),
        ]  # fmt: skip
    baseline, _, _ = time_command_python(arguments.repeat)
    print(f"python -c pass (interpreter start): {baseline:.3f} s median")
    print(f"{'command':50s} {'median':>8s} {'fastest':>8s}  exit")
    try:
        for label, command in commands.items():
            median, fastest, code = time_command(command, arguments.repeat)
            print(f"{label:50s} {median:7.3f}s {fastest:7.3f}s  {code}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if arguments.imports:
        print("\nslowest imports of `chemistry --help` (cumulative):")
        for seconds, name in slowest_imports(15):
            print(f"  {seconds:7.3f} s  {name}")
    return 0


def time_command_python(repeat: int) -> tuple[float, float, int]:
    """The interpreter's own start-up, for comparison."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), 0


if __name__ == "__main__":
    sys.exit(main())
