"""Data-parallel fine-tuning: two CPU processes (gloo) reproduce the one-process run's losses."""

import json
import os
import subprocess
import sys

import pytest
import torch

from ecmm import distributed

ARGS = ["--init", "scratch", "--steps", "4", "--batch-size", "16", "--label-fraction", "0.05", "--seed", "3"]


def test_shard_positions_cover_the_global_batch_in_rank_order():
    shards = [distributed.shard_positions(12, rank, 3) for rank in range(3)]
    assert shards == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="divide"):
        distributed.shard_positions(10, 0, 3)
    with pytest.raises(ValueError, match="rank"):
        distributed.shard_positions(12, 3, 3)


def test_gather_is_identity_without_a_process_group():
    tensor = torch.randn(3, 2, requires_grad=True)
    assert distributed.all_gather_with_grad(tensor) is tensor
    context = distributed.init_distributed(device="cpu") if "WORLD_SIZE" not in os.environ else None
    if context is not None:
        assert (context.rank, context.world_size, context.backend) == (0, 1, None) and context.is_main


def test_distributed_finetune_rejects_unlocked_mode():
    from dataclasses import replace

    from ecmm.finetune import FinetuneConfig

    with pytest.raises(ValueError, match="lit"):
        distributed.distributed_finetune(None, None, None, None, replace(FinetuneConfig(), mode="unlocked"))


def test_two_processes_match_one_process(tmp_path, monkeypatch):
    """torchrun --nproc_per_node=2 (global batch 16 = 2 x 8) vs one process with the same global batch."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "ECMM_DEVICE": "cpu", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ecmm.distributed", *ARGS, "--history", str(tmp_path / "ddp.json")]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert distributed.main([*ARGS, "--history", str(tmp_path / "single.json")]) == 0  # in this process
    ddp, single = (json.loads((tmp_path / name).read_text()) for name in ("ddp.json", "single.json"))
    assert ddp["world_size"] == [2.0] and single["world_size"] == [1.0]
    assert len(ddp["step_loss"]) == 4
    # step 0 checks the gathered forward pass; later steps check that the gradients were global too
    assert ddp["step_loss"] == pytest.approx(single["step_loss"], rel=1e-4, abs=1e-5)
    assert ddp["step_loss"][-1] < ddp["step_loss"][0]  # and it trains
