"""Exercise checks for notebook 06 (recommendation: Recall@K, nDCG@K, the BPR loss).

Conventions as in ``notebook_01.py``: one ``check_06_<letter>(answer) -> Feedback`` per exercise,
expected answers computed here by the notebook's formulas, and ``SOLUTIONS`` (right, wrong) at the
bottom for the tests.
"""

from __future__ import annotations

import math
from typing import Any

from ecmm.exercises import Feedback, is_close

__all__ = ["check_06_a", "check_06_b", "check_06_c", "SOLUTIONS"]

EXERCISE_A_HITS = (0, 1, 0, 1, 0)  # relevance of the top-5 list, rank 1 first
EXERCISE_A_RELEVANT = 2  # the user's future holds two items, both in the list


def discounted_gain(hits: tuple[int, ...]) -> float:
    """DCG of a binary relevance list: sum of rel_i / log2(i + 1), ranks from 1."""
    return sum(hit / math.log2(rank + 1) for rank, hit in enumerate(hits, start=1))


def check_06_a(answer: Any) -> Feedback:
    """Exercise 06-a: nDCG@5 of the list with hits at ranks 2 and 4 (two relevant items)."""
    ideal = discounted_gain((1,) * EXERCISE_A_RELEVANT)
    expected = discounted_gain(EXERCISE_A_HITS) / ideal
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"DCG = 1/log2(3) + 1/log2(5) = {discounted_gain(EXERCISE_A_HITS):.4f}, "
                              f"IDCG = 1 + 1/log2(3) = {ideal:.4f}, nDCG@5 = {expected:.4f}.")
    if is_close(answer, discounted_gain(EXERCISE_A_HITS), 2e-3):
        return Feedback(False, "That is the DCG: divide by the ideal DCG (both hits at ranks 1 and 2).")
    return Feedback(False, "Sum 1/log2(rank + 1) over the hits (ranks 2 and 4), then divide by the same "
                           "sum for a perfect list (ranks 1 and 2).")


EXERCISE_B_FUTURE, EXERCISE_B_FOUND, EXERCISE_B_K = 8, 3, 10


def check_06_b(answer: Any) -> Feedback:
    """Exercise 06-b: Recall@10 of a list that holds 3 of the user's 8 future items."""
    expected = EXERCISE_B_FOUND / EXERCISE_B_FUTURE
    if is_close(answer, expected, 1e-3):
        return Feedback(True, f"Recall@10 = 3 / 8 = {expected:.3f} (the share of the future that was found).")
    if is_close(answer, EXERCISE_B_FOUND / EXERCISE_B_K, 1e-3):
        return Feedback(False, "That is Precision@10 (hits / list length): recall divides by the future's size.")
    return Feedback(False, "Recall@K = |top-K ∩ future| / |future|.")


EXERCISE_C_POSITIVE, EXERCISE_C_NEGATIVE = 2.0, 0.5  # model scores of a touched and an untouched item


def bpr_loss(positive: float, negative: float) -> float:
    """``-log σ(s_pos - s_neg)``, the BPR loss of one (user, positive, negative) triple."""
    return math.log1p(math.exp(-(positive - negative)))


def check_06_c(answer: Any) -> Feedback:
    """Exercise 06-c: the BPR loss of one triple with scores 2.0 (positive) and 0.5 (negative)."""
    expected = bpr_loss(EXERCISE_C_POSITIVE, EXERCISE_C_NEGATIVE)
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"-log σ(2.0 - 0.5) = log(1 + e^-1.5) = {expected:.4f}.")
    if is_close(answer, bpr_loss(EXERCISE_C_POSITIVE, 0.0), 2e-3):
        return Feedback(False, "BPR scores the difference s_pos - s_neg, not the positive score alone.")
    return Feedback(False, "Compute -log(sigmoid(s_pos - s_neg)) = log(1 + exp(-(s_pos - s_neg))).")


SOLUTIONS = {
    "check_06_a": ((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)), 1 / math.log2(3) + 1 / math.log2(5)),
    "check_06_b": (0.375, 0.3),
    "check_06_c": (0.2014, 0.1269),
}
