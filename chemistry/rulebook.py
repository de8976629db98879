"""Rules from plain values: names, factories and ``<rule>_<parameter>`` keywords.

So that ``Soup`` takes plain keyword parameters (what ``mesa.batch_run`` passes), a soup's
rules may be given as a string of rule names (``"attack self_train respawn"``), a list of
names, ``Interaction`` objects or factories (a class or any zero-argument callable), or one
callable returning the whole list (called with the soup's extra keywords, so its own parameters
are plain soup parameters). Rules built from names or factories are fresh for every soup.
Names are those of configuration files (``[[rules]] type = ...``): every rule class registered
in ``interactions.base.RULES``, a user's own included. A rule built from a name takes its
constructor's arguments from keywords named ``<rule>_<parameter>`` (``attack_chance=0.1``,
``self_train_steps=30``): the constructor is the schema."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from interactions import Interaction
from interactions.base import RULES

RuleSpec = Interaction | str | Callable[[], Interaction]


def _names(text: str) -> list[str]:
    return [name for name in re.split(r"[\s,;>→-]+", text.strip()) if name]


def _parameters(rule_type: type[Interaction]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(rule_type).parameters)


def _split_settings(names: list[str], settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{rule name: {parameter: value}}`` from ``<rule>_<parameter>`` keywords."""
    by_rule: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in settings.items():
        # longest rule name first: "self_train_steps" belongs to self_train, not to "self"
        owner = next(
            (n for n in sorted(RULES, key=len, reverse=True) if key.startswith(n + "_")),
            None,
        )
        if owner is None or owner not in by_rule:
            rules = ", ".join(names) or "none"
            raise ValueError(
                f"unknown keyword {key}={value!r}: Soup takes rule settings as "
                f"<rule>_<parameter> for the rules given by name (here: {rules}), e.g. "
                "attack_chance=0.1"
            )
        parameter = key[len(owner) + 1 :]
        allowed = _parameters(RULES[owner])
        if parameter not in allowed:
            raise ValueError(
                f"unknown keyword {key}={value!r}: rule {owner!r} has the parameters "
                f"{', '.join(owner + '_' + p for p in allowed)}"
            )
        by_rule[owner][parameter] = value
    return by_rule


def _from_name(name: str, arguments: dict[str, Any]) -> Interaction:
    if name not in RULES:
        raise ValueError(f"rule name {name!r} is not allowed; choose one of {', '.join(RULES)}")
    rule_type = RULES[name]
    missing = [
        p.name
        for p in _parameters(rule_type).values()
        if p.default is inspect.Parameter.empty and p.name not in arguments
    ]
    if missing:
        raise ValueError(
            f"rule {name!r} needs {', '.join(f'{name}_{p}=...' for p in missing)} "
            f"(the parameters of {rule_type.__name__})"
        )
    return rule_type(**arguments)


def build_rules(
    rules: str | Iterable[RuleSpec] | Callable[[], Iterable[Interaction]],
    settings: Mapping[str, Any] | None = None,
) -> list[Interaction]:
    """The rule objects of a soup from any accepted form (see the module docstring).

    Raises:
        ValueError: for an unknown rule name or keyword, a missing required parameter, or an
            item that is not a rule.
    """
    settings = dict(settings or {})
    if callable(rules) and not isinstance(rules, Interaction | type):
        try:
            rules = rules(**settings)
        except TypeError as error:
            name = getattr(rules, "__name__", repr(rules))
            raise ValueError(
                f"the rules factory {name} cannot be called with {sorted(settings) or 'nothing'} "
                f"({error}); its parameters are the soup's extra keywords"
            ) from None
        settings = {}
    if isinstance(rules, str):
        rules = _names(rules)
    if isinstance(rules, Interaction):
        raise ValueError(
            f"rules={rules!r} is a single rule; give a list of rules, rule names or factories"
        )
    try:
        items = list(rules)
    except TypeError:
        raise ValueError(
            f"rules={rules!r} is not allowed; give a list of rules (Interaction objects, rule "
            "names or factories), a string of rule names, or a callable returning the rules"
        ) from None
    names = [item for item in items if isinstance(item, str)]
    arguments = _split_settings(names, settings)
    built = []
    for item in items:
        if isinstance(item, str):
            rule = _from_name(item, arguments[item])
        elif isinstance(item, Interaction):
            rule = item
        elif callable(item):
            try:
                rule = item()
            except TypeError as error:
                name = getattr(item, "__name__", repr(item))
                raise ValueError(
                    f"rule factory {name} cannot be called without arguments ({error}); give "
                    "the rule by name with <rule>_<parameter> keywords (attack_chance=0.1) or "
                    "a factory without arguments (lambda: Attack(0.1))"
                ) from None
        else:
            rule = item
        if not isinstance(rule, Interaction):
            raise ValueError(
                f"rule {item!r} is not an Interaction; subclass interactions.Interaction, or "
                f"give a rule name ({', '.join(RULES)}) or a factory"
            )
        built.append(rule)
    return built
