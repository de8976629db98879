"""chemistry.load: a run directory as pandas DataFrames; and the package's edges."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import chemistry
from chemistry import cli
from chemistry.runs import RunFileError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "small"
    code = cli.main(
        ["run", "--population", "6", "--epochs", "4", "--seed", "2", "--attack", "0.5"]
        + ["--self-train", "2", "--no-figures", "--checkpoint-every", "0", "--out", str(out)]
    )
    assert code == 0
    return out


def test_metrics_frame_has_the_csv_rows_with_integer_counts(run_dir):
    run = chemistry.load(run_dir)
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(run.metrics) == len(rows) == 5
    assert list(run.metrics.columns) == list(rows[0])
    for column in ("epoch", "particles", "fixpoint", "other", "events_attack"):
        assert pd.api.types.is_integer_dtype(run.metrics[column]), column
        assert run.metrics[column].tolist() == [int(row[column]) for row in rows]
    assert "." not in rows[0]["particles"]  # written as 6, not 6.0
    assert (run.metrics["particles"] == 6).all()


def test_trajectories_frame_matches_the_npz_arrays(run_dir):
    run = chemistry.load(run_dir)
    frame = run.trajectories
    with np.load(run_dir / "trajectories.npz") as archive:
        epochs, uids, weights = (archive[f"ww/{part}"] for part in ("epochs", "uids", "weights"))
    assert len(frame) == len(epochs) == 5 * 6
    assert list(frame.columns) == ["architecture", "epoch", "particle"] + [
        f"w{i}" for i in range(14)
    ]
    ordered = frame.sort_values(["epoch", "particle"]).reset_index(drop=True)
    order = np.lexsort((uids, epochs))
    np.testing.assert_array_equal(ordered["particle"], uids[order])
    np.testing.assert_array_equal(ordered[[f"w{i}" for i in range(14)]], weights[order])


def test_events_frame_counts_agree_with_the_metrics(run_dir):
    run = chemistry.load(run_dir)
    events, metrics = run.events, run.metrics
    by_kind = events["kind"].value_counts()
    for kind in ("attack", "respawn", "death"):
        assert by_kind.get(kind, 0) == metrics[f"events_{kind}"].sum(), kind
    assert by_kind["attack"] > 0
    # the 6 first particles are born at epoch 0, before any metrics row counts events
    assert by_kind["birth"] == 6 + metrics["events_birth"].sum()
    attacks = events[events["kind"] == "attack"]
    assert attacks["actor"].notna().all() and attacks["target"].notna().all()
    assert set(events["epoch"]) <= set(range(5))


def test_particles_frame_and_genealogy(run_dir):
    run = chemistry.load(run_dir)
    particles = run.particles
    assert len(particles) == run.genealogy.graph.number_of_nodes()
    alive = particles[particles["death"].isna()]
    assert len(alive) == 6
    assert set(alive["node"]) == set(range(6))
    assert set(alive["status"]) <= {"DIVERGENT", "ZERO", "FIXPOINT", "SECOND_ORDER", "OTHER"}
    assert run.config.epochs == 4


def test_load_refuses_a_missing_directory_and_a_damaged_file(tmp_path, run_dir):
    with pytest.raises(RunFileError, match="does not exist"):
        chemistry.load(tmp_path / "nothing")
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in run_dir.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    (copy / "metrics.csv").write_text("epoch,particles\n0,6\n")
    with pytest.raises(RunFileError, match="metrics.csv"):
        _ = chemistry.load(copy).metrics


# ------------------------------------------------------------------------------ packaging


def test_version_is_declared_once_and_shown_by_the_command(capsys):
    assert chemistry.__version__.count(".") == 2
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"chemistry {chemistry.__version__}"
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_license_and_type_markers_ship_with_the_package():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    for package in ("particles", "interactions", "chemistry"):
        assert (ROOT / package / "py.typed").is_file()


def test_readme_links_stay_inside_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    for target in ("docs/science.md", "LICENSE"):
        assert target in readme and (ROOT / target).is_file()


def _python(code: str, *, path: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=path[0],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_foreign_particles_package_is_named_at_import(tmp_path):
    (tmp_path / "particles").mkdir()
    (tmp_path / "particles" / "__init__.py").write_text("SOMETHING_ELSE = 1\n")
    result = _python("import chemistry", path=[tmp_path, ROOT])
    assert result.returncode == 1
    assert "PackageClashError" in result.stderr
    assert "another project on the package index is also called 'particles'" in result.stderr
    assert "pip uninstall particles" in result.stderr


def test_an_installed_distribution_of_the_same_name_is_warned_about(tmp_path):
    info = tmp_path / "chemistry-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chemistry\nVersion: 9.9\n")
    code = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import chemistry
        print([str(w.message) for w in caught])
        """
    )
    result = _python(code, path=[ROOT, tmp_path])
    assert result.returncode == 0, result.stderr
    assert "distribution chemistry 9.9" in result.stdout
    assert "pip uninstall chemistry" in result.stdout
