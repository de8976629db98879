"""Soup: a Mesa model holding a population of particles, its topology, rules, records and clocks.

Weights live in one ``WeightBank`` per architecture; every topology node holds at most one
particle, described by three node-indexed tensors (bank, row, unique id). Rules work on node
index tensors and call the batched kernel; the soup does the bookkeeping of births and deaths,
records the events in the genealogy and collects data after every epoch.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, methodcaller
from typing import Any

import mesa
import networkx as nx
import numpy as np
import torch

from chemistry.genealogy import Genealogy
from chemistry.metrics import build_datacollector, epoch_metrics
from chemistry.progress import ProgressBar
from chemistry.rulebook import RuleSpec, build_rules
from chemistry.threads import soup_cpu
from chemistry.topology import Topology
from chemistry.trajectories import Trajectories
from interactions.base import PAIRINGS, Interaction
from interactions.events import BUILTIN_KINDS, Event, EventBatch, EventBatches, EventKind
from particles.agent import Particle
from particles.architectures import Architecture, Weightwise
from particles.bank import WeightBank
from particles.classification import Status, classify_with_error
from particles.presets import DEFAULT_PRESET, Preset
from particles.presets import preset as named_preset
from particles.validation import (
    check_choice,
    check_count,
    check_positive,
    check_probability,
    check_weights,
)

Tensor = torch.Tensor
_UNIQUE_ID = attrgetter("unique_id")
_REMOVE = methodcaller("remove")
SCHEDULES = ("synchronous", "sequential")


def _population_spec(
    population: int
    | Mapping[Architecture, int | Tensor]
    | Sequence[tuple[Architecture, int | Tensor]],
    architecture: Architecture | None,
    preset: Preset,
) -> list[tuple[Architecture, int, Tensor | None]]:
    """(architecture, count, given weights or None) per population entry."""
    if isinstance(population, int) and not isinstance(population, bool):
        architecture = architecture if architecture is not None else preset.architecture(Weightwise)
        pairs = [(architecture, population)]
    elif isinstance(population, Mapping):
        pairs = list(population.items())
    elif isinstance(population, Sequence) and not isinstance(population, str):
        pairs = [tuple(item) for item in population]
    else:
        raise ValueError(
            f"population={population!r} is not allowed; give a count, a mapping "
            "{Architecture: count or weights [n, r]} or a list of such pairs"
        )
    spec = []
    for arch, amount in pairs:
        if not isinstance(arch, Architecture):
            raise ValueError(f"population key {arch!r} is not an Architecture")
        if isinstance(amount, torch.Tensor):
            check_weights(f"population weights of {arch}", amount, arch.num_weights)
            spec.append((arch, amount.shape[0], amount))
        else:
            check_count(f"population count of {arch}", amount, 0)
            spec.append((arch, amount, None))
    if sum(count for _, count, _ in spec) < 1:
        raise ValueError(f"population={population!r} is empty; a soup needs at least 1 particle")
    return spec


@dataclass
class _Occupancy:
    """Which nodes hold a particle, derived from ``node_bank`` / ``node_row`` and cached.

    ``mask`` [num_nodes] bool; ``nodes`` the occupied nodes, ascending; ``index`` indexes node
    arrays at those nodes (``slice(None)`` when every node is occupied, giving views);
    ``groups`` the split of ``nodes`` by architecture (``Soup.groups``), built when first asked.
    """

    mask: Tensor
    nodes: Tensor
    index: Tensor | slice
    groups: list[tuple[WeightBank, Tensor, Tensor]] | None = None


class Soup(mesa.Model):
    """A population of particles acting on each other's weights, epoch after epoch.

    Args:
        rules: the ordered schedule of rules run every epoch: ``Interaction`` objects, rule
            names or factories, a string of names ("attack self_train respawn") or a callable
            returning the rules (see ``chemistry.rulebook``); names and factories build fresh
            rules for every soup.
        population: a particle count (of ``architecture``), or a mapping / list of
            (Architecture, count) for mixed soups; a weight tensor [n, r] in place of a count
            starts the soup from those particles instead of fresh ones.
        architecture: the architecture of an integer population (default: ``Weightwise`` in
            the preset's initialisation and encoding).
        topology: a ``Topology``, any networkx graph (one node per slot), or None (well mixed).
        rng: seed or numpy Generator (Mesa's ``rng=``); every random draw derives from it.
        preset: "keras2019" (default, the setting of the paper's soups) or "journal2021": the
            learning rate and training mode of rules that do not set their own, the fixpoint
            tolerance, and the initialisation and encoding of the default architecture
            (``particles.presets``).
        device: torch device of the weight banks.
        dtype: torch.float32 (default) or torch.float64.
        eps: fixpoint tolerance used to classify particles for the record (default: the
            preset's).
        schedule: "synchronous" (canonical, SPEC D19) or "sequential" (per particle, in node
            order, every rule acting on the current weights; fidelity with the original code).
        record_every: record every particle's weights every k epochs (0 = never).
        collect_every: classify particles and collect data every k epochs (0 = never).
        epochs: the epoch at which ``running`` turns False, so ``run_model()`` (and
            ``mesa.batch_run``) stop there; None: no end.
        stop_when: a condition ``stop_when(soup) -> bool`` checked after every epoch; when
            True, ``running`` turns False.
        collect_agents: collect per-particle data (``datacollector.get_agent_vars_dataframe()``,
            one row per particle per collected epoch); switch off for big soups.
        scenario: a Mesa ``Scenario`` (Mesa's tools pass one); the soup takes only its ``rng``,
            when ``rng`` is not given.
        **rule_settings: ``<rule>_<parameter>`` arguments of rules given by name
            (``attack_chance=0.1``).

    Attributes:
        parameters: the arguments the soup was built with, as keywords:
            ``type(soup)(**soup.parameters)`` builds it again (the live view's Reset does).

    Raises:
        ValueError: for an empty population, a topology with fewer nodes than particles, a
            rule that cannot act on the given architectures, or any bad argument.
    """

    def __init__(
        self,
        rules: str | Iterable[RuleSpec] | Callable[[], Iterable[Interaction]] = (),
        *,
        population: int | Mapping[Architecture, int] | Sequence[tuple[Architecture, int]] = 20,
        architecture: Architecture | None = None,
        topology: Topology | nx.Graph | None = None,
        rng: int | np.random.Generator | None = None,
        preset: str = DEFAULT_PRESET,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        eps: float | None = None,
        schedule: str = "synchronous",
        record_every: int = 1,
        collect_every: int = 1,
        epochs: int | None = None,
        stop_when: Callable[[Soup], bool] | None = None,
        collect_agents: bool = True,
        scenario: Any = None,
        **rule_settings: Any,
    ) -> None:
        rules = build_rules(rules, rule_settings)
        if epochs is not None:
            check_count("epochs", epochs, 0)
        if stop_when is not None and not callable(stop_when):
            raise ValueError(f"stop_when={stop_when!r} is not allowed; give a callable or None")
        settings = named_preset(preset)
        spec = _population_spec(population, architecture, settings)
        eps = settings.eps if eps is None else eps
        check_positive("eps", eps)
        check_choice("schedule", schedule, SCHEDULES)
        check_count("record_every", record_every, 0)
        check_count("collect_every", collect_every, 0)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype={dtype} is not allowed; choose torch.float32 or torch.float64")
        total = sum(count for _, count, _ in spec)
        if topology is None:
            topology = Topology.complete(total)
        elif isinstance(topology, nx.Graph):
            topology = Topology.from_graph(topology)
        elif not isinstance(topology, Topology):
            raise ValueError(
                f"topology={topology!r} is not allowed; give a Topology, a networkx Graph or None"
            )
        if topology.num_nodes < total:
            raise ValueError(
                f"topology has {topology.num_nodes} nodes but the population has {total} "
                "particles; give a topology with at least as many nodes as particles"
            )

        if rng is None and scenario is not None:
            rng = getattr(scenario, "rng", None)
        super().__init__(rng=rng)
        self.rules = rules
        self.preset = settings
        self.topology = topology
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.eps = eps
        self.schedule = schedule
        self.record_every = record_every
        self.collect_every = collect_every
        self.epochs = epochs
        self.stop_when = stop_when
        # Two torch generators derived from Mesa's seeded numpy Generator: one for who meets whom
        # (node bookkeeping lives on the CPU), one for draws on weights (on the banks' device).
        seeds = self.rng.integers(0, 2**62, size=2)
        self.index_generator = torch.Generator().manual_seed(int(seeds[0]))
        self.weight_generator = torch.Generator(device=self.device).manual_seed(int(seeds[1]))

        #: (architecture, count) of every population entry at the start.
        self.initial_population = [(arch, count) for arch, count, _ in spec]
        self.banks: dict[Architecture, WeightBank] = {}
        self.architecture_names: dict[Architecture, str] = {}
        for arch, count, _ in spec:
            self._add_bank(arch, count)
        nodes = topology.num_nodes
        self.node_bank = torch.full((nodes,), -1, dtype=torch.long)
        self.node_row = torch.full((nodes,), -1, dtype=torch.long)
        self.node_uid = torch.full((nodes,), -1, dtype=torch.long)
        self.node_status = torch.full((nodes,), -1, dtype=torch.long)
        self.node_error = torch.full((nodes,), math.nan, dtype=torch.float64)
        self.node_birth = torch.full((nodes,), -1, dtype=torch.long)
        self._occupancy: _Occupancy | None = None
        self.particles: dict[int, Particle] = {}
        self.genealogy_record = Genealogy()
        self.trajectories = Trajectories(
            {self.architecture_names[a]: a.num_weights for a in self.banks}
        )
        self._last_chunks: list[list[Event] | EventBatch | EventBatches] = []
        #: The event kinds counted in the metrics: the built-in ones and the rules' own.
        self.event_kinds: tuple[EventKind, ...] = tuple(
            dict.fromkeys(
                [*BUILTIN_KINDS] + [EventKind(k) for rule in rules for k in type(rule).event_kinds]
            )
        )
        self.metrics: dict[str, float] = {}

        for rule in rules:
            rule.check(self)
        start = 0
        births: list[EventBatch] = []
        for arch, count, given in spec:
            placed = torch.arange(start, start + count)
            if given is None:
                weights = arch.init(
                    count, generator=self.weight_generator, device=self.device, dtype=dtype
                )
            else:
                weights = given.to(device=self.device, dtype=dtype)
            births.append(self.spawn(arch, weights, placed))
            start += count
        self.genealogy_record.record(EventBatches(births))
        self.datacollector = build_datacollector(self, agents=collect_agents)
        self._observe()
        self._check_end()

    def __new__(cls, *args: Any, **kwargs: Any) -> Soup:
        soup = super().__new__(cls)
        soup.parameters = _given_arguments(cls, args, kwargs)
        return soup

    # ----------------------------------------------------------------------------------------
    # Population bookkeeping

    def _add_bank(self, arch: Architecture, count: int) -> WeightBank:
        if arch not in self.banks:
            self.banks[arch] = WeightBank(
                arch, capacity=max(count, 1), device=self.device, dtype=self.dtype
            )
            name = arch.reduction
            same = [n for n in self.architecture_names.values() if n.split("#")[0] == name]
            self.architecture_names[arch] = name if not same else f"{name}#{len(same)}"
        return self.banks[arch]

    @property
    def epoch(self) -> int:
        """The current epoch: 0 before the first step, then Mesa's ``time``."""
        return int(self.time)

    @property
    def bank_list(self) -> list[WeightBank]:
        return list(self.banks.values())

    def _occupied(self) -> _Occupancy:
        # Cached: node_bank and node_row change only in spawn, kill and checkpoint restore,
        # which call invalidate_occupancy().
        if self._occupancy is None:
            mask = self.node_bank >= 0
            nodes = torch.nonzero(mask).flatten()
            index = slice(None) if nodes.numel() == mask.numel() else nodes
            self._occupancy = _Occupancy(mask, nodes, index)
        return self._occupancy

    def invalidate_occupancy(self) -> None:
        """Forget the cached occupied nodes; call after changing ``node_bank`` or ``node_row``."""
        self._occupancy = None

    def occupied_nodes(self) -> Tensor:
        """Nodes that hold a particle, ascending: int64 [P] (a cached tensor: do not modify)."""
        return self._occupied().nodes

    def occupied_index(self) -> Tensor | slice:
        """An index of node arrays at the occupied nodes, in ``occupied_nodes()`` order.

        ``slice(None)`` when every node holds a particle (indexing then gives views, and
        assigning copies instead of scattering), else ``occupied_nodes()``.
        """
        return self._occupied().index

    def free_nodes(self) -> Tensor:
        """Topology nodes without a particle, ascending: int64 [k]."""
        return torch.nonzero(self.node_bank < 0).flatten()

    def __len__(self) -> int:
        return len(self.particles)

    def particle_at(self, node: int) -> Particle | None:
        """The particle on a topology node, or None."""
        uid = int(self.node_uid[node])
        return self.particles.get(uid) if uid >= 0 else None

    def uids_at(self, nodes: Tensor) -> Tensor:
        """Unique ids of the particles on ``nodes``: int64 [n]."""
        return self.node_uid[nodes]

    def groups(self, nodes: Tensor) -> list[tuple[WeightBank, Tensor, Tensor]]:
        """Split nodes by architecture: a list of (bank, positions in ``nodes``, bank rows).

        For ``occupied_nodes()`` itself the split is cached, and a bank whose rows are all in
        use in node order gets ``bank.every_row()`` as rows (read and written without gathers).
        """
        occupancy = self._occupied()
        if nodes is occupancy.nodes:
            if occupancy.groups is None:
                occupancy.groups = [
                    (bank, positions, bank.every_row() if _every_row(bank, rows) else rows)
                    for bank, positions, rows in self._split(nodes)
                ]
            return list(occupancy.groups)
        return self._split(nodes)

    def _split(self, nodes: Tensor) -> list[tuple[WeightBank, Tensor, Tensor]]:
        bank_of = self.node_bank[nodes]
        if bool((bank_of < 0).any()):
            raise ValueError(f"nodes {nodes[bank_of < 0].tolist()} hold no particle")
        banks = self.bank_list
        if len(banks) == 1:  # one architecture: no split needed (the common, large case)
            if nodes.numel() == 0:
                return []
            return [(banks[0], torch.arange(nodes.numel()), self.node_row[nodes])]
        out = []
        for index in torch.unique(bank_of).tolist():
            positions = torch.nonzero(bank_of == index).flatten()
            out.append((banks[index], positions, self.node_row[nodes[positions]]))
        return out

    def pair_groups(
        self, actors: Tensor, partners: Tensor
    ) -> list[tuple[WeightBank, Tensor, WeightBank, Tensor, Tensor]]:
        """Split pairs by (actor architecture, partner architecture).

        Returns a list of (actor bank, actor rows, partner bank, partner rows, positions).
        """
        banks = self.bank_list
        if len(banks) == 1:
            if actors.numel() == 0:
                return []
            rows = self.node_row
            positions = torch.arange(actors.numel())
            return [(banks[0], rows[actors], banks[0], rows[partners], positions)]
        actor_bank, partner_bank = self.node_bank[actors], self.node_bank[partners]
        key = actor_bank * len(banks) + partner_bank
        out = []
        for value in torch.unique(key).tolist():
            positions = torch.nonzero(key == value).flatten()
            a, p = divmod(value, len(banks))
            out.append(
                (
                    banks[a],
                    self.node_row[actors[positions]],
                    banks[p],
                    self.node_row[partners[positions]],
                    positions,
                )
            )
        return out

    def read(self, nodes: Tensor) -> dict[Architecture, tuple[Tensor, Tensor]]:
        """Weights of the particles on ``nodes``, per architecture: {arch: (positions, weights)}."""
        return {
            bank.architecture: (positions, bank.read(rows))
            for bank, positions, rows in self.groups(nodes)
        }

    def spawn(
        self,
        architecture: Architecture,
        weights: Tensor,
        nodes: Tensor,
        parents: Sequence[Sequence[int]] | None = None,
    ) -> EventBatch:
        """Create particles with ``weights`` [n, r] on free ``nodes`` [n]; returns BIRTH events.

        Raises:
            ValueError: (before anything changes) if a node is occupied or given twice, or if
                ``weights`` / ``parents`` do not have one entry per node.
        """
        nodes = torch.as_tensor(nodes, dtype=torch.long).flatten()
        check_weights("weights", weights, architecture.num_weights, nodes.numel())
        if parents is not None and len(parents) != nodes.numel():
            raise ValueError(f"got {len(parents)} parent tuples for {nodes.numel()} nodes")
        if torch.unique(nodes).numel() != nodes.numel():
            raise ValueError(f"nodes {nodes.tolist()} name a node twice")
        if bool((self.node_bank[nodes] >= 0).any()):
            raise ValueError(f"nodes {nodes[self.node_bank[nodes] >= 0].tolist()} are occupied")
        bank = self._add_bank(architecture, weights.shape[0])
        if self.architecture_names[architecture] not in self.trajectories.names:
            self.trajectories.add(self.architecture_names[architecture], architecture.num_weights)
        epoch = self.epoch
        rows = bank.reserve(nodes.numel())
        node_list = nodes.tolist()
        lineage = parents if parents is not None else repeat(())
        # One Mesa agent per network (Mesa registers agents one at a time; nothing else here
        # loops over particles).
        agents = [
            Particle(self, bank, row, birth=epoch, parents=p, node=n)
            for row, p, n in zip(rows.tolist(), lineage, node_list, strict=False)
        ]
        uids = torch.tensor(list(map(_UNIQUE_ID, agents)), dtype=torch.long)
        self.particles.update(zip(uids.tolist(), agents, strict=True))
        bank.allocate(weights, uids, rows=rows)
        self.node_bank[nodes] = self.bank_list.index(bank)
        self.node_row[nodes] = rows.cpu()
        self.node_uid[nodes] = uids
        self.node_birth[nodes] = epoch
        self.node_status[nodes] = -1
        self.node_error[nodes] = math.nan
        self.invalidate_occupancy()
        name = self.architecture_names[architecture]
        return EventBatch(
            epoch,
            EventKind.BIRTH,
            children=uids,
            data={"architecture": name},
            columns={"node": nodes},
        )

    def kill(self, nodes: Tensor) -> EventBatch:
        """Remove the particles on ``nodes`` from the soup; returns their DEATH events."""
        nodes = torch.as_tensor(nodes, dtype=torch.long).flatten()
        if torch.unique(nodes).numel() != nodes.numel():
            raise ValueError(f"nodes {nodes.tolist()} name a node twice")
        uids = self.node_uid[nodes]
        self._record_death_classes(nodes)
        for bank, _, rows in self.groups(nodes):
            bank.release(rows)
        # Mesa deregisters agents one at a time.
        deque(map(_REMOVE, map(self.particles.pop, uids.tolist())), maxlen=0)
        self.node_bank[nodes] = -1
        self.node_row[nodes] = -1
        self.node_uid[nodes] = -1
        self.node_birth[nodes] = -1
        self.node_status[nodes] = -1
        self.node_error[nodes] = math.nan
        self.invalidate_occupancy()
        return EventBatch(self.epoch, EventKind.DEATH, targets=uids)

    def _record_death_classes(self, nodes: Tensor) -> None:
        """Classify the particles on ``nodes`` as they are now and record it: class at death.

        Uses its own generator, seeded from the epoch, so the soup's random streams are the
        same whether or not anything dies.
        """
        if not self.collect_every or nodes.numel() == 0:
            return
        for bank, positions, rows in self.groups(nodes):
            generator = torch.Generator(device=bank.device).manual_seed(self.epoch)
            status, error = classify_with_error(
                bank.architecture,
                bank.weights[rows],
                eps=self.eps,
                divergent=bank.divergent[rows],
                generator=generator,
            )
            self.genealogy_record.record_classes(
                self.epoch, self.node_uid[nodes[positions]], status.cpu(), error.cpu()
            )

    def replace(
        self,
        nodes: Tensor,
        architecture: Architecture,
        weights: Tensor,
        parents: Sequence[Sequence[int]] | None = None,
    ) -> tuple[EventBatches, Tensor]:
        """Kill the particles on ``nodes`` and put new ones there; returns (events, new uids)."""
        nodes = torch.as_tensor(nodes, dtype=torch.long).flatten()
        events = EventBatches([self.kill(nodes), self.spawn(architecture, weights, nodes, parents)])
        return events, self.node_uid[nodes].clone()

    # ----------------------------------------------------------------------------------------
    # Who meets whom

    def draw_pairs(
        self,
        chance: float,
        *,
        pairing: str = "per_particle",
        allow_self: bool = False,
        participants: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw (actor, partner) node pairs through the topology (SPEC R1).

        ``pairing`` per_particle: each participant acts with probability ``chance`` and meets a
        uniformly drawn occupied neighbour. single: with probability ``chance``, one actor drawn
        uniformly meets one neighbour. Actors without an occupied neighbour are dropped.
        Returns two int64 tensors [n] of nodes.
        """
        check_probability("chance", chance)
        check_choice("pairing", pairing, PAIRINGS)
        occupancy = self._occupied()
        occupied = occupancy.mask
        nodes = occupancy.nodes if participants is None else participants.flatten()
        generator = self.index_generator
        if pairing == "per_particle":
            # masked_select: the same as nodes[mask], faster than boolean indexing on the CPU.
            actors = torch.masked_select(
                nodes, torch.rand(nodes.numel(), generator=generator) < chance
            )
        elif nodes.numel() and float(torch.rand((), generator=generator)) < chance:
            pick = torch.randint(nodes.numel(), (1,), generator=generator)
            actors = nodes[pick]
        else:
            actors = nodes[:0]
        partners = self.topology.sample_partners(
            actors,
            occupied,
            generator=generator,
            allow_self=allow_self,
            occupied_slots=occupancy.nodes,
        )
        keep = partners >= 0
        if bool(keep.all()):  # the usual case; selecting by a mask would copy both
            return actors, partners
        return torch.masked_select(actors, keep), torch.masked_select(partners, keep)

    def neighbours_of(self, nodes: Tensor, *, allow_self: bool = False) -> Tensor:
        """One uniformly drawn occupied neighbour per node (-1 where none): int64 [n]."""
        occupancy = self._occupied()
        return self.topology.sample_partners(
            nodes,
            occupancy.mask,
            generator=self.index_generator,
            allow_self=allow_self,
            occupied_slots=occupancy.nodes,
        )

    # ----------------------------------------------------------------------------------------
    # The epoch

    def run_for(self, epochs: int, *, progress: bool = False) -> None:
        """Run ``epochs`` epochs (Mesa's ``run_for`` for a whole number of epochs >= 0).

        With ``progress``, a tqdm bar (in a notebook: tqdm's widget) shows the epochs and the
        live class counts. Runs past a configured end (``epochs=`` of the soup) too.

        Raises:
            ValueError: if ``epochs`` is not an integer >= 0.
        """
        if isinstance(epochs, np.integer):
            epochs = int(epochs)
        check_count("epochs", epochs, 0)
        if not epochs:
            return
        if not progress:
            super().run_for(epochs)
            return
        with ProgressBar(self.epoch + epochs, start=self.epoch) as bar:
            for _ in range(epochs):
                super().run_for(1)
                bar.show(self)

    def _check_end(self) -> None:
        """Turn ``running`` False at the configured end epoch or when ``stop_when`` holds."""
        ended = self.epochs is not None and self.epoch >= self.epochs
        if ended or (self.stop_when is not None and self.stop_when(self)):
            self.running = False

    def step(self) -> None:
        """Run one epoch: every rule in order, then record events, weights and data.

        The epoch runs in ``chemistry.threads.soup_cpu``: one torch thread and subnormal floats
        flushed to zero, the caller's settings restored afterwards.
        """
        with soup_cpu():
            self._epoch()

    def _epoch(self) -> None:
        chunks: list[list[Event] | EventBatch | EventBatches] = []
        if self.schedule == "synchronous":
            for rule in self.rules:
                chunks.append(self._run_rule(rule, None))
        else:
            for node in self.occupied_nodes().tolist():
                for rule in self.rules:
                    if self.node_bank[node] >= 0:
                        chunks.append(self._run_rule(rule, torch.tensor([node])))
        chunks = [chunk for chunk in chunks if len(chunk)]
        for chunk in chunks:
            self.genealogy_record.record(chunk)
        self._last_chunks = chunks
        self._observe()
        self._check_end()

    def _run_rule(
        self, rule: Interaction, participants: Tensor | None
    ) -> list[Event] | EventBatch | EventBatches:
        # Synchronous rules are called as rule(soup), the documented signature (DESIGN.md).
        events = rule(self) if participants is None else rule(self, participants)
        if isinstance(events, EventBatch | EventBatches):
            return events
        if not isinstance(events, list):
            raise TypeError(
                f"rule {rule!r} returned {type(events).__name__}; an Interaction must return "
                "a list of interactions.Event (or an interactions.EventBatch / EventBatches)"
            )
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(
                    f"rule {rule!r} returned a list holding {type(event).__name__} {event!r}; "
                    "an Interaction must return a list of interactions.Event"
                )
        return events

    @property
    def last_events(self) -> list[Event]:
        """Every event of the last epoch, in order (event batches are expanded on each read)."""
        return [event for chunk in self._last_chunks for event in chunk]

    def last_event_counts(self) -> dict[EventKind, int]:
        """Number of events of each kind in the last epoch (without expanding event batches)."""
        counts = dict.fromkeys(self.event_kinds, 0)
        for chunk in self._last_chunks:
            batches = [chunk] if isinstance(chunk, EventBatch) else None
            if isinstance(chunk, EventBatches):
                batches = chunk.batches
            if batches is not None:
                for batch in batches:
                    counts[batch.kind] = counts.get(batch.kind, 0) + len(batch)
            else:
                for event in chunk:
                    counts[event.kind] = counts.get(event.kind, 0) + 1
        return counts

    def _observe(self) -> None:
        epoch = self.epoch
        if self.record_every and epoch % self.record_every == 0:
            for arch, bank in self.banks.items():
                rows = bank.rows_in_use()
                self.trajectories.record(
                    self.architecture_names[arch], epoch, bank.uids[rows], bank.weights[rows]
                )
        if self.collect_every and epoch % self.collect_every == 0:
            self.classify()
            self._record_classes()
            self.metrics = epoch_metrics(self)
            self.datacollector.collect(self)

    def classify(self) -> Tensor:
        """Classify every particle (SPEC D13, the soup's eps); stores and returns node statuses.

        Also stores each particle's fixpoint error q in ``node_error``.
        """
        nodes = self.occupied_nodes()
        for bank, positions, rows in self.groups(nodes):
            if rows is bank.every_row():  # the whole bank: read in place, nothing is written
                weights, divergent = bank.weights, bank.divergent
            else:
                weights, divergent = bank.weights[rows], bank.divergent[rows]
            status, error = classify_with_error(
                bank.architecture,
                weights,
                eps=self.eps,
                divergent=divergent,
                generator=self.weight_generator,
            )
            # One group holding every occupied node: positions are 0 .. P-1, no gather needed.
            at = self.occupied_index() if positions.numel() == nodes.numel() else nodes[positions]
            self.node_status[at] = status.cpu()
            self.node_error[at] = error.double().cpu()
        return self.node_status

    @property
    def genealogy(self) -> Genealogy:
        """The genealogy graph tracker, with the latest known status of living particles."""
        self._record_classes()
        return self.genealogy_record

    def _record_classes(self) -> None:
        """Hand the classes of the last classification to the genealogy (a few array ops)."""
        index = self.occupied_index()
        self.genealogy_record.record_classes(
            self.epoch, self.node_uid[index], self.node_status[index], self.node_error[index]
        )

    def status_counts(self) -> dict[str, int]:
        """Number of particles in each class at the last classification."""
        statuses = self.node_status[self.occupied_nodes()]
        return {s.name: int((statuses == s).sum()) for s in Status}

    def save(self, directory: Any, *, overwrite: bool = False, figures: bool = True) -> dict:
        """Write the soup's run directory, as ``chemistry run`` writes one (see
        :func:`chemistry.runs.save_soup`): ``chemistry info``, ``plot``, ``lineage`` read it and
        ``chemistry resume DIR --epochs N`` continues the soup. Returns the files written."""
        from chemistry.runs import save_soup

        return save_soup(self, directory, overwrite=overwrite, figures=figures)

    def summary(self) -> dict[str, Any]:
        """Epoch, population and class counts, for printing."""
        return {"epoch": self.epoch, "population": len(self), **self.status_counts()}


def _given_arguments(cls: type, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments a soup (or subclass) was built with, as keywords: ``type(soup)(**them)``
    builds the same soup again (Mesa's Reset button does so). A numpy Generator is copied
    before the soup draws from it."""
    try:
        bound = inspect.signature(cls.__init__).bind_partial(None, *args, **kwargs)
    except TypeError:
        return dict(kwargs)  # the constructor will refuse the arguments with its own message
    given: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:  # without self
        if bound.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            given.update(value)
        else:
            given[name] = copy.deepcopy(value) if isinstance(value, np.random.Generator) else value
    return given


def _every_row(bank: WeightBank, rows: Tensor) -> bool:
    """Whether ``rows`` are all the rows of ``bank``, in order (0 .. capacity - 1)."""
    return rows.numel() == bank.capacity and torch.equal(rows.cpu(), bank.every_row())
