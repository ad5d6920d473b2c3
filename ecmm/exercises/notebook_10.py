"""Exercise checks for notebook 10 (trends: LinUCB's score, regret, forgetting, WiSE-FT).

Conventions as in ``notebook_01.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecmm.exercises import Feedback, is_close

__all__ = ["check_10_a", "check_10_b", "check_10_c", "check_10_d", "SOLUTIONS"]

EXERCISE_A_MATRIX = np.array([[2.0, 0.0], [0.0, 4.0]])  # A = I + Σ x xᵀ after some rounds
EXERCISE_A_VECTOR = np.array([1.0, 1.0])  # b = Σ r x
EXERCISE_A_CONTEXT = np.array([1.0, 1.0])  # x of the candidate
EXERCISE_A_ALPHA = 0.5


def linucb_score(matrix: np.ndarray, vector: np.ndarray, context: np.ndarray, alpha: float) -> float:
    """``θᵀx + α sqrt(xᵀ A⁻¹ x)`` with ``θ = A⁻¹ b``. Shapes: A (d, d), b (d,), x (d,)."""
    inverse = np.linalg.inv(matrix)
    return float((inverse @ vector) @ context + alpha * np.sqrt(context @ inverse @ context))


def check_10_a(answer: Any) -> Feedback:
    """Exercise 10-a: LinUCB's score for A = diag(2, 4), b = [1, 1], x = [1, 1], α = 0.5."""
    expected = linucb_score(EXERCISE_A_MATRIX, EXERCISE_A_VECTOR, EXERCISE_A_CONTEXT, EXERCISE_A_ALPHA)
    greedy = linucb_score(EXERCISE_A_MATRIX, EXERCISE_A_VECTOR, EXERCISE_A_CONTEXT, 0.0)
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"θ = [0.5, 0.25], θᵀx = 0.75, bonus 0.5 · sqrt(0.75) = {expected - greedy:.4f}: "
                              f"score {expected:.4f}.")
    if is_close(answer, greedy, 2e-3):
        return Feedback(False, "That is the mean estimate θᵀx alone: add the exploration bonus α sqrt(xᵀA⁻¹x).")
    return Feedback(False, "θ = A⁻¹b; score = θᵀx + α · sqrt(xᵀ A⁻¹ x).")


EXERCISE_B_BEST = (0.9, 0.8, 0.7)  # the best candidate's purchase probability, per round
EXERCISE_B_CHOSEN = (0.5, 0.8, 0.2)  # the shown item's purchase probability, per round


def check_10_b(answer: Any) -> Feedback:
    """Exercise 10-b: the cumulative (expected) regret after the three rounds."""
    expected = float(np.sum(np.subtract(EXERCISE_B_BEST, EXERCISE_B_CHOSEN)))
    if is_close(answer, expected, 1e-3):
        return Feedback(True, f"(0.9 − 0.5) + (0.8 − 0.8) + (0.7 − 0.2) = {expected:.1f}.")
    if is_close(answer, float(np.sum(EXERCISE_B_CHOSEN)), 1e-3):
        return Feedback(False, "That is the expected reward collected; regret is what the best choice would have added.")
    return Feedback(False, "Regret sums, over rounds, the best candidate's reward probability minus the chosen one's.")


# Recall@10 of waves 1 and 2 after each wave (NaN: not arrived yet); wave 3 is the last
EXERCISE_C_RECALL = {1: (0.8, 0.5, 0.4), 2: (float("nan"), 0.7, 0.6)}


def check_10_c(answer: Any) -> Feedback:
    """Exercise 10-c: average forgetting over waves 1 and 2 (best recall minus final recall)."""
    gaps = [np.nanmax(values) - values[-1] for values in EXERCISE_C_RECALL.values()]
    expected = float(np.mean(gaps))
    if is_close(answer, expected, 1e-3):
        return Feedback(True, f"mean(0.8 − 0.4, 0.7 − 0.6) = {expected:.2f}.")
    if is_close(answer, gaps[0], 1e-3):
        return Feedback(False, "Average over every wave but the last: wave 2 forgot too.")
    return Feedback(False, "For each earlier wave: its best recall minus its recall after the last wave; then the mean.")


EXERCISE_D_BEFORE, EXERCISE_D_AFTER, EXERCISE_D_ALPHA = np.array([1.0, 0.0]), np.array([0.0, 2.0]), 0.25


def check_10_d(answer: Any) -> Feedback:
    """Exercise 10-d: the WiSE-FT weights (1 − α) θ_before + α θ_after for α = 0.25."""
    expected = (1 - EXERCISE_D_ALPHA) * EXERCISE_D_BEFORE + EXERCISE_D_ALPHA * EXERCISE_D_AFTER
    try:
        vector = np.asarray(answer, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return Feedback(False, "Answer with two numbers, e.g. [0.1, 0.2].")
    if vector.shape == (2,) and np.allclose(vector, expected, atol=1e-3):
        return Feedback(True, f"0.75 · [1, 0] + 0.25 · [0, 2] = {expected.tolist()}.")
    swapped = EXERCISE_D_ALPHA * EXERCISE_D_BEFORE + (1 - EXERCISE_D_ALPHA) * EXERCISE_D_AFTER
    if vector.shape == (2,) and np.allclose(vector, swapped, atol=1e-3):
        return Feedback(False, "α weighs the fine-tuned model: α = 0 is the model before the wave.")
    return Feedback(False, "Interpolate every weight: θ = (1 − α) θ_before + α θ_after.")


SOLUTIONS = {
    "check_10_a": (1.1830, 0.75),
    "check_10_b": (0.9, 1.5),
    "check_10_c": (0.25, 0.4),
    "check_10_d": ([0.75, 0.5], [0.25, 1.5]),
}
