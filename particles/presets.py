"""Named bundles of training mode, learning rate and ε (SPEC Table 2)."""

from __future__ import annotations

from dataclasses import dataclass

from particles.validation import check_choice


@dataclass(frozen=True)
class Preset:
    """Training mode, learning rate and fixpoint tolerance of one original code base."""

    mode: str
    lr: float
    eps: float


PRESETS: dict[str, Preset] = {
    "keras2019": Preset(mode="per_sample", lr=0.01, eps=1e-4),
    "journal2021": Preset(mode="full_batch", lr=0.04, eps=1e-5),
}


def preset(name: str) -> Preset:
    """The preset called ``name`` ("keras2019" or "journal2021")."""
    check_choice("preset", name, PRESETS)
    return PRESETS[name]
