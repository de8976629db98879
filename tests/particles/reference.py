"""Plain per-particle reference implementations, written from SPEC §1–§3 without the kernel.

Everything here handles ONE particle at a time with ordinary ``torch.nn`` modules and Python
loops: weight layouts (D1, D9), the weightwise encoding (D6), the aggregating groups (D8), the
real Fourier coordinates via ``torch.fft.rfft`` (D10, D11), the application ◁ (D5–D11) and
training by ``torch.optim.SGD`` on the MSE loss of D12. The kernel is only consulted for the
configuration fields of an architecture (width, depth, bias, b, …), never for a computed value.

Two things cannot be derived from the SPEC alone because they are random: the per_sample visiting
order (D12) and the shuffle permutation (D8). ``kernel_orders`` and ``kernel_permutations``
reconstruct them by drawing from an identically seeded generator exactly as
``particles/training.py::_per_sample_pass`` and ``Aggregating.apply`` do (one ``torch.rand`` draw of
shape [batch, count] per pass or application, argsorted along the row).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

import particles as pt

ACTIVATION_MODULES: dict[str | None, type[nn.Module]] = {
    None: nn.Identity,
    "linear": nn.Identity,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "softsign": nn.Softsign,
}


# --------------------------------------------------------------------------------------------
# Layouts (D1, D9, Table 1)


def io_sizes(arch: pt.Architecture) -> tuple[int, int]:
    """(n_0, n_L) of a particle type: ww 4 → 1, agg/fft b → b, rnn 1 → 1."""
    if isinstance(arch, pt.Weightwise):
        return 4, 1
    if isinstance(arch, (pt.Aggregating, pt.Fourier)):
        return arch.aggregates, arch.aggregates
    if isinstance(arch, pt.Recurrent):
        return 1, 1
    raise TypeError(arch)


def layer_widths(arch: pt.Architecture) -> list[int]:
    """(n_0, …, n_L): input, ``depth`` hidden layers of ``width``, output."""
    n_in, n_out = io_sizes(arch)
    return [n_in, *[arch.width] * arch.depth, n_out]


def matrix_shapes(arch: pt.Architecture) -> list[tuple[int, int]]:
    """Ordered weight matrices: [out_l, in_l (+1 with bias)] (D1, D2) or U_l, V_l per layer (D9)."""
    widths = layer_widths(arch)
    pairs = list(itertools.pairwise(widths))
    if isinstance(arch, pt.Recurrent):
        return [shape for inp, out in pairs for shape in ((out, inp), (out, out))]
    return [(out, inp + int(arch.bias)) for inp, out in pairs]


def num_weights(arch: pt.Architecture) -> int:
    return sum(rows * cols for rows, cols in matrix_shapes(arch))


# Particle types the tests sweep over: the four of Table 1 and non-default options.
TYPES: dict[str, pt.Architecture] = {
    "ww": pt.Weightwise(),
    "ww_keras": pt.Weightwise(encoding="keras"),
    "ww_tanh_bias": pt.Weightwise(width=3, depth=1, activation="tanh", bias=True),
    "agg": pt.Aggregating(),
    "agg_max": pt.Aggregating(aggregation="max"),
    "agg_b3_selu": pt.Aggregating(aggregates=3, width=3, depth=1, activation="selu"),
    "rnn": pt.Recurrent(),
    "rnn_tanh": pt.Recurrent(width=3, depth=1, activation="tanh"),
    "fft": pt.Fourier(),
    "fft_b5_bias": pt.Fourier(aggregates=5, width=3, depth=1, bias=True, activation="sigmoid"),
}


def random_rows(arch: pt.Architecture, n: int, seed: int, scale: float = 0.6) -> torch.Tensor:
    """n float64 rows of N(0, scale²) weights, independent of the kernel's initialiser."""
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn((n, num_weights(arch)), generator=generator, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Reference networks


class MLP(nn.Module):
    """Feed-forward particle as a stack of ``nn.Linear`` layers loaded from a flat D1 row."""

    def __init__(self, arch: pt.FeedForward, row: torch.Tensor) -> None:
        super().__init__()
        widths = layer_widths(arch)
        self.has_bias = arch.bias
        self.layers = nn.ModuleList(
            nn.Linear(inp, out, bias=arch.bias, dtype=row.dtype)
            for inp, out in itertools.pairwise(widths)
        )
        self.hidden = ACTIVATION_MODULES[arch.activation]()
        self.output = ACTIVATION_MODULES[arch.output_activation]()
        offset = 0
        with torch.no_grad():
            for layer in self.layers:
                out, inp = layer.weight.shape
                cols = inp + int(self.has_bias)
                block = row[offset : offset + out * cols].reshape(out, cols)
                layer.weight.copy_(block[:, :inp])
                if self.has_bias:
                    layer.bias.copy_(block[:, inp])
                offset += out * cols
        assert offset == row.numel(), "row length does not match the D1 layout"

    def flat(self) -> torch.Tensor:
        """The D1 flat vector: each [W | b] row-major, layers concatenated."""
        parts = []
        for layer in self.layers:
            block = layer.weight
            if self.has_bias:
                block = torch.cat([block, layer.bias[:, None]], dim=1)
            parts.append(block.reshape(-1))
        return torch.cat(parts).detach().clone()

    def flat_grad(self) -> torch.Tensor:
        parts = []
        for layer in self.layers:
            block = layer.weight.grad
            if self.has_bias:
                block = torch.cat([block, layer.bias.grad[:, None]], dim=1)
            parts.append(block.reshape(-1))
        return torch.cat(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.hidden(layer(x))
        return self.output(self.layers[-1](x))


class Elman(nn.Module):
    """Recurrent particle (D9): Elman layers written out by hand, zero initial state."""

    def __init__(self, arch: pt.Recurrent, row: torch.Tensor) -> None:
        super().__init__()
        widths = layer_widths(arch)
        self.U = nn.ParameterList()
        self.V = nn.ParameterList()
        offset = 0
        for inp, out in itertools.pairwise(widths):
            self.U.append(nn.Parameter(row[offset : offset + out * inp].reshape(out, inp).clone()))
            offset += out * inp
            self.V.append(nn.Parameter(row[offset : offset + out * out].reshape(out, out).clone()))
            offset += out * out
        assert offset == row.numel(), "row length does not match the D9 layout"
        self.act = ACTIVATION_MODULES[arch.activation]()

    def flat(self) -> torch.Tensor:
        parts = [m.reshape(-1) for u, v in zip(self.U, self.V, strict=True) for m in (u, v)]
        return torch.cat(parts).detach().clone()

    def flat_grad(self) -> torch.Tensor:
        return torch.cat(
            [m.grad.reshape(-1) for u, v in zip(self.U, self.V, strict=True) for m in (u, v)]
        )

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """sequence [T, 1] -> outputs [T, 1]."""
        state = [torch.zeros(u.shape[0], dtype=sequence.dtype) for u in self.U]
        outputs = []
        for t in range(sequence.shape[0]):
            h = sequence[t]
            for layer, (u, v) in enumerate(zip(self.U, self.V, strict=True)):
                h = self.act(u @ h + v @ state[layer])
                state[layer] = h
            outputs.append(h)
        return torch.stack(outputs)


def make_net(arch: pt.Architecture, row: torch.Tensor) -> nn.Module:
    return Elman(arch, row) if isinstance(arch, pt.Recurrent) else MLP(arch, row)


# --------------------------------------------------------------------------------------------
# Reductions (D6–D11)


def nu(k: int, n: int) -> float:
    return k / (n - 1) if n > 1 else 0.0


def encode(target: pt.Architecture, m: torch.Tensor, encoding: str = "torch") -> torch.Tensor:
    """Feature rows x_i(M) = (m_i, ν(l, L_M), ν(c, out_l), ν(p, in_l)) (D6): [r_M, 4]."""
    shapes = matrix_shapes(target)
    rows = []
    for layer, (out, inp) in enumerate(shapes):
        for c in range(out):
            for p in range(inp):
                cell, position = nu(c, out), nu(p, inp)
                if encoding == "keras":
                    cell, position = position, cell
                rows.append((nu(layer, len(shapes)), cell, position))
    positions = torch.tensor(rows, dtype=m.dtype)
    assert positions.shape[0] == m.numel()
    return torch.cat([m.reshape(-1, 1), positions], dim=1)


def groups(r: int, b: int) -> list[list[int]]:
    """G_k = {ks, …, ks+s−1} for k < b−1 and G_{b−1} = {(b−1)s, …, r−1}, s = ⌊r/b⌋ (D8)."""
    s = r // b
    return [list(range(k * s, (k + 1) * s)) for k in range(b - 1)] + [list(range((b - 1) * s, r))]


def aggregate(m: torch.Tensor, b: int, how: str = "mean") -> torch.Tensor:
    parts = [m[g] for g in groups(m.numel(), b)]
    return torch.stack([p.mean() if how == "mean" else p.max() for p in parts])


def deaggregate(a: torch.Tensor, r: int) -> torch.Tensor:
    out: list[torch.Tensor] = [a[0]] * r
    for k, group in enumerate(groups(r, a.numel())):
        for i in group:
            out[i] = a[k]
    return torch.stack(out)


def fourier_coordinates(v: torch.Tensor) -> torch.Tensor:
    """T(v) of D10 from torch.fft.rfft: (V_0/√n, √(2/n) Re V_k, √(2/n) Im V_k, …[, V_{n/2}/√n])."""
    n = v.numel()
    spectrum = torch.fft.rfft(v)
    big_k = math.ceil(n / 2) - 1
    coords = [spectrum[0].real / math.sqrt(n)]
    for k in range(1, big_k + 1):
        coords += [math.sqrt(2 / n) * spectrum[k].real, math.sqrt(2 / n) * spectrum[k].imag]
    if n % 2 == 0:
        coords.append(spectrum[n // 2].real / math.sqrt(n))
    return torch.stack(coords)


def inverse_fourier_coordinates(t: torch.Tensor) -> torch.Tensor:
    """T^{-1} of D10: rebuild the half spectrum and take the inverse real FFT of length n."""
    n = t.numel()
    big_k = math.ceil(n / 2) - 1
    real = [math.sqrt(n) * t[0]]
    imag = [torch.zeros((), dtype=t.dtype)]
    for k in range(1, big_k + 1):
        real.append(math.sqrt(n / 2) * t[2 * k - 1])
        imag.append(math.sqrt(n / 2) * t[2 * k])
    if n % 2 == 0:
        real.append(math.sqrt(n) * t[n - 1])
        imag.append(torch.zeros((), dtype=t.dtype))
    return torch.fft.irfft(torch.complex(torch.stack(real), torch.stack(imag)), n=n)


def low_pass(a: torch.Tensor, n: int) -> torch.Tensor:
    """D(a′) = T^{-1}(a′_0, …, a′_{b−1}, 0, …, 0) (D11)."""
    return inverse_fourier_coordinates(torch.cat([a, a.new_zeros(n - a.numel())]))


def apply_one(
    op: pt.Architecture,
    op_row: torch.Tensor,
    target: pt.Architecture,
    m: torch.Tensor,
    permutation: torch.Tensor | None = None,
) -> torch.Tensor:
    """N ◁ M for one operator row and one target row (D7, D8, D9, D11)."""
    net = make_net(op, op_row)
    with torch.no_grad():
        if isinstance(op, pt.Weightwise):
            return net(encode(target, m, op.encoding)).reshape(-1)
        if isinstance(op, pt.Recurrent):
            return net(m.reshape(-1, 1)).reshape(-1)
        if isinstance(op, pt.Aggregating):
            out = deaggregate(net(aggregate(m, op.aggregates, op.aggregation)), m.numel())
            return out if permutation is None else out[permutation]
        if isinstance(op, pt.Fourier):
            return low_pass(net(fourier_coordinates(m)[: op.aggregates]), m.numel())
    raise TypeError(op)


def samples_one(
    learner: pt.Architecture, target: pt.Architecture, m: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """S_red(M) as a list of (input, target) samples, all constants (D7, D8, D9, D11)."""
    m = m.detach()
    if isinstance(learner, pt.Weightwise):
        x = encode(target, m, learner.encoding)
        return [(x[i : i + 1], m[i : i + 1].reshape(1, 1)) for i in range(m.numel())]
    if isinstance(learner, pt.Recurrent):
        return [(m.reshape(-1, 1), m.reshape(-1, 1))]  # one sequence
    if isinstance(learner, pt.Aggregating):
        a = aggregate(m, learner.aggregates, learner.aggregation).reshape(1, -1)
        return [(a, a.clone())]
    if isinstance(learner, pt.Fourier):
        a = fourier_coordinates(m)[: learner.aggregates].reshape(1, -1)
        return [(a, a.clone())]
    raise TypeError(learner)


def sample_count(learner: pt.Architecture, target: pt.Architecture) -> int:
    """|S|: r_M for a weightwise learner, 1 for the others (D7–D11)."""
    return num_weights(target) if isinstance(learner, pt.Weightwise) else 1


# --------------------------------------------------------------------------------------------
# Training (D12)


def train_one(
    arch: pt.Architecture,
    row: torch.Tensor,
    sample_source: Callable[[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]],
    *,
    steps: int,
    lr: float,
    mode: str,
    orders: list[torch.Tensor | None] | None = None,
    momentum: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SGD on the MSE loss for one particle; returns (weights, reported loss of the last step).

    ``sample_source(current_flat_weights)`` gives the samples; full_batch rebuilds them every step
    and makes one update on the mean loss over all of them; per_sample builds them once per pass
    and makes one update per sample in ``orders[step]`` (a permutation of range(count)).
    """
    net = make_net(arch, row)
    optimiser = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    reported = torch.tensor(float("nan"), dtype=row.dtype)
    for step in range(steps):
        samples = sample_source(net.flat())
        if mode == "full_batch":
            x = torch.cat([s[0] for s in samples])
            y = torch.cat([s[1] for s in samples])
            batches = [(x, y)]
        else:
            order = range(len(samples)) if len(samples) == 1 else orders[step].tolist()
            batches = [samples[j] for j in order]
        losses = []
        for x, y in batches:
            optimiser.zero_grad()
            value = functional.mse_loss(net(x), y)
            value.backward()
            optimiser.step()
            losses.append(value.detach())
        reported = torch.stack(losses).mean()
    return net.flat(), reported


def self_train_one(arch, row, **kwargs):
    return train_one(arch, row, lambda current: samples_one(arch, arch, current), **kwargs)


def learn_one(arch, row, teacher, teacher_row, **kwargs):
    fixed = samples_one(arch, teacher, teacher_row)
    return train_one(arch, row, lambda _current: fixed, **kwargs)


def plain_loss_and_grad(arch, row, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE of one particle on fixed x [S, in], y [S, out] and its autograd gradient (D1 order).

    For the recurrent particle x and y are one sequence [T, 1].
    """
    net = make_net(arch, row)
    value = functional.mse_loss(net(x), y)
    value.backward()
    return value.detach(), net.flat_grad()


# --------------------------------------------------------------------------------------------
# Randomness drawn as the kernel draws it (see module docstring)


def kernel_orders(seed: int, batch: int, count: int, passes: int) -> list[torch.Tensor | None]:
    """Per-pass visiting orders [batch, count] as ``_per_sample_pass`` draws them."""
    if count == 1:
        return [None] * passes
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand((batch, count), generator=generator).argsort(dim=1) for _ in range(passes)]


def kernel_permutations(seed: int, batch: int, r: int, applications: int) -> list[torch.Tensor]:
    """Shuffle permutations [batch, r] as ``Aggregating.apply`` draws them."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand((batch, r), generator=generator).argsort(dim=1) for _ in range(applications)]


def row_orders(orders: list[torch.Tensor | None], k: int) -> list[torch.Tensor | None]:
    return [None if o is None else o[k] for o in orders]
