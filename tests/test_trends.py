"""Tests for ecmm.trends: waves, forgetting, incremental fine-tuning."""

import numpy as np
import pandas as pd
import pytest

from ecmm.data.photos import ArrayPhotos
from ecmm.trends import average_forgetting, make_waves


def _toy_catalog():
    rows = []
    for category in ("a", "b", "c"):
        for colour in ("red", "blue"):
            for kind in ("x", "y"):
                rows.append({"category": category, "colour": colour, "product_type": f"{category}{kind}",
                             "price": 10.0 if kind == "x" else 20.0,
                             "split": "test_products" if kind == "y" and category == "c" else "train"})
    return pd.DataFrame(rows)


def test_make_waves_keeps_categories_together_and_skips_test_products():
    catalog = _toy_catalog()
    waves = make_waves(catalog, num_waves=3, seed=0)
    assert (waves[catalog["split"] == "test_products"] == -1).all()
    kept = catalog[waves >= 0].assign(wave=waves[waves >= 0])
    assert kept.groupby("category")["wave"].nunique().max() == 1
    assert sorted(kept["wave"].unique()) == [0, 1, 2]
    with pytest.raises(ValueError):
        make_waves(catalog, num_waves=4)


def test_average_forgetting_by_hand():
    rows = []
    # wave 1: 0.8 after wave 1, 0.5 after wave 3 -> forgetting 0.3; wave 2: 0.6 -> 0.6 -> 0
    for after, recalls in {0: (0.1, 0.1, 0.1), 1: (0.8, 0.2, 0.1), 2: (0.6, 0.6, 0.2), 3: (0.5, 0.6, 0.7)}.items():
        for wave, recall in enumerate(recalls, start=1):
            rows.append({"strategy": "naive", "after_wave": after, "wave": wave, "recall": recall})
    assert average_forgetting(pd.DataFrame(rows))["naive"] == pytest.approx(0.15)


def test_incremental_finetune_on_a_tiny_model():
    import torch
    from torch import nn

    from ecmm.trends import WaveInputs, incremental_finetune

    class TinyClip(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.blocks = nn.ModuleList([nn.Conv2d(4, 8, 3, padding=1)])
            self.image_projection = nn.Linear(8, 6, bias=False)
            self.text_projection = nn.Linear(5, 6, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(2.0))

    torch.manual_seed(0)
    catalog = _toy_catalog()
    catalog["split"] = ["train", "test_colours"] * 6
    waves = make_waves(catalog, num_waves=3, seed=0)
    inputs = WaveInputs(torch.randn(len(catalog), 2, 4, 2, 2), torch.randn(len(catalog), 5))
    model = TinyClip()
    before = model.image_projection.weight.clone()
    results = incremental_finetune(model, inputs, catalog, waves, "replay", steps=3, batch_size=4, k=1)
    assert len(results) == 4 * 3 and results["recall"].between(0, 1).all()
    assert torch.equal(model.image_projection.weight, before)  # the starting model is left unchanged
    with pytest.raises(ValueError, match="strategy"):
        incremental_finetune(model, inputs, catalog, waves, "greedy")


class CountedPhotos(ArrayPhotos):
    """A PhotoSet over an array that records how many SKUs every read asks for."""

    def __init__(self, array):
        super().__init__(array)
        self.reads = []

    def __getitem__(self, index):
        rows = index[0] if isinstance(index, tuple) else index
        self.reads.append(len(np.arange(len(self))[rows]) if isinstance(rows, slice) else np.size(rows))
        return super().__getitem__(index)


def _pixels(images):
    """uint8 (n, H, W, 3) -> float (n, 3, H, W) in [0, 1]."""
    import torch

    return torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255


def test_cache_wave_inputs_reads_photos_in_sku_batches_and_matches_the_whole_array():
    import torch
    from torch import nn

    from ecmm.trends import cache_wave_inputs

    class TinyBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Module()
            self.backbone.blocks = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)])
            self.text_layer = nn.Linear(3, 5)

        def text_features(self, tokens):
            return self.text_layer(tokens)

    torch.manual_seed(0)
    model = TinyBlocks()
    array = np.random.default_rng(0).integers(0, 256, size=(10, 3, 4, 4, 3), dtype=np.uint8)
    catalog = pd.DataFrame({"title": [f"item {i}" for i in range(10)]})
    tokenizer = lambda titles: torch.tensor([[len(t), t.count("1"), 1.0] for t in titles])  # noqa: E731
    photos = CountedPhotos(array)
    inputs = cache_wave_inputs(model, _pixels, tokenizer, catalog, photos, batch_size=6)
    assert inputs.feature_maps.shape == (10, 3, 4, 4, 4) and inputs.title_features.shape == (10, 5)
    assert max(photos.reads) <= 2  # 6 photos a batch = 2 SKUs of 3 photos, never the whole catalog
    with torch.no_grad():
        whole = model.backbone.blocks[0](_pixels(array.reshape(-1, 4, 4, 3))).reshape(10, 3, 4, 4, 4)
    torch.testing.assert_close(inputs.feature_maps, whole)
    rows = np.array([7, 2, 5])
    subset = cache_wave_inputs(model, _pixels, tokenizer, catalog.iloc[rows], photos, batch_size=6, rows=rows)
    torch.testing.assert_close(subset.feature_maps, whole[rows])
    torch.testing.assert_close(subset.title_features, inputs.title_features[rows])
    with pytest.raises(ValueError, match="one row per product"):
        cache_wave_inputs(model, _pixels, tokenizer, catalog, photos, rows=rows)


def test_modality_embeddings_read_a_photoset_through_its_lazy_view():
    import torch
    from torch import nn

    from ecmm.trends import modality_embeddings

    class TinyClip(nn.Module):
        embed_dim = 4

        def __init__(self):
            super().__init__()
            self.image_layer, self.text_layer = nn.Linear(3, 4), nn.Linear(2, 4)

        def encode_image(self, pixels):
            return self.image_layer(pixels.mean(dim=(2, 3)))

        def encode_text(self, tokens):
            return self.text_layer(tokens)

    torch.manual_seed(0)
    model = TinyClip()
    array = np.random.default_rng(1).integers(0, 256, size=(300, 2, 4, 4, 3), dtype=np.uint8)
    catalog = pd.DataFrame({"title": [f"item {i}" for i in range(300)], "description": ["plain"] * 300})
    tokenizer = lambda texts: torch.tensor([[len(t), t.count("1")] for t in texts], dtype=torch.float32)  # noqa: E731
    photos = CountedPhotos(array)
    lazy = modality_embeddings(model, _pixels, tokenizer, catalog, photos, photo_index=1, device="cpu")
    assert max(photos.reads) <= 256  # embed_images' batches, not the 300 photos at once
    eager = modality_embeddings(model, _pixels, tokenizer, catalog, array, photo_index=1, device="cpu")
    assert {name: value.shape for name, value in lazy.items()} == {name: (300, 4) for name in ("image", "text", "fused")}
    for name in lazy:
        np.testing.assert_allclose(lazy[name], eager[name], rtol=1e-5, atol=1e-6)
    assert not np.allclose(lazy["image"], modality_embeddings(model, _pixels, tokenizer, catalog, array, 0, "cpu")["image"])
