"""Particle architectures: weight layout, initialisation, batched forward pass, the reductions.

Every tensor carries a leading particle axis. A particle of an architecture is a row of a
``[batch, num_weights]`` tensor laid out as SPEC D1 (each weight matrix row-major, target neuron =
row, source neuron = column, matrices concatenated). An architecture is a frozen dataclass: it is
hashable, so constant tensors derived from it (position features, groupings, Fourier bases) are
computed once per device and dtype and cached.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache, cached_property
from typing import ClassVar

import torch

from particles.validation import check_choice, check_count, check_weights

Tensor = torch.Tensor

ACTIVATIONS = {
    None: None,
    "linear": None,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "selu": torch.selu,
    "elu": torch.nn.functional.elu,
    "softsign": torch.nn.functional.softsign,
}
INITS = ("torch", "glorot")
ENCODINGS = ("torch", "keras")
AGGREGATIONS = ("mean", "max")
AGGREGATE_FIXPOINT_TESTS = ("weights", "aggregates")


def _activate(name: str | None, h: Tensor) -> Tensor:
    function = ACTIVATIONS[name]
    return h if function is None else function(h)


def _uniform(n: int, bounds: Tensor, generator: torch.Generator | None) -> Tensor:
    """Rows of independent U[-bound_i, bound_i] draws, one bound per weight: [n, len(bounds)]."""
    draws = torch.rand(
        (n, bounds.numel()), generator=generator, device=bounds.device, dtype=bounds.dtype
    )
    return (2 * draws - 1) * bounds


@dataclass(frozen=True)
class Architecture(ABC):
    """A particle type: how its weights are laid out, run, and used to read and write other nets.

    Subclasses define the reduction (SPEC §2): ``apply`` is the application N ◁ M and
    ``samples`` the training reduction S(M).
    """

    reduction: ClassVar[str]
    # True when the sample axis of x/y is time: the whole sequence is one training sample.
    is_sequence: ClassVar[bool] = False

    @property
    @abstractmethod
    def matrix_shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of each weight matrix in layout order; what other reductions encode."""

    @cached_property  # read on every call's argument check; the fields are frozen
    def num_weights(self) -> int:
        """Number of weights r of one particle."""
        return sum(rows * columns for rows, columns in self.matrix_shapes)

    @property
    def minimum_target_size(self) -> int:
        """Smallest number of target weights this reduction can read."""
        return 1

    @property
    def is_linear_feedforward(self) -> bool:
        """True when the net is a bias-free linear chain, f(x) = P x (enables closed forms)."""
        return False

    @abstractmethod
    def init(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Fresh weights for ``n`` particles: [n, num_weights] (SPEC D3)."""

    @abstractmethod
    def forward(self, w: Tensor, x: Tensor) -> Tensor:
        """Run each particle on its own inputs: w [B, r], x [B, S, n_in] -> [B, S, n_out]."""

    @abstractmethod
    def samples(self, target: Architecture, target_w: Tensor) -> tuple[Tensor, Tensor]:
        """Training samples S(M): target_w [B, r_M] -> (x [B, S, n_in], y [B, S, n_out])."""

    @abstractmethod
    def apply(
        self,
        w: Tensor,
        target: Architecture,
        target_w: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Application N ◁ M row by row: w [B, r], target_w [B, r_M] -> new target_w [B, r_M]."""

    def fixpoint_gap(self, w: Tensor, w_out: Tensor) -> Tensor:
        """max_i |w_out_i - w_i| per row, +inf where either is non-finite: [B] (SPEC D14)."""
        gap = (w_out - w).abs().amax(dim=1)
        # A NaN or inf in either row makes its difference NaN or inf there, and amax propagates
        # both, so only NaN needs replacing: cheaper than two isfinite passes over the rows.
        return torch.where(gap.isnan(), math.inf, gap)

    def check_target(
        self, target: Architecture, target_w: Tensor, batch: int, *, role: str = "target"
    ) -> None:
        """Raise ValueError unless ``target_w`` is a [batch, r_M] batch this reduction can read.

        ``role`` names the arguments in messages ("target" → ``target``/``target_w``).
        """
        if not isinstance(target, Architecture):
            raise ValueError(f"{role} must be an Architecture, got {type(target).__name__}")
        check_weights(f"{role}_w", target_w, target.num_weights, batch)
        if target.num_weights < self.minimum_target_size:
            raise ValueError(
                f"{role} architecture {target} has {target.num_weights} weights; the "
                f"{self.reduction} reduction of {self} needs at least {self.minimum_target_size}"
            )


# --------------------------------------------------------------------------------------------
# Feed-forward nets (weightwise, aggregating, Fourier)


@dataclass(frozen=True)
class FeedForward(Architecture):
    """A multilayer perceptron n_in → width^depth → n_out, linear and bias-free by default.

    Args:
        width: units per hidden layer.
        depth: number of hidden layers.
        activation: hidden activation (None = linear; see ``ACTIVATIONS``).
        output_activation: output activation (None = linear).
        bias: give every layer a bias column (SPEC D2, augmented matrix [W | b]).
        init: "torch" (U[±1/√in]) or "glorot" (U[±√(6/(in+out))], zero bias).
    """

    width: int = 2
    depth: int = 2
    activation: str | None = None
    output_activation: str | None = None
    bias: bool = False
    init_scheme: str = "torch"

    input_size: ClassVar[int]
    output_size: ClassVar[int]

    def __post_init__(self) -> None:
        check_count("width", self.width, 1)
        check_count("depth", self.depth, 0)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("output_activation", self.output_activation, ACTIVATIONS)
        check_choice("init_scheme", self.init_scheme, INITS)
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias={self.bias!r} is not allowed; it must be True or False")

    @property
    def widths(self) -> tuple[int, ...]:
        """Layer widths (n_0, …, n_L)."""
        return (self.input_size, *([self.width] * self.depth), self.output_size)

    @property
    def matrix_shapes(self) -> tuple[tuple[int, int], ...]:
        extra = 1 if self.bias else 0
        return tuple(
            (out, inp + extra) for inp, out in zip(self.widths, self.widths[1:], strict=False)
        )

    @property
    def is_linear_feedforward(self) -> bool:
        return (
            not self.bias
            and ACTIVATIONS[self.activation] is None
            and ACTIVATIONS[self.output_activation] is None
        )

    def init(self, n, *, generator=None, device=None, dtype=torch.float32):
        check_count("n", n, 0)
        bounds = []
        for inp, out in zip(self.widths, self.widths[1:], strict=False):
            if self.init_scheme == "torch":
                bound = 1 / math.sqrt(inp)
                bounds.append(torch.full((out, inp + self.bias), bound))
            else:
                matrix = torch.full((out, inp + self.bias), math.sqrt(6 / (inp + out)))
                if self.bias:
                    matrix[:, -1] = 0.0
                bounds.append(matrix)
        flat = torch.cat([b.flatten() for b in bounds]).to(device=device, dtype=dtype)
        return _uniform(n, flat, generator)

    def matrices(self, w: Tensor) -> list[Tensor]:
        """Views of each layer's matrix: [B, rows, columns] per layer."""
        out, offset = [], 0
        for rows, columns in self.matrix_shapes:
            out.append(w[:, offset : offset + rows * columns].unflatten(1, (rows, columns)))
            offset += rows * columns
        return out

    def collapsed(self, w: Tensor) -> Tensor:
        """For a linear bias-free net, P = W_{L-1}⋯W_0: [B, n_out, n_in], so f(x) = P x."""
        product = None
        for matrix in self.matrices(w):
            product = matrix if product is None else torch.matmul(matrix, product)
        return product

    def forward(self, w, x):
        check_weights("w", w, self.num_weights)
        if x.dim() != 3 or x.shape[0] != w.shape[0] or x.shape[2] != self.input_size:
            raise ValueError(
                f"x has shape {list(x.shape)}; expected [{w.shape[0]}, samples, {self.input_size}]"
            )
        if self.is_linear_feedforward:
            return torch.matmul(x, self.collapsed(w).transpose(1, 2))
        matrices = self.matrices(w)
        h = x
        for layer, matrix in enumerate(matrices):
            if self.bias:
                h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
            h = torch.matmul(h, matrix.transpose(1, 2))
            last = layer == len(matrices) - 1
            h = _activate(self.output_activation if last else self.activation, h)
        return h

    def _checked(self, w: Tensor, target: Architecture, target_w: Tensor) -> None:
        check_weights("w", w, self.num_weights)
        self.check_target(target, target_w, w.shape[0])


# --------------------------------------------------------------------------------------------
# Weightwise reduction (SPEC D6, D7)


def _normalised_index(k: Tensor, n: int) -> Tensor:
    """ν(k, n) = k / (n - 1) if n > 1 else 0."""
    return k / (n - 1) if n > 1 else torch.zeros_like(k)


@cache
def position_features(
    target: Architecture, encoding: str, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """The constant columns (ν(l, L), ν(c, out_l), ν(p, in_l)) of a target's encoding: [r_M, 3].

    Under ``encoding="keras"`` the two neuron features swap (cell = source, position = target).
    """
    shapes = target.matrix_shapes
    columns = []
    for layer, (rows, cols) in enumerate(shapes):
        row = torch.arange(rows, dtype=torch.float64).repeat_interleave(cols)
        column = torch.arange(cols, dtype=torch.float64).repeat(rows)
        layer_feature = _normalised_index(torch.full_like(row, layer), len(shapes))
        row_feature, column_feature = _normalised_index(row, rows), _normalised_index(column, cols)
        if encoding == "keras":
            row_feature, column_feature = column_feature, row_feature
        columns.append(torch.stack([layer_feature, row_feature, column_feature], dim=1))
    return torch.cat(columns).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Weightwise(FeedForward):
    """Weightwise particle 4 → width^depth → 1: it rewrites a net one weight at a time (SPEC D7).

    Feature row of weight i of target M: (m_i, ν(layer), ν(row), ν(column)); (N ◁ M)_i = f_N(x_i).
    """

    encoding: str = "torch"

    reduction: ClassVar[str] = "ww"
    input_size: ClassVar[int] = 4
    output_size: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("encoding", self.encoding, ENCODINGS)

    @classmethod
    def identity(cls, *, device=None, dtype=torch.float32) -> Tensor:
        """The hand-built exact fixpoint 𝓘 of the default particle (SPEC Proposition 1): [1, 14]."""
        w = torch.zeros(1, cls().num_weights, device=device, dtype=dtype)
        w[0, 0] = 1.0  # W_0[0, 0]
        w[0, 8] = 1.0  # W_1[0, 0]
        w[0, 12] = 1.0  # W_2[0, 0]
        return w

    def features(self, target: Architecture, target_w: Tensor) -> Tensor:
        """Encoding x_i(M) of every target weight: target_w [B, r_M] -> [B, r_M, 4]."""
        positions = position_features(target, self.encoding, target_w.device, target_w.dtype)
        batch = target_w.shape[0]
        return torch.cat(
            [target_w.unsqueeze(-1), positions.expand(batch, *positions.shape)], dim=-1
        )

    def samples(self, target, target_w):
        self.check_target(target, target_w, target_w.shape[0])
        return self.features(target, target_w), target_w.unsqueeze(-1)

    def apply(self, w, target, target_w, *, generator=None):
        self._checked(w, target, target_w)
        from particles import fused  # late: fused builds on this module

        applied = fused.apply(self, w, target, target_w)
        if applied is not None:
            return applied
        if self.is_linear_feedforward:
            # f_N(x_i) = u·x_i = u_0 m_i + u_{1:}·positions_i (Proposition 2): one GEMM.
            u = self.collapsed(w)[:, 0, :]
            positions = position_features(target, self.encoding, target_w.device, target_w.dtype)
            return u[:, :1] * target_w + u[:, 1:] @ positions.T
        return self.forward(w, self.features(target, target_w)).squeeze(-1)


# --------------------------------------------------------------------------------------------
# Aggregating reduction (SPEC D8)


@cache
def aggregate_groups(num_weights: int, aggregates: int, device: torch.device) -> Tensor:
    """Group k(i) of every weight: b contiguous groups of ⌊r/b⌋, the remainder joins the last."""
    size = num_weights // aggregates
    return (
        torch.arange(num_weights, device=device)
        .div(size, rounding_mode="floor")
        .clamp_(max=aggregates - 1)
    )


@dataclass(frozen=True)
class Aggregating(FeedForward):
    """Aggregating particle b → width^depth → b: it reads and writes b group aggregates (SPEC D8).

    Args:
        aggregates: number of groups b.
        aggregation: "mean" (canonical) or "max".
        shuffle: permute the de-aggregated weights randomly at every application.
        fixpoint_test: "weights" (canonical) or "aggregates" (compare only the b aggregates).
    """

    aggregates: int = 4
    aggregation: str = "mean"
    shuffle: bool = False
    fixpoint_test: str = "weights"

    reduction: ClassVar[str] = "agg"

    def __post_init__(self) -> None:
        check_count("aggregates", self.aggregates, 1)
        super().__post_init__()
        check_choice("aggregation", self.aggregation, AGGREGATIONS)
        check_choice("fixpoint_test", self.fixpoint_test, AGGREGATE_FIXPOINT_TESTS)

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.aggregates

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.aggregates

    @property
    def minimum_target_size(self) -> int:
        return self.aggregates

    def aggregate(self, target_w: Tensor) -> Tensor:
        """Group aggregates a_k (mean or max over G_k): [B, r_M] -> [B, b]."""
        batch, size = target_w.shape
        b = self.aggregates
        per_group = size // b
        head = target_w[:, : (b - 1) * per_group].reshape(batch, b - 1, per_group)
        tail = target_w[:, (b - 1) * per_group :]
        if self.aggregation == "mean":
            return torch.cat([head.mean(dim=2), tail.mean(dim=1, keepdim=True)], dim=1)
        return torch.cat([head.amax(dim=2), tail.amax(dim=1, keepdim=True)], dim=1)

    def deaggregate(self, aggregates: Tensor, num_weights: int) -> Tensor:
        """Copy each a'_k into every slot of its group: [B, b] -> [B, r_M]."""
        groups = aggregate_groups(num_weights, self.aggregates, aggregates.device)
        return aggregates[:, groups]

    def samples(self, target, target_w):
        self.check_target(target, target_w, target_w.shape[0])
        a = self.aggregate(target_w).unsqueeze(1)
        return a, a

    def apply(self, w, target, target_w, *, generator=None):
        self._checked(w, target, target_w)
        if self.shuffle and generator is None:
            raise ValueError(
                "generator=None is not allowed with shuffle=True; pass a torch.Generator"
            )
        new = self.forward(w, self.aggregate(target_w).unsqueeze(1)).squeeze(1)
        out = self.deaggregate(new, target_w.shape[1])
        if self.shuffle:
            keys = torch.rand(out.shape, generator=generator, device=out.device)
            out = out.gather(1, keys.argsort(dim=1))
        return out

    def fixpoint_gap(self, w, w_out):
        if self.fixpoint_test == "aggregates":
            return super().fixpoint_gap(self.aggregate(w), self.aggregate(w_out))
        return super().fixpoint_gap(w, w_out)


# --------------------------------------------------------------------------------------------
# Fourier reduction (SPEC D10, D11)


@cache
def fourier_basis(n: int, b: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """First b rows of the orthogonal real Fourier transform T of length n: [b, n].

    T(v) = basis_full @ v with rows 1/√n, √(2/n) cos(2πjk/n), -√(2/n) sin(2πjk/n), …,
    (-1)^j/√n (n even). So A(m) = m @ basis.T and D(a) = a @ basis (orthogonality).
    """
    j = torch.arange(n, dtype=torch.float64)
    rows = [torch.full((n,), 1 / math.sqrt(n), dtype=torch.float64)]
    k = 1
    while len(rows) < b and 2 * k < n:
        angle = 2 * math.pi * j * k / n
        rows.append(math.sqrt(2 / n) * torch.cos(angle))
        rows.append(-math.sqrt(2 / n) * torch.sin(angle))
        k += 1
    if len(rows) < b and n % 2 == 0:
        rows.append(torch.cos(math.pi * j) / math.sqrt(n))
    return torch.stack(rows[:b]).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Fourier(FeedForward):
    """Fourier particle b → width^depth → b acting on the b lowest real Fourier modes (SPEC D11)."""

    aggregates: int = 4

    reduction: ClassVar[str] = "fft"

    def __post_init__(self) -> None:
        check_count("aggregates", self.aggregates, 1)
        super().__post_init__()

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.aggregates

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.aggregates

    @property
    def minimum_target_size(self) -> int:
        return self.aggregates

    def basis(self, num_weights: int, like: Tensor) -> Tensor:
        """The b lowest real Fourier modes of length r_M: [b, r_M]."""
        return fourier_basis(num_weights, self.aggregates, like.device, like.dtype)

    def samples(self, target, target_w):
        self.check_target(target, target_w, target_w.shape[0])
        a = (target_w @ self.basis(target_w.shape[1], target_w).T).unsqueeze(1)
        return a, a

    def apply(self, w, target, target_w, *, generator=None):
        self._checked(w, target, target_w)
        basis = self.basis(target_w.shape[1], target_w)
        new = self.forward(w, (target_w @ basis.T).unsqueeze(1)).squeeze(1)
        return new @ basis


# --------------------------------------------------------------------------------------------
# Recurrent reduction (SPEC D9)


@dataclass(frozen=True)
class Recurrent(Architecture):
    """Elman stack 1 → width^depth → 1 (output layer recurrent too) reading a net as a sequence.

    Layout per layer: input matrix U_l [n_{l+1}, n_l] then recurrent matrix V_l [n_{l+1}, n_{l+1}].
    h_l(t) = φ(U_{l-1} h_{l-1}(t) + V_{l-1} h_l(t-1)), h_0(t) = m_t, h_l(-1) = 0; output h_L(t).
    """

    width: int = 2
    depth: int = 2
    activation: str | None = None
    init_scheme: str = "torch"

    reduction: ClassVar[str] = "rnn"
    is_sequence: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_count("width", self.width, 1)
        check_count("depth", self.depth, 0)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init_scheme", self.init_scheme, INITS)

    @property
    def widths(self) -> tuple[int, ...]:
        return (1, *([self.width] * self.depth), 1)

    @property
    def matrix_shapes(self) -> tuple[tuple[int, int], ...]:
        shapes = []
        for inp, out in zip(self.widths, self.widths[1:], strict=False):
            shapes += [(out, inp), (out, out)]
        return tuple(shapes)

    def init(self, n, *, generator=None, device=None, dtype=torch.float32):
        check_count("n", n, 0)
        parts = []
        for inp, out in zip(self.widths, self.widths[1:], strict=False):
            if self.init_scheme == "torch":
                bound = torch.full((out * inp + out * out,), 1 / math.sqrt(out))
                parts.append(_uniform(n, bound.to(device=device, dtype=dtype), generator))
            else:
                bound = torch.full((out * inp,), math.sqrt(6 / (inp + out)))
                parts.append(_uniform(n, bound.to(device=device, dtype=dtype), generator))
                gaussian = torch.randn(
                    (n, out, out), generator=generator, device=device, dtype=dtype
                )
                q, r = torch.linalg.qr(gaussian)
                q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
                parts.append(q.flatten(1))
        return torch.cat(parts, dim=1)

    def forward(self, w, x):
        check_weights("w", w, self.num_weights)
        if x.dim() != 3 or x.shape[0] != w.shape[0] or x.shape[2] != 1:
            raise ValueError(f"x has shape {list(x.shape)}; expected [{w.shape[0]}, steps, 1]")
        matrices, offset = [], 0
        for rows, columns in self.matrix_shapes:
            matrices.append(w[:, offset : offset + rows * columns].unflatten(1, (rows, columns)))
            offset += rows * columns
        inputs, recurrents = matrices[0::2], matrices[1::2]
        state = [x.new_zeros(x.shape[0], out) for out in self.widths[1:]]
        outputs = []
        for t in range(x.shape[1]):
            h = x[:, t, :]
            for layer, (u, v) in enumerate(zip(inputs, recurrents, strict=True)):
                h = (u * h.unsqueeze(1)).sum(-1) + (v * state[layer].unsqueeze(1)).sum(-1)
                h = _activate(self.activation, h)
                state[layer] = h
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def samples(self, target, target_w):
        self.check_target(target, target_w, target_w.shape[0])
        sequence = target_w.unsqueeze(-1)
        return sequence, sequence

    def apply(self, w, target, target_w, *, generator=None):
        check_weights("w", w, self.num_weights)
        self.check_target(target, target_w, w.shape[0])
        return self.forward(w, target_w.unsqueeze(-1)).squeeze(-1)


ARCHITECTURES: dict[str, type[Architecture]] = {
    cls.reduction: cls for cls in (Weightwise, Aggregating, Recurrent, Fourier)
}
