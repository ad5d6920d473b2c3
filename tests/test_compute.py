"""Tests for ecmm.compute: FLOPs, latency, memory, asset cards, the compute table."""

import json

import pytest
import torch
from torch import nn

from ecmm.compute import (
    PUBLISHED_HUB_MODELS,
    asset_training_seconds,
    compute_table,
    count_flops,
    cpu_latency,
    measure_model,
    peak_forward_memory,
)


def test_count_flops_of_a_linear_layer_is_two_per_multiply_add():
    layer = nn.Linear(10, 4, bias=False)
    x = torch.randn(1, 10)
    assert count_flops(lambda: layer(x)) == 2 * 10 * 4


def test_peak_forward_memory_sees_the_hidden_activation():
    model = nn.Sequential(nn.Linear(100, 1000), nn.ReLU(), nn.Linear(1000, 1))
    x = torch.randn(64, 100)
    peak = peak_forward_memory(lambda: model(x))
    assert peak >= 64 * 1000 * 4  # at least one float32 hidden layer is alive at once
    assert peak < 64 * 1000 * 4 * 4


def test_cpu_latency_is_positive_and_validates():
    assert cpu_latency(lambda: torch.ones(10).sum(), repeats=3, warmup=0) > 0
    with pytest.raises(ValueError):
        cpu_latency(lambda: None, repeats=0)


def test_measure_model_row():
    model = nn.Linear(3, 2)
    row = measure_model("toy", model, lambda: model(torch.randn(1, 3)), role="test", repeats=2)
    assert row["parameters_millions"] == pytest.approx(8 / 1e6)
    assert row["gflops_per_input"] == pytest.approx(12 / 1e9)
    assert row["figures"] == "measured" and row["peak_memory_mb"] > 0


def test_asset_training_seconds_reads_nested_cards(tmp_path):
    (tmp_path / "assets" / "backbone").mkdir(parents=True)
    (tmp_path / "assets" / "backbone" / "card.json").write_text(json.dumps({"metrics": {"train_seconds": 12.5}}))
    (tmp_path / "assets" / "broken").mkdir()
    (tmp_path / "assets" / "broken" / "card.json").write_text("{not json")
    assert asset_training_seconds(tmp_path) == {"backbone": 12.5}


def test_compute_table_labels_published_rows():
    table = compute_table([{"model": "toy", "figures": "measured", "parameters_millions": 1.0}])
    assert len(table) == 1 + len(PUBLISHED_HUB_MODELS)
    published = table[table["figures"] == "PUBLISHED"]
    assert published["source"].str.len().min() > 10
    assert published["latency_ms"].isna().all()
