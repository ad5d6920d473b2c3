"""Tiny tests for ecmm.finetune: recipes run, copies are independent, WiSE-FT end points."""

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.finetune import FinetuneConfig, _text_embeddings, _text_inputs, finetune, interpolate_weights, training_pairs
from ecmm.models.clip import ClipTokenizer
from ecmm.search import evaluate_retrieval, requests_for


@pytest.fixture()
def setup(tiny_clip):
    model, preprocess = tiny_clip
    colours = ["red", "blue", "green", "black", "white", "pink", "red", "blue"]
    types = ["shoe", "shoe", "bag", "bag", "hat", "hat", "hat", "bag"]
    catalog = pd.DataFrame({
        "sku_id": [f"S{i}" for i in range(8)], "title": [f"{c.capitalize()} {t}" for c, t in zip(colours, types)],
        "description": [f"A nice {c} {t}." for c, t in zip(colours, types)], "product_type": types,
        "colour": colours, "category": "test", "split": ["train"] * 6 + ["test_colours"] * 2})
    photos = np.random.default_rng(0).integers(0, 256, (8, 3, 20, 20, 3), dtype=np.uint8)
    return model, preprocess, catalog, photos


def test_training_pairs_fraction():
    catalog = pd.DataFrame({"split": ["train"] * 40 + ["test_colours"] * 10})
    assert len(training_pairs(catalog, 1.0)) == 40
    assert len(training_pairs(catalog, 0.25, seed=1)) == 10
    assert len(training_pairs(catalog, 0.01)) == 2  # never fewer than two SKUs
    assert set(training_pairs(catalog, 0.5)) <= set(range(40))


@pytest.mark.parametrize("mode,init", [("lit", "pretrained"), ("unlocked", "pretrained"), ("lit", "scratch")])
def test_finetune_runs_and_leaves_the_input_unchanged(setup, mode, init):
    model, preprocess, catalog, photos = setup
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config = FinetuneConfig(mode=mode, init=init, steps=3, batch_size=6, image_blocks=1, replay_fraction=0.0)
    tuned, history = finetune(model, preprocess, catalog, photos, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 3 and history["images_per_second"][0] > 0
    assert history["num_pairs"] == [18.0]  # 6 training SKUs x 3 photos
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in before.items())
    changed = {key for key, value in tuned.state_dict().items() if not torch.equal(value, before[key])}
    assert any(key.startswith("image_projection") for key in changed)
    text_changed = any(key.startswith("text_encoder.") for key in changed)
    assert text_changed == (mode == "unlocked")
    if init == "scratch":
        assert any(key.startswith("backbone.stages.0") for key in changed)
    else:
        assert not any(key.startswith("backbone.stages.0") for key in changed)


def test_replay_and_locked_text_projection(setup, monkeypatch):
    import ecmm.data

    model, preprocess, catalog, photos = setup
    names = ["apple", "tree", "apple", "car", "boat", "moon"]
    icons = np.random.default_rng(1).integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    monkeypatch.setattr(ecmm.data, "load_source_corpus", lambda: (pd.DataFrame({"name": names}), icons))
    config = FinetuneConfig(steps=3, batch_size=8, replay_fraction=0.5, image_blocks=0, train_text_projection=False)
    tuned, history = finetune(model, preprocess, catalog, photos, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 3 and np.isfinite(history["step_loss"]).all()
    changed = {key for key, value in tuned.state_dict().items() if not torch.equal(value, model.state_dict()[key])}
    assert any(key.startswith("image_projection") for key in changed)
    assert not any(key.startswith(("text_projection", "backbone.")) for key in changed)  # both locked
    with pytest.raises(ValueError, match="replay_fraction"):
        FinetuneConfig(replay_fraction=1.0)


def test_shop_model_folder_follows_the_recipe():
    from dataclasses import replace

    from ecmm.finetune import recipe_tag, shop_model_dir

    assert recipe_tag(FinetuneConfig()) == recipe_tag(FinetuneConfig())
    assert shop_model_dir() != shop_model_dir(replace(FinetuneConfig(), replay_fraction=0.0))
    assert shop_model_dir().name == f"shop_clip_{recipe_tag(FinetuneConfig())}"


def test_cached_text_tail_matches_the_full_encoder(setup):
    model, _, catalog, _ = setup
    texts = list(catalog["title"])
    cache = _text_inputs(model, texts, unlocked=True, device=torch.device("cpu"))
    with torch.no_grad():
        cached = _text_embeddings(model, cache, torch.arange(len(texts)))
        full = model.encode_text(ClipTokenizer(model.text_encoder.tokenizer)(texts))
    assert torch.allclose(cached, full, atol=1e-5)


def test_wise_ft_end_points(setup):
    model, preprocess, catalog, photos = setup
    tuned, _ = finetune(model, preprocess, catalog, photos, FinetuneConfig(steps=2, batch_size=6, replay_fraction=0.0),
                        progress=False)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    for alpha, reference in ((0.0, model), (1.0, tuned)):
        assert torch.allclose(interpolate_weights(model, tuned, alpha).encode_image(x), reference.encode_image(x), atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_weights(model, tuned, 1.5)


def test_evaluate_retrieval_report(setup):
    model, preprocess, catalog, photos = setup
    tokenizer = ClipTokenizer(model.text_encoder.tokenizer)
    report = evaluate_retrieval(model, preprocess, tokenizer, catalog, photos, "test_colours", device="cpu")
    assert report["R@10"] == 1.0  # two gallery items: everything is in the top 10
    assert 0.5 <= report["MRR"] <= 1.0
    assert len(requests_for(catalog)) == 8 and "shoe" in requests_for(catalog)[0]
    with pytest.raises(ValueError, match="no SKUs"):
        evaluate_retrieval(model, preprocess, tokenizer, catalog, photos, "nope")


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="mode"):
        FinetuneConfig(mode="both")
    with pytest.raises(ValueError, match="label_fraction"):
        FinetuneConfig(label_fraction=0.0)


def test_embed_texts_cache_matches_encode_text(setup):
    from ecmm.models.clip import embed_texts

    model, _, catalog, _ = setup
    tokenizer = ClipTokenizer(model.text_encoder.tokenizer)
    texts = list(catalog["title"])
    with torch.no_grad():
        direct = model.encode_text(tokenizer(texts))
    first, second = (embed_texts(model, tokenizer, texts, device="cpu") for _ in range(2))
    assert torch.allclose(first, direct, atol=1e-5) and torch.equal(first, second)
    with torch.no_grad():
        model.text_projection.weight.mul_(2.0)  # projections change, cached MiniLM features stay valid
    assert torch.allclose(embed_texts(model, tokenizer, texts, device="cpu"), model.encode_text(tokenizer(texts)), atol=1e-5)
