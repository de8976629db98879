"""Soup benchmark: epochs per second, time outside the particle kernel, long runs, big soups.

Four measurements (issues "The soup", "Lineage analysis"; ``--device cuda`` runs the soups on a
GPU):

1. ``main``: a soup of 10,000 weightwise particles with the issue's rules, Attack(0.1),
   Learn(0.1), SelfTrain(10) and Respawn() per epoch (``--no-respawn`` leaves Respawn out),
   everything a run does switched on: genealogy, data collection (per-particle data too) and
   trajectories every epoch, Mesa agents born and removed by Respawn. Prints epochs per second
   and the share of time spent outside the particle kernel. The kernel calls (``self_train``,
   ``learn``, ``Architecture.apply``, ``classify``, ``fixpoint_error``, ``Architecture.init``)
   are wrapped with timers by this script only (synchronised on a GPU); the share is
   (total - kernel) / total. Target: <= 20 %.
   ``scale``: the same measurement at 100,000 and 1,000,000 particles (``--scale-particles``),
   a few epochs each (``--scale-epochs``, default 3, after one warm-up epoch).
2. ``long``: 1,000 particles for 1,000 epochs with SelfTrain(10). Target: under a minute.
3. ``huge``: 100,000 particles, trajectories off, a few epochs; prints the time per epoch and the
   peak resident memory (``resource.getrusage``) and GPU memory. Target: runs without
   exhausting memory.
4. ``lineage`` (only with ``--only lineage``: tens of minutes): 1,000,000 particles, Attack(0.1)
   and Respawn, 100 epochs, the genealogy and every float32 state streamed to a temporary run
   directory; prints the memory on top of the soup during the run and at its peak including
   the end of run. Target: < 2 GB.

The main line also reports, separately, the time of ``WeightBank`` row reads and writes (in
``particles`` but data movement, not math) and the genealogy's end-of-run work as a run
directory does it (``phylogeny.csv`` and the columnar event log written; networkx views are
built on demand, not at the end of a run). Times are given as wall time and as
process CPU time; on a busy machine the CPU figures are the steadier ones. Torch runs with the
caller's default threads (``--threads N`` to choose): each soup epoch sets its own CPU
environment (``chemistry.threads.soup_cpu``).

Usage::

    python benchmarks/soup.py                 # huge, main, long at full size
    python benchmarks/soup.py --quick         # seconds: a smoke run at small sizes
    python benchmarks/soup.py --only scale    # the share at 100k and 1M particles (minutes)
    python benchmarks/soup.py --only main --particles 1000000 --epochs 20 --device cuda
"""

from __future__ import annotations

import argparse
import atexit
import functools
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import chemistry.soup  # noqa: E402
import interactions.learn  # noqa: E402
import interactions.self_train  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from chemistry import Soup  # noqa: E402
from interactions import Attack, EventKind, Learn, Respawn, SelfTrain  # noqa: E402
from particles import architectures, fused  # noqa: E402
from particles.bank import WeightBank  # noqa: E402


class KernelTimer:
    """Accumulates the time spent inside particle-kernel calls (outermost calls only).

    Two clocks: wall time (``perf_counter``) and process CPU time (``process_time``, all
    threads), so that a busy machine can be told apart from a slow soup.
    """

    def __init__(self, device: str = "cpu") -> None:
        # On a GPU the kernels run asynchronously: synchronise around each call so that its
        # time is the kernel's, not the next host operation's.
        self.sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if self._depth:
                return function(*args, **kwargs)
            self._depth += 1
            if self.sync:
                self.sync()
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                if self.sync:
                    self.sync()
                self.wall += time.perf_counter() - wall
                self.cpu += time.process_time() - cpu
                self.calls += 1
                self._depth -= 1

        return timed


@contextmanager
def timed_kernel(timer: KernelTimer, bank_timer: KernelTimer | None = None):
    """Patch the kernel entry points that the soup and the rules call, for the duration.

    ``bank_timer`` (optional) times the ``WeightBank`` row reads and writes separately: they
    live in ``particles`` but are data movement, not math, so they are reported on their own.
    """
    targets = [
        (interactions.self_train, "self_train"),
        (interactions.learn, "learn"),
        (chemistry.soup, "classify_with_error"),
    ]
    classes = [architectures.Weightwise, architectures.Aggregating, architectures.Fourier]
    classes += [architectures.Recurrent, architectures.FeedForward]
    for cls in classes:
        for name in ("apply", "init"):
            if name in vars(cls):
                targets.append((cls, name))
    timers = [timer] * len(targets)
    if bank_timer is not None:
        banks = [(WeightBank, n) for n in ("read", "write", "allocate", "release")]
        targets += banks
        timers += [bank_timer] * len(banks)
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]
    try:
        for (owner, name, original), clock in zip(saved, timers, strict=True):
            setattr(owner, name, clock.wrap(original))
        yield timer
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def rules(respawn: bool) -> list:
    """Attack(0.1) + Learn(0.1) + SelfTrain(10), and Respawn when asked."""
    chosen = [Attack(0.1), Learn(0.1, 1), SelfTrain(10)]
    return [*chosen, Respawn()] if respawn else chosen


def bench_main(
    particles: int,
    epochs: int,
    seed: int,
    device: str = "cpu",
    respawn: bool = True,
    warm_up: int = 2,
) -> dict[str, float]:
    """The issue's soup with everything a run does on: genealogy, data, trajectories."""
    soup = Soup(rules(respawn), population=particles, rng=seed, device=device)
    soup.run_for(warm_up)  # compilation, caches, allocator
    timer, bank_timer = KernelTimer(device), KernelTimer(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    with timed_kernel(timer, bank_timer):
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        soup.run_for(epochs)
        sync()
        step_wall, step_cpu = time.perf_counter() - wall, time.process_time() - cpu
        graph_wall, graph_cpu = time.perf_counter(), time.process_time()
        end_of_run(soup)
        graph_wall, graph_cpu = time.perf_counter() - graph_wall, time.process_time() - graph_cpu
    rows = soup.datacollector.model_vars["epoch"]
    assert len(rows) == soup.epoch + 1, "data collection must run every epoch"
    return {
        "particles": particles,
        "epochs": epochs,
        "epochs_per_s": epochs / step_wall,
        "particle_epochs_per_s": particles * epochs / step_wall,
        "step_wall": step_wall,
        "step_cpu": step_cpu,
        "kernel_wall": timer.wall,
        "kernel_cpu": timer.cpu,
        "share_wall": (step_wall - timer.wall) / step_wall,
        "share_cpu": (step_cpu - timer.cpu) / step_cpu,
        "bank_cpu": bank_timer.cpu,
        "share_cpu_without_bank": (step_cpu - timer.cpu - bank_timer.cpu) / step_cpu,
        "graph_wall": graph_wall,
        "share_wall_with_graph": (step_wall + graph_wall - timer.wall) / (step_wall + graph_wall),
        "share_cpu_with_graph": (step_cpu + graph_cpu - timer.cpu) / (step_cpu + graph_cpu),
        "events": len(soup.genealogy_record),
        "respawned": respawns(soup),
    }


def respawns(soup: Soup) -> int:
    """Respawn events of the whole run (warm-up included)."""
    log = soup.genealogy_record.log
    return int((log.columns()["kind"] == log.kind_code(EventKind.RESPAWN)).sum())


def end_of_run(soup: Soup) -> None:
    """The genealogy's end-of-run work of a run directory: the columnar event log written out
    and ``phylogeny.csv`` (networkx views are built on demand, not at the end of a run)."""
    directory = Path(tempfile.mkdtemp(prefix="soup-bench-"))
    soup.genealogy.write_alife(directory / "phylogeny.csv")
    soup.genealogy.attach(directory / "events")
    _LEFT_OVER.append(directory)  # deleted at exit, outside the timed region


_LEFT_OVER: list[Path] = []
atexit.register(lambda: [shutil.rmtree(path, ignore_errors=True) for path in _LEFT_OVER])


def bench_long(particles: int, epochs: int, seed: int) -> dict[str, float]:
    """Many epochs of a mid-sized soup with SelfTrain(10) (trajectories and data on)."""
    soup = Soup([SelfTrain(10)], population=particles, rng=seed)
    start = time.perf_counter()
    soup.run_for(epochs)
    seconds = time.perf_counter() - start
    return {"particles": particles, "epochs": epochs, "total_s": seconds}


def bench_huge(
    particles: int, epochs: int, seed: int, device: str = "cpu", respawn: bool = True
) -> dict[str, float]:
    """A very large soup (trajectories off): time per epoch and peak memory."""
    before = peak_rss_mb()
    start = time.perf_counter()
    soup = Soup(rules(respawn), population=particles, rng=seed, record_every=0, device=device)
    built = time.perf_counter() - start
    soup.run_for(1)  # warm-up
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    soup.run_for(epochs)
    sync()
    seconds = time.perf_counter() - start
    graph_start = time.perf_counter()
    end_of_run(soup)
    edges = len(soup.genealogy_record)
    graph_seconds = time.perf_counter() - graph_start
    return {
        "particles": particles,
        "epochs": epochs,
        "build_s": built,
        "s_per_epoch": seconds / epochs,
        "graph_s": graph_seconds,
        "graph_edges": edges,
        "peak_rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else 0.0,
    }


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_now_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (``VmHWM``), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return peak_rss_mb()


def bench_lineage(particles: int, epochs: int, seed: int) -> dict[str, float]:
    """Genealogy and float32 trajectories streamed to a run directory: memory on top of the
    soup. Attack(0.1) and Respawn, classes every epoch, every state recorded every epoch."""
    soup = Soup([Attack(0.1), Respawn()], population=particles, rng=seed, record_every=1)
    directory = Path(tempfile.mkdtemp(prefix="soup-lineage-"))
    _LEFT_OVER.append(directory)
    soup.genealogy_record.attach(directory / "events")
    soup.trajectories.attach(directory / "trajectories")
    weights_mb = sum(bank.weights.nbytes for bank in soup.banks.values()) / 2**20
    baseline = current_rss_mb()
    reset = reset_peak_rss()
    highest = baseline
    start = time.perf_counter()
    for _ in range(epochs):
        soup.step()
        highest = max(highest, current_rss_mb())
    seconds = time.perf_counter() - start
    end = time.perf_counter()
    # What a run directory does at the end: the streamed log is flushed (attached already),
    # phylogeny.csv written.
    soup.genealogy.attach(directory / "events")
    soup.genealogy.write_alife(directory / "phylogeny.csv")
    soup.trajectories.flush()
    peak = peak_rss_now_mb() if reset else float("nan")
    on_disk = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20
    return {
        "particles": particles,
        "epochs": epochs,
        "s_per_epoch": seconds / epochs,
        "end_s": time.perf_counter() - end,
        "weights_mb": weights_mb,
        "baseline_mb": baseline,
        "highest_mb": highest,
        "peak_with_end_mb": peak,
        "events": len(soup.genealogy_record),
        "states": len(soup.trajectories),
        "disk_mb": on_disk,
    }


def print_share(part: str, r: dict[str, float], ruleset: str) -> None:
    """Print one soup measurement of ``bench_main``."""
    print(
        f"[{part}] {r['particles']:,} ww particles, {ruleset}, genealogy + data collection + "
        f"trajectories on, {r['epochs']} epochs ({r['respawned']:,} respawns in the run)"
    )
    print(
        f"  {r['epochs_per_s']:.2f} epochs/s ({r['particle_epochs_per_s']:,.0f} "
        f"particle-epochs/s); {1000 * r['step_wall'] / r['epochs']:.1f} ms/epoch wall, "
        f"{1000 * r['step_cpu'] / r['epochs']:.1f} ms/epoch CPU"
    )
    print(
        f"  outside-kernel share: {100 * r['share_wall']:.1f} % of wall time, "
        f"{100 * r['share_cpu']:.1f} % of CPU time (target <= 20 %)"
    )
    print(
        f"  of which WeightBank row reads/writes (particles/bank.py) "
        f"{1000 * r['bank_cpu'] / r['epochs']:.2f} ms/epoch CPU; share without them "
        f"{100 * r['share_cpu_without_bank']:.1f} % of CPU time"
    )
    print(
        f"  genealogy end-of-run work (event log written, phylogeny.csv; {r['events']:,} "
        f"events): {r['graph_wall']:.2f} s; share including it "
        f"{100 * r['share_wall_with_graph']:.1f} % wall, "
        f"{100 * r['share_cpu_with_graph']:.1f} % CPU"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    parser.add_argument(
        "--only", choices=["main", "scale", "long", "huge", "lineage"], action="append"
    )
    parser.add_argument("--particles", type=int, default=10_000, help="main: particles")
    parser.add_argument("--epochs", type=int, default=50, help="main: timed epochs")
    parser.add_argument("--long-particles", type=int, default=1_000)
    parser.add_argument("--long-epochs", type=int, default=1_000)
    parser.add_argument("--huge-particles", type=int, default=100_000)
    parser.add_argument("--huge-epochs", type=int, default=3)
    parser.add_argument("--lineage-particles", type=int, default=1_000_000)
    parser.add_argument("--lineage-epochs", type=int, default=100)
    parser.add_argument(
        "--scale-particles", type=int, nargs="+", default=[100_000, 1_000_000], help="scale: sizes"
    )
    parser.add_argument("--scale-epochs", type=int, default=3, help="scale: timed epochs each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device of the soups (default cpu)")
    parser.add_argument(
        "--respawn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Respawn() among the rules (default on, as in the issue's soup)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default 0: torch's own default)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.particles, args.epochs = 1_000, 5
        args.long_particles, args.long_epochs = 200, 50
        args.huge_particles, args.huge_epochs = 5_000, 2
        args.lineage_particles, args.lineage_epochs = 5_000, 3
        args.scale_particles, args.scale_epochs = [2_000, 5_000], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.only or ["huge", "main", "long"]
    print(f"machine: {describe(args.device)}")
    print(
        f"device {args.device}, kernel path: {fused.describe(torch.device(args.device))}, "
        f"seed {args.seed}"
    )
    ruleset = "Attack(0.1) + Learn(0.1) + SelfTrain(10)" + (" + Respawn" if args.respawn else "")

    # The big soup first, so that its peak memory is not the peak of an earlier part.
    if "huge" in parts:
        r = bench_huge(args.huge_particles, args.huge_epochs, args.seed, args.device, args.respawn)
        print(
            f"[huge] {r['particles']:,} ww particles, {ruleset}, "
            f"trajectories off, {r['epochs']} epochs"
        )
        print(
            f"  build {r['build_s']:.2f} s, {r['s_per_epoch']:.3f} s/epoch, genealogy end of "
            f"run {r['graph_s']:.2f} s ({r['graph_edges']:,} events)"
        )
        print(
            f"  peak RSS {r['peak_rss_mb']:.0f} MiB (before the soup: "
            f"{r['peak_rss_before_mb']:.0f} MiB); peak GPU memory {r['peak_gpu_mb']:.0f} MiB"
        )
    if "main" in parts:
        r = bench_main(args.particles, args.epochs, args.seed, args.device, args.respawn)
        print_share("main", r, ruleset)
    if "scale" in parts:
        for size in args.scale_particles:
            r = bench_main(size, args.scale_epochs, args.seed, args.device, args.respawn, 1)
            print_share("scale", r, ruleset)
    if "lineage" in parts:
        r = bench_lineage(args.lineage_particles, args.lineage_epochs, args.seed)
        print(
            f"[lineage] {r['particles']:,} ww particles, Attack(0.1) + Respawn, {r['epochs']} "
            f"epochs, genealogy + float32 trajectories streamed to disk: "
            f"{r['s_per_epoch']:.2f} s/epoch, end of run {r['end_s']:.1f} s"
        )
        print(
            f"  {r['events']:,} events, {r['states']:,} states, {r['disk_mb']:,.0f} MiB on disk; "
            f"RSS {r['baseline_mb']:,.0f} MiB after building the soup (weights "
            f"{r['weights_mb']:,.0f} MiB), highest {r['highest_mb']:,.0f} MiB during the run: "
            f"+{r['highest_mb'] - r['baseline_mb']:,.0f} MiB (target < 2 GB); peak including "
            f"the end of run {r['peak_with_end_mb']:,.0f} MiB: "
            f"+{r['peak_with_end_mb'] - r['baseline_mb']:,.0f} MiB"
        )
    if "long" in parts:
        r = bench_long(args.long_particles, args.long_epochs, args.seed)
        print(
            f"[long] {r['particles']} ww particles x {r['epochs']} epochs, SelfTrain(10), "
            f"trajectories + data on: {r['total_s']:.1f} s (target < 60 s at 1,000 x 1,000)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
