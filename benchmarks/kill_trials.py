"""SIGKILL a run at random moments (the write phase included), resume it, compare with a solo run.

    PYTHONPATH=. python benchmarks/kill_trials.py [--trials 20] [--seed 0] [--keep DIR] [--device D]

A solo run is timed first, and its final write phase (data files, figures, manifest: from the
last checkpoint to the end). Each trial starts the same run and kills it with SIGKILL: odd trials
after a random delay over the whole run, even ones at a random moment of the write phase (after
the last checkpoint appears). Then it brings the run to completion as a user would:
``chemistry resume`` (or, when the kill came before the first checkpoint, ``chemistry run
--overwrite``). A trial passes when the directory then holds exactly the solo run's files, each
byte-identical (the lock file ``.lock`` aside), and no stray (temporary) file. Prints one line per
trial and ``N/N byte-identical, no stray files``; exit code 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SOUP = [
    "--epochs", "40", "--population", "16", "--self-train", "20", "--learn", "0.3",
    "--seed", "11", "--checkpoint-every", "4",
]  # fmt: skip
LOCK_NAME = ".lock"


def chemistry(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chemistry.cli", *arguments],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def complete(run: Path) -> tuple[int, str]:
    """Bring a killed run to completion as a user would; returns (exit code, what was done)."""
    resumed = chemistry("resume", str(run))
    _, err = resumed.communicate()
    if resumed.returncode == 0:
        return 0, "resumed"
    if "no checkpoint" in err or "config.json is missing" in err or "does not exist" in err:
        again = chemistry("run", "--out", str(run), "--overwrite", *SOUP)
        _, err = again.communicate()
        why = "no checkpoint yet" if "no checkpoint" in err else "killed before its first files"
        return again.returncode, f"ran again ({why})" + (
            f": {last_line(err)}" if again.returncode else ""
        )
    return resumed.returncode, f"resume failed: {last_line(err)}"


def wait_for_last_checkpoint(run: Path, process: subprocess.Popen) -> float:
    """Seconds from now until the run's last checkpoint is in its index (or the run ends)."""
    started = time.perf_counter()
    last = f'"epoch": {SOUP[SOUP.index("--epochs") + 1]},'
    index = run / "checkpoints" / "index.json"
    while process.poll() is None:
        try:
            if last in index.read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    return time.perf_counter() - started


def trial(number: int, delay: float, solo: dict[str, bytes], scratch: Path, late: bool) -> bool:
    run = scratch / f"trial-{number}"
    process = chemistry("run", "--out", str(run), *SOUP)
    waited = wait_for_last_checkpoint(run, process) if late else 0.0
    time.sleep(delay)
    delay += waited
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    stray_after_kill = sorted(
        str(p.relative_to(run)) for p in run.rglob(".*") if p.name != LOCK_NAME
    )
    code, done = complete(run)
    result = files(run) if run.exists() else {}
    stray = sorted(set(result) - set(solo))
    missing = sorted(set(solo) - set(result))
    differing = sorted(name for name in set(solo) & set(result) if solo[name] != result[name])
    ok = code == 0 and not stray and not missing and not differing
    moment = "after it finished" if finished else f"at {delay:5.2f} s"
    if late and not finished:
        moment += f" ({delay - waited:.2f} s into the write phase)"
    print(
        f"trial {number:2d}: killed {moment}, {len(stray_after_kill)} temporary file(s) left, "
        f"{done}: "
        + (
            "byte-identical, no stray files"
            if ok
            else f"FAILED (exit {code}, stray {stray}, missing {missing}, differing {differing})"
        ),
        flush=True,
    )
    shutil.rmtree(run, ignore_errors=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--keep", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--device", help="torch device of the runs (default: the run's own)")
    arguments = parser.parse_args(argv)
    if arguments.device:
        SOUP.extend(["--device", arguments.device])
    scratch = arguments.keep or Path(tempfile.mkdtemp(prefix="kill-trials-"))
    scratch.mkdir(parents=True, exist_ok=True)
    solo_run = scratch / "solo"
    started = time.perf_counter()
    process = chemistry("run", "--out", str(solo_run), *SOUP)
    before_writing = wait_for_last_checkpoint(solo_run, process)
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    writing = seconds - before_writing
    if process.returncode != 0:
        print(f"the solo run failed: {err}", file=sys.stderr)
        return 1
    solo = files(solo_run)
    print(f"solo run: {seconds:.1f} s ({writing:.2f} s write phase), {len(solo)} files", flush=True)
    moments = random.Random(arguments.seed)
    passed = 0
    for number in range(1, arguments.trials + 1):
        late = number % 2 == 0
        delay = moments.uniform(0.0, writing if late else seconds)
        passed += trial(number, delay, solo, scratch, late)
    print(f"{passed}/{arguments.trials} byte-identical, no stray files")
    if arguments.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if passed == arguments.trials else 1


if __name__ == "__main__":
    sys.exit(main())
