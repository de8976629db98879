"""WeightBank: the rows of one population tensor shared by all particles of one architecture."""

from __future__ import annotations

import torch

from particles.architectures import Architecture
from particles.validation import check_count, check_weights

Tensor = torch.Tensor


class WeightBank:
    """A growable ``[capacity, r]`` weight tensor whose rows are handed out to particles and reused.

    Besides the weights it keeps, per row, the owner's unique id (-1 when free) and the sticky
    divergence flag of SPEC D4: once a row held a non-finite weight it stays DIVERGENT until the
    row is released.

    Args:
        architecture: the architecture of every particle in the bank.
        capacity: initial number of rows (the bank doubles when full).
        device: where the tensors live.
        dtype: float32 (default) or float64.
    """

    def __init__(
        self,
        architecture: Architecture,
        *,
        capacity: int = 16,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        check_count("capacity", capacity, 1)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype={dtype} is not allowed; choose torch.float32 or torch.float64")
        self.architecture = architecture
        self.weights = torch.zeros(capacity, architecture.num_weights, device=device, dtype=dtype)
        self.divergent = torch.zeros(capacity, dtype=torch.bool, device=self.weights.device)
        self.uids = torch.full((capacity,), -1, dtype=torch.long, device=self.weights.device)
        # Free rows as a stack (CPU int64): the next row handed out is _free[_free_count - 1].
        self._free = torch.arange(capacity - 1, -1, -1)
        self._free_count = capacity
        self._every_row: Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.weights.device

    @property
    def dtype(self) -> torch.dtype:
        return self.weights.dtype

    @property
    def capacity(self) -> int:
        return self.weights.shape[0]

    def __len__(self) -> int:
        return self.capacity - self._free_count

    def rows_in_use(self) -> Tensor:
        """Indices of the rows that belong to a particle, ascending: int64 [n]."""
        return torch.nonzero(self.uids >= 0).flatten()

    def every_row(self) -> Tensor:
        """All row indices, ``0 .. capacity - 1`` in order, as one cached int64 tensor (CPU).

        ``read`` and ``write`` recognise this very tensor and then copy whole tensors instead of
        gathering and scattering rows (a soup whose bank is full in node order self-trains and
        classifies every row, every epoch). Do not modify it.
        """
        if self._every_row is None:
            self._every_row = torch.arange(self.capacity)
        return self._every_row

    def _grow(self, needed: int) -> None:
        old = self.capacity
        new = max(2 * old, old + needed)
        extra = new - old
        self.weights = torch.cat(
            [self.weights, self.weights.new_zeros(extra, self.weights.shape[1])]
        )
        self.divergent = torch.cat([self.divergent, self.divergent.new_zeros(extra)])
        self.uids = torch.cat([self.uids, self.uids.new_full((extra,), -1)])
        free = torch.cat([torch.arange(new - 1, old - 1, -1), self.free_rows()])
        self._free = torch.cat([free, free.new_empty(new - len(free))])  # room for every row
        self._free_count = len(free)
        self._every_row = None

    def free_rows(self) -> Tensor:
        """The free rows, the next one handed out last: int64 [capacity - len(self)] (CPU)."""
        return self._free[: self._free_count]

    def reserve(self, n: int) -> Tensor:
        """Take ``n`` free rows (growing the bank if needed) for :meth:`allocate`: int64 [n]."""
        if n > self._free_count:
            self._grow(n - self._free_count)
        top = self._free_count
        self._free_count -= n
        return self._free[top - n : top].flip(0).to(self.device)

    def allocate(
        self, weights: Tensor, uids: Tensor | list[int], *, rows: Tensor | None = None
    ) -> Tensor:
        """Give new particles rows holding ``weights`` [n, r]; returns their rows, int64 [n].

        ``rows``: rows taken beforehand with :meth:`reserve` (default: taken here).
        """
        check_weights("weights", weights, self.architecture.num_weights)
        uids = torch.as_tensor(uids, dtype=torch.long).flatten()  # checked where given
        if uids.numel() != weights.shape[0]:
            raise ValueError(f"got {uids.numel()} uids for {weights.shape[0]} weight rows")
        if bool((uids < 0).any()):
            raise ValueError(f"uids {uids[uids < 0].tolist()} are not allowed; a uid must be >= 0")
        uids = uids.to(self.device)
        if rows is None:
            rows = self.reserve(weights.shape[0])
        self.uids[rows] = uids
        self.divergent[rows] = False
        self.write(rows, weights)
        return rows

    def release(self, rows: Tensor) -> None:
        """Return rows of particles that died; their contents are cleared."""
        rows = torch.as_tensor(rows, dtype=torch.long).flatten()  # checked where given
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.capacity):
            raise ValueError(f"rows {rows.tolist()} are not all in [0, {self.capacity})")
        if rows.unique().numel() != rows.numel():
            raise ValueError(f"rows {rows.tolist()} name a row more than once")
        free = rows.cpu()
        rows = rows.to(self.device)
        if rows.numel() and bool((self.uids[rows] < 0).any()):
            raise ValueError(f"rows {rows[self.uids[rows] < 0].tolist()} are not in use")
        self.uids[rows] = -1
        self.divergent[rows] = False
        self.weights[rows] = 0
        n = rows.numel()
        if self._free_count + n > len(self._free):
            self._free = torch.cat([self.free_rows(), self._free.new_empty(n)])
        self._free[self._free_count : self._free_count + n] = free
        self._free_count += n

    def read(self, rows: Tensor) -> Tensor:
        """A copy of the weights of ``rows``: [n, r]."""
        if rows is self._every_row:  # every row in order: a plain copy, no gather
            return self.weights.clone()
        return self.weights[rows]

    def write(self, rows: Tensor, weights: Tensor) -> None:
        """Overwrite ``rows`` with ``weights`` [n, r]; raise the sticky flag of non-finite rows."""
        values = weights.to(device=self.device, dtype=self.dtype)
        every_row = rows is self._every_row  # every row in order: plain copies, no scatter
        if every_row:
            self.weights.copy_(values)
        else:
            self.weights[rows] = values
        # A finite total proves every weight finite (a NaN or an inf makes the sum NaN or inf):
        # one contiguous sum, far cheaper than a test per row, and this runs after every rule.
        if bool(torch.isfinite(values.sum())):
            return
        # A row times 0 sums to NaN exactly when it holds a NaN or an inf (10x faster on CPU
        # than isfinite(values).all(dim=1); summing by a product with ones is 2x faster than
        # .sum(dim=1) for these short rows).
        non_finite = torch.mv(values * 0, values.new_ones(values.shape[1])) != 0
        if every_row:
            self.divergent |= non_finite
        else:
            self.divergent[rows] |= non_finite

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors that fully describe the bank, free-row order included (for checkpoints)."""
        return {
            "weights": self.weights,
            "divergent": self.divergent,
            "uids": self.uids,
            "free": self.free_rows().clone(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what ``state_dict`` returned (the architecture must be the same)."""
        check_weights("weights", state["weights"], self.architecture.num_weights)
        self.weights = state["weights"].to(device=self.device, dtype=self.dtype).clone()
        self.divergent = state["divergent"].to(self.device).clone()
        self.uids = state["uids"].to(self.device).clone()
        self._free = state["free"].to(device="cpu", dtype=torch.long).clone()
        self._free_count = len(self._free)
        self._every_row = None
