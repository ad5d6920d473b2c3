"""Tiny tests for ecmm.pretraining.clip: cached views and which parts train."""

import numpy as np
import pytest
import torch

from ecmm.pretraining.clip import ClipPretrainConfig, pretrain_clip, view_features


@pytest.fixture()
def setup(tiny_clip):
    model, preprocess = tiny_clip
    icons = np.random.default_rng(0).integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    return model, preprocess, icons, ["cat", "dog", "hat", "bag", "shoe", "cat"]


def test_view_features_shapes(setup):
    model, preprocess, icons, _ = setup
    pooled = view_features(model.backbone, preprocess, icons, 2, torch.Generator().manual_seed(0),
                           work_size=16, device="cpu", progress=False)
    maps = view_features(model.backbone, preprocess, icons, 3, torch.Generator().manual_seed(0), work_size=16,
                         device="cpu", progress=False, trained_blocks=1, recolour_probability=1.0)
    assert pooled.shape == (2, 6, 16)  # (V, N, num_features)
    assert maps.shape == (3, 6, 8, 8, 8)  # (V, N, C, h, w) entering the last block
    with pytest.raises(ValueError, match="trained_blocks"):
        view_features(model.backbone, preprocess, icons, 1, torch.Generator(), trained_blocks=9, device="cpu")


@pytest.mark.parametrize("image_blocks", [0, 1])
def test_pretrain_clip_trains_only_the_last_blocks(setup, image_blocks):
    model, preprocess, icons, names = setup
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config = ClipPretrainConfig(steps=3, batch_size=4, warmup_steps=1, views_per_image=2, work_size=16,
                                image_blocks=image_blocks)
    history = pretrain_clip(model, preprocess, icons, names, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 3 and np.isfinite(history["step_loss"]).all()
    changed = {key for key, value in model.state_dict().items() if not torch.equal(value, before[key])}
    assert any(key.startswith("image_projection") for key in changed)
    assert any(key.startswith("text_projection") for key in changed)
    assert not any(key.startswith(("text_encoder.", "backbone.stages.0", "backbone.stages.1")) for key in changed)
    assert any(key.startswith("backbone.stages.2") for key in changed) == (image_blocks == 1)
    assert not any(p.requires_grad for p in model.backbone.parameters())  # locked again afterwards


def test_pretrain_config_validates():
    with pytest.raises(ValueError):
        ClipPretrainConfig(image_blocks=-1)
    with pytest.raises(ValueError):
        ClipPretrainConfig(recolour_probability=1.5)
    with pytest.raises(ValueError, match="caption_templates"):
        ClipPretrainConfig(caption_templates=("a photo of a {}",))
