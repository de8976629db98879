"""Vertical inheritance: NoisyClone and Melt put a child in place of a victim (SPEC R5, R6)."""

from __future__ import annotations

from typing import Literal

import torch

from interactions.base import Pairing, PairwiseInteraction, Soup, one_per_target
from interactions.events import Event, EventKind
from particles.measures import NOISES, add_noise
from particles.validation import check_choice

Noise = Literal[NOISES]  # type: ignore[valid-type]

Tensor = torch.Tensor


def _place_children(soup: Soup, victims: Tensor, grow: bool) -> tuple[Tensor, Tensor]:
    """Nodes for the children: the victims' nodes, or free nodes when growing.

    Returns (positions of the births that happen, their nodes).
    """
    if not grow:
        return torch.arange(victims.numel()), victims
    free = soup.free_nodes()[: victims.numel()]
    return torch.arange(free.numel()), free


def _births(
    soup: Soup,
    kind: EventKind,
    parents: list[Tensor],
    nodes: Tensor,
    child_weights: dict,
) -> list[Event]:
    """Replace the occupants of ``nodes`` (if any) by children and log one event per parent."""
    events: list[Event] = []
    parent_uids = [soup.uids_at(p).tolist() for p in parents]
    occupied = soup.node_bank[nodes] >= 0
    victim_uids = torch.where(occupied, soup.uids_at(nodes), -1).tolist()
    epoch = soup.epoch
    for architecture, (positions, weights) in child_weights.items():
        lineage = [tuple(uids[i] for uids in parent_uids) for i in positions.tolist()]
        targets = nodes[positions]
        dying = targets[occupied[positions]]
        if dying.numel():
            events += soup.kill(dying)
        events += soup.spawn(architecture, weights, targets, lineage)
        children = soup.uids_at(targets).tolist()
        for i, child in zip(positions.tolist(), children, strict=True):
            victim = victim_uids[i] if victim_uids[i] >= 0 else None
            for uids in parent_uids:
                events.append(Event(epoch, kind, uids[i], victim, child))
    return events


class NoisyClone(PairwiseInteraction):
    """A parent puts a noisy copy of itself, w_p + ζ·U[−1, 1], in place of a neighbour (R6).

    Args:
        chance: cloning probability κ (per particle, or per epoch with ``pairing="single"``).
        scale: noise scale ζ >= 0.
        noise: "uniform" or "double_uniform" (SPEC D15).
        pairing: "per_particle" or "single".
        grow: put the child on a free topology node instead of replacing the neighbour (children
            beyond the free nodes are not born).
    """

    name = "clone"

    def __init__(
        self,
        chance: float,
        scale: float,
        *,
        noise: Noise = "uniform",
        pairing: Pairing = "single",
        grow: bool = False,
    ) -> None:
        super().__init__(chance, pairing=pairing, allow_self=False)
        if not isinstance(scale, (int, float)) or not scale >= 0:
            raise ValueError(f"scale={scale!r} is not allowed; it must be a number >= 0")
        check_choice("noise", noise, NOISES)
        self.scale = scale
        self.noise = noise
        self.grow = bool(grow)

    def act(self, soup: Soup, actors: Tensor, partners: Tensor) -> list[Event]:
        """Clone every kept parent onto its victim's node (or a free node)."""
        kept, _ = one_per_target(partners, soup.index_generator)
        parents, victims = actors[kept], partners[kept]
        births, nodes = _place_children(soup, victims, self.grow)
        parents = parents[births]
        children = {}
        for bank, positions, rows in soup.groups(parents):
            weights = add_noise(
                bank.read(rows), self.scale, generator=soup.weight_generator, noise=self.noise
            )
            children[bank.architecture] = (positions, weights)
        return _births(soup, EventKind.CLONE, [parents], nodes, children)


class Melt(PairwiseInteraction):
    """Two neighbouring parents of one architecture make a uniform-crossover child (R5).

    The child takes parent 1's weights on a uniformly random set of ⌊r/2⌋ positions and parent 2's
    elsewhere, and replaces a third particle drawn from parent 1's neighbours (or, with
    ``grow=True``, takes a free node). Draws where parent 2 has another architecture, or where no
    distinct victim is found, are dropped.

    Args:
        chance: melting probability μ (per epoch with ``pairing="single"``, canonical, or per
            particle).
        pairing: "single" or "per_particle".
        grow: append the child on a free node instead of replacing a victim.
    """

    name = "melt"

    def __init__(self, chance: float, *, pairing: Pairing = "single", grow: bool = False) -> None:
        super().__init__(chance, pairing=pairing, allow_self=False)
        self.grow = bool(grow)

    def act(self, soup: Soup, actors: Tensor, partners: Tensor) -> list[Event]:
        """Cross every valid parent pair and place the children."""
        same = soup.node_bank[actors] == soup.node_bank[partners]
        first, second = actors[same], partners[same]
        if self.grow:
            births, nodes = _place_children(soup, first, grow=True)
        else:
            victims = soup.neighbours_of(first)
            valid = (victims >= 0) & (victims != second)
            kept, _ = one_per_target(victims[valid], soup.index_generator)
            births = torch.nonzero(valid).flatten()[kept]
            nodes = victims[births]
        first, second = first[births], second[births]
        children = {}
        for bank, positions, rows in soup.groups(first):
            weights_one = bank.read(rows)
            weights_two = bank.read(soup.node_row[second[positions]])
            count, size = weights_one.shape
            keys = torch.rand((count, size), generator=soup.weight_generator, device=bank.device)
            from_first = keys.argsort(dim=1).argsort(dim=1) < size // 2
            children[bank.architecture] = (
                positions,
                torch.where(from_first, weights_one, weights_two),
            )
        return _births(soup, EventKind.MELT, [first, second], nodes, children)
