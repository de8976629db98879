"""Changes to a raw configuration: command-line settings and dotted key paths.

A path addresses a key of the run configuration, as sweeps and ``chemistry run --set`` write it:

==================================== ==========================================================
``epochs``, ``preset``, ...          a top-level key
``record.KEY``, ``topology.KEY``     a key of the ``[record]`` or ``[topology]`` table
``topology``                         the whole ``[topology]`` table (value: an inline table)
``population.I.KEY``                 a key of the I-th ``[[population]]`` table, counted from 0
``population.ARCH.KEY``              that key in every ``[[population]]`` table of architecture
                                     ARCH (``ww``, ``agg``, ...)
``rules.I.KEY``                      a key of the I-th ``[[rules]]`` table, counted from 0
``rules.TYPE.KEY``                   that key in every rule of type TYPE (``self_train``, ...)
``rules.I``, ``population.ARCH``     the whole table(s) (value: an inline table)
``rules``, ``population``            the whole array (value: an array of inline tables)
==================================== ==========================================================

The keys of a rule are its constructor's arguments, so a new argument is a new path.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from chemistry.config.errors import ConfigError, closest, toml_value
from chemistry.config.plugins import known_rules, rule_class
from chemistry.config.schema import (
    CANONICAL_ORDER,
    DEFAULT_POPULATION,
    DEFAULT_RULES,
    RECORD,
    SECTIONS,
    TOP_LEVEL,
    TOPOLOGIES,
    architecture_keys,
    rule_parameters,
)
from particles import ARCHITECTURES, MODES, PRESETS

__all__ = ["apply_overrides", "apply_settings", "check_path", "parse_setting"]


def parse_setting(text: str) -> tuple[str, Any]:
    """``PATH=VALUE`` as (path, value): the value read as TOML (``0.2``, ``true``, ``[1, 2]``,
    ``{kind = "ring"}``), or as a plain string when it is not TOML (``preset=journal2021``).

    Raises:
        ConfigError: if there is no ``=``.
    """
    path, equals, value = text.partition("=")
    if not equals or not path.strip():
        raise ConfigError(f"--set {text!r} is not PATH=VALUE, e.g. --set rules.attack.chance=0.2")
    try:
        parsed = tomllib.loads(f"value = {value.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return path.strip(), parsed


def _follow_preset(data: dict[str, Any]) -> None:
    """Drop from raw ``data`` what its preset decides, so that a new preset takes effect."""
    data.pop("eps", None)
    for rule in data.get("rules", []):
        if not isinstance(rule, dict):
            continue
        try:
            parameters = rule_parameters(rule_class(rule.get("type"), "[[rules]]"))
        except ConfigError:
            continue  # an unknown type is reported when the configuration is read
        for parameter in parameters:
            if parameter.default is None and parameter.optional:
                rule.pop(parameter.name, None)
        if rule.get("mode") in MODES:  # written before self_train's mode was training_mode
            rule.pop("mode")
    preset = PRESETS.get(data["preset"])
    for entry in data.get("population", []):
        name = entry.get("architecture", "ww") if isinstance(entry, dict) else None
        if preset is not None and name in ARCHITECTURES:
            for option in preset.architecture_options(ARCHITECTURES[name]):
                entry.pop(option, None)


def apply_overrides(data: Mapping[str, Any], **flags: Any) -> dict[str, Any]:
    """A copy of the raw configuration ``data`` with command-line settings applied.

    Flags set to None are ignored. Scalars (``seed``, ``epochs``, ``device``, ``dtype``,
    ``schedule``) replace the top-level keys; ``trajectories_every``, ``metrics_every``,
    ``checkpoint_every``, ``figures`` the ``[record]`` keys. ``preset`` also drops what the preset
    decides (``eps``, every rule argument whose default is None, the architectures' preset
    settings) so that it follows the new preset. ``population`` sets the
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
        _follow_preset(data)
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


def _selectable(section: str) -> tuple[str, str]:
    """(name of the selecting key, its default) of an array-of-tables section."""
    return ("architecture", "ww") if section == "population" else ("type", "")


def _section_keys(section: str) -> list[str]:
    """Every key a table of ``section`` may hold (over all architectures, rules, topologies)."""
    names: dict[str, None] = {}
    if section == "record":
        names |= dict.fromkeys(k.name for k in RECORD)
    elif section == "topology":
        names["kind"] = None
        for keys in TOPOLOGIES.values():
            names |= dict.fromkeys(k.name for k in keys)
    elif section == "population":
        for name in ARCHITECTURES:
            names |= dict.fromkeys(k.name for k in architecture_keys(name))
    else:
        names["type"] = None
        for cls in known_rules().values():
            names |= dict.fromkeys(p.name for p in rule_parameters(cls))
    return list(names)


def _entries(data: Mapping[str, Any], section: str) -> list[Any]:
    """The raw tables of ``population`` or ``rules`` (the default soup's when absent)."""
    default = DEFAULT_POPULATION if section == "population" else DEFAULT_RULES
    entries = data.get(section, list(default))
    return entries if isinstance(entries, list) else []


def _select(entries: list[Any], selector: str, section: str, where: str) -> list[int]:
    """Indices of the tables of ``entries`` that ``selector`` (an index or a name) addresses."""
    if re.fullmatch(r"\d+", selector):
        index = int(selector)
        if index >= len(entries):
            raise ConfigError(
                f"{where}: index {index} is out of range: the base has {len(entries)} "
                f"[[{section}]] table(s), counted from 0"
            )
        return [index]
    name, default = _selectable(section)
    found = [
        i
        for i, entry in enumerate(entries)
        if isinstance(entry, dict) and entry.get(name, default) == selector
    ]
    if not found:
        present = sorted({str(e.get(name, default)) for e in entries if isinstance(e, dict)} - {""})
        what = "architecture" if section == "population" else "rule type"
        raise ConfigError(
            f"{where}: the base has no [[{section}]] table of {what} {selector!r} "
            f"(it has: {', '.join(present) or 'none'}); address a table by its index (from 0) "
            f"or by a {what} it has"
        )
    return found


def check_path(path: Any, where: str, base: Mapping[str, Any]) -> list[str]:
    """The segments of an override path after checking it addresses a key of the base."""
    if not isinstance(path, str) or not path or any(not s for s in path.split(".")):
        raise ConfigError(f"{where}: {toml_value(path)} is not a dotted key path like 'epochs'")
    where = f"{where}: key {toml_value(path)}"
    segments = path.split(".")
    head = segments[0]
    if head == "seed":
        raise ConfigError(f"{where}: the seed is not an override; give the seeds with 'seeds'")
    valid = [k.name for k in TOP_LEVEL if k.name != "seed"] + list(SECTIONS)
    if head not in valid:
        suggestion = closest(head, valid)
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        raise ConfigError(
            f"{where}: unknown key '{head}'{hint}; a path starts with one of: {', '.join(valid)}"
        )
    depth = {"record": 2, "topology": 2, "population": 3, "rules": 3}.get(head, 1)
    if len(segments) > depth:
        raise ConfigError(
            f"{where}: too many parts; '{head}' paths have at most {depth} "
            + ("(e.g. 'rules.self_train.steps' or 'rules.1.steps')" if depth == 3 else "parts")
        )
    if head in ("population", "rules") and len(segments) >= 2:
        _select(_entries(base, head), segments[1], head, where)
    if len(segments) == depth and depth > 1:
        keys = _section_keys(head)
        if segments[-1] not in keys:
            suggestion = closest(segments[-1], keys)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            raise ConfigError(
                f"{where}: unknown key '{segments[-1]}'{hint}; valid keys of [{head}] tables: "
                + ", ".join(keys)
            )
    return segments


def apply_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw configuration ``base`` with the ``overrides`` (path → value) applied
    (the paths of sweeps and ``chemistry run --set``, see :func:`check_path`).

    Whole tables and arrays are replaced before keys inside them are set.

    Raises:
        ConfigError: if a path does not address a table of ``base``.
    """
    data = copy.deepcopy(dict(base))
    for path in sorted(overrides, key=lambda p: p.count(".")):
        value = copy.deepcopy(overrides[path])
        segments = check_path(path, "override", data)
        head = segments[0]
        if len(segments) == 1:
            data[head] = value
        elif head in ("record", "topology"):
            table = data.setdefault(head, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {path}: [{head}] of the base is not a table")
            table[segments[1]] = value
        else:
            entries = copy.deepcopy(_entries(data, head))
            data[head] = entries
            for index in _select(entries, segments[1], head, f"override {path}"):
                if len(segments) == 2:
                    entries[index] = copy.deepcopy(value)
                elif isinstance(entries[index], dict):
                    entries[index][segments[2]] = copy.deepcopy(value)
    return data
