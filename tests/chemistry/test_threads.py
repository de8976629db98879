"""A soup epoch's CPU environment (chemistry.threads): one torch thread, subnormals flushed.

Both are set for the epoch only: the caller's torch thread count and subnormal mode are back
after it, whatever they were. The fused kernels' worker threads follow the caller's mode.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from chemistry.threads import flushed_subnormals, soup_cpu, subnormals_flushed, torch_threads
from interactions import Interaction
from particles import fused_cpu
from tests.soup_helpers import make_soup


@pytest.fixture
def caller_settings():
    """Restore the test process's thread count and subnormal mode, whatever a test did."""
    threads, flushed = torch.get_num_threads(), subnormals_flushed()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flushed)


class Probe(Interaction):
    """Records the CPU environment that a rule runs in."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bool]] = []

    def __call__(self, soup, participants=None):
        self.seen.append((torch.get_num_threads(), subnormals_flushed()))
        return []


def test_subnormal_probe_reads_the_mode(caller_settings):
    torch.set_flush_denormal(False)
    assert not subnormals_flushed()
    if torch.set_flush_denormal(True):  # x86 with SSE3: the mode can be set
        assert subnormals_flushed()


@pytest.mark.parametrize("flushed_before", [False, True])
def test_an_epoch_runs_in_its_own_environment_and_restores_the_callers(
    flushed_before, caller_settings
):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    torch.set_num_threads(2)
    torch.set_flush_denormal(flushed_before)
    probe = Probe()
    soup = make_soup([probe])
    soup.run_for(2)
    assert probe.seen == [(1, True), (1, True)]
    assert torch.get_num_threads() == 2
    assert subnormals_flushed() == flushed_before
    assert fused_cpu.flush_denormal is False


def test_soup_cpu_restores_after_an_error(caller_settings):
    torch.set_num_threads(2)
    torch.set_flush_denormal(False)
    with pytest.raises(RuntimeError), soup_cpu():
        raise RuntimeError("a rule failed")
    assert torch.get_num_threads() == 2 and not subnormals_flushed()


def test_kernel_workers_follow_the_callers_mode(monkeypatch, caller_settings):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    torch.set_flush_denormal(False)
    monkeypatch.setattr(fused_cpu, "TASK_WORK", 1)  # every block its own chunk, helpers woken
    monkeypatch.setattr(fused_cpu, "threads", lambda: 2)
    seen, threads = [], set()

    def record(start, stop):
        time.sleep(0.002)  # long enough that the helper thread takes chunks too
        seen.append(subnormals_flushed())
        threads.add(threading.get_ident())

    with flushed_subnormals():
        fused_cpu.run_chunks(record, 64 * fused_cpu.LANES, 1)
    assert len(seen) == 8 and all(seen)  # 4 chunks per thread
    assert len(threads) == 2
    seen.clear()
    fused_cpu.run_chunks(record, 64 * fused_cpu.LANES, 1)
    assert len(seen) == 8 and not any(seen)


def test_torch_threads_rejects_bad_counts():
    with pytest.raises(ValueError, match="threads=0"), torch_threads(0):
        pass
