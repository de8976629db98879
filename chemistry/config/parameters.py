"""Parameters read off a callable's signature: the one declaration of a configurable argument.

A rule's (or any callable's) constructor is its schema: :func:`parameters_of` turns each keyword
argument into a :class:`Parameter` with the argument's name, its kind from the annotation
(``int``, ``float``, ``bool``, ``str``, ``Literal[...]`` choices, ``X | None`` optional), its
default (none: required) and its meaning from the docstring's ``Args:`` section. The
configuration, the command line's ``--set``, sweep paths and experiments' options all read
parameters from here, so a new argument needs no edit anywhere else. Values are checked here
for their type only; the callable itself checks the range, once, where the value enters.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from chemistry.config.errors import ConfigError, closest, toml_value, type_name
from chemistry.limits import check_int64

__all__ = ["REQUIRED", "Parameter", "docstring_args", "parameters_of"]

REQUIRED: Any = inspect.Parameter.empty
_KINDS = ("int", "number", "bool", "str", "choice", "any")


@dataclass(frozen=True)
class Parameter:
    """One keyword argument of a callable, as a configuration key.

    Args:
        name: the argument's name (the key).
        kind: "int", "number", "bool", "str", "choice" (one of ``choices``) or "any".
        default: the default value, or ``REQUIRED``.
        optional: None is allowed (the argument is ``X | None``; None usually means "decided
            elsewhere", e.g. by the soup's preset, and is left out of a resolved configuration).
        choices: the allowed strings of a "choice".
        doc: the argument's line from the docstring's ``Args:`` section.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    optional: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self) -> str:
        """What the parameter accepts, in words."""
        words = {
            "int": "an integer",
            "number": "a number",
            "bool": "true or false",
            "str": "a string",
            "any": "a value",
        }
        if self.kind == "choice":
            return "one of " + ", ".join(toml_value(c) for c in self.choices)
        return words[self.kind]

    def check(self, value: Any, where: str) -> Any:
        """``value`` checked against the kind (ints become floats for a number).

        Raises:
            ConfigError: naming where, the key, the value and what is allowed.
        """
        kind = self.kind

        def fail(problem: str) -> ConfigError:
            meaning = f" ({self.doc})" if self.doc else ""
            return ConfigError(
                f"{where}: {self.name} = {toml_value(value)} {problem}; "
                f"it must be {self.allowed()}{meaning}"
            )

        if kind == "any":
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise fail(f"is {type_name(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(f"is {type_name(value)}")
            check_int64(self.name, value, where)
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(f"is {type_name(value)}")
            if not math.isfinite(value):
                raise fail("is not finite")
            return float(value)
        if not isinstance(value, str):
            raise fail(f"is {type_name(value)}")
        if kind == "choice" and value not in self.choices:
            suggestion = closest(value, self.choices)
            hint = f" (did you mean {toml_value(suggestion)}?)" if suggestion else ""
            raise ConfigError(
                f"{where}: {self.name} = {toml_value(value)} is not allowed{hint}; "
                f"it must be {self.allowed()}"
            )
        return value


def _kind_of(hint: Any, default: Any) -> tuple[str, bool, tuple[str, ...]]:
    """(kind, optional, choices) of a type hint (or, without one, of the default's type)."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0] if len(members) == 1 else Any
        origin = typing.get_origin(hint)
    if origin is Literal:
        choices = tuple(str(c) for c in typing.get_args(hint))
        return "choice", optional, choices
    if hint is inspect.Parameter.empty or hint is Any:
        hint = type(default) if default not in (REQUIRED, None) else Any
    names = {bool: "bool", int: "int", float: "number", str: "str"}
    return names.get(hint, "any"), optional or default is None, ()


def docstring_args(function: Callable) -> dict[str, str]:
    """``{argument: text}`` from the ``Args:`` sections of the docstrings of ``function`` and,
    for a class, of its base classes (the first one that documents an argument wins).

    A line ``name: text`` (or ``a, b: text``) starts an entry; more deeply indented lines
    continue it.
    """
    owners = list(function.__mro__) if inspect.isclass(function) else [function]
    found: dict[str, str] = {}
    for owner in owners:
        section: int | None = None  # indentation of the "Args:" line while inside it
        entries: int | None = None  # indentation of its entries
        current: list[str] = []
        for line in inspect.cleandoc(owner.__doc__ or "").splitlines():
            stripped, depth = line.strip(), len(line) - len(line.lstrip())
            if stripped in ("Args:", "Arguments:", "Parameters:"):
                section, entries, current = depth, None, []
                continue
            if section is None or not stripped:
                continue
            if depth <= section:
                section = None
                continue
            entry = re.fullmatch(r"(\w+(?:\s*,\s*\w+)*):\s*(.*)", stripped)
            if entry and (entries is None or depth == entries):
                entries = depth
                current = [n.strip() for n in entry.group(1).split(",")]
                for name in current:
                    if name not in found:
                        found[name] = entry.group(2)
                    else:
                        current = [c for c in current if c != name]
            elif depth > (entries or section):
                for name in current:
                    found[name] = f"{found[name]} {stripped}"
    return found


def parameters_of(function: Callable, *, skip: tuple[str, ...] = ()) -> tuple[Parameter, ...]:
    """The keyword arguments of ``function`` (a class: its constructor) as parameters.

    ``*args``, ``**kwargs``, positional-only arguments and the names in ``skip`` are left out.
    """
    target = function.__init__ if inspect.isclass(function) else function
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):
        hints = {}
    docs = docstring_args(function)
    parameters = []
    for argument in signature.parameters.values():
        if (
            argument.kind
            in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
                inspect.Parameter.POSITIONAL_ONLY,
            )
            or argument.name in skip
        ):
            continue
        hint = hints.get(argument.name, argument.annotation)
        kind, optional, choices = _kind_of(hint, argument.default)
        parameters.append(
            Parameter(
                argument.name,
                kind,
                argument.default,
                optional,
                choices,
                " ".join(docs.get(argument.name, "").split()),
            )
        )
    return tuple(parameters)
