"""Hand-computed cases for ecmm.metrics.ranking."""

import math

import numpy as np
import pytest

from ecmm.metrics.ranking import (
    catalog_coverage,
    mean_average_precision_at_k,
    ndcg_at_k,
    novelty,
    set_recall_at_k,
    top_k_items,
)

# user 0 ranks items 0,1,2,3,4 and really wants {1, 3, 4}; user 1 ranks 4,3,2,1,0 and wants {4}
SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
RELEVANCE = np.array([[0, 1, 0, 1, 1], [0, 0, 0, 0, 1]], dtype=bool)


def test_top_k_items_orders_best_first_and_breaks_ties_by_index():
    assert top_k_items(SCORES, 3).tolist() == [[0, 1, 2], [4, 3, 2]]
    assert top_k_items(np.array([[1.0, 1.0, 2.0]]), 2).tolist() == [[2, 0]]
    assert top_k_items(np.array([[1.0, -np.inf, 0.5]]), 3).tolist() == [[0, 2, 1]]


def test_recall_counts_the_share_of_relevant_items_found():
    # user 0: 1 of 3 relevant in the top 3; user 1: 1 of 1
    assert set_recall_at_k(SCORES, RELEVANCE, 3) == pytest.approx((1 / 3 + 1) / 2)
    assert set_recall_at_k(SCORES, RELEVANCE, 5) == pytest.approx(1.0)


def test_map_at_k_hand_computed():
    # user 0: hit at rank 2 -> P@2 = 1/2, divided by min(3, 3) = 3 -> 1/6; user 1: 1
    assert mean_average_precision_at_k(SCORES, RELEVANCE, 3) == pytest.approx((1 / 6 + 1) / 2)
    # k = 5, user 0: hits at ranks 2, 4, 5 -> (1/2 + 2/4 + 3/5) / 3
    expected = ((1 / 2 + 2 / 4 + 3 / 5) / 3 + 1) / 2
    assert mean_average_precision_at_k(SCORES, RELEVANCE, 5) == pytest.approx(expected)


def test_ndcg_at_k_hand_computed():
    dcg = 1 / math.log2(3)  # hit at rank 2
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(SCORES, RELEVANCE, 3) == pytest.approx((dcg / ideal + 1) / 2)


def test_users_without_relevant_items_are_skipped():
    relevance = RELEVANCE.copy()
    relevance[1] = False
    assert set_recall_at_k(SCORES, relevance, 3) == pytest.approx(1 / 3)
    assert mean_average_precision_at_k(SCORES, relevance, 3) == pytest.approx(1 / 6)
    assert set_recall_at_k(SCORES, np.zeros_like(RELEVANCE), 3) == 0.0


def test_coverage_and_novelty():
    assert catalog_coverage([[0, 1, 2], [4, 3, 2]], num_items=10) == pytest.approx(0.5)
    popularity = np.array([0.5, 0.25, 1.0])
    assert novelty([[0, 1]], popularity) == pytest.approx(1.5)  # (1 bit + 2 bits) / 2
    assert novelty([[2, 2]], popularity) == pytest.approx(0.0)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="k must be"):
        set_recall_at_k(SCORES, RELEVANCE, 0)
    with pytest.raises(ValueError, match="same shape"):
        set_recall_at_k(SCORES, RELEVANCE[:, :3], 3)
    with pytest.raises(ValueError, match="smooth"):
        novelty([[0]], np.array([0.0]))
