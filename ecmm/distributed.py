"""Data-parallel CLIP fine-tuning: one process per device with DistributedDataParallel.

Run the fine-tuning of :mod:`ecmm.finetune` on ``N`` processes (CPU cores with gloo, or GPUs with
nccl)::

    torchrun --nproc_per_node=2 -m ecmm.distributed --steps 300 --batch-size 96

Every step draws one *global* batch of (photo, caption) pairs (the same seeded draw on every
rank); rank ``r`` embeds its shard of it (:func:`shard_positions`), the embeddings of all ranks
are all-gathered *with gradients* (:func:`all_gather_with_grad`), and every rank computes the
contrastive loss over the whole global batch.  So the negatives a photo competes with grow with
``N`` (CLIP's reason to gather: the loss sees the global batch, not ``B / N`` pairs), and the
loss and the update equal a single process's with the same global batch.  Batch-norm layers
keep their running statistics in this path (per-shard batch statistics would differ from the
global batch's; SyncBatchNorm needs GPUs).

Large scale (hub profile): open_clip's own trainer, ``open_clip_train.main`` (package
``open_clip_torch[training]``), streams webdataset shards -- tar files holding ``NNNN.jpg`` +
``NNNN.txt`` pairs -- and already does what this module shows (``--gather-with-grad``,
``--local-loss``, DDP, mixed precision, checkpoints).  A fine-tuning run of the hub model on a
shop's pairs, written as tar shards with captions, looks like::

    torchrun --nproc_per_node 8 -m open_clip_train.main \\
        --model ViT-B-32 --pretrained laion2b_s34b_b79k \\
        --train-data 'shards/{00000..00099}.tar' --train-num-samples 1000000 \\
        --dataset-type webdataset --batch-size 256 --lr 1e-5 --wd 0.1 --warmup 500 \\
        --epochs 5 --workers 8 --precision amp --local-loss --gather-with-grad \\
        --lock-image --lock-image-unlocked-groups 1 --report-to tensorboard

What changes against this module: data come from sharded tar files streamed by workers
(``--dataset-type webdataset``, brace-expanded ``--train-data``, ``--train-num-samples`` since a
stream has no length) instead of an array in memory; the per-device batch is ``--batch-size``
(global = it times the number of processes); ``--local-loss --gather-with-grad`` is this module's
gathering with the memory-saving local variant of the loss; ``--lock-image`` /
``--lock-text`` are the LiT choices; ``--precision amp`` and ``--grad-checkpointing`` fit
big towers on GPUs; multi-node runs add ``--nnodes``/``--rdzv-endpoint`` to torchrun (or SLURM).
See the open_clip README, section "Training CLIP" (github.com/mlfoundations/open_clip); its
maintainers note that ``--local-loss --gather-with-grad`` gives the same results as the global loss
and is what their large runs use (open_clip issue #894).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ecmm.device import get_device, seed_everything
from ecmm.finetune import FinetuneConfig, training_pairs
from ecmm.losses import clip_loss
from ecmm.pretraining.clip import cosine_schedule

_GATHER_GROUP: Any = None  # process group of the embedding all-gathers (None: the default group)

__all__ = ["DistributedContext", "init_distributed", "shutdown_distributed", "all_gather_with_grad",
           "shard_positions", "distributed_finetune", "main"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job."""

    rank: int  # global rank, 0 .. world_size - 1
    world_size: int  # number of processes
    local_rank: int  # rank on this machine (selects the GPU)
    device: torch.device  # this process's device
    backend: str | None  # "gloo", "nccl", or None when not distributed

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0


def init_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment (``RANK``, ``WORLD_SIZE``, ...).

    Without ``WORLD_SIZE`` (or with 1) nothing is initialised and a one-process context is returned.
    The backend is nccl when the device is a GPU, gloo otherwise.

    Args:
        device: None picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.

    Returns:
        The :class:`DistributedContext`.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() and not os.environ.get("ECMM_DEVICE") else None
    resolved = get_device(device)
    if world_size <= 1:
        return DistributedContext(0, 1, 0, resolved, None)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    global _GATHER_GROUP
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    _GATHER_GROUP = dist.new_group(backend=backend)  # its own communicator: never interleaves with DDP's
    return DistributedContext(rank, world_size, local_rank, resolved, backend)


def shutdown_distributed() -> None:
    """Leave the process group (no-op when there is none)."""
    global _GATHER_GROUP
    _GATHER_GROUP = None
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the incoming gradients over ranks and keeps the local slice."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous(), group=_GATHER_GROUP)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=_GATHER_GROUP)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` (rank order) so that gradients flow back to each rank.

    ``torch.distributed.all_gather`` alone returns tensors without history: the loss would
    not train the towers through the other ranks' embeddings.  Here the backward pass sums the
    gradient over ranks (each rank's loss touches every row) and returns this rank's rows.

    Args:
        tensor: ``(B_local, ...)``, the same shape on every rank.

    Returns:
        ``(world_size * B_local, ...)``; the tensor itself when not distributed.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def shard_positions(batch_size: int, rank: int, world_size: int) -> slice:
    """This rank's rows of a global batch (contiguous, equal shards, like a sharded sampler).

    Args:
        batch_size: global batch size ``B`` (must divide by ``world_size``).
        rank: this rank.
        world_size: number of ranks.

    Returns:
        ``slice(rank * B / N, (rank + 1) * B / N)``; concatenating every rank's slice in rank
        order gives the global batch back, which is the order :func:`all_gather_with_grad` returns.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size; got rank={rank}, world_size={world_size}")
    if batch_size % world_size:
        raise ValueError(f"the global batch size {batch_size} must divide by the number of processes "
                         f"{world_size}; pick a multiple of {world_size}")
    size = batch_size // world_size
    return slice(rank * size, (rank + 1) * size)


class _ShardStep(nn.Module):
    """The trainable part of one step, as a module DDP can wrap: local embeddings and the scale."""

    def __init__(self, model: nn.Module, tail: nn.Module) -> None:
        super().__init__()
        self.model, self.tail = model, tail

    def forward(self, image_inputs: torch.Tensor, text_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.tail(image_inputs).mean(dim=(2, 3))  # (b, num_features)
        image_emb = F.normalize(self.model.image_projection(features), dim=-1)  # (b, E)
        return image_emb, self.model.project_text(text_features), self.model.scale()  # (b, E), (b, E), ()


def _freeze_batch_norm(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()


def distributed_finetune(model: Any, preprocess: Any, catalog: pd.DataFrame, photos: np.ndarray,
                         config: FinetuneConfig = FinetuneConfig(), context: DistributedContext | None = None,
                         progress: bool = True) -> tuple[Any, dict[str, list[float]]]:
    """LiT fine-tuning of an offline CLIP model (``mode="lit"``), data-parallel over the process group.

    The recipe is :func:`ecmm.finetune.finetune`'s (same pairs, captions, optimiser groups,
    schedule); ``config.batch_size`` is the *global* batch, split evenly over the ranks.

    Args:
        model: an offline :class:`~ecmm.models.clip.ClipModel` (identical on every rank, e.g. seeded).
        preprocess: its image preprocessing.
        catalog: shop catalog; ``split == "train"`` rows are used.
        photos: uint8 ``(num_skus, photos_per_sku, H, W, 3)`` aligned with ``catalog``.
        config: the recipe (``mode`` must be ``"lit"``: MiniLM stays frozen, its features are cached).
        context: from :func:`init_distributed`; None = one process.
        progress: show a tqdm bar on rank 0.

    Returns:
        ``(model in eval mode, history)`` with ``step_loss`` (the global-batch loss), ``seconds``,
        ``images_per_second`` and ``world_size``.
    """
    from ecmm.finetune import _image_inputs, _tail_length, _text_inputs

    if config.mode != "lit":
        raise ValueError("the distributed path fine-tunes in mode='lit' (MiniLM locked); use finetune() for 'unlocked'")
    context = context or DistributedContext(0, 1, 0, get_device(None), None)
    part = shard_positions(config.batch_size, context.rank, context.world_size)
    device = context.device
    generator = torch.Generator().manual_seed(config.seed)
    model = model.to(device)
    start = time.perf_counter()
    rows = training_pairs(catalog, config.label_fraction, config.seed)
    per_sku, tail = photos.shape[1], _tail_length(model, config)
    images = _image_inputs(model, preprocess, photos[rows].reshape(-1, *photos.shape[2:]), tail, device)
    subset = catalog.iloc[rows]
    text_features = _text_inputs(model, list(subset["title"]) + list(subset["description"]), False, device)["features"]
    model.lock_text_tower().lock_image_tower()
    tail_blocks = list(model.backbone.blocks)[len(model.backbone.blocks) - tail:]
    for block in tail_blocks:
        block.requires_grad_(True)
    step_module = _ShardStep(model, nn.Sequential(*tail_blocks))
    groups = [{"params": [p for block in tail_blocks for p in block.parameters()], "lr": config.image_learning_rate},
              {"params": [*model.image_projection.parameters(), *model.text_projection.parameters(), model.logit_scale],
               "lr": config.learning_rate}]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    base_rates = [group["lr"] for group in optimizer.param_groups]
    model.train()
    _freeze_batch_norm(model)
    wrapped: nn.Module = step_module
    if context.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(step_module, device_ids=[device] if device.type == "cuda" else None)
    num_pairs = len(images)
    if num_pairs < config.batch_size:
        raise ValueError(f"only {num_pairs} training photos for a global batch of {config.batch_size}; "
                         "lower batch_size or raise label_fraction")
    history: dict[str, list[float]] = {"step_loss": []}
    train_start = time.perf_counter()
    for step in tqdm(range(config.steps), desc=f"DDP fine-tune x{context.world_size}",
                     disable=not (progress and context.is_main)):
        pair = torch.randperm(num_pairs, generator=generator)[:config.batch_size]  # global batch, same on all ranks
        sku = pair // per_sku  # (B,)
        caption = sku + len(rows) * torch.randint(2, (config.batch_size,), generator=generator)
        for group, base in zip(optimizer.param_groups, base_rates):
            group["lr"] = base * cosine_schedule(step, config.steps, config.warmup_steps)
        local_pair, local_caption = pair[part].to(device), caption[part].to(device)
        image_emb, text_emb, scale = wrapped(images[local_pair], text_features[local_caption])  # (b, E) each
        loss = clip_loss(all_gather_with_grad(image_emb), all_gather_with_grad(text_emb), scale,
                         caption_ids=sku.to(device))  # the global batch, in rank order = pair order
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history["step_loss"].append(loss.item())
    seconds = time.perf_counter() - train_start
    model.lock_text_tower().eval()
    history["seconds"] = [time.perf_counter() - start]
    history["images_per_second"] = [config.steps * config.batch_size / max(seconds, 1e-9)]
    history["world_size"] = [float(context.world_size)]
    return model, history


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m ecmm.distributed [--steps S] [--batch-size B] ...``."""
    parser = argparse.ArgumentParser(prog="python -m ecmm.distributed", description=main.__doc__)
    parser.add_argument("--steps", type=int, default=FinetuneConfig.steps, help="optimiser steps")
    parser.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size, help="global batch size")
    parser.add_argument("--label-fraction", type=float, default=1.0, help="share of training SKUs")
    parser.add_argument("--init", choices=("pretrained", "scratch"), default="pretrained",
                        help="start from the kit's pretrained CLIP, or a random CNN (fast, for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model, pairs and captions")
    parser.add_argument("--history", type=Path, default=None, help="write the loss history as JSON (rank 0)")
    parser.add_argument("--save", action="store_true", help="save the model as the cached shop model (rank 0)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ecmm.data import load_catalog, load_photos
    from ecmm.models.clip import create_clip_model

    context = init_distributed()
    try:
        config = replace(FinetuneConfig(), steps=args.steps, batch_size=args.batch_size, mode="lit",
                         init=args.init, label_fraction=args.label_fraction, seed=args.seed,
                         image_blocks=1, replay_fraction=0.0)  # this loop has no replay batches
        seed_everything(args.seed)  # identical fresh projections on every rank
        model, preprocess, _ = create_clip_model("ecmm-clip", pretrained=True if args.init == "pretrained" else "scratch",
                                                 device="cpu")
        model, history = distributed_finetune(model, preprocess, load_catalog("offline"), load_photos("offline"),
                                              config, context, progress=True)
        if context.is_main:
            if args.history is not None:
                args.history.parent.mkdir(parents=True, exist_ok=True)
                args.history.write_text(json.dumps({"config": asdict(config), **history}, indent=2))
            if args.save:
                from ecmm.finetune import shop_model_dir
                from ecmm.models.clip import save_clip_checkpoint

                save_clip_checkpoint(model.cpu(), shop_model_dir(config), {
                    "asset": "shop_clip", "recipe": asdict(config), "world_size": context.world_size,
                    "metrics": {"final_loss": float(np.mean(history["step_loss"][-20:]))}, "text_trained": False})
            print(f"world size {context.world_size}: final loss {history['step_loss'][-1]:.4f}, "
                  f"{history['images_per_second'][0]:.0f} pairs/s")
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
