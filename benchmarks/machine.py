"""One line naming the machine a benchmark ran on (CPU model and cores, GPU), for its output."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: str) -> str:
    """'CPU <model>, N cores usable[, GPU <name>]; torch <version>, T intra-op threads'."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    text = f"CPU {cpu_name()}, {cores} cores usable"
    if torch.device(device).type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return f"{text}; torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s)"
