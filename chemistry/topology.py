"""Who meets whom: the partner topology of a soup.

A :class:`Topology` says which particle slots may interact. Its nodes are the slots
``0 .. num_nodes - 1`` of a soup's population; a particle may pick a partner among the
neighbours of its slot (SPEC §6, D18: "neighbours N(i)"). The default is the well-mixed soup, a
complete graph, which is held implicitly so that 100,000 slots cost O(n) memory. Every other
topology is a simple undirected :class:`networkx.Graph` whose neighbour lists are also kept as CSR
index tensors (``indptr``, ``indices``) so that partners of many particles are drawn in one
vectorised call (:meth:`Topology.sample_partners`).

Many small soups can run as one population: :meth:`Topology.disjoint_cliques` makes ten soups of
ten particles one population of a hundred, and :meth:`Topology.components` tells them apart.

Example:
    >>> import torch
    >>> topology = Topology.ring(10, k=1)
    >>> occupied = torch.ones(10, dtype=torch.bool)
    >>> generator = torch.Generator().manual_seed(0)
    >>> partners = topology.sample_partners(torch.arange(10), occupied, generator=generator)
    >>> bool(topology.are_neighbours(torch.arange(10), partners).all())
    True
"""

from __future__ import annotations

import operator
from typing import Any

import networkx as nx
import numpy as np
import torch

__all__ = ["Topology", "as_topology"]

_KIND_COMPLETE = "complete"
_KIND_DISJOINT_CLIQUES = "disjoint_cliques"
_KIND_RING = "ring"
_KIND_GRID = "grid"
_KIND_SMALL_WORLD = "small_world"
_KIND_GRAPH = "graph"


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer at least ``minimum`` and return it as an int."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if as_int < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return as_int


def _csr_from_edges(num_nodes: int, sources: np.ndarray, destinations: np.ndarray):
    """Build sorted CSR neighbour arrays from undirected edges given once each.

    Args:
        num_nodes: number of nodes n.
        sources: ``[num_edges]`` int64, one endpoint of each undirected edge.
        destinations: ``[num_edges]`` int64, the other endpoint.

    Returns:
        ``(indptr [n + 1], indices [2 * num_edges])`` as int64 numpy arrays; the neighbours of
        node i are ``indices[indptr[i]:indptr[i + 1]]`` in increasing order.
    """
    rows = np.concatenate([sources, destinations]).astype(np.int64, copy=False)
    columns = np.concatenate([destinations, sources]).astype(np.int64, copy=False)
    order = np.lexsort((columns, rows))
    rows = rows[order]
    columns = columns[order]
    counts = np.bincount(rows, minlength=num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, columns


class Topology:
    """Which particle slots are neighbours: an undirected simple graph on slots ``0 .. n - 1``.

    Build one with a classmethod (:meth:`complete`, :meth:`disjoint_cliques`, :meth:`ring`,
    :meth:`grid`, :meth:`small_world`, :meth:`from_graph`) or with :func:`as_topology`.

    Complete graphs (one clique, or disjoint cliques) are held implicitly as blocks of
    consecutive slots, so they cost O(n) memory; their :attr:`graph`, :attr:`indptr` and
    :attr:`indices` are only built on request, and refused above
    :attr:`MAX_MATERIALISED_EDGES` undirected edges. All other topologies keep the networkx graph
    and CSR tensors built once at construction.

    Graphs never contain self-loops: a particle is its own partner only when
    :meth:`sample_partners` is called with ``allow_self=True`` (SPEC D18).

    Attributes:
        MAX_MATERIALISED_EDGES: the largest number of undirected edges a complete topology will
            materialise as a networkx graph or CSR arrays.
    """

    MAX_MATERIALISED_EDGES: int = 1_000_000

    def __init__(
        self,
        *,
        kind: str,
        num_nodes: int,
        graph: nx.Graph | None = None,
        indptr: np.ndarray | None = None,
        indices: np.ndarray | None = None,
        block_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Low-level constructor; use the classmethods instead.

        Args:
            kind: name of the family (``"complete"``, ``"ring"``, ...), shown in ``repr``.
            num_nodes: number of slots n.
            graph: the networkx graph on nodes ``0 .. n - 1`` (explicit topologies), or None.
            indptr: ``[n + 1]`` CSR row pointers (explicit topologies), or None.
            indices: ``[2 * num_edges]`` CSR neighbour slots, sorted within each row, or None.
            block_size: for implicit topologies, the size of each clique of consecutive slots
                (``num_nodes`` for a complete graph); None for explicit ones.
            device: where the CSR tensors live (default CPU).
        """
        self._kind = kind
        self._num_nodes = num_nodes
        self._graph = graph
        self._block_size = block_size
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._indptr_numpy = indptr
        self._indices_numpy = indices
        # CSR tensors per device, built once each.
        self._csr_cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._edge_keys_cache: dict[torch.device, torch.Tensor] = {}
        self._components: torch.Tensor | None = None

    # ------------------------------------------------------------------ constructors

    @classmethod
    def complete(cls, nodes: int, *, device: torch.device | str | None = None) -> Topology:
        """The well-mixed soup: every slot is a neighbour of every other slot (the default).

        Held implicitly: O(n) memory even for 100,000 slots.

        Args:
            nodes: number of slots n, at least 1.
            device: where tensors built by this topology live (default CPU).

        Raises:
            ValueError: if ``n`` is not an integer >= 1.
        """
        n = _positive_int("nodes", nodes)
        return cls(kind=_KIND_COMPLETE, num_nodes=n, block_size=n, device=device)

    @classmethod
    def disjoint_cliques(
        cls, num_soups: int, size: int, *, device: torch.device | str | None = None
    ) -> Topology:
        """Many small well-mixed soups run as one population.

        Soup ``s`` holds slots ``s * size .. (s + 1) * size - 1``; slots of different soups are
        never neighbours. :meth:`components` returns the soup index of each slot.

        Args:
            num_soups: number of soups, at least 1.
            size: particles per soup, at least 1.
            device: where tensors built by this topology live (default CPU).

        Raises:
            ValueError: if ``num_soups`` or ``size`` is not an integer >= 1.
        """
        num_soups = _positive_int("num_soups", num_soups)
        size = _positive_int("size", size)
        return cls(
            kind=_KIND_DISJOINT_CLIQUES,
            num_nodes=num_soups * size,
            block_size=size,
            device=device,
        )

    @classmethod
    def ring(cls, nodes: int, k: int = 1, *, device: torch.device | str | None = None) -> Topology:
        """A ring: slot i is linked to the ``k`` nearest slots on each side (degree ``2k``).

        Args:
            nodes: number of slots n, at least 3.
            k: neighbours on each side, ``1 <= k <= (n - 1) // 2`` so that all ``2k`` neighbours
                are distinct.
            device: where the CSR tensors live (default CPU).

        Raises:
            ValueError: if ``n`` < 3 or ``k`` is out of range.
        """
        n = _positive_int("nodes", nodes, minimum=3)
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"k must be an integer in [1, {(n - 1) // 2}] for n={n}, got {k!r}")
        k = int(k)
        if not 1 <= k <= (n - 1) // 2:
            raise ValueError(
                f"k must be in [1, {(n - 1) // 2}] for a ring of n={n} slots "
                f"(2k neighbours must be distinct), got k={k}"
            )
        slots = np.arange(n, dtype=np.int64)
        sources = np.tile(slots, k)
        destinations = (sources + np.repeat(np.arange(1, k + 1, dtype=np.int64), n)) % n
        indptr, indices = _csr_from_edges(n, sources, destinations)
        return cls(kind=_KIND_RING, num_nodes=n, indptr=indptr, indices=indices, device=device)

    @classmethod
    def grid(cls, rows: int, cols: int, *, device: torch.device | str | None = None) -> Topology:
        """A 2-D torus with the 4-neighbourhood (up, down, left, right, wrapping around).

        Slot ``row * cols + col`` sits at ``(row, col)``. Both sides must be at least 3 so that the
        four neighbours are distinct and the graph is simple (a side of 1 would link a slot to
        itself and a side of 2 would link the same pair twice); for a single row use
        :meth:`ring`.

        Args:
            rows: number of rows, at least 3.
            cols: number of columns, at least 3.
            device: where the CSR tensors live (default CPU).

        Raises:
            ValueError: if ``rows`` or ``cols`` is not an integer >= 3.
        """
        rows = _positive_int("rows", rows, minimum=3)
        cols = _positive_int("cols", cols, minimum=3)
        row_index, col_index = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
        slots = row_index * cols + col_index
        right = row_index * cols + (col_index + 1) % cols
        down = ((row_index + 1) % rows) * cols + col_index
        indptr, indices = _csr_from_edges(
            rows * cols, np.concatenate([slots, slots]), np.concatenate([right, down])
        )
        return cls(
            kind=_KIND_GRID, num_nodes=rows * cols, indptr=indptr, indices=indices, device=device
        )

    @classmethod
    def small_world(
        cls,
        nodes: int,
        k: int = 4,
        p: float = 0.1,
        *,
        seed: int | np.random.Generator,
        device: torch.device | str | None = None,
    ) -> Topology:
        """A Watts–Strogatz small world (``networkx.watts_strogatz_graph``), seeded.

        Note that ``k`` follows the Watts–Strogatz convention: the TOTAL number of ring
        neighbours before rewiring (``k / 2`` on each side), unlike :meth:`ring`.

        Args:
            nodes: number of slots n, at least 3.
            k: total ring neighbours before rewiring, even, ``2 <= k <= n - 1``.
            p: rewiring probability in [0, 1].
            seed: an int seed or a numpy Generator (required, for reproducible runs).
            device: where the CSR tensors live (default CPU).

        Raises:
            ValueError: if ``n``, ``k`` or ``p`` is out of range, or ``seed`` is None.
        """
        n = _positive_int("nodes", nodes, minimum=3)
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"k must be an even integer in [2, {n - 1}], got {k!r}")
        k = int(k)
        if k < 2 or k > n - 1 or k % 2:
            raise ValueError(f"k must be an even integer in [2, {n - 1}] for n={n}, got k={k}")
        if isinstance(p, bool) or not isinstance(p, int | float | np.floating | np.integer):
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got p={p!r}")
        if seed is None:
            raise ValueError("seed must be an int or a numpy Generator, got None")
        graph = nx.watts_strogatz_graph(n, k, float(p), seed=seed)
        return cls._from_integer_graph(graph, kind=_KIND_SMALL_WORLD, device=device)

    @classmethod
    def from_graph(cls, graph: nx.Graph, *, device: torch.device | str | None = None) -> Topology:
        """Any undirected networkx graph as a topology.

        Nodes are relabelled ``0 .. n - 1`` in the graph's node order
        (``networkx.convert_node_labels_to_integers``); the original label is kept as node
        attribute ``label``. The input graph is not modified. Self-loops are dropped (use
        ``allow_self=True`` in :meth:`sample_partners` instead). Directed graphs and multigraphs
        are rejected rather than converted, since which direction means "may pick" would be a
        guess: convert first with ``graph.to_undirected()`` or ``networkx.Graph(graph)``.

        Args:
            graph: an undirected, simple ``networkx.Graph`` with at least one node.
            device: where the CSR tensors live (default CPU).

        Raises:
            ValueError: if ``graph`` is not a networkx graph, is directed, a multigraph, or empty.
        """
        if not isinstance(graph, nx.Graph):
            raise ValueError(
                f"graph must be a networkx.Graph, got {type(graph).__name__}: {graph!r}"
            )
        if graph.is_directed():
            raise ValueError(
                f"graph must be undirected, got a directed {type(graph).__name__}; "
                "convert it first with graph.to_undirected()"
            )
        if graph.is_multigraph():
            raise ValueError(
                f"graph must be a simple graph, got a {type(graph).__name__}; "
                "convert it first with networkx.Graph(graph)"
            )
        if graph.number_of_nodes() < 1:
            raise ValueError("graph must have at least 1 node, got an empty graph")
        relabelled = nx.convert_node_labels_to_integers(graph, label_attribute="label")
        relabelled.remove_edges_from(list(nx.selfloop_edges(relabelled)))
        return cls._from_integer_graph(relabelled, kind=_KIND_GRAPH, device=device)

    @classmethod
    def _from_integer_graph(
        cls, graph: nx.Graph, *, kind: str, device: torch.device | str | None
    ) -> Topology:
        """Wrap a simple undirected graph whose nodes are exactly ``0 .. n - 1``."""
        n = graph.number_of_nodes()
        if graph.number_of_edges():
            edges = np.asarray(list(graph.edges()), dtype=np.int64)
            sources, destinations = edges[:, 0], edges[:, 1]
        else:
            sources = destinations = np.zeros(0, dtype=np.int64)
        indptr, indices = _csr_from_edges(n, sources, destinations)
        return cls(
            kind=kind, num_nodes=n, graph=graph, indptr=indptr, indices=indices, device=device
        )

    # ------------------------------------------------------------------ properties

    @property
    def kind(self) -> str:
        """The family this topology was built as: ``"complete"``, ``"ring"``, ``"graph"``, ..."""
        return self._kind

    @property
    def num_nodes(self) -> int:
        """Number of slots n."""
        return self._num_nodes

    @property
    def device(self) -> torch.device:
        """Device of :attr:`indptr`, :attr:`indices` and :meth:`components`."""
        return self._device

    @property
    def is_implicit(self) -> bool:
        """True for complete graphs and disjoint cliques, which are held without edges."""
        return self._block_size is not None

    @property
    def num_edges(self) -> int:
        """Number of undirected edges (computed, not counted, for implicit topologies)."""
        if self._block_size is not None:
            num_blocks = self._num_nodes // self._block_size
            return num_blocks * self._block_size * (self._block_size - 1) // 2
        return int(self._indices_numpy.shape[0]) // 2

    def _check_materialisable(self, what: str) -> None:
        if self.num_edges > self.MAX_MATERIALISED_EDGES:
            raise ValueError(
                f"refusing to build {what} for a {self._kind} topology of {self._num_nodes} slots "
                f"({self.num_edges} edges > MAX_MATERIALISED_EDGES={self.MAX_MATERIALISED_EDGES}); "
                "sample_partners, are_neighbours and components work without it"
            )

    def _ensure_csr_numpy(self) -> None:
        if self._indptr_numpy is not None:
            return
        self._check_materialisable("CSR neighbour arrays")
        size = self._block_size
        slots = np.arange(self._num_nodes, dtype=np.int64)
        first, second = np.triu_indices(size, k=1)
        block_starts = slots[::size]
        sources = (block_starts[:, None] + first[None, :]).ravel()
        destinations = (block_starts[:, None] + second[None, :]).ravel()
        self._indptr_numpy, self._indices_numpy = _csr_from_edges(
            self._num_nodes, sources, destinations
        )

    def _csr(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """CSR tensors on ``device``, built once per device."""
        cached = self._csr_cache.get(device)
        if cached is None:
            self._ensure_csr_numpy()
            cached = (
                torch.from_numpy(self._indptr_numpy).to(device),
                torch.from_numpy(self._indices_numpy).to(device),
            )
            self._csr_cache[device] = cached
        return cached

    @property
    def indptr(self) -> torch.Tensor:
        """``[num_nodes + 1]`` int64 CSR row pointers on :attr:`device`.

        The neighbours of slot i are ``indices[indptr[i]:indptr[i + 1]]``. Built on request for
        implicit topologies (refused above :attr:`MAX_MATERIALISED_EDGES` edges).
        """
        return self._csr(self._device)[0]

    @property
    def indices(self) -> torch.Tensor:
        """``[2 * num_edges]`` int64 neighbour slots, increasing within rows, on :attr:`device`."""
        return self._csr(self._device)[1]

    @property
    def graph(self) -> nx.Graph:
        """The topology as a ``networkx.Graph`` on nodes ``0 .. num_nodes - 1``.

        Built lazily for implicit and generated topologies; for implicit ones it is refused above
        :attr:`MAX_MATERIALISED_EDGES` edges. Treat it as read-only: editing it does not change
        the CSR arrays used for sampling.

        Raises:
            ValueError: if the topology is complete and too large to materialise.
        """
        if self._graph is None:
            if self._block_size is not None:
                self._check_materialisable("a networkx graph")
            self._ensure_csr_numpy()
            graph = nx.Graph()
            graph.add_nodes_from(range(self._num_nodes))
            rows = np.repeat(np.arange(self._num_nodes), np.diff(self._indptr_numpy))
            upper = rows < self._indices_numpy
            graph.add_edges_from(
                zip(rows[upper].tolist(), self._indices_numpy[upper].tolist(), strict=True)
            )
            self._graph = graph
        return self._graph

    def to(self, device: torch.device | str) -> Topology:
        """The same topology with its tensors on ``device`` (self if already there)."""
        device = torch.device(device)
        if device == self._device:
            return self
        moved = Topology(
            kind=self._kind,
            num_nodes=self._num_nodes,
            graph=self._graph,
            indptr=self._indptr_numpy,
            indices=self._indices_numpy,
            block_size=self._block_size,
            device=device,
        )
        moved._csr_cache = self._csr_cache
        moved._edge_keys_cache = self._edge_keys_cache
        return moved

    def __repr__(self) -> str:
        if self._kind == _KIND_DISJOINT_CLIQUES:
            detail = f"num_soups={self._num_nodes // self._block_size}, size={self._block_size}"
        else:
            detail = f"num_nodes={self._num_nodes}, num_edges={self.num_edges}"
        return f"Topology.{self._kind}({detail})"

    # ------------------------------------------------------------------ validation

    def _check_nodes(self, name: str, nodes: torch.Tensor) -> torch.Tensor:
        if not isinstance(nodes, torch.Tensor):
            raise ValueError(
                f"{name} must be a 1-D integer torch.Tensor, got {type(nodes).__name__}"
            )
        if nodes.dim() != 1:
            raise ValueError(f"{name} must be 1-D [num_queries], got shape {tuple(nodes.shape)}")
        if nodes.dtype.is_floating_point or nodes.dtype.is_complex or nodes.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer slot indices, got dtype {nodes.dtype}")
        nodes = nodes.long()
        if nodes.numel():
            low, high = (int(bound) for bound in torch.aminmax(nodes))
            if low < 0 or high >= self._num_nodes:
                bad = low if low < 0 else high
                raise ValueError(f"{name} must hold slots in [0, {self._num_nodes - 1}], got {bad}")
        return nodes

    # ------------------------------------------------------------------ queries

    def sample_partners(
        self,
        nodes: torch.Tensor,
        occupied: torch.Tensor,
        *,
        generator: torch.Generator,
        allow_self: bool = False,
        occupied_slots: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw one partner per given slot, uniformly among its occupied neighbours.

        Candidates of slot i are its neighbours j with ``occupied[j]``, plus i itself when
        ``allow_self`` and ``occupied[i]``. Repeated slots in ``nodes`` draw independently.
        Vectorised over ``nodes``; the cost is O(sum of their degrees) for explicit topologies
        and O(num_nodes) for implicit (complete) ones. Every random number comes from
        ``generator`` (one uniform per entry of ``nodes``), so equal generator states give equal
        partners.

        Args:
            nodes: ``[m]`` integer slots to find partners for, on the same device as ``occupied``.
            occupied: ``[num_nodes]`` bool, which slots currently hold a particle.
            generator: the torch.Generator to draw from, on the same device as ``occupied``.
            allow_self: whether a slot may be its own partner (SPEC D18 option).
            occupied_slots: optionally ``torch.nonzero(occupied).flatten()``, if the caller
                already has it (saves a pass over all slots); it must be exactly that.

        Returns:
            ``[m]`` int64 partner slots, ``-1`` where a slot has no candidate.

        Raises:
            ValueError: on wrong shapes, dtypes, devices or out-of-range slots.
        """
        if not isinstance(occupied, torch.Tensor) or occupied.dtype != torch.bool:
            raise ValueError(
                "occupied must be a bool torch.Tensor [num_nodes], got "
                f"{getattr(occupied, 'dtype', type(occupied).__name__)}"
            )
        if tuple(occupied.shape) != (self._num_nodes,):
            raise ValueError(
                f"occupied must have shape ({self._num_nodes},), got {tuple(occupied.shape)}"
            )
        nodes = self._check_nodes("nodes", nodes)
        device = occupied.device
        if nodes.device != device:
            raise ValueError(
                f"nodes must be on the device of occupied ({device}), got {nodes.device}"
            )
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
        if generator.device.type != device.type:
            raise ValueError(
                f"generator must be on the device of occupied ({device}), got {generator.device}"
            )
        uniforms = torch.rand(
            nodes.shape[0], generator=generator, dtype=torch.float64, device=device
        )
        if self._block_size is not None:
            if occupied_slots is None:
                occupied_slots = torch.nonzero(occupied, as_tuple=True)[0]
            return self._sample_in_blocks(nodes, occupied, occupied_slots, uniforms, allow_self)
        return self._sample_in_csr(nodes, occupied, uniforms, allow_self)

    @staticmethod
    def _rank(uniforms: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``floor(u * count)`` clamped into ``[0, count - 1]`` (0 where count is 0)."""
        rank = torch.floor(uniforms * counts.to(torch.float64)).long()
        return torch.minimum(rank, (counts - 1).clamp_min(0))

    def _sample_in_blocks(
        self,
        nodes: torch.Tensor,
        occupied: torch.Tensor,
        occupied_slots: torch.Tensor,
        uniforms: torch.Tensor,
        allow_self: bool,
    ) -> torch.Tensor:
        """Partners in complete blocks of consecutive slots, via counts of occupied slots."""
        size = self._block_size
        if occupied_slots.numel() == self._num_nodes:
            return self._sample_in_full_blocks(nodes, uniforms, allow_self)

        def occupied_before(slots: torch.Tensor) -> torch.Tensor:
            # Number of occupied slots among 0 .. s - 1 for each s: a binary search in the
            # ascending occupied slots costs O(m log P), a prefix sum over all slots O(N).
            return torch.searchsorted(occupied_slots, slots)

        block_start = (nodes // size) * size
        base = occupied_before(block_start)
        candidates = occupied_before(block_start + size) - base
        self_occupied = occupied[nodes]
        if not allow_self:
            candidates = candidates - self_occupied.long()
        rank = self._rank(uniforms, candidates)
        global_rank = base + rank
        if not allow_self:
            # Skip over the node itself: it has global occupied rank occupied_before[node].
            global_rank = (
                global_rank + (self_occupied & (global_rank >= occupied_before(nodes))).long()
            )
        has_partner = candidates > 0
        partners = torch.full_like(nodes, -1)
        if occupied_slots.numel():
            safe_rank = torch.where(has_partner, global_rank, torch.zeros_like(global_rank))
            partners = torch.where(
                has_partner,
                occupied_slots[safe_rank.clamp_max(occupied_slots.numel() - 1)],
                partners,
            )
        return partners

    def _sample_in_full_blocks(
        self, nodes: torch.Tensor, uniforms: torch.Tensor, allow_self: bool
    ) -> torch.Tensor:
        """``_sample_in_blocks`` when every slot is occupied (same draws, a few operations)."""
        size = self._block_size
        candidates = size if allow_self else size - 1
        if candidates == 0:
            return torch.full_like(nodes, -1)
        # The r-th candidate of a block is its slot block_start + r, skipping the node itself.
        # rank = _rank(uniforms, counts) for a constant count, with the count as a scalar.
        rank = torch.floor(uniforms * float(candidates)).long().clamp_max(candidates - 1)
        partners = (nodes // size) * size + rank
        if not allow_self:
            partners = partners + (partners >= nodes)  # bool + int64 adds 0 or 1
        return partners

    def _sample_in_csr(
        self,
        nodes: torch.Tensor,
        occupied: torch.Tensor,
        uniforms: torch.Tensor,
        allow_self: bool,
    ) -> torch.Tensor:
        """Partners from CSR neighbour lists, restricted to the rows of ``nodes``."""
        device = occupied.device
        indptr, indices = self._csr(device)
        row_start = indptr[nodes]
        degrees = indptr[nodes + 1] - row_start
        # Concatenate the neighbour lists of the queried nodes: [total] entries.
        segment_start = torch.cumsum(degrees, dim=0) - degrees
        total = int(degrees.sum()) if degrees.numel() else 0
        position_in_segment = torch.arange(total, device=device) - torch.repeat_interleave(
            segment_start, degrees, output_size=total
        )
        neighbours = indices[
            torch.repeat_interleave(row_start, degrees, output_size=total) + position_in_segment
        ]
        neighbour_occupied = occupied[neighbours]
        # occupied_before[e] = occupied neighbours among entries 0 .. e - 1;  [total + 1]
        occupied_before = torch.zeros(total + 1, dtype=torch.long, device=device)
        torch.cumsum(neighbour_occupied.long(), dim=0, out=occupied_before[1:])
        base = occupied_before[segment_start]
        occupied_neighbours = occupied_before[segment_start + degrees] - base
        candidates = occupied_neighbours
        self_candidate = torch.zeros_like(nodes, dtype=torch.bool)
        if allow_self:
            self_candidate = occupied[nodes]
            candidates = candidates + self_candidate.long()
        rank = self._rank(uniforms, candidates)
        has_partner = candidates > 0
        picks_self = self_candidate & (rank == occupied_neighbours)
        picks_neighbour = has_partner & ~picks_self
        partners = torch.full_like(nodes, -1)
        partners = torch.where(picks_self, nodes, partners)
        occupied_entries = torch.nonzero(neighbour_occupied, as_tuple=True)[0]
        if occupied_entries.numel():
            global_rank = torch.where(picks_neighbour, base + rank, torch.zeros_like(rank))
            chosen = neighbours[
                occupied_entries[global_rank.clamp_max(occupied_entries.numel() - 1)]
            ]
            partners = torch.where(picks_neighbour, chosen, partners)
        return partners

    def are_neighbours(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Whether slot ``a[i]`` and slot ``b[i]`` are neighbours, elementwise.

        A slot is never its own neighbour (graphs have no self-loops).

        Args:
            a: ``[m]`` integer slots.
            b: ``[m]`` integer slots, on the same device as ``a``.

        Returns:
            ``[m]`` bool.

        Raises:
            ValueError: if shapes differ, tensors are not 1-D integer tensors, or a slot is out
                of range.
        """
        a = self._check_nodes("a", a)
        b = self._check_nodes("b", b)
        if a.shape != b.shape:
            raise ValueError(
                f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if a.device != b.device:
            raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")
        if self._block_size is not None:
            return (a // self._block_size == b // self._block_size) & (a != b)
        edge_keys = self._edge_keys(a.device)
        if edge_keys.numel() == 0:
            return torch.zeros_like(a, dtype=torch.bool)
        query_keys = a * self._num_nodes + b
        position = torch.searchsorted(edge_keys, query_keys).clamp_max(edge_keys.numel() - 1)
        return edge_keys[position] == query_keys

    def _edge_keys(self, device: torch.device) -> torch.Tensor:
        """``[2 * num_edges]`` sorted keys ``row * num_nodes + neighbour``, built once per device.

        They are sorted because rows ascend and neighbours ascend within each row.
        """
        keys = self._edge_keys_cache.get(device)
        if keys is None:
            indptr, indices = self._csr(device)
            rows = torch.repeat_interleave(
                torch.arange(self._num_nodes, device=device), indptr[1:] - indptr[:-1]
            )
            keys = rows * self._num_nodes + indices
            self._edge_keys_cache[device] = keys
        return keys

    def neighbours(self, node: int) -> torch.Tensor:
        """All neighbour slots of one slot, increasing, as an int64 tensor on :attr:`device`.

        Args:
            node: a slot in ``[0, num_nodes - 1]``.

        Raises:
            ValueError: if ``node`` is out of range.
        """
        node = int(self._check_nodes("node", torch.tensor([node]))[0])
        if self._block_size is not None:
            start = (node // self._block_size) * self._block_size
            block = torch.arange(start, start + self._block_size, device=self._device)
            return block[block != node]
        indptr, indices = self._csr(self._device)
        return indices[int(indptr[node]) : int(indptr[node + 1])]

    def components(self) -> torch.Tensor:
        """Connected component label of every slot.

        Labels are ``0 .. num_components - 1``, numbered in order of each component's smallest
        slot; for :meth:`disjoint_cliques` the label is the soup index ``slot // size``.

        Returns:
            ``[num_nodes]`` int64 on :attr:`device`.
        """
        if self._components is None:
            if self._block_size is not None:
                labels = torch.arange(self._num_nodes) // self._block_size
            else:
                labels = torch.empty(self._num_nodes, dtype=torch.long)
                components = sorted(nx.connected_components(self.graph), key=min)
                for label, component in enumerate(components):
                    labels[list(component)] = label
            self._components = labels
        return self._components.to(self._device)

    @property
    def num_components(self) -> int:
        """Number of connected components."""
        return int(self.components().max()) + 1


def as_topology(
    topology: Topology | nx.Graph | None,
    n: int,
    *,
    device: torch.device | str | None = None,
) -> Topology:
    """Turn what a user passed as ``topology=`` into a :class:`Topology` of at least ``n`` slots.

    Args:
        topology: None (the well-mixed default, :meth:`Topology.complete` of exactly ``n``
            slots), a Topology, or an undirected networkx Graph (see :meth:`Topology.from_graph`).
            A given topology may have more slots than ``n`` (room for a growing soup).
        n: the number of slots the soup needs.
        device: where the topology's tensors live (default: leave a Topology where it is; CPU
            for the others).

    Returns:
        A Topology with ``num_nodes >= n``.

    Raises:
        ValueError: if the topology has fewer than ``n`` nodes, or ``topology`` is of any other
            type.
    """
    n = _positive_int("n", n)
    if topology is None:
        return Topology.complete(n, device=device)
    if isinstance(topology, Topology):
        result = topology if device is None else topology.to(device)
    elif isinstance(topology, nx.Graph):
        result = Topology.from_graph(topology, device=device)
    else:
        raise ValueError(
            "topology must be None, a Topology or a networkx.Graph, got "
            f"{type(topology).__name__}: {topology!r}"
        )
    if result.num_nodes < n:
        raise ValueError(
            f"topology has {result.num_nodes} nodes but the soup needs at least n={n} slots"
        )
    return result
