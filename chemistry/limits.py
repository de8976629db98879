"""Resource and range limits of a run: refused as input errors before anything is allocated.

A population, width or topology whose tensors cannot fit in the device's memory is refused with
the estimate; so is a step count (per particle and epoch) beyond :data:`MAX_STEPS`, and an
integer beyond TOML's 64-bit range (it could not be written back to ``config.toml``).

The estimate is a lower bound of what the soup allocates, in bytes:

    particles:  count * (num_weights * itemsize * COPIES + 9)   (weights, uid, divergence flag)
    nodes:      nodes * 32                                      (the node tables)
    edges:      2 * edges * 8 (CSR), plus NETWORKX_BYTES per node and edge of a networkx graph

where ``COPIES`` counts the weight bank and the working copies of training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DEVICE_TYPES = ("cpu", "cuda", "mps")
MAX_CONFIG_BYTES = 10_000_000
MAX_STEPS = 1_000_000  # self_train steps, learn severity, self_apply times
STEP_KEYS = ("steps", "severity", "times")
COPIES = 3
NODE_BYTES = 32
NETWORKX_BYTES = 500


def _error(message: str) -> ValueError:
    from chemistry.config import ConfigError  # chemistry.config calls these checks

    return ConfigError(message)


def format_size(size: float) -> str:
    """``size`` bytes in kB, MB, GB, TB or PB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


def check_int64(name: str, value: int, where: str) -> None:
    """Refuse an integer that TOML (64-bit signed) cannot hold."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise _error(
            f"{where}: {name} = {value} is beyond TOML's 64-bit integer range; it must be "
            f"between {INT64_MIN} and {INT64_MAX}"
        )


def check_config_file(path: Path) -> None:
    """Refuse a configuration "file" that is a device or pipe (``/dev/zero`` never ends) or
    larger than :data:`MAX_CONFIG_BYTES`."""
    if not path.is_file():
        raise _error(f"config file {path} is not a regular file; give a TOML file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise _error(
            f"config file {path} is {format_size(size)}; a configuration is at most "
            f"{format_size(MAX_CONFIG_BYTES)}: is it the right file?"
        )


def check_device(device: str, *, available: bool = False) -> None:
    """Refuse a string that is not a torch device, a device the soup cannot run on (``meta``,
    ``xla``, ...) and, if ``available``, one this machine does not have."""
    import torch

    where = f"at the top level: device = {json.dumps(device)}"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise _error(
            f'{where} is not a torch device; use "cpu", "cuda", "cuda:1" or "mps"'
        ) from None
    if parsed.type not in DEVICE_TYPES:
        raise _error(f'{where} is not supported; use "cpu", "cuda", "cuda:N" or "mps"')
    if not available:
        return
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise _error(f'{where} is not available on this machine (no CUDA); use "cpu"')
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise _error(
            f"{where} is not available on this machine ({torch.cuda.device_count()} CUDA "
            'devices); use "cuda:0" or "cpu"'
        )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise _error(f'{where} is not available on this machine; use "cpu"')


def device_memory(device: str) -> int | None:
    """Total memory of ``device`` in bytes (None where it cannot be told)."""
    import torch

    parsed = torch.device(device)
    if parsed.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(parsed.index or 0).total_memory
    if parsed.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def topology_bytes(kind: str, params: dict[str, Any]) -> tuple[int, str]:
    """Estimated bytes of a topology's tables and its node count, as (bytes, description)."""
    if kind == "grid":
        nodes = params["rows"] * params["cols"]
        edges = 2 * nodes
    elif kind == "disjoint_cliques":
        nodes = params["size"] * params["num_soups"]
        edges = 0  # blocks, no edge list
    else:
        nodes = params.get("nodes", 0)
        edges = nodes * params.get("k", 0) if kind in ("ring", "small_world") else 0
    size = nodes * NODE_BYTES + 2 * edges * 8
    if kind == "small_world":
        size += (nodes + edges) * NETWORKX_BYTES
    return size, f"{format_size(size)} for {nodes} topology nodes"


def check_topology(kind: str, params: dict[str, Any], where: str, device: str = "cpu") -> None:
    """Refuse a topology whose tables cannot fit in memory (before it is built)."""
    size, description = topology_bytes(kind, params)
    _check_fits(
        size, [description], device, where, "the topology's nodes (default: the population)"
    )


def check_run(config: Any) -> None:
    """Refuse a resolved :class:`~chemistry.config.RunConfig` that cannot run: step counts beyond
    :data:`MAX_STEPS`, or a soup that cannot fit in the device's memory."""
    for index, rule in enumerate(config.rules, 1):
        for key in STEP_KEYS:
            value = rule.params.get(key)
            if isinstance(value, int) and value > MAX_STEPS:
                raise _error(
                    f'[[rules]] #{index} (type = "{rule.type}"): {key} = {value} is out of range; '
                    f"it must be <= {MAX_STEPS} (per particle and epoch: at a microsecond a step, "
                    f"one epoch of one particle would take {_duration(value * 1e-6)})"
                )
    import torch

    from chemistry.config import DTYPES

    itemsize = torch.empty((), dtype=DTYPES[config.dtype]).element_size()
    parts = []
    total = 0
    for entry in config.population:
        weights = entry.build().num_weights
        size = entry.count * (weights * itemsize * COPIES + 9)
        total += size
        parts.append(
            f"{format_size(size)} for {entry.count} {entry.architecture} particles of {weights} "
            f"weights"
        )
    size, description = topology_bytes(config.topology.kind, config.topology.params)
    _check_fits(
        total + size,
        [*parts, description],
        config.device,
        "the configured soup",
        "the population, the width or the topology's nodes",
    )


def _check_fits(size: int, parts: Iterable[str], device: str, where: str, reduce: str) -> None:
    available = device_memory(device)
    if available is not None and size > available:
        raise _error(
            f"{where} cannot fit in memory: it needs at least {format_size(size)} "
            f"({'; '.join(parts)}) but device {device} has {format_size(available)}; "
            f"reduce {reduce}"
        )


def _duration(seconds: float) -> str:
    for unit, length in (("years", 3.15e7), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= length:
            return f"about {seconds / length:.3g} {unit}"
    return f"about {seconds:.3g} seconds"
