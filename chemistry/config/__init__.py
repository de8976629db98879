"""Run configuration: the TOML schema of ``chemistry run``, strictly validated, fully resolved.

One job per module: :mod:`~chemistry.config.schema` (the tables and :class:`RunConfig`),
:mod:`~chemistry.config.parameters` (parameters read off constructors' signatures),
:mod:`~chemistry.config.plugins` (user rule modules and entry points),
:mod:`~chemistry.config.overrides` (command-line settings and ``--set`` paths),
:mod:`~chemistry.config.migrate` (old key names) and :mod:`~chemistry.config.errors`.
"""

from chemistry.config.errors import ConfigError, closest, toml_value, type_name
from chemistry.config.overrides import apply_overrides, apply_settings, parse_setting
from chemistry.config.parameters import Parameter, parameters_of
from chemistry.config.plugins import ENTRY_POINT_GROUP, known_rules, rule_class
from chemistry.config.schema import (
    DEFAULT_POPULATION,
    DEFAULT_RULES,
    DTYPES,
    RECORD,
    RULES,
    SECTIONS,
    TOP_LEVEL,
    TOPOLOGIES,
    Key,
    RunConfig,
    architecture_keys,
    build_rules,
    build_soup,
    load_config,
    parse_config,
    read_config_file,
    rule_parameters,
)

__all__ = [
    "DEFAULT_POPULATION",
    "DEFAULT_RULES",
    "DTYPES",
    "ENTRY_POINT_GROUP",
    "RECORD",
    "RULES",
    "SECTIONS",
    "TOPOLOGIES",
    "TOP_LEVEL",
    "ConfigError",
    "Key",
    "Parameter",
    "RunConfig",
    "apply_overrides",
    "apply_settings",
    "architecture_keys",
    "build_rules",
    "build_soup",
    "closest",
    "known_rules",
    "load_config",
    "parameters_of",
    "parse_config",
    "parse_setting",
    "read_config_file",
    "rule_class",
    "rule_parameters",
    "toml_value",
    "type_name",
]
