"""Helpers shared by the soup and rule tests (tests/chemistry/test_soup.py, tests/interactions)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from chemistry import Soup
from interactions import Event, EventKind
from particles import Architecture


def make_soup(rules=(), **options) -> Soup:
    """A small float64 soup (exact comparisons) with trajectories off unless asked for.

    Its preset is journal2021 unless asked for (full-batch SGD, lr 0.04, torch initialisation):
    the settings the tests' hand-computed expectations use.
    """
    options.setdefault("preset", "journal2021")
    options.setdefault("population", 10)
    options.setdefault("rng", 0)
    options.setdefault("dtype", torch.float64)
    options.setdefault("record_every", 0)
    return Soup(list(rules), **options)


def weights_by_uid(soup: Soup) -> dict[int, torch.Tensor]:
    """A copy of every living particle's weights, by unique id."""
    return {uid: particle.weights for uid, particle in soup.particles.items()}


def architecture_of(soup: Soup, uid: int) -> Architecture:
    return soup.particles[uid].architecture


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical, NaN equal to NaN."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def by_kind(events, kind: EventKind) -> list[Event]:
    return [event for event in events if event.kind == kind]


def bank_snapshot(soup: Soup) -> dict[Architecture, torch.Tensor]:
    return {arch: bank.weights.clone() for arch, bank in soup.banks.items()}


def run_rule(soup: Soup, rule):
    """Call a rule once, outside ``step``, and record its events as the soup would."""
    events = rule(soup)
    soup.genealogy_record.record(events)
    return list(events)


@contextlib.contextmanager
def value_error(*fragments: str):
    """``with value_error("steps=-1"): ...`` expects a ValueError naming every fragment."""
    with pytest.raises(ValueError) as info:
        yield info
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in ValueError message {message!r}"
