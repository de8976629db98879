"""The examples and the soup benchmark run end to end at small sizes (each in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *arguments: str, cwd: Path) -> str:
    """Run a repository script with the test interpreter from ``cwd``; return its stdout."""
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_soup_basic_prints_the_census_and_writes_only_into_out(tmp_path):
    out = tmp_path / "out"
    stdout = run("examples/soup_basic.py", "--epochs", "3", "--out", str(out), cwd=tmp_path)
    assert "final census:" in stdout and "FIXPOINT" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["genealogy.json", "metrics.csv"]
    assert len(out.joinpath("metrics.csv").read_text().splitlines()) == 1 + 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_custom_rule_events_reach_the_genealogy(tmp_path):
    stdout = run(
        "examples/custom_rule.py", "--epochs", "6", "--particles", "16", "--seed", "1", cwd=tmp_path
    )
    assert "'average'" in stdout and "'mutate'" in stdout
    assert list(tmp_path.iterdir()) == []


def test_lineage_analysis_exports_and_reads_back(tmp_path):
    out = tmp_path / "lineage"
    stdout = run(
        "examples/lineage_analysis.py",
        "--epochs",
        "4",
        "--particles",
        "10",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    for answer in ("longest lineage", "longest chain of influence", "alive at the end"):
        assert answer in stdout
    assert "acyclic: True" in stdout and "a forest: True" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["phylogeny.csv"]
    rows = out.joinpath("phylogeny.csv").read_text().splitlines()
    assert rows[0].startswith("id,ancestor_list,origin_time,destruction_time") and len(rows) > 10


@pytest.mark.slow
def test_soup_benchmark_quick_run(tmp_path):
    stdout = run("benchmarks/soup.py", "--quick", cwd=tmp_path)
    for part in ("[main]", "epochs/s", "outside-kernel share", "[long]", "[huge]", "peak RSS"):
        assert part in stdout
