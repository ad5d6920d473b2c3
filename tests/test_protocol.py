"""One set of protocol tests, run on both CLIP-like models: the offline one and a tiny real open_clip ViT.

Expected parameter counts are written from the two tiny architectures (conftest.py):
offline: 16-px CNN with widths (8, 16), MiniLM (384-d), 8-d embeddings;
open_clip: ViT width 64, 2 layers, 4 x 4 patches; text width 64, 2 layers; 32-d embeddings.
"""

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from ecmm import export
from ecmm.artifacts import ArtifactError, forget_verified
from ecmm.interpret import clip_grad_cam
from ecmm.models.clip import (ClipLike, count_trainable, create_clip_model, embed_images, embed_texts,
                              load_clip_model, move_tokens)

# per kind: group counts, projection sizes, what the last block's group holds beyond the block
ARCHITECTURE = {
    # image: stem, block 1, block 2, projection; text: embeddings, 6 MiniLM layers, projection
    "offline": {"image_groups": 4, "text_groups": 8, "image_projection": 16 * 8, "text_projection": 384 * 8,
                "image_last_extra": 0, "text_last_extra": 0, "image_size": 16, "embed_dim": 8,
                "text_outside_groups": 384 * 384 + 384},  # MiniLM's pooler, unused by mean pooling
    # image: stem, block 0, block 1 + ln_post (2 x 64), projection; text: embeddings, block 0,
    # block 1 + ln_final (2 x 64), projection
    "open_clip": {"image_groups": 4, "text_groups": 4, "image_projection": 64 * 32, "text_projection": 64 * 32,
                  "image_last_extra": 128, "text_last_extra": 128, "image_size": 32, "embed_dim": 32,
                  "text_outside_groups": 0},
}
TEXTS = ["a red backpack", "blue running shoes", "a wooden chair"]


@pytest.fixture(params=["offline", "open_clip"])
def kind(request):
    return request.param


@pytest.fixture()
def model(kind, request):
    """A fresh model of each kind (tests may lock, unlock and save it)."""
    if kind == "offline":
        return request.getfixturevalue("tiny_clip")[0].eval()
    return copy.deepcopy(request.getfixturevalue("tiny_open_clip")[0]).eval()


def _images(count, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _numel(module):
    return sum(p.numel() for p in module.parameters())


def _last_text_layer(model, kind):
    if kind == "offline":
        return model.text_encoder.transformer.encoder.layer[-1]
    return model.model.transformer.resblocks[-1]


def test_both_kinds_implement_the_protocol(model, kind):
    assert isinstance(model, ClipLike)
    assert model.embed_dim == ARCHITECTURE[kind]["embed_dim"]
    assert model.name == ("ecmm-clip" if kind == "offline" else "ecmm-tiny-vit")


def test_encoders_give_normalised_embeddings_of_the_right_shape(model, kind):
    size, dim = ARCHITECTURE[kind]["image_size"], ARCHITECTURE[kind]["embed_dim"]
    pixels = model.preprocess(_images(3))
    assert pixels.shape == (3, 3, size, size) and pixels.dtype == torch.float32
    tokens = model.tokenizer(TEXTS[:2])
    with torch.no_grad():
        image_emb, text_emb = model.encode_image(pixels), model.encode_text(tokens)
        raw = model.encode_image(pixels, normalize=False)
        scale = model.scale()
    assert image_emb.shape == (3, dim) and text_emb.shape == (2, dim)
    torch.testing.assert_close(image_emb.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(text_emb.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(raw / raw.norm(dim=1, keepdim=True), image_emb)
    assert float(scale) == pytest.approx(min(float(model.logit_scale.detach().exp()), 100.0))


def test_preprocess_and_tokenizer_round_trip(model):
    photos = _images(2, size=24)
    batch = model.preprocess(photos)
    torch.testing.assert_close(model.preprocess(photos[0]), batch[:1])  # one (H, W, 3) image
    torch.testing.assert_close(model.preprocess([Image.fromarray(p) for p in photos]), batch)  # PIL list
    with pytest.raises(ValueError):
        model.preprocess(photos.astype(np.float32))
    tokens = model.tokenizer(TEXTS)
    moved = move_tokens(tokens, "cpu")
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(moved), model.encode_text(model.tokenizer(TEXTS)))
        torch.testing.assert_close(model.encode_text(model.tokenizer(TEXTS[:1])), model.encode_text(tokens)[:1],
                                   atol=1e-5, rtol=0)  # padding to a longer batch changes nothing


def test_embed_helpers_use_the_models_own_preprocessing(model):
    photos = _images(5)
    images = embed_images(model, photos, batch_size=2, device="cpu")
    texts = embed_texts(model, TEXTS, batch_size=2, device="cpu")
    with torch.no_grad():
        torch.testing.assert_close(images, model.encode_image(model.preprocess(photos)), atol=1e-5, rtol=0)
        torch.testing.assert_close(texts, model.encode_text(model.tokenizer(TEXTS)), atol=1e-5, rtol=0)
    torch.testing.assert_close(embed_images(model, model.preprocess, photos, device="cpu"), images)  # older form
    torch.testing.assert_close(embed_texts(model, model.tokenizer, TEXTS, device="cpu"), texts)


def test_lock_image_tower_counts_open_clip_groups(model, kind):
    spec = ARCHITECTURE[kind]
    model.lock_text_tower(lock_projection=True)
    model.lock_image_tower(lock_projection=True)
    assert count_trainable(model) == 1  # only logit_scale
    counts = [count_trainable(model.lock_image_tower(k)) for k in range(spec["image_groups"] + 1)]
    assert counts[0] == counts[1] == 1 + spec["image_projection"]  # the projection is the last group
    assert counts[2] - counts[1] == _numel(model.image_blocks()[-1]) + spec["image_last_extra"]
    assert all(a < b for a, b in zip(counts[1:], counts[2:]))
    assert counts[-1] == count_trainable(model.unlock_image_tower())  # every group: the whole tower
    for bad in (-1, spec["image_groups"] + 1, 1.5, True):
        with pytest.raises(ValueError, match="unlocked_groups"):
            model.lock_image_tower(bad)
    assert count_trainable(model.lock_image_tower(2, lock_projection=True)) == counts[2] - spec["image_projection"]
    with pytest.raises(ValueError, match="lock_projection"):
        model.lock_image_tower(1, lock_projection=True)  # only the projection asked, and asked locked


def test_lock_text_tower_counts_open_clip_groups(model, kind):
    spec = ARCHITECTURE[kind]
    model.lock_image_tower(lock_projection=True)
    assert count_trainable(model.lock_text_tower(lock_projection=True)) == 1
    counts = [count_trainable(model.lock_text_tower(k)) for k in range(spec["text_groups"] + 1)]
    assert counts[0] == counts[1] == 1 + spec["text_projection"]
    assert counts[2] - counts[1] == _numel(_last_text_layer(model, kind)) + spec["text_last_extra"]
    assert all(a < b for a, b in zip(counts[1:], counts[2:]))
    everything = count_trainable(model.unlock_text_tower())
    assert everything - counts[-1] == spec["text_outside_groups"]  # all groups: the whole tower but MiniLM's pooler
    for bad in (-1, spec["text_groups"] + 1):
        with pytest.raises(ValueError, match="unlocked_layers"):
            model.lock_text_tower(bad)
    model.lock_text_tower(lock_projection=True)
    assert count_trainable(model.lock_text_tower(2, lock_projection=True)) == counts[2] - spec["text_projection"]
    with pytest.raises(ValueError, match="lock_projection"):
        model.lock_text_tower(1, lock_projection=True)


def test_unlocking_trains_the_whole_model(model):
    model.unlock_image_tower().unlock_text_tower()
    assert count_trainable(model) == _numel(model)


def test_param_groups_name_the_trainable_parts(model, kind):
    spec = ARCHITECTURE[kind]
    model.lock_text_tower().lock_image_tower(2)
    groups = model.param_groups(head_lr=1e-2, image_lr=1e-3, text_lr=1e-4, weight_decay=0.1)
    assert [g["name"] for g in groups] == ["head", "image"]  # the locked text trunk has no group
    assert [g["lr"] for g in groups] == [1e-2, 1e-3] and {g["weight_decay"] for g in groups} == {0.1}
    head, image = (sum(p.numel() for p in g["params"]) for g in groups)
    assert head == 1 + spec["image_projection"] + spec["text_projection"]
    assert image == _numel(model.image_blocks()[-1]) + spec["image_last_extra"]
    assert any(p is model.logit_scale for p in groups[0]["params"])
    model.unlock_text_tower()
    groups = model.param_groups(1e-2, 1e-3, 1e-4)
    assert [g["name"] for g in groups] == ["head", "image", "text"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and sum(p.numel() for g in groups for p in g["params"]) == count_trainable(model)
    torch.optim.AdamW(groups)  # the groups are valid optimizer groups
    with pytest.raises(ValueError, match="learning rate"):
        model.param_groups(-1.0, 1e-3, 1e-4)


def test_save_and_load_give_bit_identical_outputs(model, kind, tmp_path):
    folder = model.save(tmp_path / "saved", {"recipe": {"steps": 0}})
    loaded = load_clip_model(folder, device="cpu")
    again, preprocess, tokenizer = create_clip_model(str(folder), device="cpu")
    assert type(loaded) is type(model) and loaded.name == model.name
    assert preprocess is again.preprocess and tokenizer is again.tokenizer  # the factory returns the model's own
    pixels, tokens = model.preprocess(_images(2)), model.tokenizer(TEXTS)
    with torch.no_grad():
        for other in (loaded, again):
            assert torch.equal(other.encode_image(pixels), model.encode_image(pixels))
            assert torch.equal(other.encode_text(tokens), model.encode_text(tokens))
            assert torch.equal(other.logit_scale, model.logit_scale)
    torch.testing.assert_close(preprocess(_images(2)), pixels)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    forget_verified(folder)  # sha256s are checked once per process and folder; start afresh
    with pytest.raises(ArtifactError, match="sha256"):
        load_clip_model(folder, device="cpu")


def test_grad_cam_maps_for_cnn_and_vit(model, kind):
    pixels = model.preprocess(_images(2))
    query = embed_texts(model, TEXTS[:1], device="cpu")[0]
    heat = clip_grad_cam(model, pixels, query, device="cpu")
    size = ARCHITECTURE[kind]["image_size"]
    assert heat.shape == (2, size, size) and torch.isfinite(heat).all()
    assert (heat >= 0).all() and torch.allclose(heat.flatten(1).amax(1), torch.ones(2))
    assert not model.training  # the mode is restored
    with pytest.raises(ValueError, match="block"):
        clip_grad_cam(model, pixels, query, block=len(model.image_blocks()))


def test_text_and_image_towers_export_to_torchscript(model, kind, tmp_path):
    text_tower, image_tower = export.TextTower(model), export.ImageTower(model)
    assert text_tower.input_names == (("input_ids", "attention_mask") if kind == "offline" else ("tokens",))
    assert not any(key.startswith(("model.backbone", "model.image_projection", "model.model.visual"))
                   for key in text_tower.state_dict())
    inputs = text_tower.example_inputs(TEXTS)
    loaded = export.load_torchscript(export.export_torchscript(text_tower, inputs, tmp_path / "text.pt"))
    pixels = model.preprocess(_images(2))
    image_loaded = export.load_torchscript(export.export_torchscript(image_tower, pixels, tmp_path / "image.pt"))
    with torch.no_grad():
        expected = model.encode_text(model.tokenizer(TEXTS))
        assert export.max_abs_difference(loaded(*inputs), expected) < 1e-5
        assert export.max_abs_difference(image_loaded(pixels), model.encode_image(pixels)) < 1e-5


def test_text_towers_export_to_onnx(model, tmp_path):
    pytest.importorskip("onnxruntime")
    tower = export.TextTower(model)
    path = export.export_onnx(tower, tower.example_inputs(TEXTS[:2]), tmp_path / "text.onnx",
                              input_names=tower.input_names)
    inputs = tower.example_inputs(TEXTS)  # another batch size than the example
    output = export.run_onnx(path, dict(zip(tower.input_names, inputs)))
    with torch.no_grad():
        assert export.max_abs_difference(tower(*inputs), output) < 1e-4


@pytest.mark.slow
def test_the_real_vit_b_32_architecture_runs_without_weights():
    model, preprocess, tokenizer = create_clip_model("ViT-B-32", pretrained=False, device="cpu")
    assert isinstance(model, ClipLike) and model.embed_dim == 512
    with torch.no_grad():
        images = model.encode_image(preprocess(_images(2, size=64)))
        texts = model.encode_text(tokenizer(TEXTS[:2]))
    assert images.shape == texts.shape == (2, 512)
    torch.testing.assert_close(images.norm(dim=1), torch.ones(2))
    model.lock_image_tower(1)
    assert count_trainable(model.model.visual) == 768 * 512  # open_clip's last group: the projection only
