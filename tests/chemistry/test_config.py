"""Tests of chemistry.config: the TOML schema, its strict validation, resolution and overrides."""

from __future__ import annotations

import tomllib

import networkx as nx
import pytest

from chemistry.config import (
    RULES,
    ConfigError,
    RunConfig,
    apply_overrides,
    build_rules,
    build_soup,
    load_config,
    rule_parameters,
)
from interactions import Attack, Learn, Melt, NoisyClone, Respawn, SelfApply, SelfTrain
from particles import Aggregating, Weightwise

TINY = {"epochs": 2, "population": [{"architecture": "ww", "count": 4}]}

# One small configuration per rule type, each with a non-default parameter.
RULE_EXAMPLES = {
    "attack": {"type": "attack", "chance": 0.5, "pairing": "single", "allow_self": True},
    "learn": {
        "type": "learn",
        "chance": 0.5,
        "severity": 2,
        "lr": 0.02,
        "training_mode": "full_batch",
    },
    "self_train": {"type": "self_train", "steps": 3, "training_mode": "full_batch"},
    "self_apply": {"type": "self_apply", "times": 2},
    "respawn": {"type": "respawn", "zero": False},
    "clone": {"type": "clone", "chance": 1.0, "scale": 0.01, "noise": "double_uniform"},
    "melt": {"type": "melt", "chance": 1.0, "pairing": "per_particle"},
}
BUILT_IN_RULES = ("attack", "learn", "self_train", "self_apply", "respawn", "clone", "melt")
RULE_CLASSES = {
    "attack": Attack,
    "learn": Learn,
    "self_train": SelfTrain,
    "self_apply": SelfApply,
    "respawn": Respawn,
    "clone": NoisyClone,
    "melt": Melt,
}


def error_of(data: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(data, **kwargs)
    return str(caught.value)


# ---------------------------------------------------------------------- defaults and round trips


def test_the_empty_configuration_is_the_fig12_soup():
    config = RunConfig.default()
    assert (config.seed, config.epochs, config.preset, config.eps) == (0, 100, "keras2019", 1e-4)
    assert [(e.architecture, e.count) for e in config.population] == [("ww", 20)]
    assert [r.type for r in config.rules] == ["attack", "self_train", "respawn"]
    assert config.rules[0].params["chance"] == 0.1
    assert config.rules[1].params == {"steps": 30}  # lr and training mode: the soup's preset's
    assert config.population[0].options["init_scheme"] == "glorot"  # keras2019's setting
    assert config.topology.to_dict() == {"kind": "complete", "nodes": 20}
    assert config.record.checkpoint_every == 10


def test_every_example_in_the_docstring_is_accepted():
    import chemistry.config.schema as module

    text = module.__doc__.split("::", 1)[1].split("A ``[[rules]]`` table")[0]
    example = "\n".join(line[4:] for line in text.splitlines())
    config = RunConfig.from_dict(tomllib.loads(example))
    assert config.description == "Fig 12 soup"
    assert [rule.describe() for rule in config.rules] == [
        "attack(chance=0.1, pairing=per_particle, allow_self=false)"
    ]


def test_to_toml_reads_back_to_the_same_configuration():
    data = {
        "description": 'quotes " and \\ and\nnew lines, ünïcode',
        "seed": 7,
        "preset": "journal2021",
        "population": [
            {"architecture": "ww", "count": 3, "activation": "tanh", "bias": True},
            {"architecture": "agg", "count": 2, "aggregates": 2},
            {"architecture": "rnn", "count": 1},
            {"architecture": "fft", "count": 1},
        ],
        "topology": {"kind": "small_world", "k": 2, "p": 0.5},
        "rules": list(RULE_EXAMPLES.values()),
    }
    config = RunConfig.from_dict(data)
    text = config.to_toml(header="a header\nover two lines")
    assert text.startswith("# a header\n# over two lines\n")
    again = RunConfig.from_dict(tomllib.loads(text))
    assert again == config
    assert again.to_dict() == config.to_dict() == RunConfig.from_dict(config.to_dict()).to_dict()


def test_resolved_configuration_fills_in_every_default():
    resolved = RunConfig.from_dict(
        {"preset": "journal2021", "rules": [{"type": "learn", "chance": 0.1}]}
    ).to_dict()
    assert resolved["eps"] == 1e-5
    assert resolved["rules"] == [
        {
            "type": "learn",
            "chance": 0.1,
            "severity": 1,
            "pairing": "per_particle",
            "allow_self": False,
        }
    ]
    assert resolved["population"][0] == {
        "architecture": "ww",
        "count": 20,
        "width": 2,
        "depth": 2,
        "activation": "linear",
        "output_activation": "linear",
        "bias": False,
        "init_scheme": "torch",
        "encoding": "torch",
    }
    assert set(resolved["record"]) == {
        "trajectories_every",
        "metrics_every",
        "checkpoint_every",
        "checkpoint_keep",
        "figures",
    }


def test_an_empty_rule_list_round_trips():
    config = RunConfig.from_dict({"rules": []})
    assert config.rules == ()
    assert RunConfig.from_dict(tomllib.loads(config.to_toml())) == config


# ---------------------------------------------------------------------- building


@pytest.mark.parametrize("rule_type", sorted(RULE_EXAMPLES))
def test_a_configuration_of_each_rule_type_builds_and_runs(rule_type):
    config = RunConfig.from_dict(TINY | {"rules": [RULE_EXAMPLES[rule_type]]})
    (rule,) = config.build_rules()
    assert isinstance(rule, RULE_CLASSES[rule_type])
    soup = config.build()
    for _ in range(config.epochs):
        soup.step()
    assert soup.epoch == 2


def test_rule_parameters_reach_the_interactions():
    rules = RunConfig.from_dict({"rules": list(RULE_EXAMPLES.values())}).build_rules()
    attack, learn, self_train, self_apply, respawn, clone, melt = rules
    assert (attack.chance, attack.pairing, attack.allow_self) == (0.5, "single", True)
    assert (learn.severity, learn.lr, learn.training_mode) == (2, 0.02, "full_batch")
    # lr None: the soup's preset decides when the rule runs
    assert (self_train.steps, self_train.lr, self_train.training_mode) == (3, None, "full_batch")
    assert self_apply.times == 2
    assert (respawn.zero, respawn.divergent, respawn.eps) == (False, True, None)
    assert (clone.scale, clone.noise, clone.pairing) == (0.01, "double_uniform", "single")
    assert melt.pairing == "per_particle"
    assert set(RULE_EXAMPLES) <= set(RULES)


def test_population_options_and_mixed_soups():
    config = RunConfig.from_dict(
        {
            "population": [
                {"architecture": "ww", "count": 3, "width": 3, "activation": "linear"},
                {"architecture": "agg", "count": 2, "aggregation": "max"},
            ]
        }
    )
    (ww, three), (agg, two) = config.build_population()
    keras = {"init_scheme": "glorot"}  # the keras2019 preset's setting for fresh particles
    # "linear" is the default None activation
    assert ww == Weightwise(width=3, encoding="keras", **keras) and three == 3
    assert agg == Aggregating(aggregation="max", **keras) and two == 2
    soup = config.build()
    assert len(soup) == 5 and len(soup.banks) == 2


@pytest.mark.parametrize(
    ("table", "nodes"),
    [
        ({"kind": "complete"}, 9),
        ({"kind": "complete", "nodes": 12}, 12),
        ({"kind": "ring", "k": 2}, 9),
        ({"kind": "grid"}, 9),
        ({"kind": "grid", "rows": 3}, 9),
        ({"kind": "grid", "rows": 4, "cols": 4}, 16),
        ({"kind": "small_world", "k": 2}, 9),
        ({"kind": "disjoint_cliques", "size": 3}, 9),
        ({"kind": "disjoint_cliques", "num_soups": 2}, 10),
    ],
)
def test_topologies(table, nodes):
    config = RunConfig.from_dict({"population": [{"count": 9}], "topology": table})
    assert config.build_topology().num_nodes == nodes
    assert config.build().topology.num_nodes == nodes


def test_a_graphml_topology_is_read_relative_to_the_config_file(tmp_path):
    nx.write_graphml(nx.cycle_graph(6), tmp_path / "ring.graphml")
    (tmp_path / "soup.toml").write_text(
        '[topology]\nkind = "graphml"\npath = "ring.graphml"\n[[population]]\ncount = 6\n'
    )
    config = load_config(tmp_path / "soup.toml")
    assert config.topology.params["path"] == str((tmp_path / "ring.graphml").resolve())
    assert config.build_topology().num_edges == 6


def test_a_directed_or_missing_graphml_is_refused(tmp_path):
    nx.write_graphml(nx.DiGraph([(0, 1), (1, 2)]), tmp_path / "directed.graphml")
    message = error_of({"topology": {"kind": "graphml", "path": "directed.graphml"}}, base=tmp_path)
    assert "directed" in message
    message = error_of({"topology": {"kind": "graphml", "path": "nope.graphml"}}, base=tmp_path)
    assert "does not exist" in message
    (tmp_path / "bad.graphml").write_text("<graphml><graph")
    message = error_of({"topology": {"kind": "graphml", "path": "bad.graphml"}}, base=tmp_path)
    assert "cannot be read" in message


def test_builders_for_checkpoints_take_the_resolved_dict():
    resolved = RunConfig.from_dict(TINY).to_dict()
    assert len(build_soup(resolved)) == 4
    assert [type(r) for r in build_rules(resolved)] == [Attack, SelfTrain, Respawn]


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "key", "where", "suggestion"),
    [
        ({"epoch": 3}, "epoch", "top level", "epochs"),
        ({"record": {"checkpoints_every": 3}}, "checkpoints_every", "[record]", "checkpoint_every"),
        ({"topology": {"kind": "ring", "nodez": 20}}, "nodez", "[topology]", "nodes"),
        ({"population": [{"count": 2, "widht": 3}]}, "widht", "[[population]] #1", "width"),
        (
            {"rules": [{"type": "attack", "chance": 0.1}, {"type": "learn", "chanse": 0.1}]},
            "chanse",
            '[[rules]] #2 (type = "learn")',
            "chance",
        ),
        (
            {"rules": [{"type": "self_train", "steps": 1, "trainingmode": "x"}]},
            "trainingmode",
            "[[rules]] #1",
            "training_mode",
        ),
        ({"Seed": 1}, "Seed", "top level", "seed"),
    ],
)
def test_an_unknown_key_is_named_with_where_and_the_closest_valid_key(data, key, where, suggestion):
    message = error_of(data)
    assert f"unknown key '{key}'" in message
    assert where in message
    assert f"did you mean '{suggestion}'?" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"epochs": "ten"}, ['epochs = "ten"', "a string", "an integer >= 0"]),
        ({"epochs": -1}, ["epochs = -1", "out of range", "an integer >= 0"]),
        ({"epochs": 2.5}, ["epochs = 2.5", "a float"]),
        ({"seed": True}, ["seed = true", "a boolean"]),
        ({"eps": 0}, ["eps = 0 ", "a number > 0"]),
        ({"dtype": "float16"}, ['dtype = "float16"', '"float32", "float64"']),
        ({"preset": "keras"}, ['preset = "keras"', 'did you mean "keras2019"?']),
        ({"device": "gpu"}, ['device = "gpu"', "not a torch device"]),
        ({"record": {"figures": "yes"}}, ["[record]", 'figures = "yes"', "true or false"]),
        (
            {"rules": [{"type": "attack", "chance": 1.5}]},
            ["chance = 1.5", "out of range", "a number in [0, 1]"],
        ),
        ({"rules": [{"type": "attack", "chance": "often"}]}, ['chance = "often"', "a string"]),
        (
            {"rules": [{"type": "attack", "chance": 0.1, "pairing": "pairs"}]},
            ['pairing = "pairs"', '"per_particle", "single"'],
        ),
        (
            {"rules": [{"type": "clone", "chance": 0.1, "scale": -1}]},
            ["scale = -1 is out of range", "a number >= 0"],
        ),
        (
            {"rules": [{"type": "attak", "chance": 0.1}]},
            ['type = "attak"', 'did you mean "attack"?'],
        ),
        ({"rules": [{"type": "noisy_clone", "chance": 0.1}]}, ['did you mean "clone"?']),
        ({"rules": [{"chance": 0.1}]}, ["missing key 'type'", '"attack"']),
        ({"rules": [{"type": "attack"}]}, ["missing key 'chance'", "attack probability α"]),
        ({"rules": [{"type": "self_train"}]}, ["missing key 'steps'"]),
        ({"rules": {"type": "attack"}}, ["[[rules]]", "array of tables"]),
        ({"rules": ["attack"]}, ["[[rules]] #1 must be a table"]),
        ({"population": [{"architecture": "weightwise", "count": 2}]}, ['did you mean "ww"?']),
        ({"population": [{"architecture": "ww"}]}, ["missing key 'count'"]),
        ({"population": [{"count": 0}]}, ["population is empty"]),
        ({"population": []}, ["'population' is empty"]),
        ({"population": [{"count": 2, "width": 0}]}, ["width=0", "integer >= 1"]),
        ({"population": [{"count": 2, "activation": "swish"}]}, ['activation = "swish"', '"tanh"']),
        ({"topology": {"kind": "torus"}}, ['kind = "torus"', 'did you mean "grid"?']),
        ({"topology": {"kind": "ring", "nodes": 5}}, ["5 nodes", "20 particles"]),
        ({"topology": {"kind": "grid"}, "population": [{"count": 5}]}, ["not a square"]),
        ({"topology": {"kind": "disjoint_cliques"}}, ["size", "num_soups"]),
        ({"topology": {"kind": "small_world", "k": 3}}, ["even"]),
        ({"topology": "ring"}, ["[topology] must be a table"]),
    ],
)
def test_wrong_types_and_values_name_key_value_and_what_is_allowed(data, expected):
    message = error_of(data)
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_a_rule_that_cannot_act_on_an_architecture_fails_at_build():
    config = RunConfig.from_dict(
        {
            "population": [
                {"architecture": "ww", "count": 2},
                {"architecture": "agg", "count": 2, "aggregates": 16},
            ],
            "rules": [{"type": "attack", "chance": 0.1}],
        }
    )
    with pytest.raises(ConfigError, match="cannot be built"):
        config.build()


def test_an_unavailable_device_is_refused_at_build(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    config = RunConfig.from_dict({"device": "cuda"})
    with pytest.raises(ConfigError, match="not available"):
        config.build()


# ---------------------------------------------------------------------- files


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    path = tmp_path / "cut.toml"
    path.write_text('seed = 1\n[[rules]]\ntype = "att')
    with pytest.raises(ConfigError, match=r"cut\.toml is not valid TOML"):
        load_config(path)
    path.write_bytes(b"seed = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
    path.write_text("seeds = 1\n")
    with pytest.raises(ConfigError, match=r"cut\.toml.*unknown key 'seeds'"):
        from chemistry.config import parse_config, read_config_file

        parse_config(read_config_file(path), source=path)


# ---------------------------------------------------------------------- overrides


def rule_types(data: dict) -> list[str]:
    return [r.type for r in RunConfig.from_dict(data).rules]


def test_overrides_replace_scalars_and_record_settings():
    data = apply_overrides(
        {"seed": 1, "record": {"figures": True}},
        seed=5,
        epochs=3,
        checkpoint_every=0,
        figures=False,
        dtype=None,
    )
    config = RunConfig.from_dict(data)
    assert (config.seed, config.epochs, config.record.checkpoint_every, config.record.figures) == (
        5,
        3,
        0,
        False,
    )


def test_rule_flags_add_remove_and_set_rules_in_canonical_order():
    assert rule_types(apply_overrides({}, attack=0)) == ["self_train", "respawn"]
    assert rule_types(apply_overrides({}, learn=0.2)) == [
        "attack",
        "learn",
        "self_train",
        "respawn",
    ]
    assert rule_types(apply_overrides({}, attack=0, learn=0.2)) == [
        "learn",
        "self_train",
        "respawn",
    ]
    assert rule_types(apply_overrides({}, self_train=0, respawn=False)) == ["attack"]
    config = RunConfig.from_dict(
        apply_overrides({}, learn=0.2, severity=4, attack=0.3, self_train=5)
    )
    params = {r.type: r.params for r in config.rules}
    assert params["learn"]["severity"] == 4 and params["attack"]["chance"] == 0.3
    assert params["self_train"]["steps"] == 5
    with pytest.raises(ConfigError, match="--severity"):
        apply_overrides({}, severity=3)


def test_the_preset_flag_resets_preset_values_of_a_resolved_config():
    resolved = RunConfig.default().to_dict()
    config = RunConfig.from_dict(apply_overrides(resolved, preset="journal2021"))
    assert config.eps == 1e-5
    assert config.rules[1].params == {"steps": 30}
    assert config.population[0].options["init_scheme"] == "torch"  # journal2021's setting
    assert config.build().preset.lr == 0.04


def test_the_population_flag_resizes_the_topology_and_refuses_mixed_soups():
    resolved = RunConfig.from_dict(
        {"population": [{"count": 9}], "topology": {"kind": "grid"}}
    ).to_dict()
    config = RunConfig.from_dict(apply_overrides(resolved, population=16))
    assert config.topology.params == {"rows": 4, "cols": 4}
    config = RunConfig.from_dict(apply_overrides(resolved, architecture="rnn"))
    assert config.population[0].architecture == "rnn" and config.population[0].count == 9
    mixed = {"population": [{"count": 2}, {"architecture": "agg", "count": 2}]}
    with pytest.raises(ConfigError, match="one architecture"):
        apply_overrides(mixed, population=5)


def test_overrides_do_not_touch_the_input():
    data = {"rules": [{"type": "attack", "chance": 0.1}]}
    apply_overrides(data, attack=0.5, seed=3)
    assert data == {"rules": [{"type": "attack", "chance": 0.1}]}


def test_the_readme_examples_are_valid_configurations():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration files", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```toml\n")[1:]]
    assert len(blocks) == 3
    types = set()
    for block in blocks:
        data = tomllib.loads(block)
        config = RunConfig.from_dict(data)
        types |= {rule.type for rule in config.rules}
    assert types == set(BUILT_IN_RULES)
    for name in BUILT_IN_RULES:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}`"))
        for parameter in rule_parameters(RULES[name]):
            assert f"`{parameter.name}`" in row, (name, parameter.name)
