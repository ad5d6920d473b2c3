"""One device resolver and one seed function, used by every public function."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import numpy as np
import torch


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Resolve a device: the argument if given, else ``ECMM_DEVICE``, else cuda, mps, cpu.

    Args:
        device: "cpu", "cuda", "cuda:1", "mps", a torch.device, or None to pick the best.

    Returns:
        A torch.device that exists on this machine.
    """
    from_environment = device is None and bool(os.environ.get("ECMM_DEVICE"))
    choice = device if device is not None else os.environ.get("ECMM_DEVICE") or None
    if choice is not None:
        resolved = parse_device(choice, "ECMM_DEVICE" if from_environment else "device")
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Device {choice!r} was asked for, but CUDA is not available: use 'cpu'.")
        if resolved.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"Device {choice!r} was asked for, but MPS is not available: use 'cpu'.")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_TYPES = ("cpu", "cuda", "mps")  # the device types the kit runs on


def parse_device(choice: str | torch.device, source: str = "device") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` (or a torch.device) -> torch.device.

    Raises:
        ValueError: one line naming the allowed values, for anything else (e.g. ``"tpu"``).
    """
    if isinstance(choice, torch.device):
        resolved = choice
    else:
        try:
            resolved = torch.device(str(choice).strip().lower())
        except (RuntimeError, ValueError, TypeError):
            resolved = None
    if resolved is None or resolved.type not in DEVICE_TYPES:
        raise ValueError(f"{source} {str(choice)!r} is not a device this kit runs on: use one of cpu, cuda, "
                         "cuda:N or mps")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy, and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def describe_device(device: str | torch.device | None = None) -> str:
    """A one-line human description of the resolved device, e.g. 'cpu (2 threads)'."""
    resolved = get_device(device)
    if resolved.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(resolved)})"
    if resolved.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return resolved.type


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch CPU thread, then restore the previous count.

    For tiny tensor ops on a busy CPU, thread synchronisation costs more than it saves.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
