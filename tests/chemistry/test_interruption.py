"""A run killed mid-way (SIGKILL or SIGINT) and resumed ends bit for bit like one left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
# Long enough to be interrupted after a few checkpoints (several seconds), short enough for CI.
SOUP = [
    "--epochs", "80", "--population", "20", "--self-train", "30", "--learn", "0.3",
    "--seed", "5", "--checkpoint-every", "3",
]  # fmt: skip
RESULT_FILES = [
    "config.toml",
    "metrics.csv",
    "trajectories.npz",
    "genealogy.json",
    "genealogy.graphml",
]


def _default_sigint() -> None:
    """A shell's background job inherits SIGINT ignored; the run under test must not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def chemistry(*arguments: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chemistry.cli", *arguments],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        preexec_fn=_default_sigint,
        **kwargs,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def latest_checkpoint(run: Path) -> int:
    index = run / "checkpoints" / "index.json"
    try:
        entries = json.loads(index.read_text())["checkpoints"]
    except (OSError, ValueError, KeyError):
        return -1
    return max((entry["epoch"] for entry in entries), default=-1)


def interrupt_after_checkpoint(run: Path, how: signal.Signals, epoch: int) -> tuple[int, str]:
    """Start the soup, wait for a checkpoint at ``epoch`` or later, then send ``how``."""
    process = chemistry("run", "--out", str(run), *SOUP)
    deadline = time.monotonic() + 120
    while latest_checkpoint(run) < epoch:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(how)
    code, _, err = finish(process)
    return code, err


@pytest.fixture(scope="module")
def left_alone(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("alone") / "run"
    code, _, err = finish(chemistry("run", "--out", str(run), *SOUP))
    assert code == 0, err
    return run


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_resumes_to_identical_results(how, left_alone, tmp_path):
    run = tmp_path / "run"
    code, err = interrupt_after_checkpoint(run, how, epoch=6)
    if how == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, err
        assert "resume" in err and "Traceback" not in err
    assert not (run / "manifest.json").exists(), "the interrupted run must not look complete"
    stopped_at = latest_checkpoint(run)
    assert 6 <= stopped_at < 80

    code, out, err = finish(chemistry("resume", str(run)))
    assert code == 0, err
    for name in RESULT_FILES:
        assert (run / name).read_bytes() == (left_alone / name).read_bytes(), name


@pytest.mark.slow
def test_a_live_run_has_one_writer(left_alone, tmp_path):
    """--overwrite, a second run and a resume of a live (paused) run exit 2 naming its pid, info
    calls it running, and the live run ends byte for byte like a solo run."""
    run = tmp_path / "run"
    live = chemistry("run", "--out", str(run), *SOUP)
    deadline = time.monotonic() + 120
    while latest_checkpoint(run) < 3:
        assert live.poll() is None, "the run ended before it could be paused"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    live.send_signal(signal.SIGSTOP)  # alive and holding its lock while the others try
    try:
        attempts = [
            ("run", "--out", str(run), "--overwrite", *SOUP[:-4], "--seed", "2"),
            ("run", "--out", str(run), *SOUP),
            ("resume", str(run)),
        ]
        for attempt in attempts:
            code, out, err = finish(chemistry(*attempt))
            assert code == 2, (attempt, err)
            assert f"process {live.pid}" in err and "Traceback" not in err, err
        code, out, err = finish(chemistry("info", str(run)))
        assert code == 0, err
        assert f"running (process {live.pid}" in out
    finally:
        live.send_signal(signal.SIGCONT)
    code, _, err = finish(live)
    assert code == 0, err
    for name in RESULT_FILES:
        assert (run / name).read_bytes() == (left_alone / name).read_bytes(), name
    code, out, _ = finish(chemistry("info", str(run)))
    assert code == 0 and "finished" in out and "running" not in out


KILL_DURING_FIGURE = """
import os, signal, sys
import chemistry.plots
from chemistry.cli import main

original = chemistry.plots.write_atomically

def write_then_die(path, write):
    if path.name != "lineage.png":
        return original(path, write)

    def half(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half a figure")
        os.kill(os.getpid(), signal.SIGKILL)

    return original(path, half)

chemistry.plots.write_atomically = write_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_resume_after_a_kill_during_a_figure_write_leaves_no_temporary(left_alone, tmp_path):
    run = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_FIGURE, "run", "--out", str(run), *SOUP],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL
    stale = [p.name for p in (run / "figures").iterdir() if p.name.startswith(".lineage.png.")]
    assert len(stale) == 1, "the kill should leave the figure's temporary file"
    code, _, err = finish(chemistry("resume", str(run)))
    assert code == 0, err
    hidden = [p for p in run.rglob(".*") if p.name != ".lock"]
    assert hidden == []
    for name in [*RESULT_FILES, "figures/lineage.png", "figures/counts.png"]:
        assert (run / name).read_bytes() == (left_alone / name).read_bytes(), name
