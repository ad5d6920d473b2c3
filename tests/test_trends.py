"""Tests for ecmm.trends: waves, forgetting, incremental fine-tuning."""

import pandas as pd
import pytest

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
