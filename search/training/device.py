"""Devices: the name a user gives, the GPU each worker gets, and memory handed back."""

from __future__ import annotations

import gc
import re

import torch

from search.errors import UsageError

# What --device accepts. torch.device takes more ("meta", "mps", "cuda:0 "), none of which a
# search can train on here.
_DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device; CUDA only where it is present."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but CUDA is not available here")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"device {name!r} asked for, but this machine has "
                         f"{torch.cuda.device_count()} GPU(s): cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}")
    return device


def worker_device(name: str, worker: int) -> str:
    """Worker i gets GPU i (modulo the GPUs present) when the device is auto or bare cuda."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cuda":
        return name  # cpu, or an explicit cuda:N that every worker shares
    return f"cuda:{worker % max(1, torch.cuda.device_count())}"


def free_device_memory(device: torch.device) -> None:
    # A trial's model, optimizer state and activations die with it; hand the cached blocks
    # back so the next trial (maybe a wider net) does not hit a fragmented allocator. The CPU
    # allocator returns memory by itself, and a full gc there costs ~0.1 s per trial.
    if device.type != "cuda":
        return
    gc.collect()
    torch.cuda.empty_cache()
