"""Data parallelism for the one training loop: one process per device under torchrun.

:func:`ecmm.finetune.finetune` is the same loop on ``N`` processes (CPU cores with gloo, GPUs with
nccl)::

    torchrun --nproc_per_node=2 -m ecmm.finetune --steps 300

Every step draws one *global* batch of (photo, caption) pairs (the same seeded draw on every
rank); rank ``r`` embeds its shard of it (:func:`shard_positions`), the embeddings of all ranks
are all-gathered *with gradients* (:func:`gather_with_grad`, which is
``torch.distributed.nn.functional.all_gather``), and every rank computes the contrastive loss
over the whole global batch (:func:`ecmm.train.clip_step` with ``gather=``).  So the negatives a
photo competes with grow with ``N`` (CLIP's reason to gather), and the loss and the update equal
a single process's with the same global batch.  The gradient of the gathered loss reaches each
rank's own rows summed over the ``N`` identical losses, and DistributedDataParallel averages it
over ranks: the update is the one-process update.  Batch-norm layers that train use their own
shard's statistics on CPUs (as plain DDP does) and SyncBatchNorm on GPUs.

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

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ecmm.device import get_device

__all__ = ["DistributedContext", "init_distributed", "shutdown_distributed", "gather_with_grad",
           "shard_positions", "wrap_data_parallel", "single_process"]


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


def single_process(device: str | torch.device | None = None) -> DistributedContext:
    """The context of a run without a process group (rank 0 of 1)."""
    return DistributedContext(0, 1, 0, get_device(device), None)


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
        return single_process(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, resolved, backend)


def shutdown_distributed() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` in rank order, keeping the autograd graph.

    ``torch.distributed.all_gather`` alone returns tensors without history: the loss would not
    train the towers through the other ranks' embeddings.  ``torch.distributed.nn.functional.all_gather``
    sums the incoming gradients over ranks in its backward pass and hands each rank its rows.

    Shapes:
        ``(B_local, ...)`` (the same on every rank) -> ``(world_size * B_local, ...)``; the tensor
        itself when not distributed.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()))


def shard_positions(batch_size: int, rank: int, world_size: int) -> slice:
    """This rank's rows of a global batch (contiguous, equal shards, like a sharded sampler).

    Args:
        batch_size: global batch size ``B`` (must divide by ``world_size``).
        rank: this rank.
        world_size: number of ranks.

    Returns:
        ``slice(rank * B / N, (rank + 1) * B / N)``; concatenating every rank's slice in rank
        order gives the global batch back, which is the order :func:`gather_with_grad` returns.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size; got rank={rank}, world_size={world_size}")
    if batch_size % world_size:
        raise ValueError(f"the global batch size {batch_size} must divide by the number of processes "
                         f"{world_size}; pick a multiple of {world_size}")
    size = batch_size // world_size
    return slice(rank * size, (rank + 1) * size)


def wrap_data_parallel(module: nn.Module, context: DistributedContext) -> nn.Module:
    """``DistributedDataParallel(module)`` in a process group (SyncBatchNorm on GPUs); ``module`` otherwise."""
    if context.world_size <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    if context.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return DistributedDataParallel(module, device_ids=[context.device] if context.device.type == "cuda" else None)
