"""User rules from outside the package: plugin modules and installed entry points.

A configuration's top-level ``plugins = [...]`` (and ``chemistry run --plugin``) names modules to
import before its rules are read: an importable module name (``my_package.rules``) or a ``.py``
file, relative to the configuration file. Importing a module defines its rule classes, and a rule
class with a ``name`` registers itself (``interactions.RULES``). Installed packages offer rules
through the entry-point group ``chemistry.rules``; those are loaded when a rule name is looked up.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from chemistry.config.errors import ConfigError, closest, toml_value
from interactions import RULES, Interaction

__all__ = ["ENTRY_POINT_GROUP", "import_plugin", "known_rules", "resolve_plugin", "rule_class"]

ENTRY_POINT_GROUP = "chemistry.rules"
_entry_points_loaded = False


def is_path(plugin: str) -> bool:
    """Whether a plugin names a ``.py`` file (else a module)."""
    return plugin.endswith(".py") or "/" in plugin or "\\" in plugin


def resolve_plugin(plugin: str, base: str | Path | None) -> str:
    """A plugin as stored in a resolved configuration: a module name as given, a file as an
    absolute path (relative paths are relative to ``base``, the configuration's folder)."""
    if not is_path(plugin):
        return plugin
    path = Path(plugin).expanduser()
    if not path.is_absolute():
        path = Path(base or ".") / path
    return str(path.resolve())


def import_plugin(plugin: str) -> ModuleType:
    """Import a plugin (a module name or an absolute ``.py`` path); a file is imported once.

    Raises:
        ConfigError: naming the plugin and why it cannot be imported.
    """
    where = f"plugins: {toml_value(plugin)}"
    if not is_path(plugin):
        try:
            return importlib.import_module(plugin)
        except ModuleNotFoundError as error:
            raise ConfigError(
                f"{where}: module {error.name!r} cannot be imported (is it installed, or on "
                "PYTHONPATH?); give an importable module name or the path of a .py file"
            ) from None
        except Exception as error:  # the plugin's own code failed while importing
            raise ConfigError(
                f"{where} failed while importing: {type(error).__name__}: {error}"
            ) from None
    path = Path(plugin)
    if not path.is_file():
        raise ConfigError(f"{where}: the file {path} does not exist")
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if main is not None and main_file and Path(main_file).resolve() == path.resolve():
        return main  # the running script itself: its rules are defined already
    digest = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:12]
    name = f"chemistry_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the plugin's own code failed while importing
        del sys.modules[name]
        raise ConfigError(
            f"{where} failed while importing: {type(error).__name__}: {error}"
        ) from None
    return module


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as error:  # a broken installed plugin must not break every run
            raise ConfigError(
                f"the installed rule plugin {entry_point.name!r} ({entry_point.value}, entry "
                f"point group {ENTRY_POINT_GROUP}) cannot be loaded: {type(error).__name__}: "
                f"{error}"
            ) from None


def known_rules() -> dict[str, type[Interaction]]:
    """Every registered rule, installed plugins' included: ``{name: class}``."""
    _load_entry_points()
    return dict(RULES)


def rule_class(name: str, where: str) -> type[Interaction]:
    """The rule class called ``name``.

    Raises:
        ConfigError: naming the unknown type, the closest known one and how to add one.
    """
    rules = known_rules()
    if isinstance(name, str) and name in rules:
        return rules[name]
    suggestion = closest(name, list(rules))
    hint = f" (did you mean {toml_value(suggestion)}?)" if suggestion else ""
    raise ConfigError(
        f"{where}: type = {toml_value(name)} is not a known rule{hint}; it must be one of "
        + ", ".join(toml_value(n) for n in rules)
        + ", or a rule of your own: list its module in plugins = [...]"
    )
