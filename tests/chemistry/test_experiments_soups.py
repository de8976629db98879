"""The soup experiments E11–E14 at quick scale: files, robust claims, reproducibility."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import torch

from chemistry import Soup
from chemistry.config import ConfigError, RunConfig
from chemistry.experiments.command import reproduce
from chemistry.experiments.soup_tools import (
    SWEEP_FOLDER,
    SweepPoint,
    TrackedAttack,
    _final_status_by_component,
    _status_by_component,
    _weights_at,
)
from chemistry.runs import RunDirectory
from interactions import SelfTrain
from particles import Status, Weightwise

NAMES = {"fig12": "E11", "fig13": "E12", "fig14": "E13", "learn-soup": "E14"}


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name / "results.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("soups")
    reproduce(list(NAMES), scale="quick", out=out, stream=io.StringIO())
    return out


def test_files_are_written(quick: Path) -> None:
    report = (quick / "REPORT.md").read_text(encoding="utf-8")
    for name, key in NAMES.items():
        assert f"## {key}: " in report
        assert (quick / name / "results.csv").exists()
        assert list((quick / name).glob("*.png")), name
    columns = {name: set(_rows(quick, name)[0]) for name in NAMES}
    statuses = {"DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER"}
    assert statuses <= columns["fig12"] and statuses <= columns["fig13"]
    assert statuses <= columns["fig14"] and statuses <= columns["learn-soup"]
    assert {"toward_fraction", "main_cluster_mae_from_zero", "jump_median_first_half"} <= columns[
        "fig12"
    ]
    assert {"type", "self_train_steps", "ZERO_std", "FIXPOINT_std"} <= columns["fig13"]
    assert {
        "zeta",
        "within_family_mae_end",
        "between_family_mae_end",
        "cross_family_attacks",
        "mae_to_parent_before_mean",
        "mae_to_parent_after_mean",
    } <= columns["fig14"]
    assert {"severity", "FIXPOINT_recount", "u_gap_median"} <= columns["learn-soup"]
    assert (quick / "fig12" / "fig12_soup_trajectories.png").exists()
    assert (quick / "fig13" / "fig13_soups_against_self_training.png").exists()
    assert (quick / "fig14" / "fig14_family_distances.png").exists()
    assert len(list((quick / "fig14").glob("fig14_clone_soup_zeta*.png"))) == 3


def test_e11_particles_train_toward_fixpoints_and_attacks_push_to_the_cluster(quick: Path) -> None:
    row, variant = _rows(quick, "fig12")
    assert (row["setting"], variant["setting"]) == ("glorot+keras", "torch init")
    particles = int(row["particles"])
    census = sum(int(row[s]) for s in ("DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER"))
    assert census == particles
    assert int(row["attacks_applied"]) <= int(row["attacks"])
    window = next(k for k in row if k.startswith("q_median_epoch") and k != "q_median_epoch0")
    # C17 "particles first train toward fixpoints": the median fixpoint error falls early.
    assert float(row[window]) < float(row["q_median_epoch0"]) / 3
    # C17 "most attacks push victims toward the main cluster".
    assert int(row["FIXPOINT"]) > 0
    assert float(row["toward_fraction"]) > 0.5


def test_e12_more_self_training_gives_more_weightwise_fixpoints(quick: Path) -> None:
    rows = [r for r in _rows(quick, "fig13") if r["setting"] == "glorot+keras"]
    for row in rows:
        total = sum(
            float(row[s]) for s in ("DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER")
        )
        assert total == pytest.approx(float(row["particles"]))
    ww = {int(r["self_train_steps"]): float(r["FIXPOINT"]) for r in rows if r["type"] == "ww"}
    agg = [float(r["FIXPOINT"]) for r in rows if r["type"] == "agg"]
    assert ww[0] == 0
    assert ww[max(ww)] > ww[0] + 3
    assert all(value == 0 for value in agg)


def test_e13_families_stay_apart(quick: Path) -> None:
    rows = _rows(quick, "fig14")
    assert [float(r["zeta"]) for r in rows] == [1e-2, 1e-3, 1e-4]
    for row in rows:
        zeta = float(row["zeta"])
        assert float(row["within_family_mae_end"]) < 0.1 * float(row["between_family_mae_end"])
        assert row["clones_nearest_own_parent"] == row["clones"]
        # Uniform noise ζ·U[-1, 1]: the expected MAE to the parent is ζ/2.
        assert float(row["mae_to_parent_before_mean"]) == pytest.approx(zeta / 2, rel=0.3)
        assert int(row["cross_family_attacks"]) <= int(row["attacks"])


def test_e14_learning_makes_fixpoints_and_the_recount_agrees(quick: Path) -> None:
    rows = _rows(quick, "learn-soup")
    assert {r["setting"] for r in rows} == {"glorot+keras", "torch init"}
    by_severity = {int(r["severity"]): r for r in rows if r["setting"] == "glorot+keras"}
    assert float(by_severity[0]["FIXPOINT"]) == 0
    assert float(by_severity[max(by_severity)]["FIXPOINT"]) > 1
    for row in rows:
        assert float(row["FIXPOINT_recount"]) == pytest.approx(float(row["FIXPOINT"]))
        assert float(row["ZERO_recount"]) == pytest.approx(float(row["ZERO"]))
    assert float(by_severity[max(by_severity)]["u_gap_median"]) < 0.01


def test_reproducible_from_the_seed(tmp_path: Path) -> None:
    small = {
        "fig12": {"epochs": 3, "torch_variant": False},
        "fig13": {"epochs": 3, "soups": 2, "step": 50, "torch_variant": False},
        "fig14": {"epochs": 3, "parent_steps": 50, "steps": 10},
        "learn-soup": {"epochs": 3, "soups": 2, "step": 50, "torch_variant": False},
    }
    # With one worker the sweeps of E12 and E14 run in a pool of one process per CPU; with two
    # workers the experiments run in a pool and their sweeps in-process: same numbers.
    for run, workers in (("a", 1), ("b", 2)):
        for name in NAMES:
            reproduce(
                [name],
                scale="quick",
                out=tmp_path / run,
                options=small[name],
                workers=workers,
                stream=io.StringIO(),
            )
    for name in NAMES:
        first = (tmp_path / "a" / name / "results.csv").read_text(encoding="utf-8")
        second = (tmp_path / "b" / name / "results.csv").read_text(encoding="utf-8")
        assert first == second, name


def test_e13_options_fidelity_and_parents(tmp_path: Path) -> None:
    options = {"fidelity": True, "include_parents": True, "parent_steps": 50, "steps": 20}
    reproduce(["fig14"], scale="quick", out=tmp_path, options=options, stream=io.StringIO())
    rows = _rows(tmp_path, "fig14")
    assert all(r["attack_mode"] == "single" and r["epochs"] == "1" for r in rows)
    assert all(r["parents_in_soup"] == "3" and r["parent_drift_mae_mean"] != "" for r in rows)


def test_initial_weights_and_tracked_attack() -> None:
    arch = Weightwise()
    attack = TrackedAttack(1.0)
    wanted = arch.init(6, generator=torch.Generator().manual_seed(5))
    soup = Soup([attack, SelfTrain(0)], population={arch: wanted}, rng=3)
    nodes = soup.occupied_nodes()
    uids = soup.uids_at(nodes)
    assert torch.equal(_weights_at(soup, nodes), wanted)
    epochs, recorded_uids, weights = soup.trajectories.arrays("ww")
    assert (epochs == 0).all() and sorted(recorded_uids.tolist()) == sorted(uids.tolist())
    order = [recorded_uids.tolist().index(u) for u in uids.tolist()]
    assert torch.allclose(torch.as_tensor(weights[order]).float(), wanted)
    soup.step()
    log = attack.log
    assert len(log) == 6 and any(log.applied)
    after = dict(zip(soup.uids_at(nodes).tolist(), _weights_at(soup, nodes), strict=True))
    position = dict(zip(uids.tolist(), range(6), strict=True))
    for victim, applied, before, result in zip(
        log.victims, log.applied, log.before, log.after, strict=True
    ):
        assert torch.equal(before, wanted[position[victim]])
        assert torch.equal(result, after[victim])
        if applied:
            assert not torch.equal(result, before)


@pytest.mark.parametrize(
    ("name", "folder"),
    [("fig13", "sweep_ww"), ("fig13", "sweep_agg_torch_init"), ("learn-soup", SWEEP_FOLDER)],
)
def test_sweep_points_are_run_directories_counted_per_clique(
    quick: Path, name: str, folder: str
) -> None:
    sweep = quick / name / folder
    with open(sweep / "results.csv", newline="", encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    rows = [r for r in _rows(quick, name) if r["point"].split("/")[0] == folder]
    for row in rows:
        row["point"] = row["point"].split("/")[1]
    assert [r["status"] for r in results] == ["ok"] * len(rows)
    assert [r["point"] for r in results] == [r["point"] for r in rows]
    assert (sweep / "summary.png").exists()
    # The per-clique counts read from a point's run directory are those of the same soup stepped
    # here, counted with the soup's own topology components.
    for row in rows[:: max(1, len(rows) - 1)]:
        run = RunDirectory(sweep / "points" / row["point"])
        config = run.config()
        assert config.record.checkpoint_every == 0 and not config.record.figures
        point = SweepPoint({}, run, config)
        counted = _final_status_by_component(point, run.genealogy().graph)
        soup = config.build()
        for _ in range(config.epochs):
            soup.step()
        assert torch.equal(counted, _status_by_component(soup))
        assert counted.shape[0] == int(row["soups"])
        mean = counted.double().mean(dim=0)
        assert [float(row[s.name]) for s in Status] == pytest.approx(mean.tolist())


def test_bad_options_and_failed_points_stop_the_experiment(tmp_path: Path, monkeypatch) -> None:
    small = {"soups": 2, "epochs": 1, "step": 100, "torch_variant": False}
    with pytest.raises(ValueError, match="attack_mode='sometimes'"):
        reproduce(
            ["fig13"],
            scale="quick",
            out=tmp_path / "bad",
            options=small | {"attack_mode": "sometimes"},
            stream=io.StringIO(),
        )

    def broken(self):
        raise ConfigError("no soup today")

    monkeypatch.setattr(RunConfig, "build", broken)
    with pytest.raises(RuntimeError, match="2 point.* failed.*no soup today"):
        reproduce(
            ["fig13"],
            scale="quick",
            out=tmp_path / "failed",
            options=small,
            sweep_workers=1,  # in this process, where the patch applies
            stream=io.StringIO(),
        )
