"""Exercise checks for notebook 01 (softmax, temperature, cross-entropy and its gradient).

Conventions for every ``ecmm/exercises/notebook_NN.py`` (the same in all notebooks):

- One function per exercise, ``check_NN_<letter>(answer) -> Feedback``. It never raises on a bad
  answer (``None``, a string, a wrong shape): it returns ``Feedback(False, hint)``.
- The expected answer is computed in the module (by the formula the notebook teaches), never typed
  in as a bare number.
- ``SOLUTIONS = {"check_NN_x": (right_answer, wrong_answer)}`` at the bottom of the module: the
  answer of the worked solution in ``notebooks/solutions/NN_solutions.md`` and a plausible mistake.
  The tests run every check on both (right must pass, wrong must fail), so no check is vacuous.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ecmm.exercises import Feedback, feedback, is_close

__all__ = ["check_01_a", "check_01_b", "check_01_c", "SOLUTIONS"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable ``softmax(logits / temperature)`` over the last axis."""
    scaled = np.asarray(logits, dtype=float) / temperature
    shifted = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _as_vector(answer: Any, length: int) -> np.ndarray | None:
    try:
        vector = np.asarray(answer, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    return vector if vector.shape == (length,) and np.all(np.isfinite(vector)) else None


EXERCISE_A_LOGITS, EXERCISE_A_TEMPERATURE = (2.0, 1.0, 0.0), 0.5


def check_01_a(answer: Any) -> Feedback:
    """Exercise 01-a: p(class 0) of softmax([2, 1, 0] / T) at T = 0.5, to three decimals."""
    expected = float(softmax(EXERCISE_A_LOGITS, EXERCISE_A_TEMPERATURE)[0])
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"p = e^4 / (e^4 + e^2 + e^0) = {expected:.4f}.")
    if is_close(answer, float(softmax(EXERCISE_A_LOGITS)[0]), 2e-3):
        return Feedback(False, "That is the probability at T = 1: divide the logits by T = 0.5 first.")
    return Feedback(False, "Divide every logit by T (giving 4, 2, 0), exponentiate, normalise.")


EXERCISE_B_LOGITS, EXERCISE_B_LABEL = (1.0, 0.0, -1.0), 2


def check_01_b(answer: Any) -> Feedback:
    """Exercise 01-b: ∂L/∂logits of the cross-entropy for logits [1, 0, -1] and true class 2."""
    expected = softmax(EXERCISE_B_LOGITS) - np.eye(3)[EXERCISE_B_LABEL]
    vector = _as_vector(answer, 3)
    if vector is None:
        return Feedback(False, "Give three numbers, one per logit.")
    if np.allclose(vector, expected, atol=2e-3):
        return Feedback(True, f"p - onehot(y) = {np.round(expected, 4).tolist()}: it sums to 0.")
    if np.allclose(vector, -expected, atol=2e-3):
        return Feedback(False, "The sign is flipped: that is the direction of the *update*, -∂L/∂l.")
    return Feedback(False, "Compute p = softmax(l), then subtract 1 at the true class (index 2).")


EXERCISE_C_LOGIT_SCALE = math.log(100.0)


def check_01_c(answer: Any) -> Feedback:
    """Exercise 01-c: the temperature T of a CLIP model whose ``logit_scale`` is log(100)."""
    expected = math.exp(-EXERCISE_C_LOGIT_SCALE)
    if is_close(answer, expected, 1e-4):
        return Feedback(True, "exp(logit_scale) = 1/T = 100, so T = 0.01.")
    if is_close(answer, 1 / EXERCISE_C_LOGIT_SCALE, 1e-3):
        return Feedback(False, "logit_scale is not 1/T itself: it is log(1/T). Exponentiate first.")
    return feedback(False, "", "exp(logit_scale) = 1/T: solve for T.")


SOLUTIONS = {
    "check_01_a": (0.8668, 0.6652),
    "check_01_b": ([0.6652, 0.2447, -0.9100], [-0.6652, -0.2447, 0.9100]),
    "check_01_c": (0.01, 1 / math.log(100.0)),
}
