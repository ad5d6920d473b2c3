"""Exercise checks for notebook 05 (reciprocal-rank fusion, BM25's idf, chance accuracy).

Conventions: see :mod:`ecmm.exercises.notebook_01`.
"""

from __future__ import annotations

import math
from typing import Any

from ecmm.exercises import Feedback, feedback, is_close

__all__ = ["check_05_a", "check_05_b", "check_05_c", "SOLUTIONS"]

# Exercise A: a product is 1st in the BM25 ranking and 3rd in the dense ranking; k = 60, weights 1.
EXERCISE_A_RANKS, EXERCISE_A_K = (1, 3), 60
# Exercise B: a catalog of 1310 documents; the term "rucksack" occurs in 10 of them.
EXERCISE_B_DOCUMENTS, EXERCISE_B_CONTAINING = 1310, 10
# Exercise C: ten colours, every product type in every colour once.
EXERCISE_C_COLOURS = 10


def fused_score(ranks: tuple[int, ...], k: float) -> float:
    """RRF score ``sum_s 1 / (k + rank_s)`` of one item with equal weights."""
    return sum(1.0 / (k + rank) for rank in ranks)


def bm25_idf(documents: int, containing: int) -> float:
    """BM25's ``idf = log(1 + (N - n + 0.5) / (n + 0.5))``."""
    return math.log1p((documents - containing + 0.5) / (containing + 0.5))


def check_05_a(answer: Any) -> Feedback:
    """Exercise 05-a: the RRF score of the product in ``EXERCISE_A_RANKS``."""
    expected = fused_score(EXERCISE_A_RANKS, EXERCISE_A_K)
    return feedback(is_close(answer, expected, 1e-5), f"1/61 + 1/63 = {expected:.6f}.",
                    "Add 1 / (k + rank) over the two rankings, with k = 60.")


def check_05_b(answer: Any) -> Feedback:
    """Exercise 05-b: BM25's idf of a term in 10 of 1310 documents."""
    expected = bm25_idf(EXERCISE_B_DOCUMENTS, EXERCISE_B_CONTAINING)
    if is_close(answer, math.log(EXERCISE_B_DOCUMENTS / EXERCISE_B_CONTAINING), 1e-3):
        return Feedback(False, "That is the plain idf log(N / n); BM25 uses log(1 + (N - n + 0.5) / (n + 0.5)).")
    return feedback(is_close(answer, expected, 1e-3), f"log(1 + 1300.5 / 10.5) = {expected:.4f}.",
                    "Use the natural logarithm of 1 + (N - n + 0.5) / (n + 0.5).")


def check_05_c(answer: Any) -> Feedback:
    """Exercise 05-c: the accuracy of guessing the colour when all ten are equally frequent."""
    return feedback(is_close(answer, 1 / EXERCISE_C_COLOURS, 1e-3),
                    "0.1: always guessing one colour is right for one product in ten.",
                    "Every colour is equally frequent; how often is a fixed guess right?")


SOLUTIONS = {
    "check_05_a": (fused_score(EXERCISE_A_RANKS, EXERCISE_A_K), 1 / 61),
    "check_05_b": (bm25_idf(EXERCISE_B_DOCUMENTS, EXERCISE_B_CONTAINING), math.log(131.0)),
    "check_05_c": (0.1, 0.5),
}
