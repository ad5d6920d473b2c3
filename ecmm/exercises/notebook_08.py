"""Exercise checks for notebook 08 (deployment: int8 quantisation, model size, IVF cost).

Conventions as in ``notebook_01.py``.
"""

from __future__ import annotations

from typing import Any

from ecmm.exercises import Feedback, is_close

__all__ = ["check_08_a", "check_08_b", "check_08_c", "SOLUTIONS"]

EXERCISE_A_MAX_ABS, EXERCISE_A_WEIGHT = 0.508, -0.3  # the layer's largest |w|, and one weight


def quantize_symmetric(weight: float, max_abs: float, levels: int = 127) -> int:
    """Symmetric int8: ``q = round(w / s)`` with scale ``s = max|w| / 127``, clipped to [-127, 127]."""
    scale = max_abs / levels
    return int(max(-levels, min(levels, round(weight / scale))))


def check_08_a(answer: Any) -> Feedback:
    """Exercise 08-a: the int8 code of w = -0.3 in a layer whose largest |w| is 0.508."""
    expected = quantize_symmetric(EXERCISE_A_WEIGHT, EXERCISE_A_MAX_ABS)
    if is_close(answer, expected, 0.0):
        return Feedback(True, f"s = 0.508 / 127 = 0.004, q = round(-0.3 / 0.004) = {expected}; "
                              f"it dequantises to {expected * EXERCISE_A_MAX_ABS / 127:.3f}.")
    if is_close(answer, quantize_symmetric(EXERCISE_A_WEIGHT, EXERCISE_A_MAX_ABS, 255), 0.0):
        return Feedback(False, "Symmetric int8 uses 127 levels on each side of zero, not 255.")
    return Feedback(False, "Scale s = max|w| / 127, then q = round(w / s).")


EXERCISE_B_SHAPE = (384, 1536)  # one feed-forward Linear layer of MiniLM (in, out)


def check_08_b(answer: Any) -> Feedback:
    """Exercise 08-b: the weight matrix's size in MB (10^6 bytes) once stored as int8."""
    values = EXERCISE_B_SHAPE[0] * EXERCISE_B_SHAPE[1]
    expected = values * 1 / 1e6
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"{values:,} weights × 1 byte = {expected:.3f} MB (fp32: {4 * expected:.3f} MB).")
    if is_close(answer, 4 * expected, 2e-3):
        return Feedback(False, "That is the fp32 size (4 bytes a weight): int8 stores one byte a weight.")
    return Feedback(False, "Count the weights (in × out) and multiply by the bytes per weight.")


EXERCISE_C_VECTORS, EXERCISE_C_NLIST, EXERCISE_C_NPROBE = 1_000_000, 1024, 8


def check_08_c(answer: Any) -> Feedback:
    """Exercise 08-c: how many catalog vectors one IVF query scores (N = 10^6, nlist 1024, nprobe 8)."""
    expected = EXERCISE_C_VECTORS * EXERCISE_C_NPROBE / EXERCISE_C_NLIST
    if is_close(answer, expected, 1.0):
        return Feedback(True, f"N · nprobe / nlist = {expected:,.1f} vectors (on balanced cells), plus the "
                              f"{EXERCISE_C_NLIST} centroids: about {EXERCISE_C_VECTORS / (expected + EXERCISE_C_NLIST):.0f}× "
                              "fewer dot products than exact search.")
    if is_close(answer, EXERCISE_C_VECTORS / EXERCISE_C_NLIST, 1.0):
        return Feedback(False, "That is one cell: the query scores the nprobe = 8 closest cells.")
    return Feedback(False, "Each of the nlist cells holds about N / nlist vectors; the query opens nprobe of them.")


SOLUTIONS = {
    "check_08_a": (-75, -150),
    "check_08_b": (0.5898, 2.3593),
    "check_08_c": (7812.5, 976.5625),
}
