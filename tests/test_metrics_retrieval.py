"""Hand-computed cases for ecmm.metrics.retrieval."""

import math

import numpy as np
import pytest

from ecmm.metrics.retrieval import (
    first_relevant_ranks,
    mean_rank,
    mean_reciprocal_rank,
    median_rank,
    ndcg_at_k,
    recall_at_k,
    retrieval_report,
)

# 3 queries over 4 items
SCORES = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.6, 0.4], [0.1, 0.2, 0.3, 0.4]])
RELEVANCE = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=bool)
# query 0: item 0 first -> rank 1; query 1: item 2 second -> rank 2;
# query 2: order 3,2,1,0 -> first relevant item 1 at rank 3


def test_first_relevant_ranks():
    assert first_relevant_ranks(SCORES, RELEVANCE).tolist() == [1, 2, 3]


def test_ties_are_pessimistic():
    assert first_relevant_ranks([[0.5, 0.5]], [[False, True]]).tolist() == [2]


def test_recall_mrr_and_ranks():
    ranks = np.array([1, 2, 3])
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 2) == pytest.approx(2 / 3)
    assert recall_at_k(ranks, 10) == 1.0
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert mean_rank(ranks) == 2.0
    assert median_rank([1, 5, 9, 100]) == 7.0


def test_ndcg_hand_computed():
    # query 0: gain at position 1 -> 1.0
    # query 1: gain at position 2 -> (1/log2 3) / 1
    # query 2: two relevant at positions 3, 4 -> (1/log2 4 + 1/log2 5) / (1 + 1/log2 3)
    expected = [1.0, 1 / math.log2(3), (1 / 2 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))]
    assert ndcg_at_k(SCORES, RELEVANCE, 4) == pytest.approx(np.mean(expected))
    # at k=2 query 2 gets nothing
    assert ndcg_at_k(SCORES, RELEVANCE, 2) == pytest.approx((1.0 + 1 / math.log2(3) + 0.0) / 3)


def test_report_keys_and_bad_input():
    report = retrieval_report(SCORES, RELEVANCE)
    assert set(report) == {"R@1", "R@5", "R@10", "MRR", "nDCG@10", "mean_rank", "median_rank"}
    assert report["R@1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k([1], 0)
    with pytest.raises(ValueError, match="at least one relevant"):
        first_relevant_ranks(SCORES, np.zeros_like(RELEVANCE))
    with pytest.raises(ValueError, match="same shape"):
        first_relevant_ranks(SCORES, RELEVANCE[:, :2])
