"""Q1–Q4 (the Neural Network Quine experiments) at quick scale, through ``reproduce``."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
import torch

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


def test_q1_runs_both_budgets_and_judges_the_longer_one(run):
    rows = [row for row in _rows(run, "quine") if row["seed"] == "0"]
    budgets = {row["method"]: int(row["epochs"]) for row in rows if row.get("epochs")}
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamax"):
        assert budgets[name] == 10 and budgets[f"{name} (15 epochs)"] == 15
    by_method = {row["method"]: row for row in rows}
    assert by_method["adam"]["loss_start"] == by_method["adam (15 epochs)"]["loss_start"]
    assert by_method["adam"]["loss"] != by_method["adam (15 epochs)"]["loss"]
    assert "| QC1 (15 epochs) |" in (run / "REPORT.md").read_text(encoding="utf-8")


def test_reproducible_from_the_seed(run, tmp_path):
    reproduce(["quine"], scale="quick", out=tmp_path, stream=io.StringIO())
    assert _rows(run, "quine") == _rows(tmp_path, "quine")


def _by_seed(folder: Path, name: str, seed: int) -> list[dict[str, str]]:
    return [row for row in _rows(folder, name) if row["seed"] == str(seed)]


@pytest.mark.parametrize("name", NAMES)
def test_a_seed_in_the_batch_equals_the_seed_alone(run, tmp_path, name):
    """Seeds run as rows of one batch; seed 1 of the batched run (seeds 0–1) equals seed 1 alone."""
    reproduce([name], scale="quick", seeds=2, out=tmp_path / "two", stream=io.StringIO())
    alone = tmp_path / "alone"
    reproduce([name], scale="quick", seeds=1, first_seed=1, out=alone, stream=io.StringIO())
    together, single = _by_seed(tmp_path / "two", name, 1), _by_seed(alone, name, 1)
    assert len(together) == len(single) > 0
    for a, b in zip(together, single, strict=True):
        assert a.keys() == b.keys() and a["method"] == b["method"]
        for key in a:
            try:
                x, y = float(a[key]), float(b[key])
            except ValueError:
                assert a[key] == b[key], key
                continue
            assert math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-9) or (x != x and y != y), key
    # and the batch's two seeds differ (each row has its own projection, weights and data order)
    first = _by_seed(tmp_path / "two", name, 0)
    assert [r["rho"] for r in first] != [r["rho"] for r in together]


def test_quotients_and_margin_on_hand_built_numbers():
    from chemistry.experiments.quine import _final, accuracy_margin, quotient
    from particles.quine_training import QuineRun

    assert quotient(1.0, 4.0) == 0.25  # L_SR 4 → 1: lowered to a quarter
    assert quotient(6.0, 3.0) == 2.0
    assert math.isnan(quotient(1.0, 0.0))
    assert accuracy_margin(0.9, 0.85) == pytest.approx(5.0)  # 90 % vs 85 %: 5 points worse
    assert accuracy_margin(0.8, 0.9) == pytest.approx(-10.0)

    def record(loss, rho):
        return {
            "step": 0,
            "event": "epoch",
            "loss": torch.tensor([loss, 9.0], dtype=torch.float64),
            "rho": torch.tensor([rho, 9.0], dtype=torch.float64),
            "sum_sq": torch.tensor([loss / rho, 1.0]),
            "rms": torch.tensor([0.0, 0.0]),
            "relative_error": torch.tensor([0.0, 0.0]),
            "zero": torch.tensor([False, False]),
        }

    run = QuineRun(torch.zeros(2, 3), [record(8.0, 2.0), record(4.0, 0.5), record(2.0, 0.8)])
    final = _final(run, row=0)
    assert final["loss_quotient"] == 0.25 and final["rho_quotient"] == 0.4
    assert final["rho_min"] == 0.5


def test_aux_results_carry_the_margin(run):
    rows = {row["method"]: row for row in _rows(run, "quine-aux")}
    base = float(rows["classification only"]["accuracy"])
    for method, row in rows.items():
        if method == "classification only":
            assert row["accuracy_margin"] == ""
            continue
        assert float(row["accuracy_margin"]) == pytest.approx(100 * (base - float(row["accuracy"])))
        assert float(row["rho_quotient"]) == pytest.approx(
            float(row["rho"]) / float(row["rho_start"])
        )
