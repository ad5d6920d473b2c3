"""Data-parallel fine-tuning: two CPU processes (gloo) reproduce the one-process run, for both model kinds."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict

import pytest
import torch

from ecmm import distributed

WORKER = textwrap.dedent('''
    """One rank of the test job: the tiny model and shop, fine-tuned by ecmm.finetune under torchrun."""
    import json, sys
    from dataclasses import replace

    import numpy as np, pandas as pd, torch

    from ecmm.distributed import init_distributed, shutdown_distributed
    from ecmm.finetune import FinetuneConfig, finetune, save_shop_model, shop_model_dir


    def tiny(kind, checkpoint):
        if kind == "open_clip":
            import open_clip
            from pathlib import Path
            from ecmm.models.clip import create_clip_model

            open_clip.add_model_config(Path(checkpoint).parent / "ecmm-tiny-vit.json")
            return create_clip_model("ecmm-tiny-vit", pretrained=checkpoint, device="cpu")[0]
        from ecmm.models import load_text_encoder
        from ecmm.models.clip import ClipConfig, ClipModel
        from ecmm.models.image import CNNConfig, EcmmCNN

        torch.manual_seed(0)
        return ClipModel(EcmmCNN(CNNConfig(image_size=16, stem_width=4, widths=(8, 16))),
                         load_text_encoder(device="cpu"), ClipConfig(embed_dim=8))


    def shop(side):
        names = ["red shoe", "blue shoe", "green bag", "black bag", "white hat", "pink hat", "red hat", "blue bag"]
        catalog = pd.DataFrame({"sku_id": [f"S{i}" for i in range(8)], "title": names,
                                "description": [f"A nice {name}." for name in names],
                                "split": ["train"] * 6 + ["test_colours"] * 2})
        return catalog, np.random.default_rng(0).integers(0, 256, (8, 3, side, side, 3), dtype=np.uint8)


    def config(kind):
        return FinetuneConfig(steps=8, batch_size=8, replay_fraction=0.0, image_blocks=0 if kind == "offline" else 1,
                              learning_rate=1e-2, image_learning_rate=1e-3, warmup_steps=1, seed=3)


    if __name__ == "__main__":
        kind, checkpoint, output = sys.argv[1:4]
        context = init_distributed(device="cpu")
        try:
            catalog, photos = shop(16 if kind == "offline" else 32)
            model, history = finetune(tiny(kind, checkpoint), catalog, photos, config(kind), context=context,
                                      progress=False)
            if context.is_main:
                folder = save_shop_model(model, shop_model_dir(config(kind)), config(kind), history, None)
                json.dump({"step_loss": history["step_loss"], "world_size": history["world_size"],
                           "folder": str(folder)}, open(output, "w"))
        finally:
            shutdown_distributed()
''')


def test_shard_positions_cover_the_global_batch_in_rank_order():
    shards = [distributed.shard_positions(12, rank, 3) for rank in range(3)]
    assert shards == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="divide"):
        distributed.shard_positions(10, 0, 3)
    with pytest.raises(ValueError, match="rank"):
        distributed.shard_positions(12, 3, 3)


def test_gather_is_identity_without_a_process_group():
    tensor = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(tensor) is tensor
    context = distributed.init_distributed(device="cpu") if "WORLD_SIZE" not in os.environ else None
    if context is not None:
        assert (context.rank, context.world_size, context.backend) == (0, 1, None) and context.is_main
        assert distributed.wrap_data_parallel(torch.nn.Linear(2, 2), context).__class__ is torch.nn.Linear


@pytest.mark.parametrize("kind", ["offline", "open_clip"])
def test_two_processes_match_one_process_and_save_the_shop_model(kind, tiny_open_clip, tmp_path, monkeypatch):
    """torchrun --nproc_per_node=2 (global batch 8 = 2 x 4) vs one process with the same global batch, 8 steps."""
    from ecmm.artifacts import read_card
    from ecmm.finetune import RECIPE_VERSION, finetune, shop_model_dir
    from ecmm.models.clip import load_clip_model

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    (tmp_path / "worker.py").write_text(WORKER)
    sys.path.insert(0, str(tmp_path))
    try:
        import worker
    finally:
        sys.path.remove(str(tmp_path))
    checkpoint = str(tiny_open_clip[1])
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "ECMM_DEVICE": "cpu", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(tmp_path / "worker.py"), kind, checkpoint, str(tmp_path / "ddp.json")]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    model = worker.tiny(kind, checkpoint)
    catalog, photos = worker.shop(16 if kind == "offline" else 32)
    config = worker.config(kind)
    single_model, single = finetune(model, catalog, photos, config, device="cpu", progress=False)
    assert ddp["world_size"] == [2.0] and single["world_size"] == [1.0] and len(ddp["step_loss"]) == 8
    # step 0 checks the gathered forward pass; later steps check that the gradients were global too
    assert ddp["step_loss"] == pytest.approx(single["step_loss"], rel=1e-4, abs=1e-5)
    assert sum(ddp["step_loss"][-3:]) < sum(ddp["step_loss"][:3])  # and it trains
    # the saved model is the shop model of this recipe, with the card build_shop_model writes
    assert ddp["folder"] == str(shop_model_dir(config))
    card = read_card(ddp["folder"])
    assert card["recipe"] == {"version": RECIPE_VERSION, **asdict(config)} and card["metrics"]["world_size"] == 2
    saved = load_clip_model(ddp["folder"], device="cpu")
    # Adam turns float noise in near-zero gradients into steps of up to lr: weights agree to 1e-3
    state = saved.state_dict()
    assert max(float((state[key] - value).abs().max()) for key, value in single_model.state_dict().items()) < 1e-3
    pixels = saved.preprocess(photos[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(saved.encode_image(pixels), single_model.encode_image(pixels), rtol=0, atol=1e-3)
