"""Tests for ecmm.compute: FLOPs, latency, memory, asset cards, the compute table."""

import json

import pandas as pd
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


def test_intent_label_efficiency_uses_the_given_messages_and_loads_none(monkeypatch, text_encoder):
    from ecmm.compute import intent_label_efficiency
    from ecmm.data import load_intents
    from ecmm.service.intents import sample_few_shot

    offline = load_intents(profile="offline")
    train = offline[offline["split"] == "train"]
    memorised = sample_few_shot(train, 1, seed=0).assign(split="test")  # the very messages the 1-shot run learns
    monkeypatch.setattr("ecmm.data.load_intents", lambda *args, **kwargs: pytest.fail("must not load intents"))
    monkeypatch.setattr("ecmm.models.load_text_encoder", lambda *args, **kwargs: text_encoder)
    result = intent_label_efficiency(shots=(1,), seeds=(0,), device="cpu", progress=False,
                                     intents=pd.concat([train, memorised], ignore_index=True))
    assert sorted(result["method"]) == ["TF-IDF (no transfer)", "pretrained MiniLM (frozen)"]
    assert (result["labels"] == 1).all() and (result["mode"] == "recomputed").all()
    scores = dict(zip(result["method"], result["score"]))
    assert scores["TF-IDF (no transfer)"] == 1.0  # its own training messages, one per intent
    assert scores["pretrained MiniLM (frozen)"] >= 0.9
    with pytest.raises(ValueError, match="split"):
        intent_label_efficiency(shots=(1,), progress=False, intents=train.drop(columns="split"))
