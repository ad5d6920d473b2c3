"""Tests for ecmm.trends: LinUCB, bandit features and runs, waves, forgetting."""

import numpy as np
import pandas as pd
import pytest

from ecmm.trends import (
    LinUCB,
    ShopBanditEnvironment,
    average_forgetting,
    embedding_features,
    id_features,
    make_waves,
    reduce_dimension,
    run_bandits,
)


def test_linucb_update_on_a_two_arm_toy_problem():
    bandit = LinUCB(dimension=2, alpha=0.0, ridge=1.0)
    arms = np.eye(2)
    bandit.update(arms[0], 1.0)  # A = diag(2, 1), b = (1, 0)
    np.testing.assert_allclose(bandit.a_inverse, np.diag([0.5, 1.0]))
    np.testing.assert_allclose(bandit.theta, [0.5, 0.0])
    assert bandit.select(arms) == 0


def test_linucb_exploration_bonus_prefers_the_untried_arm():
    bandit = LinUCB(dimension=2, alpha=2.0, ridge=1.0)
    for _ in range(3):
        bandit.update(np.array([1.0, 0.0]), 0.2)  # theta_0 = 0.6/4 = 0.15, width_0 = 2 / sqrt(4) = 1
    scores = bandit.scores(np.eye(2))
    np.testing.assert_allclose(scores, [0.15 + 1.0, 0.0 + 2.0])
    assert bandit.select(np.eye(2)) == 1


def test_linucb_validates():
    with pytest.raises(ValueError):
        LinUCB(dimension=0)


def test_feature_maps():
    features = embedding_features(np.array([[1.0, 2.0]]), np.array([[3.0, 0.0], [0.0, 1.0]]))
    x = features(0, np.array([1]))
    np.testing.assert_allclose(x, [[0, 1, 1, 0, 2, 2, 0, 1, 1]])  # [1,2,1] ⊗ [0,1,1]
    np.testing.assert_allclose(id_features(np.array([5, 7, 9]))(0, np.array([9, 5])), [[0, 0, 1], [1, 0, 0]])
    reduced = reduce_dimension(np.random.default_rng(0).normal(size=(10, 5)), 2)
    assert reduced.shape == (10, 2)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0)


def _toy_catalog():
    rows = []
    for category in ("a", "b", "c"):
        for colour in ("red", "blue"):
            for kind in ("x", "y"):
                rows.append({"category": category, "colour": colour, "product_type": f"{category}{kind}",
                             "price": 10.0 if kind == "x" else 20.0,
                             "split": "test_products" if kind == "y" and category == "c" else "train"})
    return pd.DataFrame(rows)


def test_bandit_run_with_an_oracle_policy_has_zero_regret():
    environment = ShopBanditEnvironment.create(_toy_catalog(), num_users=4, history_length=2, seed=0)
    assert environment.affinity.shape == (4, 12) and environment.histories.shape == (4, 2)
    mean_affinity = environment.affinity.mean(axis=0)
    results = run_bandits(environment, {"random": None, "popular": mean_affinity}, num_rounds=30,
                          num_candidates=3, progress=False)
    assert list(results.columns) == ["round", "random", "popular"]
    assert (np.diff(results["random"]) >= 0).all()  # cumulative regret never decreases
    single_user = ShopBanditEnvironment(environment.affinity[:1], environment.histories[:1], environment.offset)
    oracle = run_bandits(single_user, {"oracle": environment.affinity[0]}, num_rounds=10, num_candidates=3,
                         progress=False)
    assert oracle["oracle"].iloc[-1] == pytest.approx(0.0)


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
