"""Speed of the batched particle kernel against a plain per-particle torch loop.

For Weightwise particles (default architecture 4 → 2 → 2 → 1, float32) this prints, for each
population size, how many particles per second three operations handle:

* self-training (``particles.self_train``, full_batch, lr 0.04), in particle-steps per second;
* self-application (``particles.self_apply``, one application N ◁ N), in particles per second;
* classification (``particles.classify``, SPEC D13), in particles per second;

each beside a plain loop that handles one particle at a time with its own ``torch.nn`` module
(``nn.Sequential`` of bias-free ``nn.Linear`` 4→2→2→1) and, for training, its own
``torch.optim.SGD``, the samples rebuilt from the particle's own weights at every step (SPEC D6,
D7, D12). The loop is slow, so it runs on a subset (``--loop-particles``, ``--loop-steps``) and
its per-particle rate is reported; the loop's cost per particle does not depend on the population.

    python benchmarks/self_train.py                     # 100, 1,000 and 10,000 particles
    python benchmarks/self_train.py --threads 1         # torch intra-op threads
    python benchmarks/self_train.py --quick             # a few seconds (CI smoke)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import particles  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from particles import Status, Weightwise, fused  # noqa: E402

LR = 0.04
EPS = 1e-5


# --------------------------------------------------------------------------------------------
# The plain per-particle loop (one nn.Module, one optimiser per particle)


def make_module(row: torch.Tensor) -> nn.Sequential:
    """nn.Sequential of bias-free Linear 4→2→2→1 holding one particle's weights (SPEC D1)."""
    module = nn.Sequential(
        nn.Linear(4, 2, bias=False), nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    ).to(device=row.device, dtype=row.dtype)
    with torch.no_grad():
        offset = 0
        for layer in module:
            size = layer.weight.numel()
            layer.weight.copy_(row[offset : offset + size].view_as(layer.weight))
            offset += size
    return module


def flat_weights(module: nn.Sequential) -> torch.Tensor:
    """The particle's flat weight vector, each matrix row-major (SPEC D1): [14]."""
    return torch.cat([layer.weight.detach().flatten() for layer in module])


def own_samples(module: nn.Sequential, positions: torch.Tensor):
    """Weightwise samples of the particle's current weights: x [14, 4], y [14, 1] (SPEC D6, D7)."""
    m = flat_weights(module)
    return torch.cat([m.unsqueeze(1), positions], dim=1), m.unsqueeze(1)


def apply_to(module: nn.Sequential, target: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(N ◁ M)_i = f_N(x_i(M)) for a flat target M: [14]."""
    with torch.no_grad():
        return module(torch.cat([target.unsqueeze(1), positions], dim=1)).squeeze(1)


def make_loop(rows: torch.Tensor) -> list[tuple[nn.Sequential, torch.optim.SGD]]:
    """One module and one plain SGD optimiser per particle."""
    out = []
    for row in rows:
        module = make_module(row)
        out.append((module, torch.optim.SGD(module.parameters(), lr=LR)))
    return out


def loop_self_train(loop, positions: torch.Tensor, steps: int) -> None:
    """Per-particle full_batch self-training, samples rebuilt from the own weights every step."""
    for module, optimiser in loop:
        for _ in range(steps):
            x, y = own_samples(module, positions)
            optimiser.zero_grad()
            nn.functional.mse_loss(module(x), y).backward()
            optimiser.step()


def loop_self_apply(loop, positions: torch.Tensor) -> torch.Tensor:
    """Per-particle self-application N ◁ N: [k, 14]."""
    return torch.stack([apply_to(module, flat_weights(module), positions) for module, _ in loop])


def loop_classify(loop, positions: torch.Tensor) -> list[Status]:
    """Per-particle classes in SPEC D13 order."""
    out = []
    for module, _ in loop:
        row = flat_weights(module)
        once = apply_to(module, row, positions)
        twice = apply_to(module, once, positions)
        if not torch.isfinite(row).all():
            status = Status.DIVERGENT
        elif row.abs().max() <= EPS:
            status = Status.ZERO
        elif torch.isfinite(once).all() and (once - row).abs().max() <= EPS:
            status = Status.FIXPOINT
        elif torch.isfinite(twice).all() and (twice - row).abs().max() <= EPS:
            status = Status.SECOND_ORDER
        else:
            status = Status.OTHER
        out.append(status)
    return out


# --------------------------------------------------------------------------------------------
# Timing


def median_time(run: Callable[[], object], rounds: int, min_seconds: float) -> tuple[float, float]:
    """Median (wall, process CPU) time of one call of ``run`` over ``rounds`` rounds of at least
    ``min_seconds`` wall time each; CPU time counts every thread of the process.

    The kernel and the loop are timed alike: the same number of rounds, the median of them.
    """
    run()  # warm-up: compilation, caches, allocator, lazy initialisation
    times, cpu_times = [], []
    for _ in range(rounds):
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            run()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        times.append(elapsed / calls)
        cpu_times.append((time.process_time() - cpu_start) / calls)
    return statistics.median(times), statistics.median(cpu_times)


def human(rate: float) -> str:
    """1234567 -> '1.23M'."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= factor:
            return f"{rate / factor:.3g}{suffix}"
    return f"{rate:.3g}"


def measure(n: int, args: argparse.Namespace, architecture: Weightwise) -> dict[str, float]:
    """Particles (or particle-steps) per second of the batched kernel and of the loop."""
    device, dtype = torch.device(args.device), torch.float32
    generator = torch.Generator(device=device).manual_seed(args.seed + n)
    w = architecture.init(n, generator=generator, device=device, dtype=dtype)
    positions = particles.position_features(architecture, architecture.encoding, device, dtype)
    subset = w[: min(n, args.loop_particles)]
    k = subset.shape[0]
    loop = make_loop(subset)  # built once, outside the timed region, like the population
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    cpu = {}

    def timed(run: Callable[[], object], key: str) -> float:
        def synced() -> None:
            run()
            sync()

        wall, cpu[key] = median_time(synced, args.rounds, args.min_seconds)
        return wall

    rates = {}
    seconds = timed(lambda: particles.self_train(architecture, w, steps=args.steps, lr=LR), "train")
    rates["train"] = n * args.steps / seconds
    seconds = timed(lambda: loop_self_train(loop, positions, args.loop_steps), "train_loop")
    rates["train_loop"] = k * args.loop_steps / seconds
    rates["apply"] = n / timed(lambda: particles.self_apply(architecture, w), "apply")
    rates["apply_loop"] = k / timed(lambda: loop_self_apply(loop, positions), "apply_loop")
    rates["classify"] = n / timed(lambda: particles.classify(architecture, w, eps=EPS), "classify")
    rates["classify_loop"] = k / timed(lambda: loop_classify(loop, positions), "classify_loop")
    rates["loop_particles"] = k
    for key in ("train", "apply", "classify"):
        rates[f"{key}_cpu"] = cpu[key]
    return rates


def agreement(args: argparse.Namespace, architecture: Weightwise) -> tuple[float, bool, bool]:
    """The kernel and the loop on the same particles: (max |Δw| after training, apply, classify)."""
    device, dtype = torch.device(args.device), torch.float32
    generator = torch.Generator(device=device).manual_seed(args.seed)
    w = architecture.init(min(64, args.loop_particles), generator=generator, device=device)
    positions = particles.position_features(architecture, architecture.encoding, device, dtype)
    applied = torch.allclose(
        particles.self_apply(architecture, w), loop_self_apply(make_loop(w), positions), atol=1e-6
    )
    kernel_classes = particles.classify(architecture, w, eps=EPS).tolist()
    classified = kernel_classes == [int(s) for s in loop_classify(make_loop(w), positions)]
    trained = particles.self_train(architecture, w, steps=args.loop_steps, lr=LR).weights
    loop = make_loop(w)
    loop_self_train(loop, positions, args.loop_steps)
    gap = (trained - torch.stack([flat_weights(m) for m, _ in loop])).abs().max().item()
    return gap, applied, classified


# --------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[100, 10_000, 1_000_000],
        help="comma-separated population sizes (default 100,10000,1000000)",
    )
    parser.add_argument("--steps", type=int, default=100, help="steps per self_train call")
    parser.add_argument("--loop-particles", type=int, default=200, help="particles in the loop")
    parser.add_argument("--loop-steps", type=int, default=5, help="training steps in the loop")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--min-seconds", type=float, default=0.2, help="minimum time per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median) per rate")
    parser.add_argument(
        "--eager", action="store_true", help="the eager torch path instead of the fused kernels"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for a CI smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = [100, 1000], 5
        args.loop_particles, args.loop_steps, args.min_seconds, args.rounds = 20, 2, 0.02, 3
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.eager:
        fused.enabled = False
    architecture = Weightwise()
    path = "eager torch" if args.eager else fused.describe(torch.device(args.device))
    print(f"machine: {describe(args.device)}")
    print(
        f"Weightwise {architecture.widths}, float32, full_batch lr {LR}, device {args.device}, "
        f"kernel path: {path}; median of {args.rounds} rounds of >= {args.min_seconds} s each"
    )
    print(
        f"batched: particles.self_train ({args.steps} steps per call), self_apply, classify; "
        f"loop: one nn.Sequential + SGD per particle on min(n, {args.loop_particles}) particles "
        f"({args.loop_steps} training steps), rate per particle"
    )
    header = ["particles"]
    for name in ("self-train steps/s", "self-apply /s", "classify /s"):
        header += [name, "loop", "ratio"]
    rows, cpu_lines = [], []
    for n in args.sizes:
        rates = measure(n, args, architecture)
        cpu_lines.append(
            f"  {n:,}: self_train {rates['train_cpu'] * 1e6:,.0f} us, "
            f"self_apply {rates['apply_cpu'] * 1e6:,.0f} us, "
            f"classify {rates['classify_cpu'] * 1e6:,.0f} us"
        )
        row = [f"{n:,}"]
        for key in ("train", "apply", "classify"):
            batched, loop = rates[key], rates[f"{key}_loop"]
            row += [human(batched), human(loop), f"{batched / loop:,.0f}x"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.rjust(width) for h, width in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(width) for c, width in zip(row, widths, strict=True)))
    print("process CPU time per batched call (median, all threads):")
    print("\n".join(cpu_lines))
    gap, applied, classified = agreement(args, architecture)
    print(
        f"check on {min(64, args.loop_particles)} particles, kernel vs loop: max |Δw| after "
        f"{args.loop_steps} steps {gap:.1e}; self-apply equal: {applied}; "
        f"classes equal: {classified}"
    )


if __name__ == "__main__":
    main()
