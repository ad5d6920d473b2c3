"""The kit's one training loop: ``fit`` (plus ``evaluate`` / ``predict`` and small helpers).

Every trainer of the kit is a loss function and data handed to :func:`fit`.  The loss contract
keeps the loop generic: a loss function takes the model and one batch (already moved to the
device) and returns a scalar tensor::

    def loss_fn(model: nn.Module, batch) -> torch.Tensor: ...

:func:`classification_loss` is the default (batch = ``(inputs, labels)``); :func:`clip_step` is
the contrastive loss of one (images, tokens) batch for any CLIP-like model, written once.
:func:`fit` adds what every trainer needs: epochs or a number of steps, AdamW over parameter
groups, a per-step schedule (:func:`warmup_cosine`), mixed precision (``torch.autocast``),
gradient accumulation, gradient clipping, a progress bar that stays quiet in logs, and a history.
The optimiser, schedule and mixed-precision parts live in :mod:`ecmm.optimisation` (importable here too).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ecmm.device import get_device
from ecmm.losses import clip_loss
from ecmm.optimisation import autocast_context, make_optimizer, warmup_cosine, warmup_cosine_scheduler
from ecmm.progress import progress_bar

__all__ = ["fit", "evaluate", "predict", "classification_loss", "clip_step", "warmup_cosine",
           "warmup_cosine_scheduler", "autocast_context", "make_optimizer", "move_to_device",
           "tensor_loader", "sample_per_class", "train_linear_probe", "train_classifier"]

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
    """Mean cross-entropy of ``model(inputs)`` (B, K) against ``labels`` (B,) int64."""
    inputs, labels = batch[0], batch[1]
    return F.cross_entropy(model(inputs), labels)


def clip_step(model: nn.Module, batch: Any,
              gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The CLIP loss of one batch of (image, caption) pairs, for any CLIP-like model.

    ``model.encode_image(images)`` and ``model.encode_text(tokens)`` give L2-normalised
    embeddings, ``model.scale()`` the clamped ``exp(logit_scale)``; the loss is
    :func:`ecmm.losses.clip_loss` (rows sharing a caption id are all positives).

    Args:
        model: anything with ``encode_image``, ``encode_text`` and ``scale`` (or a
            DistributedDataParallel around a module whose forward returns the three).
        batch: ``{"images", "tokens", "caption_ids"?}`` or a tuple ``(images, tokens[, caption_ids])``.
        gather: under data parallelism, concatenates every process's embeddings with gradients
            (:func:`ecmm.distributed.gather_with_grad`); ``caption_ids`` then describe the gathered
            (global) batch.

    Returns:
        Scalar loss.

    Shapes:
        images ``(b, ...)`` and tokens ``(b, ...)`` per process; caption_ids ``(B,)`` with
        ``B = b`` (or ``world_size * b`` with ``gather``).
    """
    if isinstance(batch, Mapping):
        images, tokens, caption_ids = batch["images"], batch["tokens"], batch.get("caption_ids")
    else:
        images, tokens, caption_ids = batch[0], batch[1], (batch[2] if len(batch) > 2 else None)
    if isinstance(model, nn.parallel.DistributedDataParallel):  # its forward is what syncs gradients
        image_emb, text_emb, scale = model(images, tokens)  # (b, E), (b, E), ()
    else:
        image_emb, text_emb, scale = model.encode_image(images), model.encode_text(tokens), model.scale()
    if gather is not None:
        image_emb, text_emb = gather(image_emb), gather(text_emb)  # (B, E) each
    return clip_loss(image_emb.float(), text_emb.float(), scale.float(), caption_ids=caption_ids)


def _batches(loader: Iterable, epochs: int | None, steps: int | None,
             accumulation: int) -> Iterator[tuple[int, list]]:
    """Yield ``(epoch, micro-batches of one optimiser step)``; ``steps`` re-iterates the loader."""
    epoch, done = 0, 0
    while (epochs is not None and epoch < epochs) or (steps is not None and done < steps):
        epoch += 1
        group: list = []
        seen = 0
        for batch in loader:
            seen += 1
            group.append(batch)
            if len(group) == accumulation:
                yield epoch, group
                group, done = [], done + 1
                if steps is not None and done == steps:
                    return
        if seen == 0:
            raise ValueError("The training loader gave no batch: pass a loader that can be re-iterated.")
        if group:  # an epoch's last, shorter accumulation group still makes a step
            yield epoch, group
            done += 1


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    loss_fn: LossFunction = classification_loss,
    epochs: int | None = None,
    steps: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    param_groups: Sequence[Mapping[str, Any]] | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    scheduler: Any = None,
    warmup_steps: int | None = None,
    amp: str | None = None,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    val_loader: Iterable | None = None,
    callback: Callback | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    description: str = "train",
) -> dict[str, list[float]]:
    """Train ``model`` with ``loss_fn`` over ``train_loader``; return a history dict.

    Loss contract: ``loss_fn(model, batch) -> scalar tensor``; the batch arrives on the device.

    Args:
        model: the model; moved to ``device``, in train mode during the loop, eval mode after.
        train_loader: iterable of batches, re-iterated every epoch (or until ``steps``).
        loss_fn: see the loss contract (default :func:`classification_loss`).
        epochs: passes over the loader; or
        steps: optimiser steps (exactly one of ``epochs`` / ``steps``).
        optimizer: a ready optimizer; if None, AdamW over ``param_groups`` (or the trainable
            parameters) with ``learning_rate`` / ``weight_decay``.
        param_groups: groups with their own ``lr`` (e.g. lower for the backbone than the head).
        learning_rate, weight_decay: defaults when building the optimizer.
        scheduler: a scheduler stepped after every optimiser step; or
        warmup_steps: build :func:`warmup_cosine_scheduler` over all steps with this warm-up.
        amp: ``None`` (full precision), ``"bf16"`` (CUDA or CPU) or ``"fp16"`` (CUDA, with a
            gradient scaler): ``torch.autocast`` around the loss.
        accumulation_steps: micro-batches per optimiser step (their gradients average: the step
            equals one on the concatenated batch for mean losses).
        max_grad_norm: clip the gradients' global norm to this before every step.
        val_loader: if given, ``val_loss`` (same ``loss_fn``) is recorded after every epoch.
        callback: ``callback(epoch, model, history) -> dict | None`` after every epoch; returned
            numbers are appended to ``history`` under their keys.
        device: where to train; None picks the best available.
        progress: show a progress bar (one tick per optimiser step; quiet in logs).
        description: label of the progress bar.

    Returns:
        History: ``step_loss`` (every optimiser step), ``learning_rate`` (first group, every
        step), ``grad_norm`` (every step, when clipping), ``epoch``, ``train_loss`` (mean per
        epoch), ``seconds`` (cumulative per epoch), ``val_loss`` and the callback's keys.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("pass exactly one of epochs= or steps=")
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
        raise ValueError(f"epochs and steps must be at least 1; got epochs={epochs}, steps={steps}")
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be at least 1; got {accumulation_steps}")
    device = get_device(device)
    model.to(device)
    if optimizer is None:
        optimizer = make_optimizer(model, param_groups, learning_rate, weight_decay)
    try:
        per_epoch: int | None = math.ceil(len(train_loader) / accumulation_steps)  # type: ignore[arg-type]
    except TypeError:
        per_epoch = None
    total = steps if steps is not None else (per_epoch * epochs if per_epoch is not None else None)
    if scheduler is None and warmup_steps is not None:
        if total is None:
            raise ValueError("warmup_steps needs steps= or a loader with a length")
        scheduler = warmup_cosine_scheduler(optimizer, total, warmup_steps)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    history: dict[str, list[float]] = {"epoch": [], "train_loss": [], "step_loss": [], "learning_rate": [],
                                       "seconds": []}
    start, epoch_losses, current = time.perf_counter(), [], 1
    model.train()
    with progress_bar(total=total, desc=description, disable=not progress, leave=False) as bar:
        for epoch, group in _batches(train_loader, epochs, steps, accumulation_steps):
            if epoch != current:
                _end_epoch(history, current, epoch_losses, model, val_loader, loss_fn, device, callback, start)
                epoch_losses, current = [], epoch
                model.train()
            history["learning_rate"].append(float(optimizer.param_groups[0]["lr"]))
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for batch in group:
                with autocast_context(device, amp):
                    loss = loss_fn(model, move_to_device(batch, device)) / len(group)
                if not torch.isfinite(loss):
                    raise ValueError(f"Loss became {loss.item()}: lower the learning rate.")
                (scaler.scale(loss) if scaler is not None else loss).backward()
                step_loss += float(loss.detach())
            if scaler is not None:
                scaler.unscale_(optimizer)
            if max_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
                history.setdefault("grad_norm", []).append(float(norm))
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history["step_loss"].append(step_loss)
            epoch_losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}", refresh=False)
    _end_epoch(history, current, epoch_losses, model, val_loader, loss_fn, device, callback, start)
    model.eval()
    return history


def _end_epoch(history: dict, epoch: int, losses: list[float], model: nn.Module, val_loader: Iterable | None,
               loss_fn: LossFunction, device: torch.device, callback: Callback | None, start: float) -> None:
    """Record one epoch's summary (and validation / callback values) in ``history``."""
    history["epoch"].append(epoch)
    history["train_loss"].append(sum(losses) / max(len(losses), 1))
    if val_loader is not None:
        history.setdefault("val_loss", []).append(evaluate(model, val_loader, loss_fn=loss_fn, device=device))
    if callback is not None:
        for key, value in (callback(epoch, model, history) or {}).items():
            history.setdefault(key, []).append(float(value))
    history["seconds"].append(time.perf_counter() - start)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, loss_fn: LossFunction = classification_loss,
             device: str | torch.device | None = None) -> float:
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
def predict(model: nn.Module, loader: Iterable, *,
            device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of ``model(inputs)`` over a loader of ``(inputs, labels)`` batches, in eval mode.

    Returns:
        (outputs (N, K) on CPU, labels (N,) on CPU).
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


def tensor_loader(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
                  shuffle: bool = True, seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over in-memory ``(inputs (N, ...), labels (N,))`` with a seeded shuffle."""
    if len(inputs) != len(labels):
        raise ValueError(f"inputs and labels differ in length: {len(inputs)} vs {len(labels)}.")
    dataset = torch.utils.data.TensorDataset(inputs, labels)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator)


def sample_per_class(labels: Any, shots: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted int64 indices of ``shots`` random examples of every class of ``labels`` (N,).

    Classes with fewer keep all of theirs; ``shots=None`` keeps everything.
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


class Standardise(nn.Module):
    """``(z - mean) / std`` with fixed statistics (stored as buffers): ``(B, D) -> (B, D)``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def train_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, steps: int = 300,
    learning_rate: float = 0.01, weight_decay: float = 1e-4, seed: int = 0,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Feature-based transfer: fit a softmax head on frozen features (full-batch AdamW via :func:`fit`).

    Features are standardised inside the returned head, so one learning rate suits every backbone.

    Args:
        features: (N, D) frozen features ``z = f(x)``; labels: (N,) ids in ``0..num_classes-1``.
        num_classes: K; steps: full-batch optimizer steps; seed: seeds the head's initialisation.
        learning_rate, weight_decay, device: as in :func:`fit`.

    Returns:
        A module mapping features (B, D) to logits (B, K), in eval mode on CPU.
    """
    from ecmm.models.heads import SoftmaxHead

    torch.manual_seed(seed)
    features, labels = features.float(), torch.as_tensor(labels)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    head = nn.Sequential(Standardise(mean, std), SoftmaxHead(features.shape[1], num_classes))
    fit(head, [(features, labels)], steps=steps, learning_rate=learning_rate, weight_decay=weight_decay,
        device=device, progress=False)
    return head.cpu().eval()


def train_classifier(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, epochs: int,
    param_groups: Sequence[Mapping[str, Any]] | None = None, learning_rate: float = 1e-3,
    batch_size: int = 64, seed: int = 0, eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device | None = None, progress: bool = True, description: str = "train",
) -> dict[str, list[float]]:
    """Train a classifier on in-memory tensors with a cosine schedule (one :func:`fit` call).

    Args:
        model: maps inputs (B, ...) to logits (B, K); its frozen parameters stay frozen.
        inputs, labels: training tensors (N, ...) and (N,).
        epochs, param_groups, learning_rate (peak), device, progress, description: as in :func:`fit`.
        batch_size: examples per step; seed: seeds the shuffling.
        eval_data: optional ``(inputs, labels)``; ``eval_accuracy`` is recorded every epoch.

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
