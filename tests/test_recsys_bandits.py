"""Tests for ecmm.recsys.bandits: LinUCB, bandit features, the shop environment and runs."""

import numpy as np
import pandas as pd
import pytest

from ecmm.recsys.bandits import (
    LinUCB,
    ShopBanditEnvironment,
    id_features,
    reduce_dimension,
    run_bandits,
    similarity_features,
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


def test_id_features_are_one_hot_over_the_pool():
    np.testing.assert_allclose(id_features(np.array([5, 7, 9]))(0, np.array([9, 5])), [[0, 0, 1], [1, 0, 0]])


def test_similarity_features_by_hand():
    image = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # (N=3, D=2) unit rows
    text = np.array([[0.0, 1.0], [1.0, 0.0], [0.8, 0.6]])
    histories = np.array([[0, 0], [1, 2]])  # user 0 bought item 0 twice; user 1 items 1 and 2
    features = similarity_features({"image": image, "text": text}, histories, item_dimensions=0)
    x = features(0, np.array([1, 2]))  # profile = item 0 in both spaces
    np.testing.assert_allclose(x, [[0.0, 0.0, 1.0], [0.6, 0.6, 1.0]])  # [cos image, cos text, bias]
    profile = np.array([0.6, 1.8]) / np.linalg.norm([0.6, 1.8])  # mean of items 1 and 2 (image), normalised
    np.testing.assert_allclose(features(1, np.array([0]))[0, 0], profile[0])
    with_position = similarity_features({"image": image, "text": text}, histories, item_dimensions=1,
                                        position_space="image")
    assert with_position(0, np.array([0, 1, 2])).shape == (3, 4)
    with pytest.raises(ValueError, match="empty"):
        similarity_features({}, histories)


def test_linucb_refuses_features_of_the_wrong_width():
    with pytest.raises(ValueError, match="expects 3"):
        LinUCB(dimension=3).scores(np.ones((2, 4)))


def test_reduce_dimension_gives_unit_rows():
    reduced = reduce_dimension(np.random.default_rng(0).normal(size=(10, 5)), 2)
    assert reduced.shape == (10, 2)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0)


def _shop(num_items: int = 12) -> pd.DataFrame:
    """Items cycling through 3 categories, 2 colours and 4 product types, prices 10-40."""
    return pd.DataFrame({"category": [f"c{i % 3}" for i in range(num_items)],
                         "colour": ["red", "blue"] * (num_items // 2),
                         "product_type": [f"t{i % 4}" for i in range(num_items)],
                         "price": [10.0 * (1 + i % 4) for i in range(num_items)]})


def test_bandit_run_with_an_oracle_policy_has_zero_regret():
    environment = ShopBanditEnvironment.create(_shop(), num_users=4, history_length=2, seed=0)
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


