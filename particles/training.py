"""Training ⇜ by plain SGD, batched over particles (SPEC D12).

A batch minimises Σ_k L(θ_k; S_k), the sum of per-particle losses, so every row receives exactly
its stand-alone update and a non-finite row cannot reach another row. Samples are constants (no
gradient flows through inputs or targets).

    L(θ; S) = 1/(n·q) Σ_j ‖f_θ(x_j) − y_j‖²

Linear bias-free feed-forward particles (every figure of the paper) use the closed-form gradient
of f(x) = P x with P = W_{L-1}⋯W_0:

    G = ∂L/∂P = 2/(n·q) Rᵀ X,   R = X Pᵀ − Y,
    ∂L/∂W_l = (W_{L-1}⋯W_{l+1})ᵀ G (W_{l-1}⋯W_0)ᵀ.

Every other particle goes through ``torch.autograd``; the tests check one against the other.

Self-training and learning of linear bias-free weightwise particles (the paper's ``ww`` type) take
a faster route, ``_train_weightwise``: the weights are held column-wise ([r, B], one particle per
column) for the whole call, so every operation runs over long contiguous rows, the samples are
never materialised (Proposition 2: f is u·x and the positions are constant) and the tiny matrix
products are broadcast multiply-adds (``_LinearColumns``). It gives the general path's result up
to floating-point reassociation, and every operation acts on each particle's column alone.
Where a fused kernel applies (``particles.fused``: numba on the CPU, Triton on a GPU) the whole
call runs there instead; this torch code stays the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from particles import fused
from particles.architectures import Architecture, FeedForward, Weightwise, position_features
from particles.validation import check_choice, check_count, check_positive, check_weights

Tensor = torch.Tensor
SampleSource = Callable[[Tensor], tuple[Tensor, Tensor]]

MODES = ("full_batch", "per_sample")
MOMENTUM_RESETS = ("per_call", "never")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training call.

    Attributes:
        weights: trained weights [B, r] (a new tensor; the input is never modified).
        loss: reported loss of the last step [B]: the loss before the update (full_batch) or the
            mean per-update loss of the pass (per_sample); NaN when ``steps == 0``.
        velocity: heavy-ball momentum buffer [B, r] to pass back with ``momentum_reset="never"``.
    """

    weights: Tensor
    loss: Tensor
    velocity: Tensor | None = None


def loss(architecture: Architecture, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each particle on its samples.

    w [B, r], x [B, S, in], y [B, S, out] -> [B].
    """
    return (architecture.forward(w, x) - y).square().mean(dim=(1, 2))


def _linear_gradient(architecture: FeedForward, w: Tensor, x: Tensor, y: Tensor):
    matrices = architecture.matrices(w)
    prefix = [None]  # prefix[l] = W_{l-1}⋯W_0 (None = identity)
    for matrix in matrices[:-1]:
        prefix.append(matrix if prefix[-1] is None else torch.matmul(matrix, prefix[-1]))
    product = matrices[-1] if prefix[-1] is None else torch.matmul(matrices[-1], prefix[-1])
    residual = torch.matmul(x, product.transpose(1, 2)) - y
    scale = 2.0 / (y.shape[1] * y.shape[2])
    outer = torch.matmul(residual.transpose(1, 2), x) * scale  # G: [B, out, in]
    grads = [None] * len(matrices)
    suffix = None  # W_{L-1}⋯W_{l+1}
    for layer in range(len(matrices) - 1, -1, -1):
        left = outer if suffix is None else torch.matmul(suffix.transpose(1, 2), outer)
        grads[layer] = (
            left if prefix[layer] is None else torch.matmul(left, prefix[layer].transpose(1, 2))
        )
        suffix = matrices[layer] if suffix is None else torch.matmul(suffix, matrices[layer])
    losses = residual.square().mean(dim=(1, 2))
    return losses, torch.cat([g.flatten(1) for g in grads], dim=1)


def gradient(architecture: Architecture, w: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-particle loss and its gradient.

    w [B, r], x [B, S, in], y [B, S, out] -> (loss [B], ∂loss/∂w [B, r]).
    """
    if architecture.is_linear_feedforward:
        return _linear_gradient(architecture, w, x, y)
    with torch.enable_grad():
        leaf = w.detach().requires_grad_(True)
        losses = loss(architecture, leaf, x.detach(), y.detach())
        (grad,) = torch.autograd.grad(losses.sum(), leaf)
    return losses.detach(), grad


def _check_training(steps: int, lr: float, mode: str, momentum: float, momentum_reset: str):
    check_count("steps", steps, 0)
    check_positive("lr", lr)
    check_choice("mode", mode, MODES)
    if not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum={momentum!r} is not allowed; it must be a number in [0, 1)")
    check_choice("momentum_reset", momentum_reset, MOMENTUM_RESETS)


def _per_sample_pass(
    architecture: Architecture,
    w: Tensor,
    x: Tensor,
    y: Tensor,
    update: Callable[[Tensor, Tensor], Tensor],
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """One pass of single-sample updates, each row in its own uniformly random order."""
    batch, count = x.shape[0], x.shape[1]
    if count == 1 or architecture.is_sequence:  # a sequence is one sample (SPEC D9, D12)
        losses, grad = gradient(architecture, w, x, y)
        return update(w, grad), losses
    order = torch.rand((batch, count), generator=generator, device=w.device).argsort(dim=1)
    total = torch.zeros(batch, dtype=w.dtype, device=w.device)
    for position in range(count):
        pick = order[:, position].view(batch, 1, 1)
        xj = x.gather(1, pick.expand(batch, 1, x.shape[2]))
        yj = y.gather(1, pick.expand(batch, 1, y.shape[2]))
        losses, grad = gradient(architecture, w, xj, yj)
        total = total + losses
        w = update(w, grad)
    return w, total / count


# --------------------------------------------------------------------------------------------
# Fast route: linear bias-free weightwise particles trained on weightwise samples (SPEC D6, D7,
# Proposition 2). The weights are held column-wise, [r, B], for the whole call.

_CHAIN_LIMIT = 2  # contract a dimension up to this size by multiply-adds, larger ones by a sum


def _has_weightwise_route(architecture: Architecture, w: Tensor, *others: Tensor | None) -> bool:
    """True for a plain linear bias-free ``Weightwise`` in float32/64 with tensors that agree.

    Anything else (subclasses, activations, bias, other dtypes, mixed dtypes or devices) takes the
    general path, which defines the behaviour.
    """
    return (
        type(architecture) is Weightwise
        and architecture.is_linear_feedforward
        and isinstance(w, Tensor)
        and w.dtype in (torch.float32, torch.float64)
        and all(
            t is None or (isinstance(t, Tensor) and t.dtype == w.dtype and t.device == w.device)
            for t in others
        )
    )


def _to_columns(w: Tensor) -> Tensor:
    """A private column-wise copy [r, B] of rows [B, r]; never a view of the caller's tensor."""
    columns = torch.empty((w.shape[1], w.shape[0]), dtype=w.dtype, device=w.device)
    return columns.copy_(w.T)


def _to_rows(columns: Tensor) -> Tensor:
    """A new contiguous [B, r] tensor from column-wise [r, B]."""
    return columns.T.clone(memory_format=torch.contiguous_format)


class _LinearColumns:
    """Column-wise weights [r, B] of a linear bias-free net, viewed as layers [out, in, B].

    The particle axis is the last, contiguous one, so each product of the tiny matrices is a few
    broadcast multiply-adds over long rows (batched matmul of 2×2 matrices is slow on CPU).
    """

    def __init__(self, architecture: FeedForward, columns: Tensor) -> None:
        batch = columns.shape[1]
        self.columns = columns
        self.layers: list[Tensor] = []
        offset = 0
        for rows, cols in architecture.matrix_shapes:
            self.layers.append(columns[offset : offset + rows * cols].view(rows, cols, batch))
            offset += rows * cols
        # Views made once: indexing at every step would cost Python time.
        self.matrix_rows = [layer.unbind(0) for layer in self.layers]  # W[o]: [in, B]
        self.matrix_columns = [layer.unbind(1) for layer in self.layers]  # W[:, i]: [out, B]
        self.last_row = self.matrix_rows[-1][0]  # the output layer has a single row: [n_{L-1}, B]

    def backward(self, u: Tensor) -> list[Tensor]:
        """Backward pass of the output 1: b_l = (W_{L-1}⋯W_{l+1})ᵀ for l < L-1, and u = W_0ᵀ b_0.

        Writes the collapsed net u = (W_{L-1}⋯W_0)ᵀ into ``u`` [n_0, B] and returns
        [b_0, …, b_{L-2}] (b_l [n_{l+1}, B]). b_{L-2} is a view of W_{L-1}: update W_{L-1} last.
        """
        if len(self.layers) == 1:
            u.copy_(self.last_row)
            return []
        vectors: list[Tensor] = []
        current = self.last_row
        for layer in range(len(self.layers) - 2, 0, -1):
            vectors.append(current)
            current = self._transposed_product(layer, current)
        vectors.append(current)
        self._transposed_product(0, current, out=u)
        vectors.reverse()
        return vectors

    def forward(self, g: Tensor) -> list[Tensor]:
        """Forward pass of g: a_0 = g, a_{l+1} = W_l a_l for l < L-1 (a_l [n_l, B])."""
        vectors = [g]
        for layer in range(len(self.layers) - 1):
            vectors.append(self._product(layer, vectors[-1]))
        return vectors

    def _transposed_product(self, layer: int, b: Tensor, out: Tensor | None = None) -> Tensor:
        """W_lᵀ b = Σ_o W_l[o] b[o]: b [out, B] -> [in, B] (into ``out`` if given)."""
        rows = self.matrix_rows[layer]
        if len(rows) > _CHAIN_LIMIT:
            return torch.sum(self.layers[layer] * b.unsqueeze(1), dim=0, out=out)
        parts = b.unbind(0)
        out = torch.mul(rows[0], parts[0], out=out)
        for row, part in zip(rows[1:], parts[1:], strict=True):
            out.addcmul_(row, part)
        return out

    def _product(self, layer: int, a: Tensor) -> Tensor:
        """W_l a = Σ_i W_l[:, i] a[i]: a [in, B] -> [out, B]."""
        columns = self.matrix_columns[layer]
        if len(columns) > _CHAIN_LIMIT:
            return (self.layers[layer] * a.unsqueeze(0)).sum(1)
        parts = a.unbind(0)
        out = columns[0] * parts[0]
        for column, part in zip(columns[1:], parts[1:], strict=True):
            out.addcmul_(column, part)
        return out

    def add_outer(self, b: list[Tensor], a: list[Tensor], scale: float) -> None:
        """In place W_l += scale · b_l a_lᵀ for every layer (b_{L-1} = 1), W_{L-1} last."""
        for layer, matrix in enumerate(self.layers[:-1]):
            matrix.addcmul_(b[layer].unsqueeze(1), a[layer].unsqueeze(0), value=scale)
        self.last_row.add_(a[-1], alpha=scale)

    def set_outer(self, b: list[Tensor], a: list[Tensor]) -> None:
        """W_l = b_l a_lᵀ for every layer (b_{L-1} = 1): how ∂L/∂W_l is written."""
        for layer, matrix in enumerate(self.layers[:-1]):
            torch.mul(b[layer].unsqueeze(1), a[layer].unsqueeze(0), out=matrix)
        self.last_row.copy_(a[-1])


@torch.no_grad()
def _train_weightwise(
    architecture: Weightwise,
    w: Tensor,
    positions: Tensor,
    teacher: Tensor | None,
    *,
    steps: int,
    lr: float,
    mode: str,
    momentum: float,
    velocity: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """SGD of linear bias-free weightwise particles on weightwise samples (SPEC D12, Prop. 2).

    The samples of target weights m [n] are the rows of X = [m | P], y = m, with P [n, 3] the
    constant ``positions``. With f(x) = u·x, u = (W_{L-1}⋯W_0)ᵀ, and v = u − e_0 (so y = X e_0):

        R = X u − y = X v = v_0 m + P v_{1:},      g = ∂L/∂u = (2/n) Xᵀ R = (2/n) H v,

    with the 4×4 Gram matrix H = XᵀX = [[Σ m_i², (Pᵀm)ᵀ], [Pᵀm, PᵀP]]: PᵀP is constant, and
    h = (Σ m_i², Pᵀm) is one GEMM per step for self-training and computed once for learning. No
    [B, n, 4] feature tensor and no residual are built (except for the reported loss of the last
    step, which is taken from R itself). Then ∂L/∂W_l = b_l a_lᵀ with the vectors of
    ``_LinearColumns``. In per_sample mode each update uses one sample: g = 2 x (x·u − y).

    Args:
        teacher: the target weights [B, n], held constant (learning), or None: each particle's own
            current weights (self-training).
        velocity: the heavy-ball buffer [B, r] to continue, or None for plain SGD.
        steps: >= 1. Other arguments as in ``train``.

    Returns:
        (weights [B, r], reported loss [B], velocity [B, r] or None), all new tensors.
    """
    fused_result = fused.train_weightwise(
        architecture,
        w,
        positions,
        teacher,
        steps=steps,
        lr=lr,
        mode=mode,
        momentum=momentum,
        velocity=velocity,
        generator=generator,
    )
    if fused_result is not None:
        return fused_result
    batch, dtype, device = w.shape[0], w.dtype, w.device
    weights = _to_columns(w)
    net = _LinearColumns(architecture, weights)
    buffer = None if velocity is None else _to_columns(velocity)
    grad = None if buffer is None else _LinearColumns(architecture, torch.empty_like(weights))
    positions_t = positions.T.contiguous()  # [3, n]
    fixed = None if teacher is None else teacher.T.contiguous()  # [n, B], only read
    count = positions.shape[0]
    g = torch.empty((4, batch), dtype=dtype, device=device)

    def descend(b: list[Tensor], scale: float) -> None:
        """One SGD (or heavy-ball) update from g = ∂L/∂u / scale and the backward vectors b."""
        if buffer is None:
            net.add_outer(b, net.forward(g), -lr * scale)  # the scale folds into the step
            return
        g.mul_(scale)
        grad.set_outer(b, net.forward(g))
        buffer.mul_(momentum).add_(grad.columns)
        weights.sub_(buffer, alpha=lr)

    # Gram matrix H = XᵀX of the features X = [m | P] of one particle: the block PᵀP is constant,
    # the first row and column are h = (Σ_i m_i², Pᵀm).
    constant = torch.zeros((4, 4), dtype=dtype, device=device)
    constant[1:, 1:] = positions_t @ positions
    h = torch.empty((4, batch), dtype=dtype, device=device)
    h_0, h_rest = h[0], h[1:]

    def moments(m: Tensor) -> None:
        torch.mm(positions_t, m, out=h_rest)
        torch.linalg.vecdot(m, m, dim=0, out=h_0)

    if fixed is not None:
        moments(fixed)

    # v = u − e_0: with y = X e_0 the residual is R = X v and g = (2/n) H v.
    v = torch.empty((4, batch), dtype=dtype, device=device)
    v_0, v_rest, g_0, g_rest = v[0], v[1:], g[0], g[1:]

    def collapse() -> list[Tensor]:
        b = net.backward(v)
        v_0.sub_(1)
        return b

    def full_batch_step(m: Tensor, report: bool) -> Tensor | None:
        b = collapse()
        reported = None
        if report:  # the loss before the update, from the residual itself (no cancellation)
            residual = torch.mm(positions, v_rest).addcmul_(m, v_0)
            reported = residual.square().mean(dim=0)
        if fixed is None:
            moments(m)
        torch.mm(constant, v, out=g)  # (0, PᵀP v_{1:})
        g_rest.addcmul_(h_rest, v_0)  # + v_0 Pᵀm
        torch.linalg.vecdot(h, v, dim=0, out=g_0)  # Σm²·v_0 + (Pᵀm)·v_{1:}
        descend(b, 2.0 / count)
        return reported

    x = torch.empty((4, batch), dtype=dtype, device=device)  # the sample of one update
    x_target, x_positions = x[:1], x[1:]
    residual_j = torch.empty(batch, dtype=dtype, device=device)

    def per_sample_pass(m: Tensor) -> Tensor:
        if count == 1:  # a single sample: the pass is one full-batch step, no order is drawn
            return full_batch_step(m, True)
        # The same draw as ``_per_sample_pass``: one visiting order per row.
        order = torch.rand((batch, count), generator=generator, device=device).argsort(dim=1)
        frozen = m.clone() if fixed is None else m  # the samples stay those of the pass start
        total = torch.zeros(batch, dtype=dtype, device=device)
        for pick in order.T.contiguous().unbind(0):  # pick [B]: the sample each row visits
            torch.gather(frozen, 0, pick.unsqueeze(0), out=x_target)
            torch.index_select(positions_t, 1, pick, out=x_positions)
            b = collapse()
            torch.linalg.vecdot(v, x, dim=0, out=residual_j)  # x·u − y = x·v
            total.addcmul_(residual_j, residual_j)
            torch.mul(x, residual_j, out=g)
            descend(b, 2.0)
        return total / count

    reported = None
    for step in range(steps):
        m = weights if fixed is None else fixed
        if mode == "per_sample":
            reported = per_sample_pass(m)
        else:
            reported = full_batch_step(m, step == steps - 1)
    return _to_rows(weights), reported, None if buffer is None else _to_rows(buffer)


def _train(
    architecture: Architecture,
    w: Tensor,
    sample_source: SampleSource,
    *,
    steps: int,
    lr: float,
    mode: str,
    momentum: float,
    momentum_reset: str,
    velocity: Tensor | None,
    generator: torch.Generator | None,
    weightwise: tuple[Tensor, Tensor | None] | None = None,
) -> TrainResult:
    """Shared loop of ``train``, ``self_train`` and ``learn``.

    ``weightwise`` = (positions [n, 3], teacher [B, n] or None) selects ``_train_weightwise`` for
    weightwise samples of a linear weightwise particle; ``sample_source`` is then unused.
    """
    _check_training(steps, lr, mode, momentum, momentum_reset)
    check_weights("w", w, architecture.num_weights)
    if momentum_reset == "per_call" or velocity is None:
        velocity = torch.zeros_like(w) if momentum else None
    else:
        check_weights("velocity", velocity, architecture.num_weights, w.shape[0])
    if weightwise is not None and steps > 0 and _has_weightwise_route(architecture, w, velocity):
        positions, teacher = weightwise
        w, last_loss, velocity = _train_weightwise(
            architecture,
            w,
            positions,
            teacher,
            steps=steps,
            lr=lr,
            mode=mode,
            momentum=momentum,
            velocity=velocity,
            generator=generator,
        )
        return TrainResult(w, last_loss, velocity if momentum_reset == "never" else None)

    def update(weights: Tensor, grad: Tensor) -> Tensor:
        nonlocal velocity
        if velocity is None:
            return weights - lr * grad
        velocity = momentum * velocity + grad
        return weights - lr * velocity

    last_loss = torch.full((w.shape[0],), float("nan"), dtype=w.dtype, device=w.device)
    frozen = mode == "per_sample"
    for _ in range(steps):
        x, y = sample_source(w)
        if frozen:
            w, last_loss = _per_sample_pass(architecture, w, x, y, update, generator)
        else:
            last_loss, grad = gradient(architecture, w, x, y)
            w = update(w, grad)
    if steps == 0:
        w = w.clone()
    return TrainResult(w, last_loss, velocity if momentum_reset == "never" else None)


def train(
    architecture: Architecture,
    w: Tensor,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    lr: float,
    mode: str = "full_batch",
    momentum: float = 0.0,
    momentum_reset: str = "per_call",
    velocity: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TrainResult:
    """Train each particle on its own fixed samples by SGD.

    Args:
        architecture: the particles' architecture.
        w: weights [B, r].
        x: inputs [B, S, n_in]; y: targets [B, S, n_out] (held constant).
        steps: number of steps (full_batch: gradient steps; per_sample: passes over S).
        lr: learning rate > 0.
        mode: "full_batch" (canonical) or "per_sample" (Keras: one update per sample, random order).
        momentum: heavy-ball coefficient μ in [0, 1).
        momentum_reset: "per_call" (buffer starts at zero) or "never" (continue ``velocity``).
        velocity: the buffer returned by an earlier call, with ``momentum_reset="never"``.
        generator: source of the per_sample orders.

    Returns:
        TrainResult with the new weights and the reported loss.

    Raises:
        ValueError: for bad shapes, steps < 0, lr <= 0, an unknown mode.
    """
    check_weights("w", w, architecture.num_weights)
    if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2] or x.shape[0] != w.shape[0]:
        raise ValueError(
            f"x {list(x.shape)} and y {list(y.shape)} must be [{w.shape[0]}, samples, features] "
            "with the same number of samples"
        )
    return _train(
        architecture,
        w,
        lambda _: (x, y),
        steps=steps,
        lr=lr,
        mode=mode,
        momentum=momentum,
        momentum_reset=momentum_reset,
        velocity=velocity,
        generator=generator,
    )


def self_train(
    architecture: Architecture,
    w: Tensor,
    *,
    steps: int,
    lr: float,
    mode: str = "full_batch",
    momentum: float = 0.0,
    momentum_reset: str = "per_call",
    velocity: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TrainResult:
    """Self-training N ⇜ N: each particle trains on its own samples, rebuilt from its weights.

    In ``full_batch`` mode the samples are rebuilt before every step; in ``per_sample`` mode before
    every pass. Arguments as in ``train``; w: [B, r] -> TrainResult.weights [B, r].
    """
    weightwise = None
    if _has_weightwise_route(architecture, w):
        positions = position_features(architecture, architecture.encoding, w.device, w.dtype)
        weightwise = (positions, None)
    return _train(
        architecture,
        w,
        lambda current: architecture.samples(architecture, current),
        steps=steps,
        lr=lr,
        mode=mode,
        momentum=momentum,
        momentum_reset=momentum_reset,
        velocity=velocity,
        generator=generator,
        weightwise=weightwise,
    )


def learn(
    architecture: Architecture,
    w: Tensor,
    teacher: Architecture,
    teacher_w: Tensor,
    *,
    steps: int,
    lr: float,
    mode: str = "full_batch",
    momentum: float = 0.0,
    momentum_reset: str = "per_call",
    velocity: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TrainResult:
    """Learning M ⇜ N: each learner row trains on its teacher row, read by the learner's reduction.

    w: [B, r] learners; teacher_w: [B, r_N] teachers (a snapshot, held constant). Other arguments as
    in ``train``.
    """
    check_weights("w", w, architecture.num_weights)
    architecture.check_target(teacher, teacher_w, w.shape[0], role="teacher")
    if _has_weightwise_route(architecture, w, teacher_w):
        positions = position_features(teacher, architecture.encoding, w.device, w.dtype)
        return _train(
            architecture,
            w,
            lambda _: architecture.samples(teacher, teacher_w),
            steps=steps,
            lr=lr,
            mode=mode,
            momentum=momentum,
            momentum_reset=momentum_reset,
            velocity=velocity,
            generator=generator,
            weightwise=(positions, teacher_w),
        )
    x, y = architecture.samples(teacher, teacher_w)
    return train(
        architecture,
        w,
        x,
        y,
        steps=steps,
        lr=lr,
        mode=mode,
        momentum=momentum,
        momentum_reset=momentum_reset,
        velocity=velocity,
        generator=generator,
    )
