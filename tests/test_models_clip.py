"""Tests for ecmm.models.clip: the offline dual encoder's verbs and the open_clip hub path."""

import json

import numpy as np
import pytest
import torch

from ecmm.models.clip import (
    ClipConfig,
    ClipModel,
    ClipTokenizer,
    HubClipModel,
    create_clip_model,
    embed_images,
    embed_texts,
    load_clip_checkpoint,
    save_clip_checkpoint,
)
from ecmm.models.image import CNNConfig, EcmmCNN, ImagePreprocess


@pytest.fixture()
def tiny_model(tiny_clip):
    return tiny_clip[0]


def test_encoders_are_normalised_and_shaped(tiny_model):
    preprocess = ImagePreprocess(16, (0.5,) * 3, (0.5,) * 3)
    tokenizer = ClipTokenizer(tiny_model.text_encoder.tokenizer)
    images = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    image_emb = embed_images(tiny_model, preprocess, images, device="cpu")
    text_emb = embed_texts(tiny_model, tokenizer, ["red backpack", "blue shoe"], device="cpu")
    assert image_emb.shape == (3, 8) and text_emb.shape == (2, 8)
    assert torch.allclose(image_emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text_emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # project_text on cached MiniLM features gives the same embedding as encode_text
    tokens = tokenizer(["red backpack"])
    features = tiny_model.text_features(tokens)
    assert torch.allclose(tiny_model.project_text(features), tiny_model.encode_text(tokens), atol=1e-6)
    assert tiny_model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_lock_and_unlock_towers(tiny_model):
    def trainable(module):
        return any(p.requires_grad for p in module.parameters())

    assert not trainable(tiny_model.text_encoder)  # locked by default
    assert trainable(tiny_model.text_projection)
    tiny_model.lock_image_tower()
    assert not trainable(tiny_model.backbone) and trainable(tiny_model.image_projection)
    tiny_model.unlock_image_tower()
    assert trainable(tiny_model.backbone)
    tiny_model.unlock_text_tower(last_layers=1)
    layers = tiny_model.text_encoder.transformer.encoder.layer
    assert trainable(layers[-1]) and not trainable(layers[0])
    tiny_model.train()
    assert tiny_model.text_encoder.training  # unlocked parts follow train mode
    tiny_model.lock_text_tower()
    assert not trainable(tiny_model.text_encoder)
    tiny_model.train()
    assert not tiny_model.text_encoder.training  # a locked MiniLM keeps dropout off
    with pytest.raises(ValueError, match="last_layers"):
        tiny_model.unlock_text_tower(last_layers=99)


def test_checkpoint_round_trip(tiny_model, tmp_path, monkeypatch):
    import ecmm.models.clip as clip_module

    save_clip_checkpoint(tiny_model, tmp_path, {"recipe": "test"})
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["text_trained"] is False and len(card["sha256"]) == 64
    monkeypatch.setattr(clip_module, "_build_offline", lambda config, pretrained_backbone: ClipModel(
        EcmmCNN(CNNConfig(image_size=16, stem_width=4, widths=(8, 16))), tiny_model.text_encoder, config))
    loaded, _ = load_clip_checkpoint(tmp_path, device="cpu")
    x = torch.randn(2, 3, 16, 16)
    tiny_model.eval()
    assert torch.allclose(loaded.encode_image(x), tiny_model.encode_image(x), atol=1e-6)
    (tmp_path / "model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(ValueError, match="sha256"):
        load_clip_checkpoint(tmp_path)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="open_clip.list_models"):
        create_clip_model("no-such-clip", device="cpu")
    with pytest.raises(ValueError, match="pretrained"):
        create_clip_model("ecmm-clip", pretrained="laion", device="cpu")


def test_hub_path_loads_a_local_open_clip_checkpoint(tmp_path):
    """The hub branch of the factory, offline: a tiny open_clip architecture saved to a file."""
    import open_clip

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "ecmm-tiny-test-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "ecmm-tiny-test-clip.json")
    torch.manual_seed(0)
    reference, _, _ = open_clip.create_model_and_transforms("ecmm-tiny-test-clip")
    checkpoint = tmp_path / "tiny.pt"
    torch.save(reference.state_dict(), checkpoint)

    model, preprocess, tokenizer = create_clip_model("ecmm-tiny-test-clip", pretrained=str(checkpoint), device="cpu")
    assert isinstance(model, HubClipModel)
    images = np.random.default_rng(1).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    pixels = preprocess(images)
    assert pixels.shape == (2, 3, 32, 32)
    image_emb = embed_images(model, preprocess, images, device="cpu")
    text_emb = embed_texts(model, tokenizer, ["a red backpack", "a blue shoe"], device="cpu")
    assert image_emb.shape == (2, 16) and torch.allclose(text_emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # the weights are the saved ones, not a fresh initialisation
    with torch.no_grad():
        expected = reference.eval().encode_image(pixels, normalize=True)
    assert torch.allclose(image_emb, expected, atol=1e-5)
    model.lock_image_tower()
    assert not any(p.requires_grad for p in model.model.visual.parameters())
