"""ecmm.finetune on tiny models: every recipe through the one loop, for the offline and an open_clip model."""

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ecmm.clip_training import TrainingView, preprocessed_bytes, text_features
from ecmm.data.catalogs import ArrayPhotos, CatalogSource, PhotoSet
from ecmm.finetune import (PHOTO_CACHE_BYTES, FinetuneConfig, build_shop_model, default_config, finetune,
                           interpolate_weights, recipe_tag, save_shop_model, shop_model_dir, training_pairs)


def _shop(image_side=20):
    colours = ["red", "blue", "green", "black", "white", "pink", "red", "blue"]
    types = ["shoe", "shoe", "bag", "bag", "hat", "hat", "hat", "bag"]
    catalog = pd.DataFrame({
        "sku_id": [f"S{i}" for i in range(8)], "title": [f"{c.capitalize()} {t}" for c, t in zip(colours, types)],
        "description": [f"A nice {c} {t}." for c, t in zip(colours, types)], "product_type": types,
        "colour": colours, "category": "test", "split": ["train"] * 6 + ["test_colours"] * 2})
    photos = np.random.default_rng(0).integers(0, 256, (8, 3, image_side, image_side, 3), dtype=np.uint8)
    return catalog, photos


@pytest.fixture()
def setup(tiny_clip):
    model, _ = tiny_clip
    return (model, *_shop())


def _changed(before, after):
    return {key for key, value in after.state_dict().items() if not torch.equal(value, before[key])}


def test_training_pairs_fraction():
    catalog = pd.DataFrame({"split": ["train"] * 40 + ["test_colours"] * 10})
    assert len(training_pairs(catalog, 1.0)) == 40
    assert len(training_pairs(catalog, 0.25, seed=1)) == 10
    assert len(training_pairs(catalog, 0.01)) == 2  # never fewer than two SKUs
    assert set(training_pairs(catalog, 0.5)) <= set(range(40))


@pytest.mark.parametrize("mode,init", [("text_locked", "pretrained"), ("text_last_layer", "pretrained"),
                                       ("image_locked", "pretrained"), ("full", "pretrained"),
                                       ("text_locked", "scratch")])
def test_every_recipe_trains_what_it_says_and_leaves_the_input_unchanged(setup, mode, init):
    model, catalog, photos = setup
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config = FinetuneConfig(mode=mode, init=init, steps=3, batch_size=6, image_blocks=1, replay_fraction=0.0)
    tuned, history = finetune(model, catalog, photos, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 3 and history["images_per_second"][0] > 0
    assert history["num_pairs"] == [18.0]  # 6 training SKUs x 3 photos
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in before.items())
    changed = _changed(before, tuned)
    assert any(key.startswith("text_encoder.") for key in changed) == (mode != "text_locked")
    assert any(key.startswith("image_projection") for key in changed) == (mode != "image_locked")
    assert any(key.startswith("backbone.stages.0") for key in changed) == (init == "scratch" or mode == "full")
    last_block = any(key.startswith("backbone.stages.2") for key in changed)
    assert last_block == (mode != "image_locked")
    assert "text_projection.weight" in changed and "logit_scale" in changed


def test_replay_and_locked_text_projection(setup, monkeypatch):
    import ecmm.data

    model, catalog, photos = setup
    names = ["apple", "tree", "apple", "car", "boat", "moon"]
    icons = np.random.default_rng(1).integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    monkeypatch.setattr(ecmm.data, "load_source_corpus", lambda: (pd.DataFrame({"name": names}), icons))
    config = FinetuneConfig(steps=3, batch_size=8, replay_fraction=0.5, image_blocks=0, train_text_projection=False)
    tuned, history = finetune(model, catalog, photos, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 3 and np.isfinite(history["step_loss"]).all()
    changed = _changed(model.state_dict(), tuned)
    assert any(key.startswith("image_projection") for key in changed)
    assert not any(key.startswith(("text_projection", "backbone.")) for key in changed)  # both locked
    with pytest.raises(ValueError, match="replay_fraction"):
        FinetuneConfig(replay_fraction=1.0)


def test_the_older_argument_order_still_runs(setup):
    model, catalog, photos = setup
    config = FinetuneConfig(steps=2, batch_size=6, replay_fraction=0.0)
    _, new = finetune(model, catalog, photos, config, progress=False)
    _, old = finetune(model, model.preprocess, catalog, photos, config)
    assert new["step_loss"] == pytest.approx(old["step_loss"])


def test_shop_model_folder_follows_the_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("ECMM_HOME", str(tmp_path))
    assert recipe_tag(FinetuneConfig()) == recipe_tag(FinetuneConfig())
    assert shop_model_dir() != shop_model_dir(replace(FinetuneConfig(), replay_fraction=0.0))
    assert shop_model_dir().name == "shop_clip"  # the registry's folder: what search loads
    assert shop_model_dir(replace(FinetuneConfig(), steps=5)).name == f"shop_clip_{recipe_tag(replace(FinetuneConfig(), steps=5))}"
    assert shop_model_dir().parent.parent == tmp_path
    lit = FinetuneConfig(mode="image_locked", replay_fraction=0.0)  # another model's default recipe
    scoped = shop_model_dir(lit, scope="shops/hub-0123-model", default=lit)
    assert scoped == tmp_path / "shops/hub-0123-model" / "assets" / "shop_clip"
    assert shop_model_dir(lit, scope="shops/hub-0123-model").name == f"shop_clip_{recipe_tag(lit)}"


def test_cached_last_layer_states_match_the_full_encoder(setup):
    model, catalog, _ = setup
    texts = list(catalog["title"])
    cache = text_features(model.text_encoder, texts, hidden=True, device=torch.device("cpu"))
    with torch.no_grad():
        cached = TrainingView(model, None, "hidden").encode_text(cache)
        full = model.encode_text(model.tokenizer(texts))
    assert torch.allclose(cached, full, atol=1e-5)


def test_wise_ft_end_points(setup):
    model, catalog, photos = setup
    tuned, _ = finetune(model, catalog, photos, FinetuneConfig(steps=2, batch_size=6, replay_fraction=0.0),
                        progress=False)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    for alpha, reference in ((0.0, model), (1.0, tuned)):
        assert torch.allclose(interpolate_weights(model, tuned, alpha).encode_image(x), reference.encode_image(x), atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_weights(model, tuned, 1.5)


def test_bad_configs_raise():
    for bad in ({"mode": "lit"}, {"mode": "unlocked"}, {"label_fraction": 0.0}, {"amp": "fp8"},
                {"init": "scratch", "mode": "image_locked"}):
        with pytest.raises(ValueError):
            FinetuneConfig(**bad)


def _loss_falls_and_reloads(model, catalog, photos, config, tmp_path):
    from ecmm.models.clip import load_clip_model

    tuned, history = finetune(model, catalog, photos, config, device="cpu", progress=False)
    losses = history["step_loss"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    folder = save_shop_model(tuned, tmp_path / "shop", config, history, base_sha256="0" * 64)
    loaded = load_clip_model(folder, device="cpu")
    state = loaded.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in tuned.state_dict().items())
    return tuned, loaded


def test_offline_shop_finetuning_loss_falls_and_the_model_reloads_bit_identically(setup, tmp_path):
    model, catalog, photos = setup
    config = FinetuneConfig(steps=12, batch_size=6, replay_fraction=0.0, learning_rate=1e-2, warmup_steps=2)
    tuned, loaded = _loss_falls_and_reloads(model, catalog, photos, config, tmp_path)
    pixels = tuned.preprocess(photos[:, 0])
    with torch.no_grad():
        assert torch.equal(tuned.encode_image(pixels), loaded.encode_image(pixels))


def test_open_clip_shop_finetuning_loss_falls_and_the_model_reloads_bit_identically(tiny_open_clip, tmp_path):
    model = copy.deepcopy(tiny_open_clip[0])
    catalog, photos = _shop(image_side=32)
    for mode in ("text_locked", "image_locked"):
        config = FinetuneConfig(mode=mode, steps=12, batch_size=6, replay_fraction=0.0, image_blocks=1,
                                learning_rate=1e-2, image_learning_rate=1e-3, text_learning_rate=1e-3, warmup_steps=2)
        before = {key: value.clone() for key, value in model.state_dict().items()}
        tuned, loaded = _loss_falls_and_reloads(model, catalog, photos, config, tmp_path / mode)
        changed = _changed(before, tuned)
        text_changed = any(key.startswith(("model.transformer.", "model.token_embedding")) for key in changed)
        image_changed = any(key.startswith("model.visual.") for key in changed)
        assert (text_changed, image_changed) == ((False, True) if mode == "text_locked" else (True, False))
        tokens = tuned.tokenizer(list(catalog["title"]))
        with torch.no_grad():
            assert torch.equal(tuned.encode_text(tokens), loaded.encode_text(tokens))


class TinySource:
    """A catalog source held in memory (the CatalogSource protocol, nothing more)."""

    name, fingerprint, attribute_columns = "tiny", "0123456789abcdef", ()

    def __init__(self, image_side=20):
        self.catalog, self.array = _shop(image_side)

    def table(self):
        return self.catalog

    def photos(self):
        return ArrayPhotos(self.array)

    def interactions(self):
        return None

    def describe(self):
        return f"tiny test shop: {len(self.catalog)} products"


class CountingPhotos(PhotoSet):
    """A lazy catalog of ``size`` SKUs that records every row it is asked to read."""

    photos_per_sku, image_size = 3, 32

    def __init__(self, size):
        self.size, self.reads = size, []

    def __len__(self):
        return self.size

    def read(self, row):
        self.reads.append(int(row))
        rng = np.random.default_rng(row)
        return rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def _spec(tiny_open_clip):
    checkpoint = tiny_open_clip[1]
    return f"{checkpoint.parent / 'ecmm-tiny-vit.json'}:{checkpoint}"


def test_default_config_locks_the_strong_tower(tiny_clip, tiny_open_clip):
    offline, open_clip = tiny_clip[0], tiny_open_clip[0]
    assert isinstance(CatalogSource, type) and isinstance(TinySource(), CatalogSource)
    assert default_config(offline) == FinetuneConfig()  # the registry's shop_clip recipe, unchanged
    lit = default_config(open_clip)
    assert lit.mode == "image_locked" and lit.replay_fraction == 0.0 and lit.steps == FinetuneConfig().steps
    quick = default_config(open_clip, quick=True)
    assert quick.mode == "image_locked" and quick.steps < lit.steps and quick.batch_size <= lit.batch_size
    with pytest.raises(ValueError, match="strong_tower"):
        default_config(torch.nn.Linear(2, 2))


def test_a_large_photo_set_streams_only_its_batches(tiny_open_clip):
    size = 50_000  # 50,000 SKUs x 3 photos x 3 x 32 x 32 float32 = 1.8 GB preprocessed: over the cache budget
    names = [f"item {i}" for i in range(size)]
    catalog = pd.DataFrame({"title": names, "description": names, "split": ["train", "test_colours"] * (size // 2)})
    photos = CountingPhotos(size)
    assert preprocessed_bytes(tiny_open_clip[0].preprocess, photos) > PHOTO_CACHE_BYTES
    photos.reads.clear()
    config = FinetuneConfig(mode="image_locked", steps=3, batch_size=4, replay_fraction=0.0, warmup_steps=1)
    _, history = finetune(tiny_open_clip[0], catalog, photos, config, device="cpu", progress=False)
    assert history["photos_streamed"] == [1.0] and history["num_pairs"] == [3.0 * size / 2]
    probe, batches = photos.reads[0], photos.reads[1:]  # one photo tells the preprocessed size
    assert 0 < len(batches) <= config.steps * config.batch_size  # then only the batches' SKUs are read
    assert all(row % 2 == 0 for row in batches)  # and all are training SKUs


@pytest.mark.parametrize("mode", ["text_locked", "text_last_layer"])
def test_streaming_gives_the_cached_run(setup, mode, monkeypatch):
    import ecmm.data

    model, catalog, photos = setup
    icons = np.random.default_rng(1).integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    monkeypatch.setattr(ecmm.data, "load_source_corpus",
                        lambda: (pd.DataFrame({"name": ["apple", "tree", "apple", "car", "boat", "moon"]}), icons))
    config = FinetuneConfig(mode=mode, steps=4, batch_size=8, image_blocks=1, replay_fraction=0.25)
    _, cached = finetune(model, catalog, photos, config, device="cpu", progress=False)
    _, streamed = finetune(model, catalog, ArrayPhotos(photos), config, device="cpu", progress=False,
                           photo_cache_bytes=0)
    assert cached["photos_streamed"] == [0.0] and streamed["photos_streamed"] == [1.0]
    assert streamed["step_loss"] == pytest.approx(cached["step_loss"], rel=1e-5, abs=1e-6)


def test_replay_is_ignored_with_a_notice_for_a_strong_image_tower(tiny_open_clip, monkeypatch, capsys):
    import ecmm.data

    def no_corpus():
        raise AssertionError("the emoji corpus is not this model's source domain")

    monkeypatch.setattr(ecmm.data, "load_source_corpus", no_corpus)
    catalog, photos = _shop(image_side=32)
    config = FinetuneConfig(mode="image_locked", steps=2, batch_size=6, replay_fraction=0.5, warmup_steps=1)
    _, history = finetune(tiny_open_clip[0], catalog, photos, config, device="cpu", progress=False)
    assert len(history["step_loss"]) == 2 and "replay_fraction=0.5 ignored" in capsys.readouterr().out


def test_build_shop_model_records_catalog_model_and_recipe(tiny_clip, tmp_path, monkeypatch):
    from ecmm.artifacts import read_card
    from ecmm.clip_training import weights_digest
    from ecmm.finetune import RECIPE_VERSION
    from ecmm.models.clip import load_clip_model

    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    base, _ = tiny_clip
    base.save(tmp_path / "base", {"asset": "clip"})  # a tiny "pretrained" offline-kind model, as a folder spec
    config = FinetuneConfig(steps=3, batch_size=6, replay_fraction=0.0, image_blocks=1)
    build_shop_model(tmp_path / "built", config, progress=False, source=TinySource(), model=str(tmp_path / "base"))
    card = read_card(tmp_path / "built")
    assert card["recipe"] == {"version": RECIPE_VERSION, **config.__dict__}
    assert card["data"]["catalog"] == "tiny" and card["data"]["fingerprint"] == "0123456789abcdef"
    assert card["data"]["pairs"] == 18 and card["metrics"]["world_size"] == 1
    assert card["base_model"] == str(tmp_path / "base")
    assert card["data"]["base_sha256"] == weights_digest(load_clip_model(tmp_path / "base", device="cpu"))
    assert load_clip_model(tmp_path / "built", device="cpu").embed_dim == base.embed_dim


def test_build_shop_model_of_an_open_clip_model_uses_its_default_recipe(tiny_open_clip, tmp_path, monkeypatch):
    from ecmm.artifacts import read_card
    from ecmm.models.clip import load_clip_model

    monkeypatch.setenv("ECMM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("ecmm.finetune.default_config", lambda model, quick=False: replace(
        __import__("ecmm.finetune_recipe", fromlist=["default_config"]).default_config(model), steps=4))
    build_shop_model(tmp_path / "built", progress=False, source=TinySource(image_side=32), model=_spec(tiny_open_clip))
    card = read_card(tmp_path / "built")
    assert card["recipe"]["mode"] == "image_locked" and card["recipe"]["steps"] == 4  # config None: the model's default
    assert card["base_model"] == _spec(tiny_open_clip) and card["data"]["description"].startswith("tiny test shop")
    tuned = load_clip_model(tmp_path / "built", device="cpu")
    changed = _changed(tiny_open_clip[0].state_dict(), tuned)
    assert changed and not any(key.startswith("model.visual.") for key in changed)  # LiT: the image tower is locked


def test_the_command_selects_catalog_and_model(tiny_open_clip, tmp_path, monkeypatch):
    import json

    import ecmm.data.catalogs
    from ecmm.finetune import main

    for name in ("ECMM_MODEL", "ECMM_CATALOG", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ecmm.data.catalogs, "open_catalog", lambda *args, **kwargs: TinySource(image_side=32))
    history = tmp_path / "history.json"
    assert main(["--model", _spec(tiny_open_clip), "--steps", "2", "--batch-size", "6", "--history", str(history)]) == 0
    import os

    assert os.environ["ECMM_MODEL"] == _spec(tiny_open_clip)  # child ranks and processes agree
    recorded = json.loads(history.read_text())
    assert recorded["config"]["mode"] == "image_locked" and recorded["config"]["steps"] == 2
    assert len(recorded["step_loss"]) == 2 and np.isfinite(recorded["step_loss"]).all()
