"""The Neural Network Quine (SPEC D21–D24): layout, projection, regeneration, metrics, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from particles import Quine, load_task, schedule, train_quine
from particles.quine_training import (
    QUINE_OPTIMIZERS,
    accuracy,
    digits,
    mnist_npz,
    stratified_split,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _exact_quine() -> tuple[Quine, torch.Tensor]:
    """A non-zero exact quine of h = 2 (10 weights), found by minimising ρ in float64."""
    quine = Quine(hidden=2)
    for seed in range(10):
        w = quine.init(1, generator=_generator(seed), dtype=torch.float64).requires_grad_()
        opt = torch.optim.LBFGS(
            [w],
            max_iter=2000,
            tolerance_grad=1e-30,
            tolerance_change=1e-30,
            line_search_fn="strong_wolfe",
        )

        def closure(opt=opt, w=w):
            opt.zero_grad()
            rho = (quine.replication_loss(w) / w.square().sum()).sum()
            rho.backward()
            return rho

        for _ in range(5):
            opt.step(closure)
        w = w.detach()
        if quine.metrics(w)["rho"].item() < 1e-24:
            return quine, w
    pytest.skip("no exact h=2 quine found from 10 seeds")


# ---------------------------------------------------------------------------------------------
# Layout and shapes


def test_sizes_of_the_paper():
    assert Quine.paper().num_weights == 20_100
    assert Quine.paper_auxiliary().num_weights == 21_100
    assert Quine.paper_auxiliary().coordinate_size == 50
    assert Quine.paper().coordinate_size == 100
    assert Quine.small().num_weights == 2 * 10 * 10 + 10


def test_shapes():
    quine = Quine.small()
    w = quine.init(3, generator=_generator())
    assert w.shape == (3, quine.num_weights)
    c = torch.tensor([0, 5, 209])
    assert quine.predict(w, c).shape == (3, 3)
    assert quine.predict(w, torch.tensor([[0, 1], [2, 3], [4, 5]])).shape == (3, 2)
    assert quine.predict(w).shape == (3, quine.num_weights)
    assert quine.replication_loss(w).shape == (3,)
    assert quine.regenerate(w).shape == w.shape
    metrics = quine.metrics(w)
    assert set(metrics) >= {"loss", "rho", "rms", "relative_error", "zero", "sum_sq"}
    assert all(value.shape == (3,) for value in metrics.values())
    aux = Quine.small_auxiliary()
    wa = aux.init(2, generator=_generator())
    prediction, logits = aux.forward(wa, c, torch.rand(3, 64))
    assert prediction.shape == (2, 3) and logits.shape == (2, 3, 10)
    assert aux.classify(wa, torch.rand(7, 64)).shape == (2, 7, 10)


def test_prediction_matches_the_definition():
    """f_θ(c) = W_3 SELU(W_2 SELU(W_1 SELU(Π e_c))), one quine by hand."""
    quine = Quine(hidden=4)
    w = quine.init(1, generator=_generator(), dtype=torch.float64)
    w1, w2, w3 = (m[0] for m in quine.matrices(w))
    pc, _ = quine.projections(dtype=torch.float64)
    for c in (0, 7, quine.num_weights - 1):
        e = torch.zeros(quine.num_weights, dtype=torch.float64)
        e[c] = 1
        z = pc.T @ e
        expected = w3 @ torch.selu(w2 @ torch.selu(w1 @ torch.selu(z)))
        assert torch.allclose(quine.predict(w, torch.tensor([c]))[0], expected)


# ---------------------------------------------------------------------------------------------
# The fixed projection


def test_projection_is_fixed_and_seeded():
    a, b = Quine.small(projection_seed=3), Quine.small(projection_seed=3)
    assert torch.equal(a.projections()[0], b.projections()[0])
    assert not torch.equal(a.projections()[0], Quine.small(projection_seed=4).projections()[0])
    bound = 1 / np.sqrt(10)
    assert a.projections()[0].abs().max() <= bound
    gaussian = Quine(hidden=100, projection="gaussian").projections()[0]
    assert abs(gaussian.std().item() - 0.1) < 0.005
    # float64 and float32 projections are the same draws
    assert torch.allclose(a.projections(dtype=torch.float64)[0].float(), a.projections()[0])


def test_projection_is_not_trained():
    quine = Quine.small()
    before = quine.projections()[0].clone()
    w = quine.init(2, generator=_generator())
    run = train_quine(quine, w, epochs=2, optimizer="adam", generator=_generator(1))
    assert run.weights.shape == w.shape  # the projection is not part of θ
    assert torch.equal(quine.projections()[0], before)


# ---------------------------------------------------------------------------------------------
# Regeneration and metrics


def test_regeneration_of_an_exact_quine_changes_nothing():
    quine, w = _exact_quine()
    assert w.square().sum() > 1.0  # not the zero quine
    assert not quine.metrics(w)["zero"].item()
    assert torch.allclose(quine.regenerate(w), w, rtol=0, atol=1e-10)
    zero = torch.zeros(2, Quine.small().num_weights)
    assert torch.equal(Quine.small().regenerate(zero), zero)


def test_regeneration_writes_all_predictions_at_once():
    quine = Quine.small()
    w = quine.init(2, generator=_generator())
    assert torch.equal(quine.regenerate(w), quine.predict(w))
    assert not torch.equal(quine.regenerate(w), w)


def test_rho_is_scale_free():
    """Shrinking the weights lowers L_SR by orders of magnitude but cannot lower ρ below ~1."""
    quine = Quine(hidden=20)
    w = quine.init(1, generator=_generator(), dtype=torch.float64)
    big, small = quine.metrics(w), quine.metrics(1e-3 * w)
    assert small["loss"].item() < 1e-4 * big["loss"].item()
    assert small["rho"].item() > 0.99
    assert abs(small["relative_error"].item() - 1) < 0.05  # predicting ~0 is 100% error
    assert quine.metrics(torch.zeros(1, quine.num_weights))["rho"].item() == 1.0
    assert quine.metrics(torch.zeros(1, quine.num_weights))["zero"].item()
    assert not big["zero"].item()
    quine_exact, exact = _exact_quine()
    for scale in (1e-3, 1e3):
        assert quine_exact.metrics(scale * exact)["rho"].item() > 1e-3  # scaling breaks a quine


def test_replication_loss_is_a_sum_over_coordinates():
    quine = Quine.small()
    w = quine.init(2, generator=_generator())
    targets = quine.init(2, generator=_generator(1))
    full = quine.replication_loss(w, targets)
    assert torch.allclose(full, (quine.predict(w) - targets).square().sum(dim=1))
    halves = [torch.arange(0, 100), torch.arange(100, quine.num_weights)]
    parts = sum(quine.replication_loss(w, targets, coordinates=c) for c in halves)
    assert torch.allclose(parts, full, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.parametrize("optimizer", [o for o in QUINE_OPTIMIZERS if o != "hill_climb"])
def test_batching_equals_training_alone(optimizer):
    quine = Quine.small()
    w = quine.init(3, generator=_generator(), dtype=torch.float64)
    batch = train_quine(quine, w, epochs=2, optimizer=optimizer, generator=_generator(5))
    alone = train_quine(quine, w[1:2], epochs=2, optimizer=optimizer, generator=_generator(5))
    assert torch.allclose(batch.weights[1:2], alone.weights, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["adamax", "hill_climb"])
def test_a_shorter_run_is_the_start_of_a_longer_one(optimizer):
    """Q1's two budgets come from one run: its first epochs equal a run of that length."""
    quine = Quine.small()
    w = quine.init(2, generator=_generator(), dtype=torch.float64)
    kept = {}
    longer = train_quine(
        quine,
        w,
        epochs=5,
        optimizer=optimizer,
        generator=_generator(7),
        record_every=2,
        record_at=(3,),
        on_epoch=lambda epoch, weights: kept.setdefault(epoch + 1, weights),
    )
    assert [r["step"] for r in longer.history] == [0, 2, 3, 4, 5]
    short = train_quine(quine, w, epochs=3, optimizer=optimizer, generator=_generator(7))
    start = longer.until(3, kept[3])
    assert torch.equal(start.weights, short.weights)
    assert not torch.equal(longer.weights, short.weights)
    assert [r["step"] for r in start.history] == [0, 2, 3]
    assert torch.equal(start.history[-1]["loss"], short.history[-1]["loss"])


def test_a_diverged_row_does_not_touch_the_others():
    quine = Quine.small()
    w = quine.init(2, generator=_generator(), dtype=torch.float64)
    bad = w.clone()
    bad[0, 0] = float("nan")
    clean = train_quine(quine, w, epochs=1, optimizer="adam", generator=_generator(5))
    mixed = train_quine(quine, bad, epochs=1, optimizer="adam", generator=_generator(5))
    assert torch.allclose(mixed.weights[1], clean.weights[1])


def test_training_lowers_the_replication_loss_and_leaves_input_alone():
    quine = Quine.small()
    w = quine.init(2, generator=_generator())
    copy = w.clone()
    for optimizer in QUINE_OPTIMIZERS:
        run = train_quine(quine, w, epochs=5, optimizer=optimizer, generator=_generator(2))
        assert torch.equal(w, copy)
        assert len(run.history) == 6
        loss = run.series("loss")
        assert (loss[-1] < loss[0]).all(), optimizer


def test_schedule_pure_regeneration_heads_to_zero():
    quine = Quine.small()
    w = quine.init(1, generator=_generator())
    run = schedule(quine, w, generations=40, epochs_per_generation=0)
    end = run.history[-1]
    assert end["zero"].item() or end["rho"].item() >= 0.9
    assert [r["event"] for r in run.history] == ["start"] + ["regenerate"] * 40
    alternation = schedule(
        quine, w, generations=2, epochs_per_generation=1, generator=_generator(), optimizer="sgd"
    )
    assert [r["event"] for r in alternation.history] == [
        "start",
        "epoch",
        "regenerate",
        "epoch",
        "regenerate",
    ]
    # updates done, counted by hand: epochs and regenerations, however sparse the records
    assert [r["updates"] for r in run.history] == list(range(41))
    assert [r["updates"] for r in alternation.history] == [0, 1, 2, 3, 4]
    sparse = schedule(
        quine,
        w,
        generations=5,
        epochs_per_generation=2,
        record_every=2,
        generator=_generator(),
        optimizer="sgd",
    )
    assert [(r["step"], r["updates"]) for r in sparse.history] == [
        (0, 0),
        (3, 4),  # generation 1 (of 0-4): 1 × (2 epochs + 1 regeneration) = 3 updates before it
        (4, 5),
        (4, 6),
        (7, 10),
        (8, 11),
        (8, 12),
        (9, 13),
        (10, 14),
        (10, 15),
    ]


# ---------------------------------------------------------------------------------------------
# Auxiliary quine and task data


def test_digits_split():
    task = digits()
    assert task.x_train.shape == (1438, 64) and task.x_test.shape == (359, 64)
    assert task.x_train.min() >= 0 and task.x_train.max() <= 1
    assert torch.bincount(task.y_test).min() >= 35  # stratified
    again = digits()
    assert torch.equal(task.x_test, again.x_test)


def test_auxiliary_quine_learns_the_task_above_chance():
    task = load_task("digits")
    quine = Quine.small_auxiliary(hidden=32)
    w = quine.init(2, generator=_generator())
    before = accuracy(quine, w, task)
    run = train_quine(
        quine,
        w,
        epochs=3,
        optimizer="adam",
        generator=_generator(1),
        task=task,
        lam=[0.01, 0.01],
        replication=[1.0, 0.0],
    )
    after = run.history[-1]["accuracy"]
    assert (after > 0.4).all(), after  # chance is 0.1
    assert (after > before).all()


def test_mnist_npz(tmp_path):
    generator = np.random.default_rng(0)
    x = generator.integers(0, 256, size=(50, 4, 4), dtype=np.uint8)
    y = np.repeat(np.arange(5), 10)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=x, y=y)
    task = mnist_npz(path)
    assert task.inputs == 16 and task.classes == 5
    assert task.x_train.shape[0] == 40 and task.x_test.shape[0] == 10
    assert task.x_train.max() <= 1
    split = tmp_path / "split.npz"
    np.savez(split, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    assert load_task(split).x_test.shape == (10, 16)
    quine = Quine.small_auxiliary(inputs=16, classes=5)
    run = train_quine(quine, quine.init(1), epochs=1, task=task, generator=_generator())
    assert 0 <= run.history[-1]["accuracy"].item() <= 1
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=x)
    with pytest.raises(ValueError, match="images"):
        mnist_npz(bad)
    with pytest.raises(ValueError, match="does not exist"):
        mnist_npz(tmp_path / "missing.npz")
    floats = tmp_path / "floats.npz"
    np.savez(floats, x=x.astype(float), y=y)
    with pytest.raises(ValueError, match="255"):
        mnist_npz(floats)


def test_stratified_split_keeps_every_class():
    x = torch.rand(100, 3)
    y = torch.arange(100) % 4
    task = stratified_split(x, y, seed=1)
    assert torch.bincount(task.y_test).tolist() == [5, 5, 5, 5]


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hidden": 0}, "hidden=0"),
        ({"projection": "sparse"}, "projection='sparse'"),
        ({"init_scheme": "glorot"}, "init_scheme='glorot'"),
        ({"inputs": 64}, "inputs=64"),
        ({"coordinate_units": 5}, "coordinate_units=5"),
        ({"inputs": 64, "classes": 10, "coordinate_units": 10}, "coordinate_units=10"),
        ({"selu_output": 1}, "selu_output=1"),
    ],
)
def test_bad_architecture_names_the_value(changes, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        Quine.small(**changes)


def test_bad_arguments_name_the_value():
    quine = Quine.small()
    w = quine.init(1)
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        train_quine(quine, w, epochs=1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="epochs=-1"):
        train_quine(quine, w, epochs=-1)
    with pytest.raises(ValueError, match="lr=0"):
        train_quine(quine, w, epochs=1, lr=0)
    with pytest.raises(ValueError, match=r"shape \[1, 5\]"):
        quine.predict(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="0..209"):
        quine.predict(w, torch.tensor([210]))
    with pytest.raises(ValueError, match="task is required"):
        train_quine(Quine.small_auxiliary(), Quine.small_auxiliary().init(1), epochs=1)
    with pytest.raises(ValueError, match="lam="):
        train_quine(
            Quine.small_auxiliary(),
            Quine.small_auxiliary().init(2),
            epochs=1,
            task=digits(),
            lam=[0.1, 0.2, 0.3],
        )
    with pytest.raises(ValueError, match="images"):
        quine.predict(w, torch.tensor([0]), torch.zeros(1, 64))


# ---------------------------------------------------------------------------------------------
# The hand-written gradient and batches of seeds (one quine per row, each with its own seed)


def _autograd_loss(quine, w, targets, coordinates, images, labels, alpha, lam, tau):
    """The minibatch loss written out with torch's autograd (the reference for the hand pass)."""
    w = w.clone().requires_grad_()
    prediction, logits = quine.forward(w, coordinates, images)
    index = coordinates if coordinates.dim() == 2 else coordinates.expand(w.shape[0], -1)
    loss = alpha * (prediction - targets.gather(1, index)).square().sum(dim=1)
    if logits is not None:
        labels = labels if labels.dim() == 2 else labels.expand(w.shape[0], -1)
        cross = torch.nn.functional.cross_entropy(
            (logits / tau).transpose(1, 2), labels, reduction="none"
        )
        loss = loss + lam * cross.sum(dim=1)
    loss.sum().backward()
    return loss.detach(), w.grad


@pytest.mark.parametrize(
    "quine",
    [
        Quine.small(),
        Quine.small(selu_output=True),
        Quine.small(projection_seeds=(4, 1, 4)),
        Quine.small_auxiliary(),
        Quine.small_auxiliary(projection_seeds=(2, 0, 2)),
    ],
    ids=["vanilla", "selu-output", "row-seeds", "auxiliary", "auxiliary-row-seeds"],
)
@pytest.mark.parametrize("per_row", [False, True])
def test_hand_gradient_equals_autograd(quine, per_row):
    g = _generator(3)
    w = quine.init(3, generator=g, dtype=torch.float64)
    targets = quine.init(3, generator=g, dtype=torch.float64)
    shape = (3, 7) if per_row else (7,)
    coordinates = torch.randint(quine.num_weights, shape, generator=g)
    images = labels = lam = None
    if quine.auxiliary:
        images = torch.rand((*shape, quine.inputs), generator=g, dtype=torch.float64)
        labels = torch.randint(quine.classes, shape, generator=g)
        lam = torch.tensor([0.5, 0.01, 2.0], dtype=torch.float64)
    alpha = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    given = dict(replication=alpha, images=images, labels=labels, lam=lam, temperature=0.3)
    loss, grad = quine.loss_and_gradient(w, targets, coordinates, **given)
    expected_loss, expected_grad = _autograd_loss(
        quine, w, targets, coordinates, images, labels, alpha, lam, 0.3
    )
    assert torch.allclose(loss, expected_loss, rtol=1e-12, atol=0)
    assert torch.allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)
    only, none = quine.loss_and_gradient(w, targets, coordinates, **given, gradient=False)
    assert none is None and torch.allclose(only, expected_loss, rtol=1e-12, atol=0)


def test_row_projection_seeds_give_each_row_its_seeds_projection():
    seeds = (5, 2, 5)
    batched = Quine.small(projection_seeds=seeds)
    w = batched.init(3, generator=_generator(), dtype=torch.float64)
    together = batched.predict(w)
    for row, seed in enumerate(seeds):
        alone = Quine.small(projection_seed=seed).predict(w[row : row + 1])
        assert torch.allclose(together[row : row + 1], alone, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="one projection seed per row"):
        batched.predict(w[:2])
    with pytest.raises(ValueError, match="projection_seeds"):
        Quine.small(projection_seeds=())


@pytest.mark.parametrize(
    ("optimizers", "auxiliary"),
    [
        (["sgd", "adagrad", "rmsprop", "adam", "adamax"], False),
        (["hill_climb"] * 3, False),
        (["adamax"] * 3, True),
    ],
    ids=["gradient", "hill-climb", "auxiliary"],
)
def test_row_k_of_a_batch_of_seeds_equals_seed_k_alone(optimizers, auxiliary):
    """Rows with their own projection seed, generator and optimiser train as if alone."""
    batch = len(optimizers)
    seeds = tuple(range(10, 10 + batch))
    make = Quine.small_auxiliary if auxiliary else Quine.small
    task = digits() if auxiliary else None
    extra = {"task": task, "lam": [0.01, 0.1, 0.01], "replication": [1.0, 1.0, 0.0]}
    extra = extra if auxiliary else {}
    w = make().init(batch, generator=_generator(), dtype=torch.float64)
    together = train_quine(
        make(projection_seeds=seeds),
        w,
        epochs=2,
        optimizer=optimizers,
        sigma=1e-3,
        generator=[_generator(s) for s in seeds],
        **extra,
    )
    for row, seed in enumerate(seeds):
        alone_extra = {k: [v[row]] if isinstance(v, list) else v for k, v in extra.items()}
        alone = train_quine(
            make(projection_seed=seed),
            w[row : row + 1],
            epochs=2,
            optimizer=optimizers[row],
            sigma=1e-3,
            generator=_generator(seed),
            **alone_extra,
        )
        assert torch.allclose(together.weights[row], alone.weights[0], rtol=1e-12, atol=1e-15)
        assert torch.allclose(together.series("rho")[:, row], alone.series("rho")[:, 0])
    if not auxiliary:  # the rows did train, and differently from each other
        assert not torch.equal(together.weights[0], together.weights[1])


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamax"])
def test_hand_optimisers_equal_torch_optim(name):
    from particles.quine_training import DEFAULT_LRS, Optimizer

    g = _generator(7)
    start = torch.randn(3, 50, generator=g, dtype=torch.float64)
    mine, reference = start.clone(), start.clone().requires_grad_()
    optimizer = Optimizer(name, mine)
    torch_class = {
        "sgd": torch.optim.SGD,
        "adagrad": torch.optim.Adagrad,
        "rmsprop": torch.optim.RMSprop,
        "adam": torch.optim.Adam,
        "adamax": torch.optim.Adamax,
    }[name]
    torch_optimizer = torch_class([reference], lr=DEFAULT_LRS[name])
    for _ in range(6):
        grad = torch.randn(3, 50, generator=g, dtype=torch.float64)
        reference.grad = grad.clone()
        optimizer.step(grad)  # may overwrite grad (its memory is scratch)
        torch_optimizer.step()
    assert torch.allclose(mine, reference.detach(), rtol=1e-12, atol=1e-15)
    assert not torch.allclose(mine, start)
