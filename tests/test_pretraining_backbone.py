"""A tiny backbone pretraining run: files, card, checksum, reload."""

import json

import pytest
import torch

from ecmm.models.image import CNNConfig, create_image_backbone, load_backbone_checkpoint
from ecmm.pretraining.backbone import BackbonePretrainingConfig, build, recolour_views

TINY = BackbonePretrainingConfig(
    architecture=CNNConfig(image_size=16, stem_width=4, widths=(8, 16)),
    steps=3, batch_size=8, max_classes=6, eval_views=1,
)


def test_tiny_build_writes_weights_and_card(tmp_path):
    card = build(tmp_path, device="cpu", config=TINY, progress=False)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "card.json").read_text())
    assert saved["sha256"] == card["sha256"] and len(card["sha256"]) == 64
    assert saved["recipe"]["steps"] == 3 and saved["data"]["num_classes"] == 6
    assert 0.0 <= saved["metrics"]["heldout_accuracy"] <= 1.0
    backbone, loaded_card = load_backbone_checkpoint(tmp_path)
    assert backbone.config.widths == (8, 16) and loaded_card["sha256"] == card["sha256"]
    same, preprocess = create_image_backbone("ecmm-cnn", device="cpu", checkpoint_path=tmp_path)
    assert preprocess.image_size == 16
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(same(x), backbone(x))


def test_build_is_deterministic_and_checksum_is_verified(tmp_path):
    build(tmp_path / "a", device="cpu", config=TINY, progress=False)
    build(tmp_path / "b", device="cpu", config=TINY, progress=False)
    first, second = load_backbone_checkpoint(tmp_path / "a")[0], load_backbone_checkpoint(tmp_path / "b")[0]
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        # same seed, same data order: equal up to floating-point summation order of CPU kernels
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="Checksum"):
        load_backbone_checkpoint(tmp_path / "a")
    with pytest.raises(FileNotFoundError):
        load_backbone_checkpoint(tmp_path / "missing")


def test_recolour_views_keeps_range_and_probability_zero_is_identity():
    views = torch.rand(4, 3, 5, 5)
    generator = torch.Generator().manual_seed(0)
    torch.testing.assert_close(recolour_views(views, 0.0, generator), views)
    painted = recolour_views(views, 1.0, generator)
    assert painted.shape == views.shape and painted.min() >= 0 and painted.max() <= 1
    assert not torch.allclose(painted, views)
    with pytest.raises(ValueError):
        BackbonePretrainingConfig(recolour_probability=2.0)
