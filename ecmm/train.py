"""A small, generic training loop: ``fit`` / ``train_one_epoch`` / ``evaluate`` / ``predict``.

The loss contract keeps the loop generic: a loss function takes the model and one batch (already
moved to the device) and returns a scalar tensor::

    def loss_fn(model: nn.Module, batch) -> torch.Tensor: ...

:func:`classification_loss` is the default (batch = ``(inputs, labels)``, cross-entropy on
``model(inputs)``); a contrastive loss for CLIP is written the same way with its own batch.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ecmm.device import get_device

LossFunction = Callable[[nn.Module, Any], torch.Tensor]
Callback = Callable[[int, nn.Module, dict], "Mapping[str, float] | None"]


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tuple / list / dict batch to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def classification_loss(model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``model(inputs)`` against ``labels``.

    Args:
        model: maps inputs to logits (B, K).
        batch: ``(inputs, labels)`` with labels (B,) int64.

    Returns:
        Scalar loss tensor.
    """
    inputs, labels = batch[0], batch[1]
    return F.cross_entropy(model(inputs), labels)


def autocast_context(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when ``amp`` is set; a no-op context otherwise (CPU, MPS)."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(
    model: nn.Module,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """AdamW over ``param_groups`` (each may carry its own ``lr``) or over trainable parameters.

    Args:
        model: the model; used when ``param_groups`` is None (only ``requires_grad`` parameters).
        param_groups: e.g. ``[{"params": f.parameters(), "lr": 1e-4}, {"params": g.parameters()}]``.
        learning_rate: default learning rate.
        weight_decay: default weight decay.

    Returns:
        A ``torch.optim.AdamW``.
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


def train_one_epoch(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: LossFunction = classification_loss,
    device: str | torch.device | None = None,
    amp: bool = False,
    scheduler: Any = None,
    progress: tqdm | None = None,
) -> list[float]:
    """Run one pass over ``train_loader`` with one optimizer step per batch.

    Args:
        model: the model (put in train mode here).
        train_loader: iterable of batches (any structure ``loss_fn`` understands).
        optimizer: the optimizer.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor`` (see module docstring).
        device: where to run; None picks the best available.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        scheduler: optional learning-rate scheduler, stepped after every batch.
        progress: optional tqdm bar advanced once per batch.

    Returns:
        The loss of every step, as floats.
    """
    device = get_device(device)
    model.train()
    losses: list[float] = []
    for batch in train_loader:
        batch = move_to_device(batch, device)
        with autocast_context(device, amp):
            loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise ValueError(f"Loss became {loss.item()}: lower the learning rate.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    return losses


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: LossFunction = classification_loss,
    device: str | torch.device | None = None,
) -> float:
    """Mean of ``loss_fn`` over ``loader`` in eval mode (weighted by batch size when known)."""
    device = get_device(device)
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = move_to_device(batch, device)
        size = len(batch[0]) if isinstance(batch, (list, tuple)) else 1
        total += float(loss_fn(model, batch)) * size
        count += size
    if count == 0:
        raise ValueError("The evaluation loader is empty: pass at least one batch.")
    return total / count


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable, *, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of ``model(inputs)`` over a loader of ``(inputs, labels)`` batches, in eval mode.

    Returns:
        (outputs (N, K) on CPU, labels (N,) on CPU).

    Shapes:
        outputs: (N, K) — logits for a classifier, features for a backbone.
    """
    device = get_device(device)
    model.eval()
    outputs, labels = [], []
    for batch in loader:
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        outputs.append(model(inputs.to(device)).float().cpu())
        if isinstance(batch, (list, tuple)) and len(batch) > 1:
            labels.append(batch[1].cpu())
    if not outputs:
        raise ValueError("The loader is empty: pass at least one batch.")
    return torch.cat(outputs), torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    loss_fn: LossFunction = classification_loss,
    val_loader: Iterable | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    scheduler: Any = None,
    callback: Callback | None = None,
    progress: bool = True,
    description: str = "train",
) -> dict[str, list[float]]:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return a history dict.

    Loss contract: ``loss_fn(model, batch) -> scalar tensor``; the batch arrives already on the
    device. The default is :func:`classification_loss` for ``(inputs, labels)`` batches.

    Args:
        model: the model; moved to ``device``.
        train_loader: iterable of batches; re-iterated every epoch.
        epochs: number of passes (≥ 1).
        optimizer: a ready optimizer; if None, AdamW is built from ``param_groups`` (or from the
            trainable parameters) with ``learning_rate`` / ``weight_decay``.
        param_groups: parameter groups with their own ``lr`` (e.g. lower for ``f`` than ``g``).
        learning_rate: default learning rate when building the optimizer.
        weight_decay: default weight decay when building the optimizer.
        loss_fn: see the loss contract.
        val_loader: if given, ``val_loss`` (same ``loss_fn``) is recorded after every epoch.
        device: where to train; None picks the best available.
        amp: bfloat16 autocast on CUDA; a no-op on CPU.
        scheduler: optional scheduler stepped after every batch.
        callback: ``callback(epoch, model, history) -> dict | None`` after every epoch; returned
            numbers are appended to ``history`` under their keys (e.g. ``val_accuracy``).
        progress: show a tqdm progress bar (one tick per batch).
        description: label of the progress bar.

    Returns:
        History: ``epoch``, ``train_loss`` (mean per epoch), ``step_loss`` (every step),
        ``seconds`` (cumulative wall time), ``val_loss`` when ``val_loader`` is given, plus the
        callback's keys.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    device = get_device(device)
    model.to(device)
    if optimizer is None:
        optimizer = make_optimizer(model, param_groups, learning_rate, weight_decay)
    try:
        steps_per_epoch: int | None = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total = steps_per_epoch * epochs if steps_per_epoch is not None else None
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "step_loss": [], "seconds": []}
    start = time.perf_counter()
    with tqdm(total=total, desc=description, disable=not progress, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            losses = train_one_epoch(model, train_loader, optimizer, loss_fn=loss_fn, device=device,
                                     amp=amp, scheduler=scheduler, progress=bar)
            history["epoch"].append(epoch)
            history["train_loss"].append(sum(losses) / max(len(losses), 1))
            history["step_loss"].extend(losses)
            if val_loader is not None:
                history.setdefault("val_loss", []).append(
                    evaluate(model, val_loader, loss_fn=loss_fn, device=device))
            if callback is not None:
                for key, value in (callback(epoch, model, history) or {}).items():
                    history.setdefault(key, []).append(float(value))
            history["seconds"].append(time.perf_counter() - start)
    model.eval()
    return history


def tensor_loader(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
                  shuffle: bool = True, seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over in-memory ``(inputs, labels)`` with a seeded shuffle.

    Shapes:
        inputs: (N, ...); labels: (N,).
    """
    if len(inputs) != len(labels):
        raise ValueError(f"inputs and labels differ in length: {len(inputs)} vs {len(labels)}.")
    dataset = torch.utils.data.TensorDataset(inputs, labels)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator)


def sample_per_class(labels: Any, shots: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of ``shots`` random examples of every class (all of them when ``shots`` is None).

    Args:
        labels: (N,) integer class ids.
        shots: examples per class; classes with fewer keep all of theirs; None keeps everything.
        seed: seeds the choice.

    Returns:
        Sorted int64 indices into ``labels``.
    """
    labels = torch.as_tensor(labels)
    if shots is None:
        return torch.arange(len(labels))
    if shots < 1:
        raise ValueError(f"shots must be at least 1 (or None for all), got {shots}.")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in torch.unique(labels):
        members = torch.nonzero(labels == k).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:shots]])
    return torch.sort(torch.cat(chosen)).values


def train_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int = 300,
    learning_rate: float = 0.01, weight_decay: float = 1e-4, seed: int = 0,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Feature-based transfer: fit a softmax head on frozen features (full-batch AdamW).

    Features are standardised inside the returned head (mean / std of the training features),
    so one learning rate suits every backbone.

    Args:
        features: (N, D) frozen features ``z = f(x)``.
        labels: (N,) class ids in ``0..num_classes-1``.
        num_classes: K.
        steps: full-batch optimizer steps.
        learning_rate, weight_decay: AdamW settings.
        seed: seeds the head's initialisation.
        device: where to train; None picks the best available.

    Returns:
        A module mapping features (B, D) to logits (B, K), in eval mode on CPU.
    """
    from ecmm.models.heads import SoftmaxHead

    device = get_device(device)
    torch.manual_seed(seed)
    features, labels = features.float().to(device), torch.as_tensor(labels).to(device)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    head = nn.Sequential(_Standardise(mean, std), SoftmaxHead(features.shape[1], num_classes))
    head.to(device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(head(features), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head.cpu().eval()


class _Standardise(nn.Module):
    """(z - mean) / std with fixed statistics (stored as buffers)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, D)
        return (z - self.mean) / self.std


def train_classifier(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, epochs: int,
    param_groups: Sequence[Mapping[str, Any]] | None = None, learning_rate: float = 1e-3,
    batch_size: int = 64, seed: int = 0, eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device | None = None, progress: bool = True, description: str = "train",
) -> dict[str, list[float]]:
    """Train a classifier on in-memory tensors with a cosine schedule; one call per method.

    Args:
        model: maps inputs (B, ...) to logits (B, K); its frozen parameters stay frozen.
        inputs, labels: training tensors (N, ...) and (N,).
        epochs: passes over the data.
        param_groups: optional groups with their own ``lr`` (e.g. lower for the backbone).
        learning_rate: default (peak) learning rate.
        batch_size: examples per step.
        seed: seeds the shuffling.
        eval_data: optional ``(inputs, labels)``; ``eval_accuracy`` is recorded every epoch.
        device: where to train; None picks the best available.
        progress: show a progress bar.
        description: progress bar label.

    Returns:
        The :func:`fit` history (plus ``eval_accuracy`` when ``eval_data`` is given).
    """
    device = get_device(device)
    loader = tensor_loader(inputs, labels, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = make_optimizer(model, param_groups, learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    callback = None
    if eval_data is not None:
        eval_loader = tensor_loader(*eval_data, batch_size=256, shuffle=False)

        def callback(epoch: int, model: nn.Module, history: dict) -> dict[str, float]:
            logits, truth = predict(model, eval_loader, device=device)
            return {"eval_accuracy": float((logits.argmax(-1) == truth).float().mean())}

    return fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
               device=device, callback=callback, progress=progress, description=description)
