"""The configuration of a soup built in Python: what ``chemistry run`` would need to build it.

Read off the soup: its seed, preset, device, dtype, eps, schedule and recording intervals, its
starting architectures and counts, its topology and its rules. A rule is written as its ``name``
and its constructor's arguments, read from the attributes of the same names (the convention every
rule follows: it keeps each argument under its own name). A rule class defined outside the package
is listed in ``plugins`` by its module name, or by its file when the module is a script.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from chemistry.config.schema import DTYPES, RECORD, RunConfig, rule_parameters
from chemistry.soup import Soup
from interactions import RULES, Interaction

__all__ = ["TOPOLOGY_FILE", "config_of", "rule_table"]

#: The file a soup's topology is written to when no configuration table describes it.
TOPOLOGY_FILE = "topology.graphml"
_ACTIVATIONS = ("activation", "output_activation")


def rule_table(rule: Interaction) -> dict[str, Any]:
    """A rule as a ``[[rules]]`` table: ``type`` and its constructor's arguments (None left out).

    Raises:
        ValueError: if the rule's class is not registered under its ``name``, or the rule keeps
            no attribute for one of its arguments.
    """
    cls = type(rule)
    if cls.name is None or RULES.get(cls.name) is not cls:
        raise ValueError(
            f"rule {rule!r} cannot be written as configuration: its class {cls.__qualname__} is "
            f'not registered under a name of its own; give it one (name = "...")'
        )
    table: dict[str, Any] = {"type": cls.name}
    for parameter in rule_parameters(cls):
        if not hasattr(rule, parameter.name):
            raise ValueError(
                f"rule {cls.__qualname__} keeps no attribute {parameter.name!r} for its argument "
                f"of that name; store each constructor argument under its own name "
                f"(self.{parameter.name} = {parameter.name}) so that a soup can be written"
            )
        value = getattr(rule, parameter.name)
        if value is not None:
            table[parameter.name] = value
    return table


def _plugin_of(cls: type) -> str | None:
    """The plugin that defines ``cls``: None for the package's own rules."""
    module = cls.__module__
    if module.split(".")[0] in ("interactions", "chemistry"):
        return None
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if module == "__main__" or module.startswith("chemistry_plugin_"):
        if path is None:
            raise ValueError(
                f"rule {cls.__qualname__} is defined in an interactive session; define it in a "
                "module or a .py file so that the run directory can name it as a plugin"
            )
        return str(Path(path).resolve())
    return module


def _architecture_table(architecture: Any, count: int) -> dict[str, Any]:
    table: dict[str, Any] = {"architecture": architecture.reduction, "count": count}
    for item in dataclasses.fields(architecture):
        if item.init:
            value = getattr(architecture, item.name)
            table[item.name] = "linear" if item.name in _ACTIVATIONS and value is None else value
    return table


def _topology_table(soup: Soup, directory: Path | None) -> dict[str, Any]:
    topology = soup.topology
    block = getattr(topology, "_block_size", None)
    if topology.kind == "complete" and block == topology.num_nodes:
        return {"kind": "complete", "nodes": topology.num_nodes}
    if block is not None and topology.num_nodes % block == 0 and topology.kind != "complete":
        return {"kind": "disjoint_cliques", "size": block, "num_soups": topology.num_nodes // block}
    path = (directory or Path(".")) / TOPOLOGY_FILE
    if directory is not None:
        nx.write_graphml(nx.Graph(topology.graph), path)
    return {"kind": "graphml", "path": str(path.resolve())}


def config_of(
    soup: Soup, directory: str | Path | None = None, *, figures: bool = True
) -> RunConfig:
    """The resolved configuration of ``soup``, with ``epochs`` = its current epoch.

    A topology that no table describes is written to ``directory/topology.graphml`` (when a
    directory is given). A soup started from given weights is written with their counts: its
    configuration re-runs from fresh weights, while its checkpoint continues it exactly.

    Raises:
        ValueError: if a rule cannot be written (see :func:`rule_table`).
    """
    directory = Path(directory) if directory is not None else None
    dtype = next(name for name, value in DTYPES.items() if value == soup.dtype)
    plugins = [_plugin_of(type(rule)) for rule in soup.rules]
    record = {key.name: key.default for key in RECORD} | {
        "trajectories_every": soup.record_every,
        "metrics_every": soup.collect_every,
        "figures": figures,
    }
    data = {
        "seed": int(soup._seed),
        "epochs": soup.epoch,
        "device": str(soup.device) if soup.device != torch.device("cpu") else "cpu",
        "dtype": dtype,
        "preset": soup.preset.name,
        "eps": soup.eps,
        "schedule": soup.schedule,
        "plugins": list(dict.fromkeys(p for p in plugins if p is not None)),
        "record": record,
        "population": [
            _architecture_table(architecture, count)
            for architecture, count in soup.initial_population
        ],
        "topology": _topology_table(soup, directory),
        "rules": [rule_table(rule) for rule in soup.rules],
    }
    return RunConfig.from_dict(data, base=directory)
