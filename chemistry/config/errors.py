"""Configuration errors and the helpers that make their messages: quoting values as TOML,
naming a value's type, and suggesting the closest valid name."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ConfigError", "closest", "toml_value", "type_name"]


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names the key, the value and the fix."""


def type_name(value: Any) -> str:
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
    name: Any, valid: list[str] | tuple[str, ...], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The valid name closest to ``name`` (same letters ignoring case and _-, an alias, or
    ``difflib.get_close_matches``), or None."""
    if not isinstance(name, str):
        return None
    for candidate in valid:
        if _normalise(candidate) == _normalise(name):
            return candidate
    aliases = VALUE_ALIASES if aliases is None else aliases
    if _normalise(name) in aliases and aliases[_normalise(name)] in valid:
        return aliases[_normalise(name)]
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    if not matches:
        matches = difflib.get_close_matches(name.lower(), list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


#: Other names people use for valid values (spelling-normalised), for did-you-mean hints.
VALUE_ALIASES = {
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


def toml_value(value: Any) -> str:
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
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))
