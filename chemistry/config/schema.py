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
    checkpoint_keep = 0           # keep the newest k checkpoints, older ones folded in (0: all)
    figures = true                # draw the figures when the run ends

    [topology]
    kind = "complete"   # complete | ring | grid | small_world | disjoint_cliques | graphml

    [[population]]                # one table per architecture; at least one particle in all
    architecture = "ww"           # ww | agg | rnn | fft, plus that architecture's options
    count = 20

    [[rules]]                     # the epoch's rules, run in this order
    type = "attack"     # attack | learn | self_train | self_apply | respawn | clone | melt
    chance = 0.1

A ``[[rules]]`` table takes its rule's constructor arguments as keys (``interactions.RULES``:
every rule class with a ``name``; a user's rule module is listed in a top-level
``plugins = ["my_rules.py"]``). Every other table accepts exactly the keys listed in
``TOP_LEVEL``, ``RECORD``, ``TOPOLOGIES`` and ``architecture_keys``: an unknown key is an error
naming it, where it was and the closest valid key; a value of the wrong type or out of range is
an error naming the key, the value and what is allowed. :meth:`RunConfig.to_dict` returns the
resolved configuration with every default filled in (a rule argument whose default is None, such
as a training rule's ``lr``, is decided by the soup's preset and left out), and
:meth:`RunConfig.to_toml` writes it as TOML that ``chemistry run`` reads back to the same
configuration.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import torch

from chemistry.config.errors import VALUE_ALIASES, ConfigError, closest
from chemistry.config.errors import toml_value as _toml_value
from chemistry.config.errors import type_name as _type_name
from chemistry.config.migrate import migrate_rule
from chemistry.config.parameters import Parameter, parameters_of
from chemistry.config.plugins import import_plugin, resolve_plugin, rule_class
from chemistry.limits import (
    check_config_file,
    check_device,
    check_int64,
    check_run,
    check_topology,
)
from chemistry.soup import SCHEDULES, Soup
from chemistry.topology import Topology
from interactions import RULES, Interaction
from particles import ACTIVATIONS, ARCHITECTURES, PRESETS, Architecture
from particles import architectures as _architectures
from particles.presets import DEFAULT_PRESET
from particles.validation import check_count, check_positive

__all__ = [
    "DTYPES",
    "RECORD",
    "RULES",
    "rule_parameters",
    "TOP_LEVEL",
    "TOPOLOGIES",
    "ConfigError",
    "Key",
    "RunConfig",
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
        suggestion = closest(value, key.choices, VALUE_ALIASES)
        hint = f" (did you mean {_toml_value(suggestion)}?)" if suggestion else ""
        raise ConfigError(
            f"{where}: {key.name} = {_toml_value(value)} is not allowed{hint}; "
            f"it must be {key.allowed()}"
        )
    return value


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


def _read(
    table: dict[str, Any], keys: tuple[Key | Parameter, ...], where: str, context: dict
) -> dict:
    """Values of ``keys`` from ``table``: checked, with defaults filled in."""
    values: dict[str, Any] = {}
    for key in keys:
        if key.name in table and isinstance(key, Parameter):
            values[key.name] = key.check(table[key.name], where)
        elif key.name in table:
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


# ----------------------------------------------------------------------------------------------
# The schema


SECTIONS = ("record", "topology", "population", "rules")


#: The ``[topology]`` kinds: each is the ``Topology`` constructor of that name, whose arguments
#: are its keys (``graphml`` reads a file into ``Topology.from_graph``).
TOPOLOGIES: dict[str, tuple[Parameter, ...]] = {
    kind: parameters_of(getattr(Topology, kind), skip=("device",))
    for kind in ("complete", "ring", "grid", "small_world", "disjoint_cliques")
} | {
    "graphml": (
        Parameter("path", "str", doc="GraphML file of an undirected graph, relative to the config"),
    )
}


def _topology_defaults(kind: str, table: dict, context: dict, where: str) -> dict[str, Any]:
    """The keys a topology derives from the run: its size from the population (a grid's sides,
    a set of cliques' number or size) and a small world's seed from the run's."""
    population = context["population"]
    if kind == "grid":
        rows, cols = table.get("rows"), table.get("cols")
        side = math.isqrt(population)
        if isinstance(rows, int) and rows > 0 and cols is None:
            return {"cols": -(-population // rows)}
        if isinstance(cols, int) and cols > 0 and rows is None:
            return {"rows": -(-population // cols)}
        if rows is None and cols is None and side * side != population:
            raise ConfigError(
                f"{where}: the population of {population} is not a square; give rows and cols "
                "(rows * cols >= population)"
            )
        return {"rows": side, "cols": side}
    if kind == "disjoint_cliques":
        size, num_soups = table.get("size"), table.get("num_soups")
        if size is None and num_soups is None:
            raise ConfigError(f"{where}: give size (particles per clique) or num_soups")
        defaults = {}
        if isinstance(size, int) and size > 0:
            defaults["num_soups"] = -(-population // size)
        if isinstance(num_soups, int) and num_soups > 0:
            defaults["size"] = -(-population // num_soups)
        return defaults
    defaults: dict[str, Any] = {"nodes": population} if kind != "graphml" else {}
    return defaults | ({"seed": context["seed"]} if kind == "small_world" else {})


def rule_parameters(cls: type[Interaction]) -> tuple[Parameter, ...]:
    """The keys of a ``[[rules]]`` table of rule class ``cls``: its constructor's arguments."""
    return parameters_of(cls)


def architecture_keys(name: str, preset: str | None = None) -> tuple[Key, ...]:
    """The keys of a ``[[population]]`` entry of architecture ``name``: its dataclass fields
    (with ``preset``, the preset's initialisation and encoding as defaults)."""
    cls = ARCHITECTURES[name]
    settings = PRESETS[preset].architecture_options(cls) if preset is not None else {}
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
        default = settings.get(item.name, item.default)
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

    def build(self) -> Topology:
        """The Topology object."""
        if self.kind == "graphml":
            return Topology.from_graph(_read_graphml(Path(self.params["path"])))
        return getattr(Topology, self.kind)(**self.params)

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
        return rule_class(self.type, "[[rules]]")(**self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    def describe(self) -> str:
        """One line, e.g. ``attack(chance=0.1, pairing=per_particle, allow_self=false)``."""
        shown = ", ".join(f"{k}={_plain(v)}" for k, v in self.params.items())
        return f"{self.type}({shown})"


@dataclass(frozen=True)
class RecordConfig:
    """What a run records and how often (0 = never): the ``[record]`` table.

    Args:
        trajectories_every: record every particle's weights every k epochs (0: off).
        metrics_every: classify and collect metrics every k epochs (0: off).
        checkpoint_every: write a checkpoint every k epochs and at the end (0: off).
        checkpoint_keep: keep only the newest k checkpoints, older ones folded in (0: all).
        figures: draw the figures when the run ends.
    """

    trajectories_every: int = 1
    metrics_every: int = 1
    checkpoint_every: int = 10
    checkpoint_keep: int = 0
    figures: bool = True

    def __post_init__(self) -> None:
        for name in ("trajectories_every", "metrics_every", "checkpoint_every", "checkpoint_keep"):
            check_count(name, getattr(self, name), 0)


#: The keys of ``[record]``: the fields of :class:`RecordConfig`.
RECORD: tuple[Parameter, ...] = parameters_of(RecordConfig)


@dataclass(frozen=True)
class RunConfig:
    """A validated, fully resolved run configuration (build it with :meth:`from_dict`).

    Use :func:`load_config` for a TOML file, :meth:`build` for the soup, :meth:`to_dict` /
    :meth:`to_toml` for the resolved configuration. Its scalar fields are the top-level keys.

    Args:
        description: free text shown by `chemistry info`.
        seed: seed of every random draw, an integer >= 0; same seed, same run.
        epochs: number of epochs to run, an integer >= 0.
        device: torch device: "cpu", "cuda", "cuda:1", "mps".
        dtype: dtype of the weights.
        preset: the soup's setting: learning rate and training mode of the rules, eps, the
            particles' initialisation and encoding (SPEC Table 2).
        eps: fixpoint tolerance of the classification (default: the preset's).
        schedule: synchronous (canonical) or sequential (per particle, the original code's loop).
        plugins: modules or .py files of rules of one's own, imported first.
    """

    description: str = ""
    seed: int = 0
    epochs: int = 100
    device: str = "cpu"
    dtype: Literal[tuple(DTYPES)] = "float32"  # type: ignore[valid-type]
    preset: Literal[tuple(PRESETS)] = DEFAULT_PRESET  # type: ignore[valid-type]
    eps: float | None = None
    schedule: Literal[SCHEDULES] = "synchronous"  # type: ignore[valid-type]
    plugins: tuple[str, ...] = ()
    record: RecordConfig = field(default_factory=RecordConfig)
    population: tuple[PopulationEntry, ...] = ()
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    rules: tuple[RuleConfig, ...] = ()

    def __post_init__(self) -> None:
        check_count("seed", self.seed, 0)
        check_count("epochs", self.epochs, 0)
        if self.eps is not None:
            check_positive("eps", self.eps)

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
            [k.name for k in TOP_LEVEL] + ["plugins"] + list(SECTIONS),
            "at the top level",
        )
        plugins = _parse_plugins(data.get("plugins", []), base)
        top = _read(data, TOP_LEVEL, "at the top level", {})
        if top["eps"] is None:
            top["eps"] = PRESETS[top["preset"]].eps
        try:
            cls(**top)  # the ranges, before the tables are read
        except ValueError as error:
            raise ConfigError(f"at the top level: {_as_given(str(error), data)}") from None
        context: dict[str, Any] = {"preset": PRESETS[top["preset"]], "seed": top["seed"]}
        context["eps"] = top["eps"]
        check_device(top["device"])

        record_table = _check_keys(data.get("record", {}), [k.name for k in RECORD], "[record]")
        try:
            record = RecordConfig(**_read(record_table, RECORD, "[record]", context))
        except ValueError as error:
            raise ConfigError(f"[record]: {_as_given(str(error), record_table)}") from None
        population = tuple(
            _parse_population(entry, index, top["preset"])
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
            _parse_rule(entry, index)
            for index, entry in enumerate(
                _array_of_tables(data.get("rules", list(DEFAULT_RULES)), "rules"), 1
            )
        )
        config = cls(
            **top,
            plugins=plugins,
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
                preset=self.preset,
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
        if self.plugins:
            data["plugins"] = list(self.plugins)
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
        if self.plugins:
            lines.append(f"plugins = {_toml_value(data['plugins'])}")
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
            + (f" ({options})" if (options := _plain_options(entry, self.preset)) else "")
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


#: The top-level keys: the scalar fields of :class:`RunConfig`.
TOP_LEVEL: tuple[Parameter, ...] = tuple(
    p for p in parameters_of(RunConfig) if p.name not in ("plugins", *SECTIONS)
)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _plain_options(entry: PopulationEntry, preset: str) -> str:
    """The options of a population entry that differ from the architecture's defaults."""
    defaults = {k.name: k.default for k in architecture_keys(entry.architecture, preset)}
    return ", ".join(f"{k}={_plain(v)}" for k, v in entry.options.items() if defaults.get(k) != v)


def _rule_where(index: int, rule_type: Any) -> str:
    kind = f" (type = {_toml_value(rule_type)})" if isinstance(rule_type, str) else ""
    return f"[[rules]] #{index}{kind}"


def _parse_plugins(value: Any, base: str | Path | None) -> tuple[str, ...]:
    """The resolved plugins, each imported (so that its rules are registered)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(
            f"at the top level: plugins = {_toml_value(value)} is not allowed; it must be an "
            'array of module names or .py files (relative to the config file), e.g. ["rules.py"]'
        )
    plugins = tuple(dict.fromkeys(resolve_plugin(plugin, base) for plugin in value))
    for plugin in plugins:
        import_plugin(plugin)
    return plugins


def _parse_population(entry: Any, index: int, preset: str) -> PopulationEntry:
    where = f"[[population]] #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table, got {_type_name(entry)} {_toml_value(entry)}")
    name_key = architecture_keys("ww")[0]
    name = _check(name_key, entry.get("architecture", name_key.default), where)
    keys = architecture_keys(name, preset)
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
    table = _topology_defaults(kind, table, context, where) | table
    params = _read({k: v for k, v in table.items() if k != "kind"}, keys, where, context)
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


def _parse_rule(entry: Any, index: int) -> RuleConfig:
    where = f"[[rules]] #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table, got {_type_name(entry)} {_toml_value(entry)}")
    if "type" not in entry:
        raise ConfigError(
            f"{where}: missing key 'type'; it must be one of "
            + ", ".join(_toml_value(name) for name in RULES)
        )
    rule_type = entry["type"]
    cls = rule_class(rule_type, where)
    where = _rule_where(index, rule_type)
    parameters = rule_parameters(cls)
    entry = migrate_rule(entry, [p.name for p in parameters])
    _check_keys(entry, ["type"] + [p.name for p in parameters], where)
    params: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.name in entry:
            params[parameter.name] = parameter.check(entry[parameter.name], where)
        elif parameter.required:
            meaning = f" ({parameter.doc})" if parameter.doc else ""
            raise ConfigError(
                f"{where}: missing key '{parameter.name}'{meaning}; it must be "
                f"{parameter.allowed()}"
            )
        elif parameter.default is not None:
            params[parameter.name] = parameter.default
    config = RuleConfig(rule_type, params)
    try:
        config.build()
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {_as_given(str(error), entry)}") from None
    return config


def _as_given(message: str, entry: dict[str, Any]) -> str:
    """A constructor's "NAME=VALUE is not allowed; ..." with the value as written in the file."""
    found = re.match(r"(\w+)=.*? is not allowed; (.*)", message, flags=re.DOTALL)
    if found is None or found.group(1) not in entry:
        return message
    name, value = found.group(1), entry[found.group(1)]
    problem = "is out of range" if isinstance(value, (int, float)) else "is not allowed"
    return f"{name} = {_toml_value(value)} {problem}; {found.group(2)}"


# ----------------------------------------------------------------------------------------------
# TOML text


# ----------------------------------------------------------------------------------------------
# Files, overrides and builders


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML configuration file.

    Raises:
        ConfigError: if the file is missing, unreadable, not TOML, or not a valid configuration;
            the message starts with the file's name.
    """
    return parse_config(read_config_file(path), source=path, base=Path(path).parent)


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


def build_soup(config: Mapping[str, Any]) -> Soup:
    """A fresh soup from a configuration dict (as stored in checkpoints and run directories)."""
    return RunConfig.from_dict(config).build()


def build_rules(config: Mapping[str, Any]) -> list[Interaction]:
    """The rules of a configuration dict, in order."""
    return RunConfig.from_dict(config).build_rules()
