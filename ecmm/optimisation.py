"""What a training step needs beside its loss: the optimiser, the learning-rate schedule, mixed precision.

- :func:`make_optimizer`: AdamW over parameter groups (each with its own rate) or over the
  trainable parameters;
- :func:`warmup_cosine` / :func:`warmup_cosine_scheduler`: linear warm-up, then cosine decay to 0,
  as a multiplier of every group's rate, stepped once per optimiser step;
- :func:`autocast_context`: ``torch.autocast`` in bf16 (CPU or CUDA) or fp16 (CUDA), or a no-op.

:func:`ecmm.train.fit` puts them together (they stay importable from :mod:`ecmm.train`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["AMP_DTYPES", "make_optimizer", "warmup_cosine", "warmup_cosine_scheduler", "autocast_context"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_optimizer(
    model: nn.Module,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """AdamW over ``param_groups`` (each may carry its own ``lr``) or over trainable parameters.

    Args:
        model: used when ``param_groups`` is None (only its ``requires_grad`` parameters).
        param_groups: e.g. ``[{"params": f.parameters(), "lr": 1e-4}, {"params": g.parameters()}]``.
        learning_rate, weight_decay: defaults of every group.
    """
    if param_groups is None:
        groups: list[dict] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    else:
        groups = [{**group, "params": [p for p in group["params"] if p.requires_grad]}
                  for group in param_groups]
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ValueError("No trainable parameters: unfreeze part of the model or pass param_groups.")
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                            warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that multiplies every group's rate by :func:`warmup_cosine` (step it per step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))


def autocast_context(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in ``amp`` precision (``"bf16"`` / ``"fp16"``), or a no-op for None.

    bf16 runs on CUDA and CPU; fp16 only on CUDA (with a gradient scaler, see :func:`ecmm.train.fit`).
    """
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None, 'bf16' or 'fp16'; got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device; use amp='bf16' on the CPU")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])
