"""The soup as Mesa users expect it: agent data, run_model, batch_run, rules by name, progress."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mesa
import pandas as pd
import pytest
import torch

from chemistry import Soup
from chemistry.metrics import AGENT_REPORTERS
from interactions import Attack, NoisyClone, Respawn, SelfTrain
from particles import Status
from tests.soup_helpers import make_soup

ROOT = Path(__file__).resolve().parents[2]


def busy_soup(**options) -> Soup:
    """Births and deaths every epoch: clones replace neighbours, respawns replace zeros."""
    rules = [Attack(0.3), SelfTrain(2), NoisyClone(0.5, 0.05, pairing="per_particle"), Respawn()]
    return make_soup(rules, population=8, rng=3, **options)


# ------------------------------------------------------------------------------ per-agent data


def test_agent_attributes_read_the_soups_classification():
    soup = busy_soup()
    soup.run_for(3)
    for node in soup.occupied_nodes().tolist():
        particle = soup.particle_at(node)
        assert particle.node == node
        assert particle.status == Status(int(soup.node_status[node])).name
        assert particle.fixpoint_error == float(soup.node_error[node])
        assert particle.architecture_name == "ww"
        assert 0 <= particle.birth <= soup.epoch
    born = [p for p in soup.particles.values() if p.birth > 0]
    assert born, "the busy soup had no births"


def test_a_particle_before_any_classification_has_no_status():
    soup = make_soup([SelfTrain(1)], population=3, collect_every=0)
    particle = soup.particle_at(0)
    assert particle.status is None
    assert particle.fixpoint_error != particle.fixpoint_error  # nan


def test_agent_dataframe_has_one_row_per_particle_per_collected_epoch():
    soup = busy_soup(collect_every=2)
    alive = {0: sorted(soup.particles)}
    for epoch in range(1, 7):
        soup.step()
        if epoch % 2 == 0:
            alive[epoch] = sorted(soup.particles)
    frame = soup.datacollector.get_agent_vars_dataframe()
    assert list(frame.columns) == list(AGENT_REPORTERS)
    assert len(frame) == 8 * 4
    for epoch, uids in alive.items():
        assert sorted(frame.loc[float(epoch)].index.tolist()) == uids
    assert frame["birth"].max() > 0


def test_batched_agent_data_equal_mesas_own_agent_reporters():
    # An independent answer: Mesa's DataCollector calling the same attribute reporters agent by
    # agent, collected at the same moments.
    soup = busy_soup()
    reference = mesa.DataCollector(agent_reporters=dict(AGENT_REPORTERS))
    reference.collect(soup)
    for _ in range(4):
        soup.step()
        reference.collect(soup)
    ours = soup.datacollector.get_agent_vars_dataframe().sort_index()
    theirs = reference.get_agent_vars_dataframe().sort_index()
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_agent_data_can_be_switched_off():
    soup = make_soup([SelfTrain(1)], population=4, collect_agents=False)
    soup.run_for(2)
    assert soup.datacollector._agent_records == {}
    with pytest.raises(UserWarning, match="collect_agents=True"):
        soup.datacollector.get_agent_vars_dataframe()
    assert len(soup.datacollector.get_model_vars_dataframe()) == 3


# ------------------------------------------------------------------------------ the end of a run


def test_run_model_ends_at_the_configured_epoch():
    soup = make_soup([SelfTrain(1)], population=3, epochs=4)
    assert soup.running
    soup.run_model()
    assert soup.epoch == 4 and not soup.running


def test_zero_epochs_means_not_running():
    assert not make_soup([SelfTrain(1)], population=3, epochs=0).running


def test_a_stop_condition_ends_run_model():
    soup = make_soup([SelfTrain(1)], population=3, stop_when=lambda s: s.epoch == 3)
    soup.run_model()
    assert soup.epoch == 3 and not soup.running


def test_run_for_goes_past_the_configured_end_when_asked():
    soup = make_soup([SelfTrain(1)], population=3, epochs=2)
    soup.run_for(5)
    assert soup.epoch == 5 and not soup.running


# ------------------------------------------------------------------------------ rules from names


def test_rules_by_name_equal_rules_given_as_objects():
    by_name = Soup(
        "attack self_train respawn",
        population=6,
        rng=1,
        attack_chance=0.4,
        self_train_steps=3,
        respawn_zero=False,
    )
    by_object = Soup([Attack(0.4), SelfTrain(3), Respawn(zero=False)], population=6, rng=1)
    assert [repr(r) for r in by_name.rules] == [repr(r) for r in by_object.rules]
    by_name.run_for(3)
    by_object.run_for(3)
    for a, b in zip(by_name.bank_list, by_object.bank_list, strict=True):
        assert torch.equal(a.weights, b.weights)


def test_names_and_factories_build_fresh_rules_for_every_soup():
    def fig12(chance=0.1):
        return [Attack(chance), SelfTrain(2), Respawn()]

    for rules, settings in [
        ("attack, respawn", {"attack_chance": 0.2}),
        (["attack", Respawn], {"attack_chance": 0.2}),
        ([lambda: Attack(0.2), Respawn], {}),
        (fig12, {"chance": 0.2}),
    ]:
        first = Soup(rules, population=4, rng=0, **settings)
        second = Soup(rules, population=4, rng=0, **settings)
        assert first.rules[0].chance == 0.2 and isinstance(first.rules[-1], Respawn)
        assert all(a is not b for a, b in zip(first.rules, second.rules, strict=True))


def test_settings_for_a_rule_not_given_by_name_are_refused():
    with pytest.raises(ValueError, match="attack_chance=0.1.*here: respawn"):
        Soup(["respawn", Attack(0.3)], population=3, attack_chance=0.1)
    with pytest.raises(ValueError, match="cannot be called with"):
        Soup(lambda: [Respawn()], population=3, chance=0.1)


# ------------------------------------------------------------------------------ batch_run


def _batch(seeds):
    rows = mesa.batch_run(
        Soup,
        parameters={
            "rules": "attack self_train respawn",
            "population": [4, 6],
            "attack_chance": [0.0, 0.9],
            "self_train_steps": 2,
            "epochs": 3,
            "collect_agents": False,
        },
        rng=seeds,
        data_collection_period=-1,
        display_progress=False,
    )
    return pd.DataFrame(rows)


def test_batch_run_over_a_2x2_grid_and_two_seeds():
    frame = _batch([0, 1])
    assert len(frame) == 2 * 2 * 2  # grid points x seeds, one row (the last epoch) each
    assert sorted(frame["RunId"]) == list(range(8))
    # the population parameter keeps its column; the metric is "particles"
    assert sorted(frame["population"].tolist()) == [4, 4, 4, 4, 6, 6, 6, 6]
    assert (frame["particles"] == frame["population"]).all()
    assert (frame["epoch"] == 3).all() and (frame["Step"] == 3).all()
    assert (frame.loc[frame["attack_chance"] == 0.0, "events_attack"] == 0).all()
    assert (frame.loc[frame["attack_chance"] == 0.9, "events_attack"] > 0).all()
    counts = frame[[s.name.lower() for s in Status]].sum(axis=1)
    assert (counts == frame["particles"]).all()

    # equal seeds give equal rows; the two seeds give different soups
    again = _batch([0, 1])
    pd.testing.assert_frame_equal(frame, again)
    key = ["population", "attack_chance"]
    errors = frame.pivot_table(index=key, columns="rng", values="fixpoint_error_mean")
    assert (errors[0] != errors[1]).all()
    swapped = _batch([1, 0])
    by_seed = frame.set_index([*key, "rng"]).sort_index().drop(columns=["RunId", "iteration"])
    swapped_by_seed = (
        swapped.set_index([*key, "rng"]).sort_index().drop(columns=["RunId", "iteration"])
    )
    pd.testing.assert_frame_equal(by_seed, swapped_by_seed)


def test_batch_run_with_agent_data_gives_one_row_per_particle():
    rows = mesa.batch_run(
        Soup,
        parameters={"rules": "self_train", "population": [3, 5], "self_train_steps": 1},
        rng=[7],
        max_steps=2,
        data_collection_period=1,
        display_progress=False,
    )
    frame = pd.DataFrame(rows)
    # epochs 0, 1, 2 collected; one row per particle each
    assert len(frame) == 3 * (3 + 5)
    assert set(frame["status"]) <= {s.name for s in Status}
    assert frame.groupby(["RunId", "Step"])["AgentID"].nunique().tolist() == [3, 3, 3, 5, 5, 5]


# ------------------------------------------------------------------------------ notebooks


def test_progress_bar_shows_epochs_and_does_not_change_the_run(capsys):
    quiet, shown = busy_soup(), busy_soup()
    quiet.run_for(4)
    shown.run_for(4, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "epoch" in err
    assert "OTHER=" in err or "FIXPOINT=" in err
    for a, b in zip(quiet.bank_list, shown.bank_list, strict=True):
        assert torch.equal(a.weights, b.weights)


def test_importing_the_package_leaves_the_matplotlib_backend_alone():
    modules = [
        "chemistry",
        "chemistry.runs",
        "chemistry.sweep",
        "chemistry.plots",
        "chemistry.experiments.figures",
        "chemistry.experiments.quine",
        "chemistry.cli",
    ]
    script = (
        "import importlib, matplotlib\n"
        "matplotlib.use('svg')\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert matplotlib.get_backend() == 'svg', (name, matplotlib.get_backend())\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
