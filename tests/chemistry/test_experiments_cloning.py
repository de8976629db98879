"""E8 (Figs 7-9), E9 (Fig 10) and E10 (Fig 11) at quick scale, through ``reproduce``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from chemistry.experiments.command import reproduce

NAMES = ["fig7-9", "fig10", "fig11"]
TINY_MIXED = {"a_values": [0, 50], "particles": 2, "torch_variant": False}


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def _run(out: Path, names: list[str], options: dict | None = None) -> Path:
    reproduce(names, scale="quick", out=out, options=options, stream=io.StringIO())
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("quick"), NAMES)


def test_files_and_report_sections(quick: Path) -> None:
    expected = {
        "fig7-9": [
            "fig7_clone_trajectories.png",
            "fig7_clone_trajectories_zoom.png",
            "fig8_clone_distances.png",
            "fig9_fixpoint_loss.png",
            "fig8_clone_distances_float64.png",
            "fig9_fixpoint_loss_float64.png",
        ],
        "fig10": ["fig10_segment_clones.png"],
        "fig11": ["fig11_mixed.png", "fig11_mixed_split.png"],
    }
    for name, figures in expected.items():
        for figure in figures:
            assert (quick / name / figure).stat().st_size > 1000, figure
        assert _rows(quick / name / "particles.csv")
    columns = {
        "fig7-9": {
            "seed",
            "dtype",
            "role",
            "noise",
            "particles",
            "kept",
            "noise_lost",
            "approaching",
            "distancing",
            "stationary",
            "mae_pre_median",
            "mae_post_median",
            "mse_pre_median",
            "mim_post_median",
            "delta_median",
            "l_median",
            "q_median",
            "drift_median",
            "DIVERGENT",
            "ZERO",
            "FIXPOINT",
            "SECOND_ORDER",
            "OTHER",
        },
        "fig10": {
            "pair",
            "parent_distance",
            "far",
            "dropped",
            "first_half_approach_p1",
            "second_half_toward_p2",
            "FIXPOINT",
            "DIVERGENT",
        },
        "fig11": {
            "setting",
            "type",
            "A",
            "share_zero_or_fixpoint",
            "share_zero",
            "share_fixpoint",
            "rounds_mean",
            "ZERO",
            "FIXPOINT",
            "DIVERGENT",
        },
    }
    for name, wanted in columns.items():
        header = set(_rows(quick / name / "results.csv")[0])
        assert wanted <= header, wanted - header
    report = (quick / "REPORT.md").read_text(encoding="utf-8")
    for section, keys in {
        "## E8: ": ["| C12 |", "| C13 |", "| C14 |", "| float64 |"],
        "## E9: ": ["| C15 |"],
        "## E10: ": ["| C16 |", "| glorot+keras |", "| torch init |"],
    }.items():
        assert section in report
        part = report.split(section)[1].split("\n## ")[0]
        for key in keys:
            assert key in part, (section, key)


def test_cloning_numbers(quick: Path) -> None:
    rows = _rows(quick / "fig7-9" / "results.csv")
    clones = [r for r in rows if r["role"] == "clones"]
    parents = {r["dtype"]: r for r in rows if r["role"] == "parents"}
    assert {r["dtype"] for r in clones} == {"float32", "float64"}
    for row in clones:
        # C12: every child is an ε-fixpoint again after 2500 more steps.
        assert row["FIXPOINT"] == row["particles"]
        # C14: children reach the parents' level of ℓ whatever the noise.
        level = float(parents[row["dtype"]]["l_median"])
        assert float(row["l_median"]) <= 10 * level
        if float(row["noise"]) >= 1e-2:  # high noise: clones move back toward the parent
            assert int(row["approaching"]) >= 0.8 * int(row["particles"])
    # O1: float32 loses the lowest noise on rounding, float64 never does; in float64 the
    # fixpoint quality keeps improving far below the float32 floor of about 1e-7.
    lowest = {r["dtype"]: r for r in clones if float(r["noise"]) == 1e-11}
    assert int(lowest["float32"]["noise_lost"]) >= int(lowest["float32"]["particles"]) / 2
    assert all(int(r["noise_lost"]) == 0 for r in clones if r["dtype"] == "float64")
    assert float(parents["float64"]["l_median"]) < 1e-9 < float(parents["float32"]["l_median"])


def test_segment_numbers(quick: Path) -> None:
    rows = _rows(quick / "fig10" / "results.csv")
    far = [r for r in rows if r["far"] == "True"]
    assert far and all(r["dropped"] == "0" for r in rows)
    # C15, far parents: the first half approaches p1, the second half moves toward p2.
    assert sum(float(r["first_half_approach_p1"]) for r in far) / len(far) >= 0.75
    assert sum(float(r["second_half_toward_p2"]) for r in far) / len(far) >= 0.7


def test_mixed_numbers(quick: Path) -> None:
    rows = _rows(quick / "fig11" / "results.csv")
    assert {r["setting"] for r in rows} == {"glorot+keras", "torch init"}
    variant = [r for r in rows if r["setting"] == "torch init"]
    assert {r["type"] for r in variant} == {"ww", "agg", "rnn"}
    # C16: aggregating particles end ZERO whatever A (shown here on the torch-init variant).
    assert all(float(r["share_zero"]) >= 0.9 for r in variant if r["type"] == "agg")
    # Self-application alone (A = 0) never yields a non-zero fixpoint (as in C1).
    assert all(float(r["share_fixpoint"]) == 0 for r in rows if r["A"] == "0")
    for row in rows:
        assert int(row["particles"]) == sum(
            int(row[s]) for s in ("DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER")
        )


def test_reproducible_from_the_seed(quick: Path, tmp_path: Path) -> None:
    again = _run(tmp_path / "again", ["fig7-9", "fig10"])
    for name in ("fig7-9", "fig10"):
        for file in ("results.csv", "particles.csv"):
            assert (again / name / file).read_text() == (quick / name / file).read_text()
    first = _run(tmp_path / "tiny1", ["fig11"], TINY_MIXED)
    second = _run(tmp_path / "tiny2", ["fig11"], TINY_MIXED)
    for file in ("results.csv", "particles.csv"):
        assert (first / "fig11" / file).read_text() == (second / "fig11" / file).read_text()
    assert {r["A"] for r in _rows(first / "fig11" / "results.csv")} == {"0", "50"}
