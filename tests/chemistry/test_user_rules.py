"""A user's own rule, defined only in a file outside the package (tests/data/user_rules.py), is
first-class: TOML configs, the command line, sweeps on both backends, SIGKILL + resume, run
directories written from Python, and the genealogy all see it and its own event kind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from chemistry import Soup
from chemistry.cli import main
from chemistry.config import ConfigError, RunConfig, load_config, rule_parameters
from chemistry.config.plugins import import_plugin
from chemistry.genealogy import Genealogy
from chemistry.runs import RunDirectory
from chemistry.sweep import load_sweep, run_sweep
from interactions import (
    EDGE_KINDS,
    RULES,
    Attack,
    Event,
    EventKind,
    Interaction,
    SelfTrain,
    register_event_kind,
)

REPOSITORY = Path(__file__).resolve().parents[2]
RULE_FILE = REPOSITORY / "tests" / "data" / "user_rules.py"
RESULT_FILES = ("config.toml", "metrics.csv", "trajectories.npz", "genealogy.json")


def config_text(plugin: str, *, epochs: int = 4, chance: float = 0.5, extra: str = "") -> str:
    return f"""\
plugins = ["{plugin}"]
seed = 3
epochs = {epochs}

[record]
figures = false
checkpoint_every = 2

[[population]]
architecture = "ww"
count = 8

[[rules]]
type = "attack"
chance = 0.2

[[rules]]
type = "mutate"
chance = {chance}
scale = 0.05
{extra}
[[rules]]
type = "self_train"
steps = 3
"""


def write_config(directory: Path, **kwargs) -> Path:
    """A config next to a copy of nothing: the plugin is named relative to the config file."""
    path = directory / "soup.toml"
    path.write_text(config_text(os.path.relpath(RULE_FILE, directory), **kwargs))
    return path


def mutate_edges(genealogy: dict) -> list[dict]:
    return [edge for edge in genealogy["edges"] if edge["kind"] == "mutate"]


def metric_column(run: Path, name: str) -> list[float]:
    with open(run / "metrics.csv", encoding="utf-8", newline="") as handle:
        return [float(row[name]) for row in csv.DictReader(handle)]


# ------------------------------------------------------------------ registries


def test_a_rule_class_registers_its_name_and_event_kinds_when_defined():
    import_plugin(str(RULE_FILE))
    mutate = RULES["mutate"]
    assert mutate.__name__ == "Mutate" and mutate.__module__.startswith("chemistry_plugin_")
    kind = EventKind("mutate")
    assert kind.inheritance == "none" and kind in EDGE_KINDS and "mutate" in EventKind
    assert Event(1, "mutate", None, 4, 4).kind is kind
    assert [p.name for p in rule_parameters(mutate)] == ["chance", "scale"]
    assert rule_parameters(mutate)[1].doc == "standard deviation of the noise."


def test_unknown_kinds_and_clashing_names_are_refused():
    with pytest.raises(ValueError, match="'mutant' is unknown.*event_kinds"):
        Event(0, "mutant", 1, 2)
    with pytest.raises(ValueError, match="already registered with inheritance 'horizontal'"):
        register_event_kind("attack", "vertical")
    with pytest.raises(ValueError, match="inheritance 'sideways'"):
        register_event_kind("sideways_kind", "sideways")
    with pytest.raises(ValueError, match="'attack' .* is taken by interactions.attack.Attack"):

        class Other(Interaction):  # noqa: F841 - defining it is the test
            name = "attack"

            def __call__(self, soup, participants=None):
                return []


def test_old_configurations_load_with_their_renamed_keys():
    config = RunConfig.from_dict(
        {
            "rules": [
                {"type": "attack", "chance": 0.1, "mode": "single"},
                {"type": "self_train", "steps": 2, "mode": "full_batch", "lr": 0.01},
                {"type": "melt", "chance": 0.1, "mode": "per_particle"},
            ]
        }
    )
    attack, self_train, melt = config.build_rules()
    assert attack.pairing == "single" and melt.pairing == "per_particle"
    assert (self_train.training_mode, self_train.lr) == ("full_batch", 0.01)


# ------------------------------------------------------------------ chemistry run from TOML


def test_a_user_rule_runs_from_toml_and_its_events_reach_the_genealogy(tmp_path, capsys):
    config = write_config(tmp_path)
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run)]) == 0
    resolved = load_config(run / "config.toml")
    assert resolved.plugins == (str(RULE_FILE),), "stored as an absolute path"
    assert resolved.rules[1].to_dict() == {"type": "mutate", "chance": 0.5, "scale": 0.05}
    genealogy = json.loads((run / "genealogy.json").read_text())
    edges = mutate_edges(genealogy)
    assert edges and all(e["inheritance"] == "none" and e["source"] == e["target"] for e in edges)
    # Independent tally: the per-epoch metric counts the same events the graph holds.
    assert sum(metric_column(run, "events_mutate")) == len(edges)
    graphml = (run / "genealogy.graphml").read_text()
    assert graphml.count(">mutate<") == len(edges)
    # The run directory reads back without the plugin imported: the file names the kind.
    loaded = RunDirectory(run).genealogy()
    assert sum(1 for e in loaded.events if e.kind == "mutate") == len(edges)
    assert main(["info", str(run)]) == 0
    assert main(["lineage", str(run)]) == 0


def test_plugin_and_set_on_the_command_line(tmp_path, capsys):
    text = config_text("unused.py").replace('plugins = ["unused.py"]\n', "")
    config = tmp_path / "soup.toml"
    config.write_text(text)
    arguments = ["run", str(config), "--plugin", str(RULE_FILE), "--dry-run"]
    assert main([*arguments, "--set", "rules.mutate.scale=0.25", "--set", "epochs=2"]) == 0
    printed = capsys.readouterr().out
    assert "scale = 0.25" in printed and "epochs = 2" in printed
    assert main([*arguments, "--set", "rules.mutate.scael=1"]) == 2
    assert "did you mean 'scale'?" in capsys.readouterr().err
    assert main([*arguments, "--set", "rules.mutate.chance=2"]) == 2
    assert "chance = 2 is out of range" in capsys.readouterr().err
    assert main(["rules", "--plugin", str(RULE_FILE)]) == 0
    assert "scale (a number; default 0.01): standard deviation" in capsys.readouterr().out


def test_a_missing_plugin_is_named_and_exits_2(tmp_path, capsys):
    config = tmp_path / "soup.toml"
    config.write_text(config_text("no_such_rules.py"))
    assert main(["run", str(config), "--dry-run"]) == 2
    assert "no_such_rules.py" in capsys.readouterr().err
    config.write_text(config_text("no_such_package.rules"))
    assert main(["run", str(config), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "module 'no_such_package' cannot be imported" in err and "Traceback" not in err


# ------------------------------------------------------------------ a new keyword argument


def test_a_new_constructor_argument_is_settable_everywhere_with_no_other_edit(tmp_path, capsys):
    text = RULE_FILE.read_text()
    text = text.replace('name = "mutate"', 'name = "biased_mutate"')
    text = text.replace(
        "scale: float = 0.01) -> None:", "scale: float = 0.01, shift: float = 0.0) -> None:"
    )
    text = text.replace("self.scale = scale", "self.scale = scale\n        self.shift = shift")
    text = text.replace("weights + self.scale * noise", "weights + self.scale * noise + self.shift")
    assert text.count("shift") == 4
    plugin = tmp_path / "biased.py"
    plugin.write_text(text)
    base = config_text(str(plugin), epochs=1, chance=1.0).replace(
        'type = "mutate"', 'type = "biased_mutate"'
    )
    base = base.replace('type = "attack"\nchance = 0.2', 'type = "attack"\nchance = 0.0')
    base = base.replace("steps = 3", "steps = 0")
    # TOML
    config = tmp_path / "shifted.toml"
    config.write_text(base.replace("scale = 0.05", "scale = 0.0\nshift = 0.5"))
    soup = load_config(config).build()
    before = soup.banks[next(iter(soup.banks))].weights.clone()
    soup.step()
    after = soup.banks[next(iter(soup.banks))].weights
    torch.testing.assert_close(after - before, torch.full_like(before, 0.5))
    # the command line
    plain = tmp_path / "plain.toml"
    plain.write_text(base)
    assert main(["run", str(plain), "--dry-run", "--set", "rules.biased_mutate.shift=0.75"]) == 0
    assert "shift = 0.75" in capsys.readouterr().out
    # a sweep
    sweep = tmp_path / "sweep.toml"
    sweep.write_text('base = "plain.toml"\n[grid]\n"rules.biased_mutate.shift" = [0.0, 2.0]\n')
    points = load_sweep(sweep).expand()
    assert [p.config["rules"][1].get("shift") for p in points] == [0.0, 2.0]


# ------------------------------------------------------------------ sweeps on both backends


def test_a_user_rule_sweeps_identically_on_both_backends(tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs Ray (pip install -e '.[test]')")
    import ray

    write_config(tmp_path, epochs=3)
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(
        'base = "soup.toml"\nseeds = 1\n[grid]\n"rules.mutate.chance" = [0.2, 0.9]\n'
        '[summary]\nmetric = "events_mutate"\nreduce = "mean"\n'
    )
    sweep = load_sweep(sweep_file)
    local = run_sweep(sweep, tmp_path / "local", backend="local", workers=2)
    assert not local.failed, local.failed
    try:
        on_ray = run_sweep(sweep, tmp_path / "ray", backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert not on_ray.failed, on_ray.failed
    assert on_ray.results_path.read_bytes() == local.results_path.read_bytes()
    low, high = (
        sum(metric_column(local.out / "points" / p.id, "events_mutate")) for p in local.points
    )
    assert high > low, "the swept chance reached the rule"
    for point in local.points:
        for name in ("metrics.csv", "genealogy.json"):
            assert (on_ray.out / "points" / point.id / name).read_bytes() == (
                local.out / "points" / point.id / name
            ).read_bytes()


# ------------------------------------------------------------------ SIGKILL and resume


def chemistry(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chemistry.cli", *arguments],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )


def latest_checkpoint(run: Path) -> int:
    try:
        entries = json.loads((run / "checkpoints" / "index.json").read_text())["checkpoints"]
    except (OSError, ValueError, KeyError):
        return -1
    return max((entry["epoch"] for entry in entries), default=-1)


@pytest.mark.slow
def test_a_user_rule_run_survives_sigkill_and_resumes_bit_exactly(tmp_path):
    config = write_config(tmp_path, epochs=60)
    alone, killed = tmp_path / "alone", tmp_path / "killed"
    process = chemistry("run", str(config), "--out", str(alone))
    assert process.wait(timeout=300) == 0, process.communicate()[1]
    process = chemistry("run", str(config), "--out", str(killed))
    deadline = time.monotonic() + 120
    while latest_checkpoint(killed) < 4:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert latest_checkpoint(killed) < 60
    process = chemistry("resume", str(killed))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    for name in RESULT_FILES:
        assert (killed / name).read_bytes() == (alone / name).read_bytes(), name
    assert mutate_edges(json.loads((killed / "genealogy.json").read_text()))


def test_resume_without_the_plugin_names_it_and_exits_2(tmp_path, capsys):
    plugin = tmp_path / "my_rules.py"  # a copy under a name of its own (names are unique)
    plugin.write_text(RULE_FILE.read_text().replace('name = "mutate"', 'name = "my_mutate"'))
    config = tmp_path / "soup.toml"
    config.write_text(config_text("my_rules.py", epochs=4).replace('"mutate"', '"my_mutate"'))
    run = tmp_path / "run"
    assert main(["run", str(config), "--out", str(run), "--epochs", "2"]) == 0
    plugin.unlink()
    capsys.readouterr()
    assert main(["resume", str(run), "--epochs", "4"]) == 2
    err = capsys.readouterr().err
    assert "my_rules.py" in err and "plugin" in err and "Traceback" not in err


# ------------------------------------------------------------------ soups built in Python


def python_soup(seed: int = 5) -> Soup:
    mutate = import_plugin(str(RULE_FILE)).Mutate
    return Soup(
        [Attack(0.2), mutate(0.4, 0.05), SelfTrain(3)], population=8, rng=seed, record_every=1
    )


def test_a_python_soup_writes_the_run_directory_chemistry_run_writes(tmp_path, capsys):
    soup = python_soup()
    soup.run_for(3)
    written = soup.save(tmp_path / "python", figures=False)
    assert {"config", "metrics", "genealogy_json", "manifest"} <= set(written)
    config = load_config(tmp_path / "python" / "config.toml")
    assert config.plugins == (str(RULE_FILE),) and config.epochs == 3
    assert [rule.type for rule in config.rules] == ["attack", "mutate", "self_train"]
    # The same soup run by `chemistry run` from the written configuration: the same files.
    assert (
        main(["run", str(tmp_path / "python" / "config.toml"), "--out", str(tmp_path / "cli")]) == 0
    )
    for name in ("metrics.csv", "genealogy.json", "trajectories.npz"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "python" / name).read_bytes()
    assert main(["info", str(tmp_path / "python")]) == 0
    assert "finished, 3 of 3 epochs" in capsys.readouterr().out


def test_a_saved_python_soup_resumes_bit_exactly(tmp_path, capsys):
    short = python_soup()
    short.run_for(3)
    short.save(tmp_path / "short", figures=False)
    assert main(["resume", str(tmp_path / "short"), "--epochs", "7"]) == 0
    long = python_soup()
    long.run_for(7)
    long.save(tmp_path / "long", figures=False)
    for name in ("metrics.csv", "genealogy.json", "trajectories.npz"):
        assert (tmp_path / "short" / name).read_bytes() == (tmp_path / "long" / name).read_bytes()
    genealogy = Genealogy.from_node_link_json(tmp_path / "short" / "genealogy.json")
    assert any(event.kind == "mutate" for event in genealogy.events)


def test_a_rule_that_cannot_be_written_is_refused_with_the_reason(tmp_path):
    class Anonymous(Interaction):
        def __call__(self, soup, participants=None):
            return []

    soup = Soup([Anonymous()], population=4, rng=0)
    with pytest.raises(ValueError, match="not registered under a name of its own"):
        soup.save(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_saved_ring_soup_keeps_its_topology(tmp_path):
    from chemistry import Topology

    soup = Soup([Attack(0.5)], population=6, topology=Topology.ring(6, 1), rng=2)
    soup.run_for(2)
    soup.save(tmp_path / "ring", figures=False)
    config = load_config(tmp_path / "ring" / "config.toml")
    assert config.topology.kind == "graphml"
    rebuilt = config.build()
    assert sorted(rebuilt.topology.graph.edges) == sorted(soup.topology.graph.edges)


def test_a_config_error_in_a_plugin_is_a_config_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="broken.py.*RuntimeError: boom"):
        RunConfig.from_dict({"plugins": ["broken.py"]}, base=tmp_path)


# ------------------------------------------------------------------ installed packages, viz


def test_an_installed_package_offers_rules_through_the_entry_point_group(tmp_path, monkeypatch):
    import chemistry.config.plugins as plugins

    package = tmp_path / "site"
    (package / "entry_rules").mkdir(parents=True)
    (package / "entry_rules" / "__init__.py").write_text(
        RULE_FILE.read_text().replace('name = "mutate"', 'name = "installed_mutate"')
    )
    info = package / "entry_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chemistry.rules]\nentry_rules = entry_rules\n")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    config = RunConfig.from_dict(
        {"epochs": 1, "rules": [{"type": "installed_mutate", "chance": 1.0, "scale": 0.1}]}
    )
    assert config.plugins == ()  # found through the entry point, not listed
    assert type(config.build_rules()[0]).__module__ == "entry_rules"


def test_the_preset_decides_the_default_particles_and_training(tmp_path):
    from particles import PRESETS, Weightwise

    keras = Soup([SelfTrain(1)], population=4, rng=0)
    assert next(iter(keras.banks)) == Weightwise(init_scheme="glorot", encoding="keras")
    journal = Soup([SelfTrain(1)], population=4, rng=0, preset="journal2021")
    assert next(iter(journal.banks)) == Weightwise()
    assert (keras.eps, journal.eps) == (1e-4, 1e-5)
    given = Soup([], population=4, architecture=Weightwise(), rng=0)
    assert next(iter(given.banks)) == Weightwise(), "an architecture given is used as given"
    assert PRESETS["keras2019"].architecture(Weightwise, width=3).width == 3
    with pytest.raises(ValueError, match="preset='keras' is not allowed"):
        Soup([], population=4, preset="keras")


def test_the_live_view_builds_a_configured_soup_with_a_user_rule(tmp_path):
    viz = pytest.importorskip("chemistry.viz")
    page_soup = getattr(viz, "page_soup", None)
    if page_soup is None:
        pytest.skip("the live view reads a configuration once issue 15's viz is merged")
    soup = page_soup(write_config(tmp_path))
    assert [type(rule).__name__ for rule in soup.rules] == ["Attack", "Mutate", "SelfTrain"]
    soup.step()
    assert "events_mutate" in soup.datacollector.model_vars


def test_a_rules_own_kind_is_drawn_in_a_colour_of_its_own(tmp_path):
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    from chemistry.plots import EDGE_COLOURS, USER_KIND_COLOURS, kind_colour, plot_lineage

    assert kind_colour("attack") == EDGE_COLOURS["attack"]
    assert kind_colour("mutate") in USER_KIND_COLOURS
    assert kind_colour("mutate") not in EDGE_COLOURS.values()
    soup = python_soup()
    soup.run_for(3)
    assert any(kind == "mutate" for _, _, kind in soup.genealogy.graph.edges(data="kind"))
    image = imread(plot_lineage(soup.genealogy.graph, tmp_path / "lineage.png"))[..., :3]
    # the mutate marks are drawn in the kind's colour; before, every user kind was one grey
    distance = np.abs(image - np.array(to_rgb(kind_colour("mutate")))).max(axis=-1)
    assert (distance < 0.05).sum() > 20
