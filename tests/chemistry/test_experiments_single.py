"""E1 and E3–E7 (single-particle experiments) at quick scale, through ``reproduce``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from chemistry.experiments.command import reproduce

NAMES = ["fig1", "density", "fig3", "fig4", "fig5", "fig6"]
KEYS = {"fig1": "E1", "density": "E3", "fig3": "E4", "fig4": "E5", "fig5": "E6", "fig6": "E7"}
FIGURES = {
    "fig1": [
        "fig1_agg_self_application_trajectories.png",
        "fig1_ww_self_application_trajectories.png",
    ],
    "density": [],
    "fig3": ["fig3_identity_robustness.png"],
    "fig4": ["fig4_weightwise_self_training.png"],
    "fig5": ["fig5_self_training_census.png"],
    "fig6": ["fig6_time_as_fixpoint_vs_identity.png"],
}
STATUSES = ["DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER"]
MOMENTUM = {"momentum": 0.9}  # the original Fig 6 script: trained fixpoints exist


def _rows(folder: Path, name: str, table: str = "results.csv") -> list[dict[str, str]]:
    text = (folder / name / table).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    default = tmp_path_factory.mktemp("default")
    reproduce(NAMES, scale="quick", out=default, stream=io.StringIO())
    momentum = tmp_path_factory.mktemp("momentum")
    reproduce(["fig6"], scale="quick", out=momentum, options=MOMENTUM, stream=io.StringIO())
    return {"default": default, "momentum": momentum}


def test_files_written(runs):
    folder = runs["default"]
    report = (folder / "REPORT.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"## {KEYS[name]}: " in report
        rows = _rows(folder, name)
        assert rows and all(status in rows[0] for status in STATUSES)
        assert rows[0]["seed"] == "0"
        for figure in FIGURES[name]:
            path = folder / name / figure
            assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    assert (folder / "fig1" / "particles.csv").exists()
    assert (folder / "fig3" / "trials.csv").exists()
    assert (folder / "fig4" / "pairs.csv").exists()
    assert {"noise", "T_median", "F_median", "censored", "reentries"} <= set(
        _rows(folder, "fig3")[0]
    )
    trained = runs["momentum"] / "fig6"
    assert (trained / "fig6_trained_fixpoint_robustness.png").exists()
    assert (trained / "trials_trained.csv").exists()


def test_c3_self_application_reaches_zero_fast(runs):
    for row in _rows(runs["default"], "fig1"):
        # glorot init (the Keras setting): a few particles diverge instead of reaching ZERO
        assert int(row["ZERO"]) + int(row["DIVERGENT"]) == int(row["particles"])
        assert int(row["ZERO"]) > int(row["particles"]) // 2
        assert float(row["zero_at_median"]) <= 5


def test_c4_fresh_particles_are_not_fixpoints(runs):
    rows = _rows(runs["default"], "density")
    assert [row["type"] for row in rows] == ["ww", "agg", "rnn", "fft"]
    for row in rows:
        assert int(row["particles"]) == 5000
        assert int(row["FIXPOINT"]) == int(row["ZERO"]) == int(row["SECOND_ORDER"]) == 0
        assert float(row["q_min"]) > 1e-2


def test_c5_c6_noisy_identity_verges_later_with_less_noise(runs):
    rows = _rows(runs["default"], "fig3")
    assert len(rows) == 10
    assert all(int(row["censored"]) == 0 for row in rows)
    loud, quiet = rows[0], rows[-1]
    assert float(loud["noise"]) == 1.0 and float(quiet["noise"]) == pytest.approx(1e-9)
    assert float(quiet["T_median"]) > float(loud["T_median"])
    assert float(quiet["F_median"]) > float(loud["F_median"]) == 0
    assert int(loud["DIVERGENT"]) + int(loud["ZERO"]) == int(loud["trials"])


def test_e5_end_points_differ(runs):
    trajectory, continued = _rows(runs["default"], "fig4")
    assert trajectory["stage"] == "trajectory" and int(trajectory["steps"]) == 100
    assert float(trajectory["pairwise_mae_min"]) > 1e-3
    assert int(continued["FIXPOINT"]) >= 2
    assert float(continued["pairwise_mae_min"]) > 1e-3
    assert int(trajectory["SECOND_ORDER"]) == int(continued["SECOND_ORDER"]) == 0


def test_c9_c20_self_training_census(runs):
    every = _rows(runs["default"], "fig5")
    assert {row["setting"] for row in every} == {"glorot+keras", "torch init"}
    rows = {row["type"]: row for row in every if row["setting"] == "glorot+keras"}
    assert int(rows["ww"]["FIXPOINT"]) > int(rows["ww"]["particles"]) // 2
    assert int(rows["agg"]["FIXPOINT"]) == 0
    assert sum(int(row["SECOND_ORDER"]) for row in rows.values()) == 0


def test_c10_trained_fixpoints_lose_the_property_sooner_than_identity(runs):
    rows = _rows(runs["momentum"], "fig6")
    training = rows[0]
    assert training["part"] == "training" and int(training["kept"]) > 0
    by = {(row["part"], float(row["noise"])): row for row in rows[1:]}
    quiet = 1e-9
    assert float(by["trained", quiet]["F_mean"]) < float(by["identity", quiet]["F_mean"])
    assert int(by["trained", quiet]["trials"]) == int(training["kept"])


def test_reproducible_from_seed(runs, tmp_path):
    again = tmp_path / "again"
    names = ["fig1", "density", "fig3", "fig4"]
    reproduce(names, scale="quick", out=again, stream=io.StringIO())
    reproduce(
        ["fig6"], scale="quick", out=tmp_path / "momentum", options=MOMENTUM, stream=io.StringIO()
    )
    for name in names:
        assert _rows(again, name) == _rows(runs["default"], name)
    assert _rows(again, "fig3", "trials.csv") == _rows(runs["default"], "fig3", "trials.csv")
    assert _rows(again, "fig4", "particles.csv") == _rows(runs["default"], "fig4", "particles.csv")
    assert _rows(tmp_path / "momentum", "fig6") == _rows(runs["momentum"], "fig6")
