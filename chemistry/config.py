"""Run configuration: the TOML schema of ``chemistry run``, strictly validated, fully resolved.

A configuration file describes one soup run. Every key is optional; an empty file is the default
soup (the paper's Fig 12 soup: 20 weightwise particles, attack 0.1, 30 self-training steps,
respawn, 100 epochs)::

    description = "Fig 12 soup"   # free text, shown by `chemistry info`
    seed = 0                      # integer >= 0; same seed, same run
    epochs = 100                  # integer >= 0
    device = "cpu"                # a torch device: "cpu", "cuda", "cuda:1", "mps"
    dtype = "float32"             # "float32" | "float64"
    preset = "keras2019"          # "keras2019" | "journal2021": default lr, training mode, eps
    eps = 1e-4                    # fixpoint tolerance (default: the preset's)
    schedule = "synchronous"      # "synchronous" | "sequential"

    [record]
    trajectories_every = 1        # record every particle's weights every k epochs (0: off)
    metrics_every = 1             # classify and collect metrics every k epochs (0: off)
    checkpoint_every = 10         # write a checkpoint every k epochs and at the end (0: off)
    figures = true                # draw the figures when the run ends

    [topology]
    kind = "complete"   # complete | ring | grid | small_world | disjoint_cliques | graphml

    [[population]]                # one table per architecture; at least one particle in all
    architecture = "ww"           # ww | agg | rnn | fft, plus that architecture's options
    count = 20

    [[rules]]                     # the epoch's rules, run in this order
    type = "attack"     # attack | learn | self_train | self_apply | respawn | clone | melt
    chance = 0.1

Every table accepts exactly the keys listed in ``TOP_LEVEL``, ``RECORD``, ``TOPOLOGIES``,
``architecture_keys`` and ``RULES``: an unknown key is an error naming it, where it was and the
closest valid key; a value of the wrong type or out of range is an error naming the key, the value
and what is allowed. :meth:`RunConfig.to_dict` returns the resolved configuration with every
default filled in (preset values written out), and :meth:`RunConfig.to_toml` writes it as TOML
that ``chemistry run`` reads back to the same configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from chemistry.limits import (
    check_config_file,
    check_device,
    check_int64,
    check_run,
    check_topology,
)
from chemistry.soup import SCHEDULES, Soup
from chemistry.topology import Topology
from interactions import Attack, Interaction, Learn, Melt, NoisyClone, Respawn, SelfApply, SelfTrain
from interactions.base import PAIR_MODES
from particles import ACTIVATIONS, ARCHITECTURES, MODES, PRESETS, Architecture
from particles import architectures as _architectures
from particles.measures import NOISES

__all__ = [
    "DTYPES",
    "RECORD",
    "RULES",
    "TOP_LEVEL",
    "TOPOLOGIES",
    "ConfigError",
    "Key",
    "RuleType",
    "RunConfig",
    "apply_overrides",
    "architecture_keys",
    "build_rules",
    "build_soup",
    "load_config",
    "parse_config",
    "read_config_file",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_POPULATION = ({"architecture": "ww", "count": 20},)
DEFAULT_RULES = (
    {"type": "attack", "chance": 0.1},
    {"type": "self_train", "steps": 30},
    {"type": "respawn"},
)


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the key, the value and the fix."""


# ----------------------------------------------------------------------------------------------
# Keys and their checks

_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One key of a configuration table.

    Args:
        name: the key.
        kind: "int", "number", "probability", "bool", "str" or "choice".
        default: a value, a callable ``(context) -> value`` for a derived default, or absent
            (the key is required).
        minimum: smallest allowed value of an int or number.
        positive: a number must be > 0 (not only >= ``minimum``).
        choices: the allowed strings of a "choice".
        doc: one line for the documentation.
    """

    name: str
    kind: str
    default: Any = _REQUIRED
    minimum: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def allowed(self) -> str:
        """What the key accepts, in words."""
        if self.kind == "int":
            return "an integer" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
        if self.kind == "number":
            if self.positive:
                return "a number > 0"
            return "a number" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
        if self.kind == "probability":
            return "a number in [0, 1]"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(_toml_value(c) for c in self.choices)
        return "a string"


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def closest(
    name: Any, valid: list[str] | tuple[str, ...], aliases: Mapping[str, str] = {}
) -> str | None:
    """The valid name closest to ``name`` (same letters ignoring case and _-, an alias, or
    ``difflib.get_close_matches``), or None."""
    if not isinstance(name, str):
        return None
    for candidate in valid:
        if _normalise(candidate) == _normalise(name):
            return candidate
    if _normalise(name) in aliases:
        return aliases[_normalise(name)]
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    if not matches:
        matches = difflib.get_close_matches(name.lower(), list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _check(key: Key, value: Any, where: str) -> Any:
    """The checked (and normalised) value of ``key``; ConfigError naming key, value and rule."""

    given = value

    def fail(problem: str) -> ConfigError:
        return ConfigError(
            f"{where}: {key.name} = {_toml_value(given)} {problem}; it must be {key.allowed()}"
        )

    kind = key.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"is {_type_name(value)}")
        check_int64(key.name, value, where)
        if key.minimum is not None and value < key.minimum:
            raise fail("is out of range")
        return value
    if kind in ("number", "probability"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"is {_type_name(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise fail("is not finite")
        if kind == "probability" and not 0.0 <= value <= 1.0:
            raise fail("is out of range")
        if key.positive and not value > 0:
            raise fail("is out of range")
        if key.minimum is not None and value < key.minimum:
            raise fail("is out of range")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail(f"is {_type_name(value)}")
        return value
    if not isinstance(value, str):
        raise fail(f"is {_type_name(value)}")
    if kind == "choice" and value not in key.choices:
        suggestion = closest(value, key.choices, _VALUE_ALIASES)
        hint = f" (did you mean {_toml_value(suggestion)}?)" if suggestion else ""
        raise ConfigError(
            f"{where}: {key.name} = {_toml_value(value)} is not allowed{hint}; "
            f"it must be {key.allowed()}"
        )
    return value


_VALUE_ALIASES = {
    "weightwise": "ww",
    "aggregating": "agg",
    "aggregate": "agg",
    "recurrent": "rnn",
    "fourier": "fft",
    "noisyclone": "clone",
    "none": "linear",
    "identity": "linear",
    "float": "float32",
    "double": "float64",
    "wellmixed": "complete",
    "smallworld": "small_world",
    "torus": "grid",
    "cliques": "disjoint_cliques",
}


def _check_keys(table: Any, valid: list[str], where: str) -> dict[str, Any]:
    """``table`` as a dict after checking it is a table with only ``valid`` keys."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {_type_name(table)} {_toml_value(table)}")
    for name in table:
        if name not in valid:
            suggestion = closest(name, valid, _KEY_ALIASES)
            did_you_mean = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise ConfigError(
                f"{where}: unknown key '{name}'{did_you_mean}; valid keys here: {', '.join(valid)}"
            )
    return table


_KEY_ALIASES = {
    "probability": "chance",
    "rate": "chance",
    "trainingmode": "mode",  # self_train's training mode is "mode"
    "learningrate": "lr",
    "kind": "type",
    "rule": "type",
    "arch": "architecture",
    "n": "count",
    "size": "count",
    "particles": "count",
    "recordevery": "trajectories_every",
    "collectevery": "metrics_every",
}


def _read(table: dict[str, Any], keys: tuple[Key, ...], where: str, context: dict) -> dict:
    """Values of ``keys`` from ``table``: checked, with defaults filled in."""
    values: dict[str, Any] = {}
    for key in keys:
        if key.name in table:
            values[key.name] = _check(key, table[key.name], where)
        elif key.required:
            raise ConfigError(
                f"{where}: missing key '{key.name}' ({key.doc or key.allowed()}); "
                f"it must be {key.allowed()}"
            )
        elif callable(key.default):
            values[key.name] = key.default(context)
        else:
            values[key.name] = key.default
    return values


def _array_of_tables(value: Any, name: str) -> list[Any]:
    if isinstance(value, dict):
        raise ConfigError(
            f"'{name}' must be an array of tables: write each entry under its own [[{name}]] "
            f"header (got a single [{name}] table)"
        )
    if not isinstance(value, list):
        raise ConfigError(
            f"'{name}' must be an array of tables ([[{name}]] entries), "
            f"got {_type_name(value)} {_toml_value(value)}"
        )
    return value


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ----------------------------------------------------------------------------------------------
# The schema


def _default_of(cls: type, name: str) -> Any:
    return inspect.signature(cls.__init__).parameters[name].default


TOP_LEVEL: tuple[Key, ...] = (
    Key("description", "str", "", doc="free text shown by `chemistry info`"),
    Key("seed", "int", 0, minimum=0, doc="seed of every random draw; same seed, same run"),
    Key("epochs", "int", 100, minimum=0, doc="number of epochs to run"),
    Key("device", "str", "cpu", doc='torch device: "cpu", "cuda", "cuda:1", "mps"'),
    Key("dtype", "choice", "float32", choices=tuple(DTYPES), doc="dtype of the weights"),
    Key(
        "preset",
        "choice",
        "keras2019",
        choices=tuple(PRESETS),
        doc="default learning rate, training mode and eps of the rules (SPEC Table 2)",
    ),
    Key(
        "eps",
        "number",
        lambda context: context["preset"].eps,
        positive=True,
        doc="fixpoint tolerance of the classification (default: the preset's)",
    ),
    Key(
        "schedule",
        "choice",
        "synchronous",
        choices=SCHEDULES,
        doc="synchronous (canonical) or sequential (per particle, the original code's loop)",
    ),
)
SECTIONS = ("record", "topology", "population", "rules")

RECORD: tuple[Key, ...] = (
    Key(
        "trajectories_every", "int", 1, minimum=0, doc="record all weights every k epochs (0: off)"
    ),
    Key(
        "metrics_every",
        "int",
        1,
        minimum=0,
        doc="classify and collect metrics every k epochs (0: off)",
    ),
    Key(
        "checkpoint_every",
        "int",
        10,
        minimum=0,
        doc="checkpoint every k epochs and at the end (0: off)",
    ),
    Key(
        "checkpoint_keep",
        "int",
        0,
        minimum=0,
        doc="keep only the newest k checkpoints, older ones folded in (0: keep all)",
    ),
    Key("figures", "bool", True, doc="draw the figures when the run ends"),
)


def _population(context: dict) -> int:
    return context["population"]


TOPOLOGIES: dict[str, tuple[Key, ...]] = {
    "complete": (Key("nodes", "int", _population, minimum=1, doc="slots (default: population)"),),
    "ring": (
        Key("nodes", "int", _population, minimum=3, doc="slots (default: population)"),
        Key("k", "int", 1, minimum=1, doc="neighbours on each side"),
    ),
    "grid": (
        Key(
            "rows",
            "int",
            lambda context: context["grid_default"]["rows"],
            minimum=3,
            doc="rows of the torus",
        ),
        Key(
            "cols",
            "int",
            lambda context: context["grid_default"]["cols"],
            minimum=3,
            doc="columns of the torus",
        ),
    ),
    "small_world": (
        Key("nodes", "int", _population, minimum=3, doc="slots (default: population)"),
        Key("k", "int", 4, minimum=2, doc="total ring neighbours before rewiring (even)"),
        Key("p", "probability", 0.1, doc="rewiring probability"),
        Key(
            "seed",
            "int",
            lambda context: context["seed"],
            minimum=0,
            doc="graph seed (default: the run's)",
        ),
    ),
    "disjoint_cliques": (
        Key(
            "size",
            "int",
            lambda context: context["cliques_default"]["size"],
            minimum=1,
            doc="particles per clique",
        ),
        Key(
            "num_soups",
            "int",
            lambda context: context["cliques_default"]["num_soups"],
            minimum=1,
            doc="number of cliques",
        ),
    ),
    "graphml": (
        Key("path", "str", doc="GraphML file of an undirected graph, relative to the config file"),
    ),
}


def architecture_keys(name: str) -> tuple[Key, ...]:
    """The keys of a ``[[population]]`` entry of architecture ``name``: its dataclass fields."""
    cls = ARCHITECTURES[name]
    activations = tuple(k for k in ACTIVATIONS if k is not None)
    known_choices = {
        "init_scheme": getattr(_architectures, "INITS", ()),
        "encoding": getattr(_architectures, "ENCODINGS", ()),
        "aggregation": getattr(_architectures, "AGGREGATIONS", ()),
        "fixpoint_test": getattr(_architectures, "AGGREGATE_FIXPOINT_TESTS", ()),
    }
    keys = [
        Key("architecture", "choice", "ww", choices=tuple(ARCHITECTURES), doc="particle type"),
        Key("count", "int", minimum=0, doc="number of particles"),
    ]
    for item in dataclasses.fields(cls):
        if not item.init:
            continue
        default = item.default
        if item.name in ("activation", "output_activation"):
            keys.append(
                Key(
                    item.name,
                    "choice",
                    "linear" if default is None else default,
                    choices=activations,
                )
            )
        elif isinstance(default, bool):
            keys.append(Key(item.name, "bool", default))
        elif isinstance(default, int):
            keys.append(Key(item.name, "int", default, minimum=0))
        elif isinstance(default, float):
            keys.append(Key(item.name, "number", default))
        elif isinstance(default, str) and tuple(known_choices.get(item.name, ())):
            keys.append(Key(item.name, "choice", default, choices=tuple(known_choices[item.name])))
        else:
            keys.append(Key(item.name, "str", default))
    return tuple(keys)


@dataclass(frozen=True)
class RuleType:
    """A rule a configuration can name: its keys and how to make the ``Interaction``."""

    name: str
    cls: type[Interaction]
    keys: tuple[Key, ...]
    make: Callable[[dict[str, Any]], Interaction]
    doc: str


def _preset_lr(context: dict) -> float:
    return context["preset"].lr


def _preset_mode(context: dict) -> str:
    return context["preset"].mode


def _pair_keys(cls: type, chance_doc: str, *, allow_self: bool = True) -> tuple[Key, ...]:
    keys = (
        Key("chance", "probability", doc=chance_doc),
        Key(
            "mode",
            "choice",
            _default_of(cls, "mode"),
            choices=PAIR_MODES,
            doc="per_particle: every particle acts with the chance; single: one pair per epoch",
        ),
    )
    if allow_self:
        keys += (Key("allow_self", "bool", False, doc="a particle may pick itself as partner"),)
    return keys


RULES: dict[str, RuleType] = {
    "attack": RuleType(
        "attack",
        Attack,
        _pair_keys(Attack, "attack chance α"),
        lambda v: Attack(v["chance"], mode=v["mode"], allow_self=v["allow_self"]),
        "an attacker rewrites a neighbour's weights, M ← N ◁ M (R1)",
    ),
    "learn": RuleType(
        "learn",
        Learn,
        (
            Key("chance", "probability", doc="learning chance λ"),
            Key(
                "severity",
                "int",
                _default_of(Learn, "severity"),
                minimum=0,
                doc="training steps s per event",
            ),
            Key(
                "lr",
                "number",
                _preset_lr,
                positive=True,
                doc="learning rate (default: the preset's)",
            ),
            Key(
                "training_mode",
                "choice",
                _preset_mode,
                choices=MODES,
                doc="full_batch or per_sample SGD (default: the preset's)",
            ),
            *_pair_keys(Learn, "")[1:],
        ),
        lambda v: Learn(
            v["chance"],
            v["severity"],
            lr=v["lr"],
            training_mode=v["training_mode"],
            mode=v["mode"],
            allow_self=v["allow_self"],
        ),
        "a learner trains on a neighbour's weights, M ⇜ N (R2)",
    ),
    "self_train": RuleType(
        "self_train",
        SelfTrain,
        (
            Key("steps", "int", minimum=0, doc="self-training steps A per epoch"),
            Key(
                "lr",
                "number",
                _preset_lr,
                positive=True,
                doc="learning rate (default: the preset's)",
            ),
            Key(
                "mode",
                "choice",
                _preset_mode,
                choices=MODES,
                doc="full_batch or per_sample SGD (default: the preset's)",
            ),
        ),
        lambda v: SelfTrain(v["steps"], lr=v["lr"], mode=v["mode"]),
        "every particle trains on itself, N ⇜ N (R3)",
    ),
    "self_apply": RuleType(
        "self_apply",
        SelfApply,
        (
            Key(
                "times",
                "int",
                _default_of(SelfApply, "times"),
                minimum=0,
                doc="self-applications per epoch",
            ),
        ),
        lambda v: SelfApply(v["times"]),
        "every particle replaces its weights by its own application, N ← N ◁ N",
    ),
    "respawn": RuleType(
        "respawn",
        Respawn,
        (
            Key("divergent", "bool", True, doc="replace divergent particles"),
            Key("zero", "bool", True, doc="replace particles with max|w| <= eps"),
            Key(
                "eps",
                "number",
                lambda context: context["eps"],
                positive=True,
                doc="size threshold of the zero test (default: the run's eps)",
            ),
        ),
        lambda v: Respawn(v["divergent"], v["zero"], v["eps"]),
        "replace divergent and zero particles by fresh ones (R4)",
    ),
    "clone": RuleType(
        "clone",
        NoisyClone,
        (
            Key("chance", "probability", doc="cloning chance κ"),
            Key("scale", "number", minimum=0, doc="noise scale ζ >= 0"),
            Key(
                "noise",
                "choice",
                _default_of(NoisyClone, "noise"),
                choices=NOISES,
                doc="noise kind",
            ),
            *_pair_keys(NoisyClone, "", allow_self=False)[1:],
            Key("grow", "bool", False, doc="put the child on a free node instead of the victim's"),
        ),
        lambda v: NoisyClone(
            v["chance"], v["scale"], noise=v["noise"], mode=v["mode"], grow=v["grow"]
        ),
        "a parent puts a noisy copy of itself in place of a neighbour (R6)",
    ),
    "melt": RuleType(
        "melt",
        Melt,
        (
            *_pair_keys(Melt, "melting chance μ", allow_self=False),
            Key("grow", "bool", False, doc="put the child on a free node instead of a victim's"),
        ),
        lambda v: Melt(v["chance"], mode=v["mode"], grow=v["grow"]),
        "two neighbouring parents make a crossover child in place of a third particle (R5)",
    ),
}
# Canonical order of SPEC D18, used when a command-line flag adds a rule.
CANONICAL_ORDER = ("attack", "learn", "self_train", "respawn")


# ----------------------------------------------------------------------------------------------
# The configuration


@dataclass(frozen=True)
class PopulationEntry:
    """``count`` particles of ``architecture`` with its ``options`` (all fields, resolved)."""

    architecture: str
    count: int
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Architecture:
        """The Architecture object ("linear" activations become None)."""
        options = {
            name: (
                None if name in ("activation", "output_activation") and value == "linear" else value
            )
            for name, value in self.options.items()
        }
        return ARCHITECTURES[self.architecture](**options)

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "count": self.count, **self.options}


@dataclass(frozen=True)
class TopologyConfig:
    """The partner graph: ``kind`` and its resolved parameters."""

    kind: str = "complete"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, device: str | None = None) -> Topology:
        """The Topology object."""
        p = self.params
        if self.kind == "complete":
            return Topology.complete(p["nodes"])
        if self.kind == "ring":
            return Topology.ring(p["nodes"], p["k"])
        if self.kind == "grid":
            return Topology.grid(p["rows"], p["cols"])
        if self.kind == "small_world":
            return Topology.small_world(p["nodes"], p["k"], p["p"], seed=p["seed"])
        if self.kind == "disjoint_cliques":
            return Topology.disjoint_cliques(p["num_soups"], p["size"])
        return Topology.from_graph(_read_graphml(Path(p["path"])))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params}


def _read_graphml(path: Path) -> nx.Graph:
    if not path.is_file():
        raise ConfigError(f"[topology]: GraphML file {path} does not exist")
    try:
        graph = nx.read_graphml(path)
    except Exception as error:  # a damaged file can raise anything from the XML parser
        raise ConfigError(
            f"[topology]: GraphML file {path} cannot be read ({type(error).__name__}: {error})"
        ) from None
    if graph.is_directed():
        raise ConfigError(
            f"[topology]: GraphML file {path} holds a directed graph; a topology needs an "
            'undirected one (edgedefault="undirected"; networkx writes one from a networkx.Graph)'
        )
    return nx.Graph(graph)


@dataclass(frozen=True)
class RuleConfig:
    """One rule of the schedule: its ``type`` and resolved parameters."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Interaction:
        """The Interaction object."""
        return RULES[self.type].make(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    def describe(self) -> str:
        """One line, e.g. ``attack(chance=0.1, mode=per_particle, allow_self=false)``."""
        shown = ", ".join(f"{k}={_plain(v)}" for k, v in self.params.items())
        return f"{self.type}({shown})"


@dataclass(frozen=True)
class RecordConfig:
    """What a run records and how often (0 = never)."""

    trajectories_every: int = 1
    metrics_every: int = 1
    checkpoint_every: int = 10
    checkpoint_keep: int = 0
    figures: bool = True


@dataclass(frozen=True)
class RunConfig:
    """A validated, fully resolved run configuration (build it with :meth:`from_dict`).

    Use :func:`load_config` for a TOML file, :meth:`build` for the soup, :meth:`to_dict` /
    :meth:`to_toml` for the resolved configuration.
    """

    seed: int = 0
    epochs: int = 100
    device: str = "cpu"
    dtype: str = "float32"
    preset: str = "keras2019"
    eps: float = 1e-4
    schedule: str = "synchronous"
    description: str = ""
    record: RecordConfig = field(default_factory=RecordConfig)
    population: tuple[PopulationEntry, ...] = ()
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    rules: tuple[RuleConfig, ...] = ()

    # ------------------------------------------------------------------ parsing

    @classmethod
    def default(cls) -> RunConfig:
        """The default soup (an empty configuration)."""
        return cls.from_dict({})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: str | Path | None = None) -> RunConfig:
        """Validate a configuration (as read from TOML) and fill in every default.

        Args:
            data: the configuration tables.
            base: folder that relative paths (a GraphML topology) are relative to
                (default: the current directory).

        Raises:
            ConfigError: (a ValueError) naming the first unknown key, wrong type or bad value.
        """
        data = _check_keys(
            dict(data) if isinstance(data, Mapping) else data,
            [k.name for k in TOP_LEVEL] + list(SECTIONS),
            "at the top level",
        )
        first = tuple(key for key in TOP_LEVEL if key.name != "eps")
        top = _read(data, first, "at the top level", {})
        context: dict[str, Any] = {"preset": PRESETS[top["preset"]], "seed": top["seed"]}
        top |= _read(
            data, tuple(k for k in TOP_LEVEL if k.name == "eps"), "at the top level", context
        )
        context["eps"] = top["eps"]
        check_device(top["device"])

        record = RecordConfig(
            **_read(
                _check_keys(data.get("record", {}), [k.name for k in RECORD], "[record]"),
                RECORD,
                "[record]",
                context,
            )
        )
        population = tuple(
            _parse_population(entry, index)
            for index, entry in enumerate(
                _array_of_tables(data.get("population", list(DEFAULT_POPULATION)), "population"), 1
            )
        )
        if not population:
            raise ConfigError("'population' is empty; give at least one [[population]] table")
        total = sum(entry.count for entry in population)
        if total < 1:
            raise ConfigError(
                "the population is empty (every [[population]] count is 0); "
                "a soup needs at least 1 particle"
            )
        for index, entry in enumerate(population, 1):
            try:
                entry.build()
            except ValueError as error:
                where = (
                    f"[[population]] #{index} (architecture = {_toml_value(entry.architecture)})"
                )
                raise ConfigError(f"{where}: {error}") from None
        context["population"] = total
        topology = _parse_topology(data.get("topology", {}), context, base)
        rules = tuple(
            _parse_rule(entry, index, context)
            for index, entry in enumerate(
                _array_of_tables(data.get("rules", list(DEFAULT_RULES)), "rules"), 1
            )
        )
        config = cls(
            **top,
            record=record,
            population=population,
            topology=topology,
            rules=rules,
        )
        check_run(config)
        return config

    # ------------------------------------------------------------------ building

    def build_population(self) -> list[tuple[Architecture, int]]:
        """(Architecture, count) pairs, in order."""
        return [(entry.build(), entry.count) for entry in self.population]

    def build_topology(self) -> Topology:
        """The partner topology."""
        try:
            return self.topology.build()
        except ConfigError:
            raise
        except ValueError as error:
            raise ConfigError(
                f"[topology] (kind = {_toml_value(self.topology.kind)}): {error}"
            ) from None

    def build_rules(self) -> list[Interaction]:
        """The schedule's Interaction objects, in order."""
        rules = []
        for index, rule in enumerate(self.rules, 1):
            try:
                rules.append(rule.build())
            except ValueError as error:
                raise ConfigError(_rule_where(index, rule.type) + f": {error}") from None
        return rules

    def build(self) -> Soup:
        """A fresh soup with this configuration.

        Raises:
            ConfigError: if the device is not available or the soup rejects the combination
                (e.g. a rule that cannot act on an architecture).
        """
        check_device(self.device, available=True)
        try:
            return Soup(
                self.build_rules(),
                population=self.build_population(),
                topology=self.build_topology(),
                rng=self.seed,
                device=self.device,
                dtype=DTYPES[self.dtype],
                eps=self.eps,
                schedule=self.schedule,
                record_every=self.record.trajectories_every,
                collect_every=self.record.metrics_every,
            )
        except ConfigError:
            raise
        except ValueError as error:
            raise ConfigError(f"the configured soup cannot be built: {error}") from None

    # ------------------------------------------------------------------ writing

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration: plain TOML/JSON types, every default filled in."""
        data: dict[str, Any] = {key.name: getattr(self, key.name) for key in TOP_LEVEL}
        data["record"] = dataclasses.asdict(self.record)
        data["topology"] = self.topology.to_dict()
        data["population"] = [entry.to_dict() for entry in self.population]
        data["rules"] = [rule.to_dict() for rule in self.rules]
        return copy.deepcopy(data)

    def to_toml(self, *, header: str = "") -> str:
        """The resolved configuration as TOML text that :func:`load_config` reads back."""
        data = self.to_dict()
        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        lines += [f"{key.name} = {_toml_value(data[key.name])}" for key in TOP_LEVEL]
        if not data["rules"]:
            lines.append("rules = []")
        for section in ("record", "topology"):
            lines += ["", f"[{section}]"]
            lines += [f"{name} = {_toml_value(value)}" for name, value in data[section].items()]
        for section in ("population", "rules"):
            for table in data[section]:
                lines += ["", f"[[{section}]]"]
                lines += [f"{name} = {_toml_value(value)}" for name, value in table.items()]
        return "\n".join(lines) + "\n"

    def summary(self) -> list[str]:
        """A few readable lines describing the run (for ``chemistry info``)."""
        population = " + ".join(
            f"{entry.count} {entry.architecture}"
            + (f" ({_plain_options(entry)})" if _plain_options(entry) else "")
            for entry in self.population
        )
        topology = ", ".join(f"{k}={_plain(v)}" for k, v in self.topology.params.items())
        record = self.record
        lines = [
            f"seed {self.seed}, {self.epochs} epochs, device {self.device}, {self.dtype}, "
            f"preset {self.preset} (eps {self.eps:g}), {self.schedule} schedule",
            f"population: {population}",
            f"topology: {self.topology.kind} ({topology})",
            "rules: " + (" → ".join(rule.describe() for rule in self.rules) or "none"),
            "record: "
            + ", ".join(
                f"{what} every {k} epoch{'s' if k > 1 else ''}" if k else f"{what} off"
                for what, k in (
                    ("trajectories", record.trajectories_every),
                    ("metrics", record.metrics_every),
                    ("checkpoints", record.checkpoint_every),
                )
            )
            + f", figures {'on' if record.figures else 'off'}",
        ]
        if self.description:
            lines.insert(0, f"description: {self.description}")
        return lines


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _plain_options(entry: PopulationEntry) -> str:
    """The options of a population entry that differ from the architecture's defaults."""
    defaults = {k.name: k.default for k in architecture_keys(entry.architecture)}
    return ", ".join(f"{k}={_plain(v)}" for k, v in entry.options.items() if defaults.get(k) != v)


def _rule_where(index: int, rule_type: Any) -> str:
    kind = f" (type = {_toml_value(rule_type)})" if isinstance(rule_type, str) else ""
    return f"[[rules]] #{index}{kind}"


def _parse_population(entry: Any, index: int) -> PopulationEntry:
    where = f"[[population]] #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table, got {_type_name(entry)} {_toml_value(entry)}")
    name_key = architecture_keys("ww")[0]
    name = _check(name_key, entry.get("architecture", name_key.default), where)
    keys = architecture_keys(name)
    where = f"[[population]] #{index} (architecture = {_toml_value(name)})"
    values = _read(_check_keys(entry, [k.name for k in keys], where), keys, where, {})
    values.pop("architecture")
    count = values.pop("count")
    return PopulationEntry(name, count, values)


def _parse_topology(table: Any, context: dict, base: str | Path | None) -> TopologyConfig:
    kind_key = Key("kind", "choice", "complete", choices=tuple(TOPOLOGIES))
    if not isinstance(table, dict):
        raise ConfigError(
            f"[topology] must be a table, got {_type_name(table)} {_toml_value(table)}"
        )
    kind = _check(kind_key, table.get("kind", "complete"), "[topology]")
    keys = TOPOLOGIES[kind]
    where = f"[topology] (kind = {_toml_value(kind)})"
    _check_keys(table, ["kind"] + [k.name for k in keys], where)
    population = context["population"]
    if kind == "grid":
        rows, cols = table.get("rows"), table.get("cols")
        side = math.isqrt(population)
        defaults = {"rows": side, "cols": side}
        if isinstance(rows, int) and rows > 0 and cols is None:
            defaults["cols"] = -(-population // rows)
        elif isinstance(cols, int) and cols > 0 and rows is None:
            defaults["rows"] = -(-population // cols)
        elif rows is None and cols is None and side * side != population:
            raise ConfigError(
                f"{where}: the population of {population} is not a square; give rows and cols "
                "(rows * cols >= population)"
            )
        context = {**context, "grid_default": defaults}
    if kind == "disjoint_cliques":
        size, num_soups = table.get("size"), table.get("num_soups")
        if size is None and num_soups is None:
            raise ConfigError(f"{where}: give size (particles per clique) or num_soups")
        defaults = {}
        if isinstance(size, int) and size > 0:
            defaults["num_soups"] = -(-population // size)
        if isinstance(num_soups, int) and num_soups > 0:
            defaults["size"] = -(-population // num_soups)
        context = {**context, "cliques_default": defaults}
    params = _read(table, keys, where, context)
    if kind == "graphml":
        path = Path(params["path"]).expanduser()
        if not path.is_absolute():
            path = Path(base or ".") / path
        params["path"] = str(path.resolve())
    topology = TopologyConfig(kind, params)
    check_topology(kind, params, where)
    try:
        built = topology.build()
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if built.num_nodes < population:
        raise ConfigError(
            f"{where}: the topology has {built.num_nodes} nodes but the population has "
            f"{population} particles; give a topology with at least as many nodes"
        )
    return topology


def _parse_rule(entry: Any, index: int, context: dict) -> RuleConfig:
    where = f"[[rules]] #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table, got {_type_name(entry)} {_toml_value(entry)}")
    if "type" not in entry:
        raise ConfigError(
            f"{where}: missing key 'type'; it must be one of "
            + ", ".join(_toml_value(name) for name in RULES)
        )
    type_key = Key("type", "choice", choices=tuple(RULES))
    rule_type = _check(type_key, entry["type"], where)
    rule = RULES[rule_type]
    where = _rule_where(index, rule_type)
    _check_keys(entry, ["type"] + [k.name for k in rule.keys], where)
    params = _read(entry, rule.keys, where, context)
    config = RuleConfig(rule_type, params)
    try:
        config.build()
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    return config


# ----------------------------------------------------------------------------------------------
# TOML text


def _toml_value(value: Any) -> str:
    """``value`` as a TOML literal (also used to quote values in messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):  # JSON escapes every control character but DEL; TOML needs all
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


# ----------------------------------------------------------------------------------------------
# Files, overrides and builders


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML configuration file.

    Raises:
        ConfigError: if the file is missing, unreadable, not TOML, or not a valid configuration;
            the message starts with the file's name.
    """
    return RunConfig.from_dict(read_config_file(path), base=Path(path).parent)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw tables of a TOML file (not yet validated)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a TOML file")
    check_config_file(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text ({error})") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read ({error.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid TOML (truncated or mistyped?): {error}"
        ) from None


def parse_config(
    data: Mapping[str, Any], *, source: str | Path | None = None, base=None
) -> RunConfig:
    """:meth:`RunConfig.from_dict`, with ``source`` (a file name) prefixed to any error."""
    try:
        return RunConfig.from_dict(data, base=base)
    except ConfigError as error:
        if source is None:
            raise
        raise ConfigError(f"config file {source}: {error}") from None


def apply_overrides(data: Mapping[str, Any], **flags: Any) -> dict[str, Any]:
    """A copy of the raw configuration ``data`` with command-line settings applied.

    Flags set to None are ignored. Scalars (``seed``, ``epochs``, ``device``, ``dtype``,
    ``schedule``) replace the top-level keys; ``trajectories_every``, ``metrics_every``,
    ``checkpoint_every``, ``figures`` the ``[record]`` keys. ``preset`` also drops ``eps`` and
    every rule's ``lr`` and training mode so they follow the new preset. ``population`` sets the
    count of a single-architecture soup and lets the topology size follow it; ``architecture``
    replaces its architecture (with default options); ``topology`` replaces ``[topology]`` with
    ``{kind = ...}``. ``attack``, ``learn`` set the chance of those rules (0 removes them, a rule
    is added in the canonical order if there is none); ``severity`` sets learn's steps;
    ``self_train`` the self-training steps (0 removes the rule); ``respawn=False`` removes respawn.

    Raises:
        ConfigError: if a flag cannot apply (e.g. ``population`` on a mixed soup).
    """
    data = copy.deepcopy(dict(data))
    flags = {name: value for name, value in flags.items() if value is not None}
    for name in ("seed", "epochs", "device", "dtype", "schedule"):
        if name in flags:
            data[name] = flags.pop(name)
    record_flags = {
        n: flags.pop(n)
        for n in ("trajectories_every", "metrics_every", "checkpoint_every", "figures")
        if n in flags
    }
    if record_flags:
        record = data.setdefault("record", {})
        if isinstance(record, dict):
            record.update(record_flags)
    if "preset" in flags:
        data["preset"] = flags.pop("preset")
        data.pop("eps", None)
        for rule in data.get("rules", list(DEFAULT_RULES)):
            if isinstance(rule, dict):
                for key in ("lr", "training_mode") + (
                    ("mode",) if rule.get("type") == "self_train" else ()
                ):
                    rule.pop(key, None)
    if "population" in flags or "architecture" in flags:
        population = data.get("population", copy.deepcopy(list(DEFAULT_POPULATION)))
        if (
            not isinstance(population, list)
            or len(population) != 1
            or not isinstance(population[0], dict)
        ):
            count = len(population) if isinstance(population, list) else "not a list of"
            raise ConfigError(
                f"--population and --architecture apply to a soup of one architecture; the "
                f"configuration has {count} [[population]] tables: edit them in the file instead"
            )
        entry = population[0]
        if "architecture" in flags:
            entry = {"architecture": flags.pop("architecture"), "count": entry.get("count", 20)}
        if "population" in flags:
            entry["count"] = flags.pop("population")
            topology = data.get("topology")
            if isinstance(topology, dict):
                for key in ("nodes", "rows", "cols", "num_soups"):
                    topology.pop(key, None)
        data["population"] = [entry]
    if "topology" in flags:
        data["topology"] = {"kind": flags.pop("topology")}
    rule_flags = {
        n: flags.pop(n)
        for n in ("attack", "learn", "severity", "self_train", "respawn")
        if n in flags
    }
    if rule_flags:
        rules = data.get("rules", copy.deepcopy(list(DEFAULT_RULES)))
        if isinstance(rules, list):
            data["rules"] = _override_rules(rules, rule_flags)
    if flags:
        raise ConfigError(f"unknown override(s): {', '.join(sorted(flags))}")
    return data


def _override_rules(rules: list[Any], flags: dict[str, Any]) -> list[Any]:
    def of_type(name: str) -> list[dict]:
        return [r for r in rules if isinstance(r, dict) and r.get("type") == name]

    def insert(rule: dict) -> None:
        rank = CANONICAL_ORDER.index(rule["type"])
        position = 0
        for index, other in enumerate(rules):
            other_type = other.get("type") if isinstance(other, dict) else None
            if other_type in CANONICAL_ORDER and CANONICAL_ORDER.index(other_type) < rank:
                position = index + 1
        rules.insert(position, rule)

    def remove(name: str) -> None:
        rules[:] = [r for r in rules if not (isinstance(r, dict) and r.get("type") == name)]

    for name, key in (("attack", "chance"), ("learn", "chance"), ("self_train", "steps")):
        if name not in flags:
            continue
        value = flags[name]
        if value == 0:
            remove(name)
        elif of_type(name):
            for rule in of_type(name):
                rule[key] = value
        else:
            insert({"type": name, key: value})
    if "severity" in flags:
        if not of_type("learn"):
            raise ConfigError(
                "--severity sets the steps of the learn rule; add one with --learn CHANCE"
            )
        for rule in of_type("learn"):
            rule["severity"] = flags["severity"]
    if flags.get("respawn") is False:
        remove("respawn")
    elif flags.get("respawn") is True and not of_type("respawn"):
        insert({"type": "respawn"})
    return rules


def build_soup(config: Mapping[str, Any]) -> Soup:
    """A fresh soup from a configuration dict (as stored in checkpoints and run directories)."""
    return RunConfig.from_dict(config).build()


def build_rules(config: Mapping[str, Any]) -> list[Interaction]:
    """The rules of a configuration dict, in order."""
    return RunConfig.from_dict(config).build_rules()
