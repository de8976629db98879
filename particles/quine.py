"""The Neural Network Quine (Chang & Lipson 2018; SPEC §8, D21–D24), batched over quines.

A quine is one larger network queried by coordinate only: weight coordinate c, one-hot, through a
fixed random projection Π (drawn once from ``projection_seed``, never trained), into a bias-free
SELU MLP whose output is its prediction of its own weight θ_c. Each quine is a row of a
``[batch, num_weights]`` tensor laid out as SPEC D1 (each matrix row-major, target neuron = row):

    θ = (W_1 [h×h], W_2 [h×h], W_3 [1×h] (weight head), W_4 [classes×h] (class head, auxiliary))

    z = (Π_c e_c, Π_x x),  h_1 = SELU(z),  h_2 = SELU(W_1 h_1),  h_3 = SELU(W_2 h_2),
    f_θ(c) = W_3 h_3 (SELU'd with ``selu_output``),  logits = W_4 h_3.

The projection is a constant of the architecture (like the position features of the other
particle types), not part of θ: it is rebuilt bit-identically from the seed on every device and
cached per (quine, device, dtype). ``Π_c e_c`` is column c of Π_c, so the one-hot product is a
column gather.

Metrics (SPEC D24): the replication loss L_SR = Σ_c (f_θ(c) − θ_c)² is not scale-free (it falls
when the weights merely shrink), so every report carries the ratio ρ = L_SR / Σ_c θ_c² as well:
a network that outputs 0 everywhere has ρ = 1, ρ ≥ 1 means no replication, ρ → 0 is a quine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import torch

from particles.validation import check_choice, check_count, check_weights

Tensor = torch.Tensor

PROJECTIONS = ("uniform", "gaussian")
QUINE_INITS = ("torch", "he")
ZERO_THRESHOLD = 1e-12  # Σθ² ≤ 1e-12·N_θ is the trivial zero quine (SPEC D24)
_CHUNK = 4096  # coordinates per forward pass when predicting every weight


@dataclass(frozen=True)
class Quine:
    """A Neural Network Quine (SPEC D21); with ``inputs`` and ``classes`` an auxiliary quine (D23).

    Attributes:
        hidden: units h of each of the three hidden layers (100 in the paper).
        coordinate_units: first-layer units fed by the coordinate projection; None means all of
            them for a vanilla quine and ``hidden // 2`` for an auxiliary quine (50 of 100).
        inputs: task input size d (64 for the 8×8 digits, 784 for MNIST); 0 = vanilla quine.
        classes: number of classes of the class head; 0 = vanilla quine.
        projection: "uniform" (U[−1/√h, 1/√h], default) or "gaussian" (N(0, 1/h)); the image
            projection Π_x uses fan-in d instead of h.
        selu_output: apply SELU to the weight prediction too.
        init_scheme: "torch" (U[±1/√fan_in], default) or "he" (N(0, 2/fan_in), the Quine paper).
        projection_seed: seed of the fixed projection; same seed, same Π on every device.
        projection_seeds: one projection seed per row of the batch (row b uses the Π of
            ``projection_seeds[b]``), so that quines of different seeds train as rows of one
            batch; None: every row uses ``projection_seed``. With it set, every weight tensor
            given to this quine must have ``len(projection_seeds)`` rows.
    """

    hidden: int = 100
    coordinate_units: int | None = None
    inputs: int = 0
    classes: int = 0
    projection: str = "uniform"
    selu_output: bool = False
    init_scheme: str = "torch"
    projection_seed: int = 0
    projection_seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_count("hidden", self.hidden, 1)
        check_count("inputs", self.inputs, 0)
        check_count("classes", self.classes, 0)
        check_count("projection_seed", self.projection_seed, 0)
        check_choice("projection", self.projection, PROJECTIONS)
        check_choice("init_scheme", self.init_scheme, QUINE_INITS)
        if self.projection_seeds is not None:
            if not isinstance(self.projection_seeds, tuple) or not self.projection_seeds:
                raise ValueError(
                    f"projection_seeds={self.projection_seeds!r} is not allowed; give a "
                    "non-empty tuple of seeds (one per row) or None"
                )
            for seed in self.projection_seeds:
                check_count("projection_seeds[...]", seed, 0)
        if not isinstance(self.selu_output, bool):
            raise ValueError(
                f"selu_output={self.selu_output!r} is not allowed; it must be True or False"
            )
        if (self.inputs == 0) != (self.classes == 0):
            raise ValueError(
                f"inputs={self.inputs!r}, classes={self.classes!r} is not allowed; both are 0 "
                "(vanilla quine) or both are > 0 (auxiliary quine)"
            )
        if self.auxiliary and self.classes < 2:
            raise ValueError(f"classes={self.classes!r} is not allowed; it must be >= 2")
        if self.coordinate_units is not None:
            if self.auxiliary:
                check_count("coordinate_units", self.coordinate_units, 1)
                if self.coordinate_units >= self.hidden:
                    raise ValueError(
                        f"coordinate_units={self.coordinate_units!r} is not allowed; an "
                        f"auxiliary quine needs 1..{self.hidden - 1} (the rest read the image)"
                    )
            elif self.coordinate_units != self.hidden:
                raise ValueError(
                    f"coordinate_units={self.coordinate_units!r} is not allowed; a vanilla "
                    f"quine feeds all {self.hidden} hidden units from the coordinate"
                )
        elif self.auxiliary and self.hidden < 2:
            raise ValueError(
                f"hidden={self.hidden!r} is not allowed; an auxiliary quine needs >= 2"
            )

    # ---------------------------------------------------------------------------------------
    # Presets

    @classmethod
    def paper(cls, **changes) -> Quine:
        """The vanilla quine of the Quine paper: h = 100, 20,100 weights."""
        return cls(**{"hidden": 100, **changes})

    @classmethod
    def small(cls, **changes) -> Quine:
        """A small vanilla quine for tests and quick runs: h = 10, 210 weights."""
        return cls(**{"hidden": 10, **changes})

    @classmethod
    def paper_auxiliary(cls, inputs: int = 64, classes: int = 10, **changes) -> Quine:
        """The auxiliary quine of the Quine paper: h = 100 (50 coordinate units), 21,100 weights."""
        return cls(**{"hidden": 100, "inputs": inputs, "classes": classes, **changes})

    @classmethod
    def small_auxiliary(cls, inputs: int = 64, classes: int = 10, **changes) -> Quine:
        """A small auxiliary quine: h = 16 (8 coordinate units)."""
        return cls(**{"hidden": 16, "inputs": inputs, "classes": classes, **changes})

    # ---------------------------------------------------------------------------------------
    # Layout

    @property
    def auxiliary(self) -> bool:
        """True for the auxiliary quine (task input and class head)."""
        return self.classes > 0

    @property
    def coordinate_size(self) -> int:
        """First-layer units fed by the coordinate projection."""
        if self.coordinate_units is not None:
            return self.coordinate_units
        return self.hidden // 2 if self.auxiliary else self.hidden

    @property
    def matrix_shapes(self) -> tuple[tuple[int, int], ...]:
        """(rows, columns) of W_1, W_2, W_3 (and W_4) in layout order."""
        h = self.hidden
        shapes = ((h, h), (h, h), (1, h))
        return shapes + (((self.classes, h),) if self.auxiliary else ())

    @property
    def num_weights(self) -> int:
        """N_θ: 2h² + h, plus classes·h for the auxiliary quine (20,100 / 21,100 at h = 100)."""
        return sum(rows * columns for rows, columns in self.matrix_shapes)

    def matrices(self, w: Tensor) -> list[Tensor]:
        """Views of each matrix: [B, rows, columns] per layer, in layout order."""
        out, offset = [], 0
        for rows, columns in self.matrix_shapes:
            out.append(w[:, offset : offset + rows * columns].unflatten(1, (rows, columns)))
            offset += rows * columns
        return out

    # ---------------------------------------------------------------------------------------
    # Weights and the fixed projection

    def init(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Fresh weights for ``n`` quines: [n, num_weights] (every fan-in is h)."""
        check_count("n", n, 0)
        fan_in = self.hidden
        shape = (n, self.num_weights)
        if self.init_scheme == "he":
            draws = torch.randn(shape, generator=generator, device=device, dtype=dtype)
            return draws * math.sqrt(2 / fan_in)
        draws = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return (2 * draws - 1) / math.sqrt(fan_in)

    def projections(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor | None]:
        """The fixed projections (Π_cᵀ [N_θ, h_c], Π_xᵀ [d, h − h_c] or None), h_c the coord. units.

        A constant buffer, not weights: drawn on the CPU in float64 from ``projection_seed`` (so
        the same seed gives the same Π on every device and dtype), cached, never trained. Stored
        transposed so that ``Π_c e_c`` is row c.
        """
        return _projections(self, torch.device(device or "cpu"), dtype)

    # ---------------------------------------------------------------------------------------
    # Forward, loss, regeneration

    def _check_coordinates(self, coordinates: Tensor, batch: int) -> None:
        if not isinstance(coordinates, torch.Tensor) or coordinates.is_floating_point():
            raise ValueError("coordinates must be an integer tensor of shape [k] or [batch, k]")
        if coordinates.dim() not in (1, 2) or (
            coordinates.dim() == 2 and coordinates.shape[0] != batch
        ):
            raise ValueError(
                f"coordinates has shape {list(coordinates.shape)}; expected [k] or [{batch}, k]"
            )
        if coordinates.numel() and (
            int(coordinates.min()) < 0 or int(coordinates.max()) >= self.num_weights
        ):
            raise ValueError(
                f"coordinates must lie in 0..{self.num_weights - 1}; got values "
                f"{int(coordinates.min())}..{int(coordinates.max())}"
            )

    def _row_projections(self, w: Tensor):
        """(SELU(Π_cᵀ) flattened to [U·N_θ, h_c], Π_xᵀ, row offsets [B] or None).

        Without ``projection_seeds``: U = 1, Π_xᵀ [d, h − h_c] and no offsets. With them: one
        block of N_θ rows per distinct seed, Π_xᵀ [B, d, h − h_c] per row, and row b's offset of
        its seed's block. The first layer's SELU is applied once here (SELU(Π_c e_c) is row c of
        SELU(Π_cᵀ)), not per minibatch.
        """
        if self.projection_seeds is None:
            return _activated_projections(self, w.device, w.dtype)
        if w.shape[0] != len(self.projection_seeds):
            raise ValueError(
                f"w has {w.shape[0]} rows but projection_seeds gives {len(self.projection_seeds)}"
                " (one projection seed per row)"
            )
        return _row_projections(self, w.device, w.dtype)

    def image_features(self, w: Tensor, images: Tensor) -> Tensor:
        """SELU(Π_x x) of every image [n, d] for the quines of ``w``: [n, h − h_c], or
        [B, n, h − h_c] with ``projection_seeds`` (each row its own Π_x). Computed once per
        training call, so that a minibatch gathers its images' features instead of projecting."""
        if not self.auxiliary:
            raise ValueError("image_features needs an auxiliary quine (inputs > 0, classes > 0)")
        px = self._row_projections(w)[1]
        return torch.selu(images.to(dtype=w.dtype) @ px)

    def _first_layer(
        self, w: Tensor, coordinates: Tensor, images: Tensor | None, features: Tensor | None = None
    ) -> Tensor:
        """h_1 = SELU(z) = (SELU(Π_c e_c), SELU(Π_x x)): [k, h] or [B, k, h].

        ``features``: SELU(Π_x x) of the minibatch's images, precomputed (``image_features``).
        """
        pc, px, offsets = self._row_projections(w)
        index = coordinates
        if offsets is not None:
            index = offsets.unsqueeze(1) + coordinates  # [B, k]
        h = pc.index_select(0, index.flatten()).view(*index.shape, -1)
        if not self.auxiliary:
            return h
        if features is not None:
            x = features
        elif images is None:
            x = torch.zeros(
                (*index.shape, self.hidden - self.coordinate_size), device=w.device, dtype=w.dtype
            )
        else:
            expected = (*coordinates.shape, self.inputs)
            if not isinstance(images, torch.Tensor) or tuple(images.shape) != expected:
                shape = list(images.shape) if isinstance(images, torch.Tensor) else images
                raise ValueError(
                    f"images has shape {shape}; expected {list(expected)} (one flattened "
                    "image per coordinate)"
                )
            x = torch.selu(images.to(dtype=w.dtype) @ px)
        if x.dim() < h.dim():
            x = x.expand(*h.shape[:-1], -1)
        elif h.dim() < x.dim():
            h = h.expand(*x.shape[:-1], -1)
        return torch.cat([h, x], dim=-1)

    def forward(
        self, w: Tensor, coordinates: Tensor, images: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Weight predictions and class logits for each quine.

        Args:
            w: weights [B, num_weights].
            coordinates: int64 [k] (shared by every quine) or [B, k].
            images: auxiliary quine only: flattened images [k, d] (or [B, k, d]) paired with the
                coordinates; None feeds zeros to the image units.

        Returns:
            (predictions [B, k], logits [B, k, classes] or None for a vanilla quine).
        """
        check_weights("w", w, self.num_weights)
        self._check_coordinates(coordinates, w.shape[0])
        if images is not None and not self.auxiliary:
            raise ValueError("images are only accepted by an auxiliary quine (inputs > 0)")
        return self._forward(w, coordinates, images)

    def _forward(self, w: Tensor, coordinates: Tensor, images: Tensor | None):
        layers = self._layers(w, coordinates, images)
        out = layers["out"]
        return (torch.selu(out) if self.selu_output else out), layers["logits"]

    def _layers(
        self, w: Tensor, coordinates: Tensor, images: Tensor | None, features: Tensor | None = None
    ) -> dict:
        """Every intermediate of the forward pass (``out`` before the optional output SELU)."""
        matrices = self.matrices(w)
        h1 = self._first_layer(w, coordinates, images, features)  # [k, h] or [B, k, h]
        h2 = torch.selu(h1 @ matrices[0].transpose(1, 2))  # [B, k, h]
        h3 = torch.selu(h2 @ matrices[1].transpose(1, 2))
        out = (h3 @ matrices[2].transpose(1, 2)).squeeze(-1)  # [B, k]
        logits = h3 @ matrices[3].transpose(1, 2) if self.auxiliary else None
        return {"h1": h1, "h2": h2, "h3": h3, "out": out, "logits": logits}

    def loss_and_gradient(
        self,
        w: Tensor,
        targets: Tensor,
        coordinates: Tensor,
        *,
        replication: Tensor,
        images: Tensor | None = None,
        labels: Tensor | None = None,
        lam: Tensor | None = None,
        temperature: float = 1.0,
        grad: Tensor | None = None,
        gradient: bool = True,
        features: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """A minibatch loss per quine and its gradient, by hand (no autograd): ([B], [B, N_θ]).

        L_b = α_b Σ_j (f_θ(c_bj) − θ̄_{b,c_bj})² + λ_b Σ_j CE(logits_bj / τ, y_bj), the second term
        for an auxiliary quine only. Backpropagation through the three SELU layers writes every
        entry of ``grad`` (allocated when None), so a buffer is reused without zeroing; the
        hand-written pass avoids autograd's full-size zero-filled gradients of each matrix slice.

        Args:
            w: weights θ [B, N_θ]; targets: θ̄ [B, N_θ].
            coordinates: int64 [B, k] (one set per quine) or [k].
            replication: α [B]; lam: λ [B] (auxiliary quine).
            images, labels: [B, k, d] (or [k, d]) and [B, k] (or [k]) (auxiliary quine).
            gradient: False computes the loss only (returns None for the gradient).
            features: instead of ``images``, their precomputed ``image_features`` [B, k, ·].
        """
        batch = w.shape[0]
        layers = self._layers(w, coordinates, images, features)
        matrices = self.matrices(w)
        out = layers["out"]
        prediction = torch.selu(out) if self.selu_output else out
        index = coordinates.expand(batch, -1) if coordinates.dim() == 1 else coordinates
        error = prediction - targets.gather(1, index)  # [B, k]
        loss = replication * error.square().sum(dim=1)
        if not gradient:
            if self.auxiliary:
                loss = loss + lam * _cross_entropy(layers["logits"] / temperature, labels)[0].sum(1)
            return loss, None
        d_out = (2 * replication).unsqueeze(1) * error
        if self.selu_output:
            d_out = _selu_backward(d_out, prediction)
        d_h3 = d_out.unsqueeze(2) * matrices[2]  # [B, k, h]
        grad = torch.empty_like(w) if grad is None else grad
        grads = self.matrices(grad)
        grads[2].copy_(d_out.unsqueeze(1) @ layers["h3"])
        if self.auxiliary:
            cross, log_p, labels = _cross_entropy(layers["logits"] / temperature, labels)
            loss = loss + lam * cross.sum(dim=1)
            d_logits = log_p.exp()  # ∂CE/∂logit = softmax − one-hot
            d_logits.scatter_add_(2, labels.unsqueeze(2), torch.full_like(cross.unsqueeze(2), -1.0))
            d_logits *= (lam / temperature).view(batch, 1, 1)
            grads[3].copy_(d_logits.transpose(1, 2) @ layers["h3"])
            d_h3 = d_h3 + d_logits @ matrices[3]
        d_a3 = _selu_backward(d_h3, layers["h3"])
        grads[1].copy_(d_a3.transpose(1, 2) @ layers["h2"])
        d_a2 = _selu_backward(d_a3 @ matrices[1], layers["h2"])
        grads[0].copy_(d_a2.transpose(1, 2) @ layers["h1"])
        return loss, grad

    def predict(
        self, w: Tensor, coordinates: Tensor | None = None, images: Tensor | None = None
    ) -> Tensor:
        """Weight predictions f_θ(c): [B, k]; ``coordinates=None`` predicts all N_θ weights."""
        if coordinates is None:
            check_weights("w", w, self.num_weights)
            if images is not None and not self.auxiliary:
                raise ValueError("images are only accepted by an auxiliary quine (inputs > 0)")
            if images is not None and tuple(images.shape) != (self.num_weights, self.inputs):
                raise ValueError(
                    f"images has shape {list(images.shape)}; expected "
                    f"[{self.num_weights}, {self.inputs}] (one image per coordinate)"
                )
            parts = []
            for start in range(0, self.num_weights, _CHUNK):
                c = torch.arange(start, min(start + _CHUNK, self.num_weights), device=w.device)
                x = None if images is None else images[start : start + _CHUNK]
                parts.append(self._forward(w, c, x)[0])
            return torch.cat(parts, dim=1)
        return self.forward(w, coordinates, images)[0]

    def classify(self, w: Tensor, images: Tensor, coordinates: Tensor | None = None) -> Tensor:
        """Class logits of an auxiliary quine: images [k, d] -> [B, k, classes].

        The class head reads the same trunk as the weight head, so a coordinate is always fed
        too: by default image j is paired with coordinate j mod N_θ.
        """
        if not self.auxiliary:
            raise ValueError("classify needs an auxiliary quine (inputs > 0, classes > 0)")
        check_weights("w", w, self.num_weights)
        if coordinates is None:
            coordinates = torch.arange(images.shape[0], device=w.device) % self.num_weights
        return self.forward(w, coordinates, images)[1]

    def replication_loss(
        self,
        w: Tensor,
        targets: Tensor | None = None,
        *,
        coordinates: Tensor | None = None,
        images: Tensor | None = None,
    ) -> Tensor:
        """L_SR(θ; θ̄) = Σ_c (f_θ(c) − θ̄_c)² per quine: [B] (SPEC D22, a sum, not a mean).

        Args:
            w: weights θ [B, num_weights].
            targets: θ̄ [B, num_weights] (frozen copy); None uses θ itself (L_SR at θ).
            coordinates: sum over these coordinates only ([k] or [B, k]); None = all N_θ.
            images: the images paired with the coordinates (auxiliary quine), see ``forward``.
        """
        check_weights("w", w, self.num_weights)
        targets = w if targets is None else targets
        check_weights("targets", targets, self.num_weights, batch=w.shape[0])
        if coordinates is None:
            error = self.predict(w, None, images) - targets
        else:
            prediction = self.predict(w, coordinates, images)
            index = coordinates if coordinates.dim() == 2 else coordinates.expand(w.shape[0], -1)
            error = prediction - targets.gather(1, index)
        return error.square().sum(dim=1)

    def regenerate(self, w: Tensor, images: Tensor | None = None) -> Tensor:
        """Regeneration R (SPEC D22): all weights replaced at once by their predictions: [B, r].

        Every prediction is computed from the current θ before any weight is written; no
        optimiser is involved. Returns a new tensor.
        """
        with torch.no_grad():
            return self.predict(w, None, images).clone()

    def metrics(self, w: Tensor, images: Tensor | None = None) -> dict[str, Tensor]:
        """Honest replication metrics per quine (SPEC D24), each [B].

        Returns:
            ``loss`` L_SR(θ; θ); ``sum_sq`` Σθ²; ``rho`` = L_SR / Σθ² (1 for the all-zero net,
            +inf when Σθ² = 0 < L_SR); ``rms`` √(L_SR / N_θ); ``relative_error`` the mean
            error per weight relative to the mean weight size, mean_c |f_θ(c) − θ_c| /
            mean_c |θ_c| (scale-free, and not blown up by weights near 0 as a per-weight ratio
            would be); ``zero`` True when Σθ² ≤ 1e-12·N_θ (the trivial zero quine, excluded from
            every success count); ``finite`` True when all weights and predictions are finite.
        """
        check_weights("w", w, self.num_weights)
        with torch.no_grad():
            prediction = self.predict(w, None, images)
            error = prediction - w
            loss = error.double().square().sum(dim=1)
            sum_sq = w.double().square().sum(dim=1)
            n = self.num_weights
            rho = torch.where(
                sum_sq > 0,
                loss / sum_sq.clamp_min(torch.finfo(torch.float64).tiny),
                torch.where(loss > 0, math.inf, 1.0),
            )
            mean_abs = w.double().abs().mean(dim=1)
            error_abs = error.double().abs().mean(dim=1)
            relative = torch.where(
                mean_abs > 0,
                error_abs / mean_abs.clamp_min(torch.finfo(torch.float64).tiny),
                torch.where(error_abs > 0, math.inf, 0.0),
            )
            finite = torch.isfinite(w).all(dim=1) & torch.isfinite(prediction).all(dim=1)
        return {
            "loss": loss,
            "sum_sq": sum_sq,
            "rho": rho,
            "rms": (loss / n).sqrt(),
            "relative_error": relative,
            "zero": sum_sq <= ZERO_THRESHOLD * n,
            "finite": finite,
        }


_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717


def _selu_backward(grad: Tensor, selu_a: Tensor) -> Tensor:
    """grad · SELU'(a) from SELU(a): λ for a > 0, SELU(a) + λα below (torch's λ, α).

    torch's own SELU backward kernel (one vectorised pass; a ``where`` is ~10× slower here).
    """
    return torch.ops.aten.elu_backward(grad, _SELU_ALPHA, _SELU_SCALE, 1.0, True, selu_a)


def _cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy per example [B, k], the log-softmax [B, k, C] and labels as [B, k]."""
    batch = logits.shape[0]
    labels = labels.expand(batch, -1) if labels.dim() == 1 else labels
    log_p = torch.log_softmax(logits, dim=-1)
    return -log_p.gather(2, labels.unsqueeze(2)).squeeze(2), log_p, labels


@cache
def _activated_projections(quine: Quine, device: torch.device, dtype: torch.dtype):
    coordinate, image = quine.projections(device, dtype)
    return torch.selu(coordinate), image, None


@cache
def _row_projections(quine: Quine, device: torch.device, dtype: torch.dtype):
    seeds = sorted(set(quine.projection_seeds))
    single = [replace(quine, projection_seed=s, projection_seeds=None) for s in seeds]
    coordinate = torch.cat([_activated_projections(q, device, dtype)[0] for q in single])
    index = torch.tensor([seeds.index(s) for s in quine.projection_seeds], device=device)
    image = None
    if quine.auxiliary:
        image = torch.stack([q.projections(device, dtype)[1] for q in single])[index]
    return coordinate, image, index * quine.num_weights


@cache
def _projections(quine: Quine, device: torch.device, dtype: torch.dtype):
    generator = torch.Generator().manual_seed(quine.projection_seed)
    hc, hx = quine.coordinate_size, quine.hidden - quine.coordinate_size

    def draw(rows: int, columns: int, fan_in: int) -> Tensor:
        if quine.projection == "gaussian":
            values = torch.randn((rows, columns), generator=generator, dtype=torch.float64)
            return values / math.sqrt(fan_in)
        values = torch.rand((rows, columns), generator=generator, dtype=torch.float64)
        return (2 * values - 1) / math.sqrt(fan_in)

    coordinate = draw(quine.num_weights, hc, quine.hidden).to(device=device, dtype=dtype)
    image = draw(quine.inputs, hx, quine.inputs).to(device=device, dtype=dtype) if hx else None
    if not quine.auxiliary:
        image = None
    return coordinate, image


__all__ = ["PROJECTIONS", "QUINE_INITS", "ZERO_THRESHOLD", "Quine"]
