"""Exercise checks for notebook 07 (customer service: cross-entropy, ECE, temperature scaling).

Conventions as in ``notebook_01.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ecmm.exercises import Feedback, is_close

__all__ = ["check_07_a", "check_07_b", "check_07_c", "SOLUTIONS"]

EXERCISE_A_PROBABILITIES, EXERCISE_A_LABEL = (0.7, 0.2, 0.1), 1


def check_07_a(answer: Any) -> Feedback:
    """Exercise 07-a: the cross-entropy of p = [0.7, 0.2, 0.1] when the true intent is class 1."""
    expected = -math.log(EXERCISE_A_PROBABILITIES[EXERCISE_A_LABEL])
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"L = -log p_y = -log 0.2 = {expected:.4f} nats.")
    if is_close(answer, -math.log(max(EXERCISE_A_PROBABILITIES)), 2e-3):
        return Feedback(False, "That is -log of the *predicted* class: the loss reads the true class's probability.")
    return Feedback(False, "Cross-entropy with a one-hot target is -log of the probability of the true class.")


# (mean confidence, accuracy, number of messages) per confidence bin
EXERCISE_B_BINS = ((0.9, 0.75, 4), (0.6, 0.5, 6))


def expected_calibration_error(bins: tuple[tuple[float, float, int], ...]) -> float:
    """ECE = Σ_b (n_b / n) |acc_b - conf_b| over (confidence, accuracy, count) bins."""
    total = sum(count for _, _, count in bins)
    return sum(count / total * abs(accuracy - confidence) for confidence, accuracy, count in bins)


def check_07_b(answer: Any) -> Feedback:
    """Exercise 07-b: the ECE of two bins, (conf 0.9, acc 0.75, 4 messages) and (0.6, 0.5, 6)."""
    expected = expected_calibration_error(EXERCISE_B_BINS)
    unweighted = float(np.mean([abs(a - c) for c, a, _ in EXERCISE_B_BINS]))
    if is_close(answer, expected, 1e-3):
        return Feedback(True, f"ECE = 0.4 · 0.15 + 0.6 · 0.10 = {expected:.3f}.")
    if is_close(answer, unweighted, 1e-3):
        return Feedback(False, "Weight each bin's gap by its share of the messages (4/10 and 6/10).")
    return Feedback(False, "ECE = Σ (n_b / n) · |accuracy_b − confidence_b|.")


EXERCISE_C_LOGITS, EXERCISE_C_TEMPERATURE = (2.0, 0.0), 2.0


def check_07_c(answer: Any) -> Feedback:
    """Exercise 07-c: p(class 0) of softmax([2, 0] / T) at T = 2 (temperature-scaled)."""
    z = np.asarray(EXERCISE_C_LOGITS) / EXERCISE_C_TEMPERATURE
    expected = float(np.exp(z[0]) / np.exp(z).sum())
    as_trained = float(np.exp(EXERCISE_C_LOGITS[0]) / np.exp(EXERCISE_C_LOGITS).sum())
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"softmax([1, 0])_0 = σ(1) = {expected:.4f}: flatter than {as_trained:.4f}, same arg-max.")
    if is_close(answer, as_trained, 2e-3):
        return Feedback(False, "That is T = 1: divide the logits by T = 2 before the softmax.")
    return Feedback(False, "Divide the logits by T, then softmax: for two classes p_0 = σ((z_0 − z_1) / T).")


SOLUTIONS = {
    "check_07_a": (1.6094, 0.3567),
    "check_07_b": (0.12, 0.125),
    "check_07_c": (0.7311, 0.8808),
}
