"""Straight-line source of one SGD step of a linear bias-free weightwise particle (SPEC D12).

The fused kernels (``fused_cpu`` with numba, ``fused_gpu`` with Triton) hold one particle per
vector lane and run every step of a call without leaving registers. Their bodies are generated
here, for one architecture at a time, as plain assignments ``name = a * b + c`` over scalar names
(numba: one lane's value; Triton: a block of lanes), so the two back ends share the maths. It is
``training._train_weightwise`` written out per weight:

    u = (W_{L-1}⋯W_0)ᵀ,  v = u − e_0,  g = (2/n) H v,  H = [[Σm², (Pᵀm)ᵀ], [Pᵀm, PᵀP]],
    ∂L/∂W_l = b_l a_lᵀ,  b_l = (W_{L-1}⋯W_{l+1})ᵀ,  a_0 = g, a_{l+1} = W_l a_l.

Constant position features are folded into the text (a 0 drops its product, a 1 its factor);
every other number is read from the constant array ``k`` so that it has the weights' dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Emitter:
    """Collects assignments and the numeric constants they read (``k{j}`` = constants[j])."""

    lines: list[str] = field(default_factory=list)
    constants: list[float] = field(default_factory=list)
    counter: int = 0

    def const(self, value: float) -> str:
        value = float(value)
        if value not in self.constants:
            self.constants.append(value)
        return f"k{self.constants.index(value)}"

    def let(self, expression: str, prefix: str = "t") -> str:
        name = f"{prefix}{self.counter}"
        self.counter += 1
        self.lines.append(f"{name} = {expression}")
        return name

    def total(self, terms: list[str], prefix: str = "t") -> str:
        """A new name holding the left-to-right sum of ``terms`` (0 when there are none)."""
        return self.let(" + ".join(terms) if terms else self.const(0.0), prefix)

    def scaled(self, factor: float, name: str) -> str | None:
        """factor·name with 0 and 1 folded: None for a zero factor."""
        if factor == 0.0:
            return None
        if factor == 1.0:
            return name
        return f"{self.const(factor)} * {name}"


def layers(shapes: tuple[tuple[int, int], ...], names: list[str]) -> list[list[list[str]]]:
    """Names of each layer's entries, ``layer[o][i]``, in the row-major layout of SPEC D1."""
    out, offset = [], 0
    for rows, cols in shapes:
        out.append([[names[offset + o * cols + i] for i in range(cols)] for o in range(rows)])
        offset += rows * cols
    return out


def backward(e: Emitter, matrices: list[list[list[str]]]) -> tuple[list[str], list[list[str]]]:
    """(u, [b_0, …, b_{L-2}]) of ``_LinearColumns.backward`` for the current weights."""
    current = matrices[-1][0]
    vectors: list[list[str]] = []
    for layer in range(len(matrices) - 2, -1, -1):
        vectors.append(current)
        matrix = matrices[layer]
        current = [
            e.total([f"{matrix[o][i]} * {current[o]}" for o in range(len(matrix))])
            for i in range(len(matrix[0]))
        ]
    vectors.reverse()
    return current, vectors


def forward(e: Emitter, matrices: list[list[list[str]]], g: list[str]) -> list[list[str]]:
    """[a_0 = g, a_1, …, a_{L-1}], a_{l+1} = W_l a_l."""
    vectors = [g]
    for matrix in matrices[:-1]:
        a = vectors[-1]
        vectors.append([e.total([f"{row[i]} * {a[i]}" for i in range(len(a))]) for row in matrix])
    return vectors


def descend(
    e: Emitter,
    matrices: list[list[list[str]]],
    b: list[list[str]],
    g: list[str],
    *,
    step: str,
    scale: str | None,
    momentum: bool,
) -> None:
    """One SGD (or heavy-ball) update of every weight from g and the backward vectors b.

    Plain SGD: W_l += step · b_l a_lᵀ with step = −lr·scale. Heavy ball: g ← scale·g,
    V_l = μ V_l + b_l a_lᵀ, W_l −= lr·V_l (weight names ``w{i}``, buffer names ``m{i}``).
    """
    if momentum:
        g = [e.let(f"{scale} * {x}") for x in g]
    a = forward(e, matrices, g)
    rows = [*b, None]
    for layer, matrix in enumerate(matrices):
        for o, row in enumerate(matrix):
            for i, name in enumerate(row):
                outer = (
                    a[layer][i] if rows[layer] is None else f"({rows[layer][o]} * {a[layer][i]})"
                )
                if momentum:
                    buffer = "m" + name[1:]
                    e.lines.append(f"{buffer} = mu * {buffer} + {outer}")
                    e.lines.append(f"{name} = {name} - lr * {buffer}")
                else:
                    e.lines.append(f"{name} = {name} + {step} * {outer}")


def collapse(e: Emitter, matrices) -> tuple[list[str], list[list[str]]]:
    """(v = u − e_0, b) of the current weights."""
    u, b = backward(e, matrices)
    # Fresh names: in a net of one layer u names weights, which the update overwrites.
    v = [e.let(f"{u[0]} - {e.const(1.0)}"), *(e.let(x) for x in u[1:])]
    return v, b


def full_batch_step(
    e: Emitter,
    shapes: tuple[tuple[int, int], ...],
    positions: list[tuple[float, float, float]] | None,
    *,
    report: bool,
    momentum: bool,
) -> tuple[str | None, list[str]]:
    """Lines of one full-batch step: (name of the reported loss or None, names of v).

    Self-training (``positions`` given, folded): the samples are the current weights, and the
    loss before the update is reported when ``report``. Learning (``positions`` None): the
    moments ``h0..h3`` and the Gram block ``c0..c8`` are names bound by the caller, who also
    computes any report from v (the teacher's samples are not unrolled).
    """
    r = sum(rows * cols for rows, cols in shapes)
    names = [f"w{i}" for i in range(r)]
    matrices = layers(shapes, names)
    if positions is not None:
        h = [e.total([f"{x} * {x}" for x in names], "h")]
        for j in range(3):
            terms = [e.scaled(positions[i][j], names[i]) for i in range(r)]
            h.append(e.total([t for t in terms if t is not None], "h"))
        gram = [[sum(p[j] * p[k] for p in positions) for k in range(3)] for j in range(3)]
        c = [[e.scaled(gram[j][k], "") for k in range(3)] for j in range(3)]  # "k3 * ", "", None
    else:
        h = ["h0", "h1", "h2", "h3"]
        c = [[f"c{3 * j + k} * " for k in range(3)] for j in range(3)]
    v, b = collapse(e, matrices)
    reported = None
    if report and positions is not None:
        squares = []
        for i in range(r):
            terms = [e.scaled(positions[i][j], v[j + 1]) for j in range(3)]
            terms = [t for t in terms if t is not None] + [f"{names[i]} * {v[0]}"]
            residual = e.total(terms)
            squares.append(f"{residual} * {residual}")
        reported = e.let(f"({' + '.join(squares)}) / {e.const(r)}", "loss")
    g = [e.total([f"{h[0]} * {v[0]}"] + [f"{h[j + 1]} * {v[j + 1]}" for j in range(3)])]
    for j in range(3):
        terms = [f"{c[j][k]}{v[k + 1]}" for k in range(3) if c[j][k] is not None]
        g.append(e.total([*terms, f"{h[j + 1]} * {v[0]}"]))
    descend(e, matrices, b, g, step="step", scale="scale", momentum=momentum)
    return reported, v


def per_sample_update(
    e: Emitter, shapes: tuple[tuple[int, int], ...], *, momentum: bool, sample: list[str]
) -> str:
    """Lines of one single-sample update from x = ``sample`` (4 names), y = x_0.

    Returns the name of the residual x·u − y; g = 2 x (x·u − y).
    """
    r = sum(rows * cols for rows, cols in shapes)
    matrices = layers(shapes, [f"w{i}" for i in range(r)])
    v, b = collapse(e, matrices)
    residual = e.total([f"{v[j]} * {sample[j]}" for j in range(4)])
    g = [e.let(f"{x} * {residual}") for x in sample]
    descend(e, matrices, b, g, step="step", scale="scale", momentum=momentum)
    return residual


def own_map(
    e: Emitter,
    shapes: tuple[tuple[int, int], ...],
    positions: list[tuple[float, float, float]],
    target: list[str],
) -> tuple[list[str], list[str]]:
    """(u, (N ◁ M)) for the particle's weights ``w{i}`` applied to ``target`` names: u·x_i."""
    r = sum(rows * cols for rows, cols in shapes)
    u, _ = backward(e, layers(shapes, [f"w{i}" for i in range(r)]))
    out = []
    for i, name in enumerate(target):
        terms = [f"{u[0]} * {name}"]
        terms += [t for t in (e.scaled(positions[i][j], u[j + 1]) for j in range(3)) if t]
        out.append(e.total(terms, "o"))
    return u, out


@dataclass
class OwnMapBodies:
    """The statements of the own-map kernels, shared by both back ends.

    ``apply`` replaces ``w{i}`` by (N ◁ N) in place; ``classify`` computes ``once`` = N ◁ N and
    ``twice`` = N ◁ (N ◁ N); ``pair`` computes ``applied`` = N ◁ M for target names ``m{i}``.
    Constants of all three are registered on ``emitter``.
    """

    emitter: Emitter
    names: list[str]
    apply: list[str]
    classify: list[str]
    pair: list[str]
    once: list[str]
    twice: list[str]
    applied: list[str]


def own_map_bodies(
    shapes: tuple[tuple[int, int], ...], positions: list[tuple[float, float, float]]
) -> OwnMapBodies:
    """Emit self-application, classification and same-architecture application bodies."""
    r = sum(rows * cols for rows, cols in shapes)
    e = Emitter()
    names = [f"w{i}" for i in range(r)]
    _, once = own_map(e, shapes, positions, names)
    apply = e.lines + [f"{name} = {value}" for name, value in zip(names, once, strict=True)]
    e.lines = []
    # N ◁ N and N ◁ (N ◁ N) share u and the position part Σ_j p_ij u_{j+1} of every output.
    u, _ = backward(e, layers(shapes, names))
    shared = []
    for i in range(r):
        terms = [t for t in (e.scaled(positions[i][j], u[j + 1]) for j in range(3)) if t]
        shared.append([e.total(terms, "p")] if terms else [])
    once = [e.total([f"{u[0]} * {x}", *p], "o") for x, p in zip(names, shared, strict=True)]
    twice = [e.total([f"{u[0]} * {x}", *p], "o") for x, p in zip(once, shared, strict=True)]
    classify = e.lines
    e.lines = []
    _, applied = own_map(e, shapes, positions, [f"m{i}" for i in range(r)])
    pair = e.lines
    e.lines = []
    return OwnMapBodies(e, names, apply, classify, pair, once, twice, applied)


def indent(lines: list[str], depth: int) -> str:
    return "\n".join(" " * (4 * depth) + line for line in lines)
