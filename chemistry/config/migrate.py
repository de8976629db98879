"""Configurations written before a key was renamed still load: the old names are mapped here.

Renamed in December 2026 (one name per concept): a pairwise rule's ``mode`` (per_particle |
single) is ``pairing``; ``self_train``'s ``mode`` (full_batch | per_sample) is ``training_mode``,
as it already was in ``learn``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from particles.training import MODES

__all__ = ["migrate_rule"]


def migrate_rule(entry: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A ``[[rules]]`` table with old key names replaced by the rule's current ones
    (``names``: its parameters); unchanged when nothing is old."""
    if "mode" not in entry or "mode" in names:
        return entry
    value = entry["mode"]
    if "training_mode" in names and ("pairing" not in names or value in MODES):
        new = "training_mode"
    elif "pairing" in names:
        new = "pairing"
    else:
        return entry
    if new in entry:
        return entry
    migrated = {key: item for key, item in entry.items() if key != "mode"}
    migrated[new] = value
    return migrated
