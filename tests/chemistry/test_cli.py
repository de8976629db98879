"""Tests of the ``chemistry`` command line: run, resume, plot, lineage, info and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from chemistry.cli import main
from chemistry.config import RunConfig, load_config
from chemistry.runs import RunDirectory

REPOSITORY = Path(__file__).resolve().parents[2]
# A tiny, fast soup: 4 particles, 3 epochs, 2 self-training steps.
TINY = ["--population", "4", "--epochs", "3", "--self-train", "2"]
DATA_FILES = ("metrics.csv", "trajectories.npz", "genealogy.graphml", "genealogy.json")

RULE_TABLES = {
    "attack": 'type = "attack"\nchance = 0.5\nmode = "single"',
    "learn": 'type = "learn"\nchance = 0.5\nseverity = 2\nlr = 0.02',
    "self_train": 'type = "self_train"\nsteps = 2\nmode = "full_batch"',
    "self_apply": 'type = "self_apply"\ntimes = 1',
    "respawn": 'type = "respawn"\nzero = true\ndivergent = true',
    "clone": 'type = "clone"\nchance = 1.0\nscale = 0.01\ngrow = true',
    "melt": 'type = "melt"\nchance = 1.0',
}


def write_config(path: Path, rules: str = RULE_TABLES["attack"], extra: str = "") -> Path:
    path.write_text(
        "seed = 1\nepochs = 2\n"
        + extra
        + '[record]\nfigures = false\ncheckpoint_every = 1\n[topology]\nkind = "ring"\nnodes = 8\n'
        + '[[population]]\narchitecture = "ww"\ncount = 6\n[[rules]]\n'
        + rules
        + "\n",
        encoding="utf-8",
    )
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def bad_input(capsys, argv: list[str], *fragments: str) -> str:
    """Run ``argv``, expect exit code 2 and a one-paragraph message with ``fragments``."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    message = captured.err.strip()
    assert message.startswith(f"chemistry {argv[0]}: error: "), message
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run directory with figures and checkpoints (do not modify: copy it)."""
    out = tmp_path_factory.mktemp("runs") / "finished"
    code = main(["run", "--out", str(out), "--checkpoint-every", "2", "--learn", "0.5", *TINY])
    assert code == 0
    return out


@pytest.fixture
def copy_of(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "copy"))


# ---------------------------------------------------------------------- run


def test_run_writes_the_run_directory(finished, capsys):
    for name in (
        "config.toml",
        "config.json",
        "manifest.json",
        *DATA_FILES,
        "figures/counts.png",
        "figures/lineage.png",
        "figures/trajectories_ww.png",
        "checkpoints/index.json",
    ):
        assert (finished / name).is_file(), name
    config = load_config(finished / "config.toml")
    assert (config.epochs, config.population[0].count) == (3, 4)
    assert [r.type for r in config.rules] == ["attack", "learn", "self_train", "respawn"]
    epochs = sorted(p.name for p in (finished / "checkpoints").glob("epoch-*.pt"))
    assert epochs == ["epoch-000000.pt", "epoch-000002.pt", "epoch-000003.pt"]


def test_the_written_config_runs_again_to_the_same_results(finished, tmp_path):
    out = tmp_path / "again"
    assert main(["run", str(finished / "config.toml"), "--out", str(out)]) == 0
    for name in ("config.toml", "metrics.csv", "trajectories.npz"):
        assert (out / name).read_bytes() == (finished / name).read_bytes(), name


@pytest.mark.parametrize("rule_type", sorted(RULE_TABLES))
def test_a_config_file_of_each_rule_type_runs(rule_type, tmp_path, capsys):
    config = write_config(tmp_path / f"{rule_type}.toml", RULE_TABLES[rule_type])
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert "self-replicators" in capsys.readouterr().out
    resolved = tomllib.loads((out / "config.toml").read_text())
    assert [rule["type"] for rule in resolved["rules"]] == [rule_type]
    assert (out / "manifest.json").is_file()


def test_flags_override_the_config_file(tmp_path):
    config = write_config(tmp_path / "soup.toml")
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--epochs", "1", "--seed", "9"]) == 0
    resolved = load_config(out / "config.toml")
    assert (resolved.epochs, resolved.seed, resolved.topology.kind) == (1, 9, "ring")


def test_the_default_out_directory_is_named_after_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "mysoup.toml")
    assert main(["run", "mysoup.toml"]) == 0
    assert (tmp_path / "runs" / "mysoup" / "manifest.json").is_file()


def test_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--dry-run", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert RunConfig.from_dict(tomllib.loads(printed)).epochs == 3
    assert not out.exists()


# ---------------------------------------------------------------------- bad input


def test_an_unknown_key_exits_2_naming_key_and_suggestion(tmp_path, capsys):
    config = write_config(tmp_path / "soup.toml", 'type = "attack"\nchanse = 0.1')
    bad_input(
        capsys,
        ["run", str(config), "--out", str(tmp_path / "out")],
        "soup.toml",
        "unknown key 'chanse'",
        "did you mean 'chance'?",
        '[[rules]] #1 (type = "attack")',
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        (
            'type = "attack"\nchance = "often"',
            ['chance = "often"', "it must be a number (attack probability"],
        ),
        ('type = "attack"\nchance = 2', ["chance = 2", "out of range"]),
        ('type = "self_train"\nsteps = -3', ["steps = -3", "an integer >= 0"]),
    ],
)
def test_a_wrong_type_or_range_exits_2(tmp_path, capsys, table, fragments):
    config = write_config(tmp_path / "soup.toml", table)
    bad_input(capsys, ["run", str(config), "--out", str(tmp_path / "out")], *fragments)


def test_a_bad_flag_value_exits_2(tmp_path, capsys):
    bad_input(capsys, ["run", "--out", str(tmp_path / "o"), "--attack", "1.5"], "chance = 1.5")
    bad_input(capsys, ["run", "--out", str(tmp_path / "o"), "--device", "gpu"], '"gpu"')
    assert main(["run", "--no-such-flag"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_missing_or_truncated_config_file_exits_2(tmp_path, capsys):
    bad_input(capsys, ["run", str(tmp_path / "missing.toml")], "missing.toml", "does not exist")
    config = write_config(tmp_path / "soup.toml")
    text = config.read_text()
    config.write_text(text[: text.index('"attack"') + 4])
    bad_input(capsys, ["run", str(config)], "soup.toml", "not valid TOML")


def test_an_existing_run_directory_is_refused_and_left_untouched(copy_of, capsys):
    before = snapshot(copy_of)
    bad_input(capsys, ["run", "--out", str(copy_of), *TINY], "already exists", "--overwrite")
    assert snapshot(copy_of) == before


def test_overwrite_deletes_nothing_when_the_new_soup_cannot_be_built(copy_of, tmp_path, capsys):
    before = snapshot(copy_of)
    bad_input(
        capsys,
        ["run", "--out", str(copy_of), "--overwrite", "--topology", "grid", "--population", "5"],
        "not a square",
    )
    config = write_config(tmp_path / "soup.toml", 'type = "attack"\nchance = 0.1\npairing = "x"')
    bad_input(capsys, ["run", str(config), "--out", str(copy_of), "--overwrite"], 'pairing = "x"')
    assert snapshot(copy_of) == before


def test_overwrite_replaces_a_run_directory(copy_of):
    (copy_of / "stale.txt").write_text("from the old run")
    assert main(["run", "--out", str(copy_of), "--overwrite", *TINY, "--epochs", "1"]) == 0
    assert not (copy_of / "stale.txt").exists()
    assert load_config(copy_of / "config.toml").epochs == 1
    assert not list(copy_of.parent.glob(".copy.replaced-*"))


def test_a_directory_that_is_not_a_run_is_never_overwritten(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    bad_input(capsys, ["run", "--out", str(folder), "--overwrite", *TINY], "not a run directory")
    assert (folder / "thesis.tex").read_text() == "precious"


# ---------------------------------------------------------------------- plot, lineage, info


def test_plot_redraws_the_figures(copy_of, capsys):
    shutil.rmtree(copy_of / "figures")
    assert main(["plot", str(copy_of)]) == 0
    for name in ("counts.png", "lineage.png", "trajectories_ww.png"):
        assert (copy_of / "figures" / name).stat().st_size > 1000
    assert "counts.png" in capsys.readouterr().out


def test_lineage_summarises_a_particle_and_draws_it(copy_of, capsys):
    assert main(["lineage", str(copy_of)]) == 0
    out = capsys.readouterr().out
    for fragment in (
        "born at epoch",
        "parents:",
        "children",
        "attacked by",
        "attack chain",
        "self-replicating descendants",
    ):
        assert fragment in out, fragment
    uid = int(out.split()[1].rstrip(":"))
    assert (copy_of / "figures" / f"lineage_{uid}.png").is_file()
    assert main(["lineage", str(copy_of), "--particle", "2"]) == 0
    assert capsys.readouterr().out.startswith("particle 2")
    assert (copy_of / "figures" / "lineage_2.png").is_file()


def test_info_describes_a_finished_run(finished, capsys):
    before = snapshot(finished)
    assert main(["info", str(finished)]) == 0
    out = capsys.readouterr().out
    for fragment in (
        "finished, 3 of 3 epochs",
        "population: 4 ww",
        "final counts (epoch 3)",
        "FIXPOINT",
        "metrics.csv",
        "checkpoints: 3 (epochs 0, 2, 3); all verified",
    ):
        assert fragment in out, fragment
    assert snapshot(finished) == before


@pytest.mark.parametrize("command", ["plot", "lineage", "info"])
def test_a_missing_run_directory_exits_2(command, tmp_path, capsys):
    bad_input(capsys, [command, str(tmp_path / "nowhere")], "does not exist")


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("plot", "metrics.csv"),
        ("plot", "trajectories.npz"),
        ("plot", "genealogy.json"),
        ("lineage", "genealogy.json"),
        ("info", "metrics.csv"),
        ("info", "config.toml"),
    ],
)
def test_a_truncated_run_file_exits_2(copy_of, capsys, command, name):
    path = copy_of / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    bad_input(capsys, [command, str(copy_of)], name)


@pytest.mark.parametrize(
    ("command", "name"),
    [("plot", "trajectories.npz"), ("lineage", "genealogy.json"), ("info", "config.toml")],
)
def test_a_missing_run_file_exits_2(copy_of, capsys, command, name):
    (copy_of / name).unlink()
    bad_input(capsys, [command, str(copy_of)], name, "missing")


def test_files_damaged_without_a_manifest_are_still_detected(copy_of, capsys):
    (copy_of / "manifest.json").unlink()
    path = copy_of / "metrics.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:5])
    bad_input(capsys, ["plot", str(copy_of)], "metrics.csv", "truncated or damaged")
    (copy_of / "genealogy.json").write_text('{"nodes": [')
    bad_input(capsys, ["lineage", str(copy_of)], "genealogy.json", "truncated or damaged")


def test_an_unknown_particle_exits_2(finished, capsys):
    bad_input(capsys, ["lineage", str(finished), "--particle", "9999"], "particle 9999")


# ---------------------------------------------------------------------- resume


def test_resume_continues_to_the_same_results_as_an_uninterrupted_run(finished, tmp_path, capsys):
    out = tmp_path / "short"
    argv = ["run", "--out", str(out), "--checkpoint-every", "2", "--learn", "0.5", *TINY]
    assert main([*argv, "--epochs", "1"]) == 0  # the same soup, stopped after 1 epoch of 3
    capsys.readouterr()
    assert main(["resume", str(out), "--epochs", "3"]) == 0
    for name in ("config.toml", "metrics.csv", "trajectories.npz"):
        assert (out / name).read_bytes() == (finished / name).read_bytes(), name
    assert main(["resume", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_resume_of_an_interrupted_run(copy_of, finished):
    for name in ("manifest.json", *DATA_FILES):
        (copy_of / name).unlink()
    # as if killed during epoch 3: the latest checkpoint is epoch 2
    index = copy_of / "checkpoints" / "index.json"
    entries = json.loads(index.read_text())["checkpoints"]
    index.write_text(json.dumps({"checkpoints": [e for e in entries if e["epoch"] < 3]}))
    (copy_of / "checkpoints" / "epoch-000003.pt").unlink()
    assert main(["info", str(copy_of)]) == 0
    assert main(["resume", str(copy_of)]) == 0
    for name in ("metrics.csv", "trajectories.npz"):
        assert (copy_of / name).read_bytes() == (finished / name).read_bytes(), name


def test_resume_refuses_a_corrupted_checkpoint(copy_of, capsys):
    latest = copy_of / "checkpoints" / "epoch-000003.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    before = snapshot(copy_of)
    bad_input(capsys, ["resume", str(copy_of)], "corrupted")
    assert snapshot(copy_of) == before
    assert main(["resume", str(copy_of), "--checkpoint", "2"]) == 0


def test_resume_without_checkpoints_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "--checkpoint-every", "0", "--no-figures", *TINY]) == 0
    capsys.readouterr()
    bad_input(capsys, ["resume", str(out)], "no checkpoint")
    bad_input(capsys, ["resume", str(tmp_path / "nowhere")], "does not exist")


# ---------------------------------------------------------------------- as a program


def test_the_module_runs_as_a_program_and_fails_cleanly(tmp_path):
    config = write_config(
        tmp_path / "soup.toml", 'type = "attack"\nchance = 0.1\nallow_selff = true'
    )
    result = subprocess.run(
        [sys.executable, "-m", "chemistry.cli", "run", str(config), "--out", str(tmp_path / "out")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown key 'allow_selff' (did you mean 'allow_self'?)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- large runs


def test_a_run_above_whole_exports_up_to_writes_only_streamed_tables(tmp_path, capsys):
    """Without genealogy.json / trajectories.npz, readers use events/ and trajectories/."""
    small = write_config(tmp_path / "small.toml", extra="")
    streamed = tmp_path / "streamed.toml"
    streamed.write_text(
        small.read_text().replace("[record]\n", "[record]\nwhole_exports_up_to = 5\n"),
        encoding="utf-8",
    )
    assert main(["run", str(small), "--out", str(tmp_path / "whole")]) == 0
    assert main(["run", str(streamed), "--out", str(tmp_path / "big")]) == 0
    whole, big = RunDirectory(tmp_path / "whole"), RunDirectory(tmp_path / "big")
    for name in ("genealogy.json", "genealogy.graphml", "trajectories.npz"):
        assert (whole.path / name).is_file()
        assert not (big.path / name).exists()
    assert (big.path / "phylogeny.csv").read_bytes() == (whole.path / "phylogeny.csv").read_bytes()
    # The same soup: the streamed readers give what the whole files hold.
    a, b = whole.trajectories(), big.trajectories()
    assert a.names == b.names
    for name in a.names:
        for x, y in zip(a.arrays(name), b.arrays(name), strict=True):
            assert np.array_equal(x, y)
    g, h = whole.genealogy().graph, big.genealogy().graph
    assert sorted(g.nodes) == sorted(h.nodes)
    assert sorted((u, v, d["event"]) for u, v, d in g.edges(data=True)) == sorted(
        (u, v, d["event"]) for u, v, d in h.edges(data=True)
    )
    for node, data in g.nodes(data=True):
        assert h.nodes[node].get("status") == data.get("status")
    from chemistry.frames import load

    loaded, reference = load(big.path), load(whole.path)
    assert loaded.trajectories.equals(reference.trajectories)
    assert sorted(loaded.genealogy.graph.nodes) == sorted(g.nodes)
    capsys.readouterr()
    for command in (["info"], ["plot"], ["lineage"], ["lineage", "--particle", "2"]):
        assert main([command[0], str(big.path), *command[1:]]) == 0, command
    out = capsys.readouterr().out
    assert "particle 2" in out
    assert (big.path / "figures" / "lineage.png").stat().st_size > 1000
    assert (big.path / "figures" / "trajectories_ww.png").stat().st_size > 1000


def test_a_listed_whole_file_that_is_missing_is_still_an_error(copy_of, capsys):
    """The streamed tables stand in only for files the run did not write."""
    (copy_of / "genealogy.json").unlink()
    assert (copy_of / "events").is_dir()
    bad_input(capsys, ["lineage", str(copy_of)], "genealogy.json", "missing")
