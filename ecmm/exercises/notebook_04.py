"""Exercise checks for notebook 04 (retrieval metrics and WiSE-FT).

Conventions: see :mod:`ecmm.exercises.notebook_01`.
"""

from __future__ import annotations

import math
from typing import Any

from ecmm.exercises import Feedback, is_close

__all__ = ["check_04_a", "check_04_b", "check_04_c", "SOLUTIONS"]

# Rank (1 = first) of the one correct SKU for each of four text queries.
EXERCISE_A_RANKS = (1, 3, 7, 12)


def recall_and_mrr(ranks: Any, k: int) -> tuple[float, float]:
    """(Recall@k, MRR) of queries with one relevant item each, at the given 1-based ranks."""
    ranks = [int(rank) for rank in ranks]
    return sum(rank <= k for rank in ranks) / len(ranks), sum(1 / rank for rank in ranks) / len(ranks)


def check_04_a(answer: Any) -> Feedback:
    """Exercise 04-a: ``(Recall@5, MRR)`` of the ranks in ``EXERCISE_A_RANKS``."""
    recall, mrr = recall_and_mrr(EXERCISE_A_RANKS, 5)
    try:
        given_recall, given_mrr = (float(value) for value in answer)
    except (TypeError, ValueError):
        return Feedback(False, "Give two numbers: (Recall@5, MRR).")
    if is_close(given_recall, recall, 1e-3) and is_close(given_mrr, mrr, 2e-3):
        return Feedback(True, f"Recall@5 = {recall:.2f} (two of four within the top 5), MRR = {mrr:.4f}.")
    if not is_close(given_recall, recall, 1e-3):
        return Feedback(False, "Recall@5 is the share of queries whose SKU is at rank 1 to 5.")
    return Feedback(False, "MRR is the mean of 1/rank over the four queries.")


# Relevance (1 = a SKU of the asked product type) of the top 5 results; 2 relevant SKUs exist.
EXERCISE_B_RELEVANCE, EXERCISE_B_RELEVANT_TOTAL = (1, 0, 1, 0, 0), 2


def ndcg_at_k(relevance: Any, relevant_total: int) -> float:
    """nDCG@k of binary ``relevance`` (the top k results) when ``relevant_total`` items are relevant."""
    dcg = sum(rel / math.log2(position + 2) for position, rel in enumerate(relevance))
    ideal = sum(1 / math.log2(position + 2) for position in range(min(relevant_total, len(relevance))))
    return dcg / ideal


def check_04_b(answer: Any) -> Feedback:
    """Exercise 04-b: nDCG@5 of ``EXERCISE_B_RELEVANCE``."""
    expected = ndcg_at_k(EXERCISE_B_RELEVANCE, EXERCISE_B_RELEVANT_TOTAL)
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"DCG = 1 + 1/log2(4) = 1.5, ideal 1 + 1/log2(3); nDCG@5 = {expected:.4f}.")
    if is_close(answer, 1.5, 2e-3):
        return Feedback(False, "That is the DCG: divide by the DCG of the ideal ranking (both relevant SKUs first).")
    return Feedback(False, "DCG = Σ rel_i / log2(i + 1) over ranks i = 1..5; divide by the ideal ranking's DCG.")


# Source-domain top-1 accuracy before fine-tuning, after it, and at WiSE-FT α = 0.5.
EXERCISE_C_BEFORE, EXERCISE_C_AFTER, EXERCISE_C_MIDDLE = 0.80, 0.50, 0.71


def check_04_c(answer: Any) -> Feedback:
    """Exercise 04-c: the share of the forgotten accuracy that WiSE-FT α = 0.5 recovers."""
    expected = (EXERCISE_C_MIDDLE - EXERCISE_C_AFTER) / (EXERCISE_C_BEFORE - EXERCISE_C_AFTER)
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"(0.71 - 0.50) / (0.80 - 0.50) = {expected:.2f} of what was forgotten.")
    if is_close(answer, EXERCISE_C_MIDDLE - EXERCISE_C_AFTER, 2e-3):
        return Feedback(False, "That is the gain in accuracy; divide it by how much was forgotten.")
    return Feedback(False, "Forgotten = before - after; recovered = middle - after; take their ratio.")


SOLUTIONS = {
    "check_04_a": ((0.5, 0.3899), (0.25, 0.3899)),
    "check_04_b": (0.9197, 1.5),
    "check_04_c": (0.70, 0.21),
}
