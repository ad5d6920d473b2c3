"""Exercise checks for notebook 09 (interpretability: Grad-CAM by hand, mass on the product, FLOPs).

Conventions as in ``notebook_01.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecmm.exercises import Feedback, is_close

__all__ = ["check_09_a", "check_09_b", "check_09_c", "SOLUTIONS"]

EXERCISE_A_MAPS = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]]])  # (K=2, 2, 2) feature maps
EXERCISE_A_WEIGHTS = np.array([0.5, -0.25])  # α_k: the spatial mean of ∂score/∂A_k


def grad_cam_map(maps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``ReLU(Σ_k α_k A_k)``. Shapes: maps (K, H, W), weights (K,) -> (H, W)."""
    return np.maximum(np.tensordot(weights, maps, axes=1), 0.0)


def _as_map(answer: Any) -> np.ndarray | None:
    try:
        array = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return None
    return array if array.shape == (2, 2) and np.all(np.isfinite(array)) else None


def check_09_a(answer: Any) -> Feedback:
    """Exercise 09-a: the 2×2 Grad-CAM map of two channels with weights 0.5 and -0.25."""
    expected = grad_cam_map(EXERCISE_A_MAPS, EXERCISE_A_WEIGHTS)
    array = _as_map(answer)
    if array is None:
        return Feedback(False, "Answer with a 2×2 array (a list of two rows).")
    if np.allclose(array, expected, atol=1e-3):
        return Feedback(True, f"0.5·A1 − 0.25·A2 = [[0.5, −0.5], [−0.5, 0.5]], and the ReLU keeps {expected.tolist()}.")
    if np.allclose(array, np.tensordot(EXERCISE_A_WEIGHTS, EXERCISE_A_MAPS, axes=1), atol=1e-3):
        return Feedback(False, "Grad-CAM clips the weighted sum at zero (ReLU): only evidence *for* the score is kept.")
    return Feedback(False, "Weight each channel's map by its α, add the maps, then set negative cells to 0.")


EXERCISE_B_HEAT = np.array([[0.6, 0.2], [0.1, 0.1]])  # a Grad-CAM map
EXERCISE_B_MASK = np.array([[1, 0], [1, 0]], dtype=bool)  # the product's pixels


def check_09_b(answer: Any) -> Feedback:
    """Exercise 09-b: the share of the map's mass on the product (what ``heat_inside_fraction`` measures)."""
    expected = float(EXERCISE_B_HEAT[EXERCISE_B_MASK].sum() / EXERCISE_B_HEAT.sum())
    if is_close(answer, expected, 1e-3):
        return Feedback(True, f"(0.6 + 0.1) / 1.0 = {expected:.2f}, against the product's area share "
                              f"{EXERCISE_B_MASK.mean():.2f} that a uniform map would give.")
    if is_close(answer, float(EXERCISE_B_MASK.mean()), 1e-3):
        return Feedback(False, "That is the product's share of the pixels: weigh each pixel by its heat.")
    return Feedback(False, "Add the heat on the product's pixels and divide by the total heat.")


EXERCISE_C_IN, EXERCISE_C_OUT = 384, 27  # the intent head g(z) = softmax(Wz + b)


def check_09_c(answer: Any) -> Feedback:
    """Exercise 09-c: FLOPs of one forward pass of the 384 → 27 head (a multiply-add counts as 2)."""
    multiply_adds = EXERCISE_C_IN * EXERCISE_C_OUT
    expected = 2 * multiply_adds
    if is_close(answer, expected, 0.5):
        return Feedback(True, f"2 · 384 · 27 = {expected:,} FLOPs (the bias adds 27 more, usually left out).")
    if is_close(answer, multiply_adds, 0.5):
        return Feedback(False, "That counts multiply-adds: a multiply-add is two floating-point operations.")
    return Feedback(False, "W is 27 × 384: every output needs 384 multiplications and 384 additions.")


SOLUTIONS = {
    "check_09_a": ([[0.5, 0.0], [0.0, 0.5]], [[0.5, -0.5], [-0.5, 0.5]]),
    "check_09_b": (0.7, 0.5),
    "check_09_c": (20736, 10368),
}
