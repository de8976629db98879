"""`chemistry --help`, `--version` and argument errors answer without importing torch, Mesa,
matplotlib or Solara (their speed is measured by benchmarks/startup.py, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mesa", "matplotlib", "solara", "pandas", "networkx")


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        ([], 2),
        (["no-such-command"], 2),
        (["--threads", "2", "info"], 2),
        (["lineage", "--help"], 0),
    ],
)
def test_quick_answers_import_nothing_heavy(arguments, code):
    script = (
        "import json, sys\n"
        "from chemistry import cli\n"
        f"code = cli.main({arguments!r})\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    returned, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert returned == code, result.stderr
    assert heavy == [], f"chemistry {' '.join(arguments)} imported {heavy}"
