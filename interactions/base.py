"""The Interaction base class and the helper for rules that act on pairs of particles.

A rule acts on the whole population at once: it asks the soup for participants (as topology node
indices), gathers their weight rows, calls the batched kernel in ``particles`` and writes the
results back, returning the ``Event`` records of what happened. Under the canonical synchronous
schedule (SPEC D19) a rule reads every weight it needs before it writes any.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal, Protocol, get_args

import torch

from interactions.events import Event, EventBatch, EventBatches, register_event_kind
from particles.architectures import Architecture
from particles.bank import WeightBank
from particles.presets import Preset
from particles.training import MODES
from particles.validation import check_choice, check_positive, check_probability

Tensor = torch.Tensor
#: How a pairwise rule draws its actors: every particle with the chance, or one per epoch.
Pairing = Literal["per_particle", "single"]
PAIRINGS: tuple[str, ...] = get_args(Pairing)
#: The SGD variant of a training rule (``particles.training.MODES``).
TrainingMode = Literal[MODES]  # type: ignore[valid-type]

#: Every rule a configuration can name: ``{name: class}``, filled as rule classes are defined.
RULES: dict[str, type[Interaction]] = {}


class Soup(Protocol):
    """What a rule may use of a soup (``chemistry.Soup`` implements it).

    A protocol keeps the imports pointing down: interactions never import chemistry.
    """

    eps: float
    preset: Preset
    banks: dict[Architecture, WeightBank]
    node_bank: Tensor
    node_row: Tensor
    index_generator: torch.Generator
    weight_generator: torch.Generator

    @property
    def epoch(self) -> int: ...
    def occupied_nodes(self) -> Tensor: ...
    def uids_at(self, nodes: Tensor) -> Tensor: ...
    def groups(self, nodes: Tensor) -> list[tuple[WeightBank, Tensor, Tensor]]: ...
    def pair_groups(
        self, actors: Tensor, partners: Tensor
    ) -> list[tuple[WeightBank, Tensor, WeightBank, Tensor, Tensor]]: ...
    def draw_pairs(
        self,
        chance: float,
        *,
        pairing: str = ...,
        allow_self: bool = ...,
        participants: Tensor | None = ...,
    ) -> tuple[Tensor, Tensor]: ...
    def neighbours_of(self, nodes: Tensor, *, allow_self: bool = ...) -> Tensor: ...
    def free_nodes(self) -> Tensor: ...
    def spawn(
        self,
        architecture: Architecture,
        weights: Tensor,
        nodes: Tensor,
        parents: Sequence[Sequence[int]] | None = ...,
    ) -> EventBatch: ...
    def kill(self, nodes: Tensor) -> EventBatch: ...
    def replace(
        self,
        nodes: Tensor,
        architecture: Architecture,
        weights: Tensor,
        parents: Sequence[Sequence[int]] | None = ...,
    ) -> tuple[EventBatches, Tensor]: ...


def training_settings(soup: Soup, lr: float | None, training_mode: str | None) -> tuple[float, str]:
    """(lr, training mode) of a training rule: its own where given, else the soup's preset's."""
    return (
        soup.preset.lr if lr is None else lr,
        soup.preset.mode if training_mode is None else training_mode,
    )


def check_training(lr: float | None, training_mode: str | None) -> None:
    """Check a training rule's own lr and training mode (None: the soup's preset decides)."""
    if lr is not None:
        check_positive("lr", lr)
    if training_mode is not None:
        check_choice("training_mode", training_mode, MODES)


def register_rule(cls: type[Interaction]) -> None:
    """Make ``cls`` nameable in configurations as ``cls.name`` (done when the class is defined).

    Raises:
        ValueError: if the name is not lower-case letters, digits and _, or another class
            already has it (a module imported again under the same name replaces its class).
    """
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(
            f"rule name {name!r} of {cls.__qualname__} is not allowed; use lower-case letters, "
            'digits and _ (e.g. name = "mutate")'
        )
    other = RULES.get(name)
    if other is not None and (other.__module__, other.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise ValueError(
            f"rule name {name!r} of {cls.__module__}.{cls.__qualname__} is taken by "
            f"{other.__module__}.{other.__qualname__}; choose another name"
        )
    RULES[name] = cls


def one_per_target(targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Among pairs aiming at the same target keep one, chosen uniformly at random.

    Returns (kept positions, overwritten positions) into ``targets`` [n].
    """
    order = torch.randperm(targets.numel(), generator=generator)
    ordered, by_target = torch.sort(targets[order], stable=True)
    order = order[by_target]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    # masked_select: the same as order[first], faster than boolean indexing on the CPU.
    return torch.masked_select(order, first), torch.masked_select(order, ~first)


class Interaction(ABC):
    """A rule run once per epoch on a soup.

    Subclasses implement ``__call__(soup)`` and return a list of ``Event`` (or an
    ``EventBatch``, or ``EventBatches`` for events of several kinds). Under
    ``schedule="sequential"`` the soup calls ``rule(soup, participants)`` with one particle (a
    topology node tensor) at a time, so a rule that supports that schedule takes an optional
    second argument; under the synchronous schedule it is called as ``rule(soup)``.

    Class attributes:
        name: the rule's name in configurations (``type = "mutate"``); a class that sets it is
            registered when it is defined, and its constructor's keyword arguments become the
            keys of its ``[[rules]]`` table (annotations give their types, ``Literal[...]`` their
            choices, defaults make them optional, the docstring's ``Args:`` their meaning).
            A class without its own ``name`` is not nameable in configurations.
        event_kinds: the rule's own event kinds, ``{kind: inheritance}`` with inheritance
            "horizontal", "vertical" or "none" (see ``interactions.events.register_event_kind``).
    """

    name: ClassVar[str | None] = None
    event_kinds: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for kind, inheritance in cls.__dict__.get("event_kinds", {}).items():
            register_event_kind(kind, inheritance)
        if cls.__dict__.get("name") is not None:
            register_rule(cls)

    @abstractmethod
    def __call__(
        self, soup: Soup, participants: Tensor | None = None
    ) -> list[Event] | EventBatch | EventBatches:
        """Act on the soup and return what happened."""

    def check(self, soup: Soup) -> None:  # noqa: B027 - optional hook
        """Raise ValueError if the rule cannot act on the soup's architectures (before a run)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class PairwiseInteraction(Interaction):
    """A rule where an actor particle meets a partner drawn from its neighbours.

    Args:
        chance: probability in [0, 1]; per actor (``pairing="per_particle"``) or per epoch
            (``pairing="single"``: at most one pair per epoch).
        pairing: "per_particle" (canonical) or "single" (journal code).
        allow_self: let a particle meet itself (the Keras code did).
    """

    def __init__(
        self, chance: float, *, pairing: Pairing = "per_particle", allow_self: bool = False
    ) -> None:
        check_probability("chance", chance)
        check_choice("pairing", pairing, PAIRINGS)
        self.chance = chance
        self.pairing = pairing
        self.allow_self = bool(allow_self)

    def __call__(
        self, soup: Soup, participants: Tensor | None = None
    ) -> list[Event] | EventBatch | EventBatches:
        """Draw pairs through the soup's topology and act on them in one batch."""
        chance, pairing = self.chance, self.pairing
        if participants is not None and pairing == "single":
            # Sequential schedule, one call per particle: still at most one pair per epoch. The
            # actor is drawn once per epoch and acts, with a fresh partner, on its own turn.
            participants = participants[participants == self._single_actor(soup)]
            chance, pairing = 1.0, "per_particle"
        actors, partners = soup.draw_pairs(
            chance, pairing=pairing, allow_self=self.allow_self, participants=participants
        )
        if actors.numel() == 0:
            return []
        return self.act(soup, actors, partners)

    def _single_actor(self, soup: Soup) -> int:
        """The node of this epoch's single actor (-1 if none), drawn on the epoch's first call."""
        draws = self.__dict__.setdefault("_single_draws", weakref.WeakKeyDictionary())
        epoch, actor = draws.get(soup, (None, -1))
        if epoch != soup.epoch:
            nodes = soup.occupied_nodes()
            generator = soup.index_generator
            actor = -1
            if nodes.numel() and float(torch.rand((), generator=generator)) < self.chance:
                actor = int(nodes[torch.randint(nodes.numel(), (1,), generator=generator)])
            draws[soup] = (soup.epoch, actor)
        return actor

    @abstractmethod
    def act(
        self, soup: Soup, actors: Tensor, partners: Tensor
    ) -> list[Event] | EventBatch | EventBatches:
        """Act on the drawn pairs: actors [n], partners [n] are topology nodes."""
