"""Tests for ecmm.models.clip beyond the shared protocol (tests/test_protocol.py): the factory's
names and errors, the offline model's extras, and checkpoints written by the older kit."""

import copy
import json
from dataclasses import asdict

import pytest
import torch

import ecmm.assets
from ecmm.artifacts import ArtifactError, file_sha256
from ecmm.models.clip import (ClipModel, OpenClipModel, cached_text_features, create_clip_model, embed_texts,
                              load_clip_checkpoint, load_clip_model, pretrained_clip_dir)


@pytest.fixture()
def tiny_model(tiny_clip):
    return tiny_clip[0].eval()


def test_project_text_of_memoised_features_equals_encode_text(tiny_model):
    tokens = tiny_model.tokenizer(["red backpack", "blue shoe"])
    features = tiny_model.text_features(tokens)
    assert features.shape == (2, 384) and len(tiny_model.text_feature_cache) == 1
    assert tiny_model.text_features(tokens) is features  # the locked MiniLM is not run again
    torch.testing.assert_close(tiny_model.project_text(features), tiny_model.encode_text(tokens))
    torch.testing.assert_close(cached_text_features(tiny_model, ["red backpack", "blue shoe"], device="cpu"), features)


def test_the_feature_memo_follows_weight_changes(tiny_model):
    tiny_model = copy.deepcopy(tiny_model)  # MiniLM is shared by the module's tests: change a copy
    texts = ["red backpack", "blue shoe"]
    before = embed_texts(tiny_model, texts, device="cpu")
    with torch.no_grad():
        tiny_model.text_projection.weight.mul_(2.0)  # projections change, MiniLM features stay valid
    torch.testing.assert_close(embed_texts(tiny_model, texts, device="cpu"), before)  # direction unchanged
    with torch.no_grad():
        tiny_model.text_encoder.transformer.embeddings.word_embeddings.weight.mul_(1.5)  # MiniLM changes
        expected = tiny_model.project_text(tiny_model.text_encoder(**tiny_model.tokenizer(texts)))
    assert not torch.allclose(embed_texts(tiny_model, texts, device="cpu"), before)
    torch.testing.assert_close(embed_texts(tiny_model, texts, device="cpu"), expected)


def test_unlocked_minilm_trains_and_follows_train_mode(tiny_model):
    tiny_model.lock_text_tower(2)  # the last MiniLM layer and the projection
    layers = tiny_model.text_encoder.transformer.encoder.layer
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    tiny_model.train()
    assert tiny_model.text_encoder.training  # unlocked parts follow train mode
    tokens = tiny_model.tokenizer(["red backpack"])
    tiny_model.encode_text(tokens).sum().backward()
    assert layers[-1].output.dense.weight.grad is not None
    tiny_model.lock_text_tower().train()
    assert not tiny_model.text_encoder.training  # a locked MiniLM keeps dropout off


def test_save_keeps_minilm_only_when_it_changed(tiny_model, tmp_path):
    card = json.loads((tiny_model.save(tmp_path / "a", {"recipe": "test"}) / "card.json").read_text())
    assert card["text_trained"] is False and card["kind"] == "ecmm-clip" and card["backbone"]["widths"] == [8, 16]
    tiny_model = copy.deepcopy(tiny_model)  # MiniLM is shared by the module's tests: change a copy
    with torch.no_grad():
        tiny_model.text_encoder.transformer.encoder.layer[-1].output.dense.bias.add_(0.01)
    card = json.loads((tiny_model.save(tmp_path / "b", {}) / "card.json").read_text())
    assert card["text_trained"] is True
    loaded = load_clip_model(tmp_path / "b", device="cpu")
    tokens = tiny_model.tokenizer(["red backpack"])
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(tokens), tiny_model.eval().encode_text(tokens))


def test_checkpoints_of_the_older_kit_still_load(tiny_model, tmp_path):
    """Older folders: ``model.safetensors`` without MiniLM and a card with ``config``, ``text_trained``, ``sha256``."""
    from safetensors.torch import save_file

    from ecmm.models.image import CNNConfig
    from ecmm.models.offline_clip import ClipConfig, build_offline_clip

    reference = build_offline_clip(ClipConfig(), pretrained_backbone=False).eval()  # the default architecture
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if not k.startswith("text_encoder.")}
    save_file(state, str(tmp_path / "model.safetensors"))
    legacy = {"recipe": {"version": 2}, "config": asdict(reference.config), "text_trained": False,
              "sha256": file_sha256(tmp_path / "model.safetensors")}
    (tmp_path / "card.json").write_text(json.dumps(legacy))
    model, card = load_clip_checkpoint(tmp_path, device="cpu")
    assert isinstance(model, ClipModel) and card["legacy"] is True
    assert model.backbone.config == CNNConfig()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_image(pixels), reference.encode_image(pixels))
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="sha256"):
        load_clip_model(tmp_path)


def test_the_shared_cache_of_the_older_kit_loads():
    if not (pretrained_clip_dir() / "card.json").is_file():
        pytest.skip("the pretrained CLIP model is not prepared (ecmm prepare)")
    model, preprocess, tokenizer = create_clip_model("ecmm-clip", pretrained=True, device="cpu")
    assert isinstance(model, ClipModel) and preprocess is model.preprocess and tokenizer is model.tokenizer
    assert model.embed_dim == 128


def test_models_only_load_they_never_build(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))

    def refuse(*args, **kwargs):
        raise AssertionError("a model must not build assets")

    monkeypatch.setattr(ecmm.assets, "ensure_asset", refuse)
    with pytest.raises(ArtifactError) as error:
        create_clip_model("ecmm-clip", pretrained=True, device="cpu")
    assert error.value.command == "ecmm prepare" and error.value.folder == tmp_path / "assets" / "clip"
    with pytest.raises(ArtifactError, match="ecmm prepare"):
        create_clip_model("ecmm-clip", pretrained=False, device="cpu")  # needs the pretrained CNN


def test_unknown_names_and_values_raise_helpful_errors(tiny_open_clip):
    with pytest.raises(ValueError, match="open_clip.list_models"):
        create_clip_model("no-such-clip", device="cpu")
    with pytest.raises(ValueError, match="ViT-B-32"):
        create_clip_model("ViT-B-3", device="cpu")  # a close name is suggested
    with pytest.raises(ValueError, match="pretrained"):
        create_clip_model("ecmm-clip", pretrained="laion", device="cpu")
    with pytest.raises(ValueError, match="neither a checkpoint file nor a pretrained tag"):
        create_clip_model("ecmm-tiny-vit", pretrained="no-such-tag", device="cpu")


def test_open_clip_loads_the_local_checkpoint_not_a_fresh_init(tiny_open_clip):
    import open_clip

    model, checkpoint = tiny_open_clip
    assert isinstance(model, OpenClipModel) and checkpoint.suffix == ".safetensors"
    fresh = open_clip.create_model("ecmm-tiny-vit", pretrained=None)
    random, _, _ = create_clip_model("ecmm-tiny-vit", pretrained=False, device="cpu")
    reference = open_clip.create_model("ecmm-tiny-vit", pretrained=str(checkpoint))
    for name, value in reference.state_dict().items():
        assert torch.equal(model.model.state_dict()[name], value), name
    assert not torch.equal(fresh.visual.proj, model.model.visual.proj)
    assert not torch.equal(random.model.visual.proj, model.model.visual.proj)
