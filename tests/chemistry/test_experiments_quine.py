"""Q1–Q4 (the Neural Network Quine experiments) at quick scale, through ``reproduce``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from chemistry.experiments import EXPERIMENTS
from chemistry.experiments.command import reproduce

NAMES = ["quine", "quine-aux"]


def _rows(folder: Path, name: str, table: str = "results.csv") -> list[dict[str, str]]:
    text = (folder / name / table).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("quine")
    reproduce(NAMES, scale="quick", out=folder, stream=io.StringIO())
    return folder


def test_registered():
    assert EXPERIMENTS["quine"].key == "Q1-Q3"
    assert EXPERIMENTS["quine-aux"].key == "Q4"


def test_files_written(run):
    report = (run / "REPORT.md").read_text(encoding="utf-8")
    assert "## Q1-Q3: " in report and "## Q4: " in report
    for claim in ("QC1", "QC2", "QC3", "QC4"):
        assert f"| {claim} |" in report
    figures = {
        "quine": ["q1_optimisers.png", "q2_hill_climbing.png", "q3_regeneration.png"],
        "quine-aux": ["q4_accuracy_vs_rho.png", "q4_replication.png"],
    }
    for name, files in figures.items():
        for figure in files:
            path = run / name / figure
            assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
        rows = _rows(run, name)
        assert rows and {"seed", "method", "loss", "rho", "zero"} <= set(rows[0])
        assert _rows(run, name, "history.csv")


def test_robust_claims(run):
    rows = {row["method"]: row for row in _rows(run, "quine")}
    assert set(rows) >= {"sgd", "adam", "adamax", "hill_climb", "sgd+hill_climb"}
    regeneration = rows["regeneration (T=0)"]
    # regeneration alone: the zero quine, or at least no replication (ρ ≥ 1 up to rounding)
    assert regeneration["zero"] == "True" or float(regeneration["rho"]) >= 0.9
    assert float(regeneration["sum_sq"]) < 1e-3 * float(regeneration["sum_sq_start"])
    for method in ("sgd", "adam", "adamax"):
        assert float(rows[method]["loss"]) < float(rows[method]["loss_start"])
    aux = {row["method"]: row for row in _rows(run, "quine-aux")}
    assert float(aux["classification only"]["accuracy"]) > 0.3  # chance is 0.1
    report = (run / "REPORT.md").read_text(encoding="utf-8")
    assert "| QC2 |" in report and "| yes |" in report.split("| QC2 |")[1].split("\n")[0]


def test_reproducible_from_the_seed(run, tmp_path):
    reproduce(["quine"], scale="quick", out=tmp_path, stream=io.StringIO())
    assert _rows(run, "quine") == _rows(tmp_path, "quine")
