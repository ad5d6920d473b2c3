"""Exercise checks for notebook 03 (contrastive losses and zero-shot classification).

Conventions: see :mod:`ecmm.exercises.notebook_01`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecmm.exercises import Feedback, is_close

__all__ = ["check_03_a", "check_03_b", "check_03_c", "SOLUTIONS"]

# Cosine similarities of two photos (rows) with their two captions (columns).
SIMILARITIES = ((0.9, 0.1), (0.2, 0.8))


def _log_softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def info_nce(similarities: Any, scale: float) -> float:
    """Symmetric InfoNCE (CLIP) loss of a (B, B) similarity matrix whose diagonal holds the pairs."""
    logits = scale * np.asarray(similarities, dtype=float)
    diagonal = np.arange(len(logits))
    image_to_text = -_log_softmax(logits, axis=1)[diagonal, diagonal].mean()
    text_to_image = -_log_softmax(logits, axis=0)[diagonal, diagonal].mean()
    return float((image_to_text + text_to_image) / 2)


def sigmoid_loss(similarities: Any, scale: float, bias: float) -> float:
    """SigLIP loss: -(1/B) Σ_ij log σ(z_ij (t s_ij + b)), z = +1 on the diagonal, -1 elsewhere."""
    logits = scale * np.asarray(similarities, dtype=float) + bias
    signs = 2 * np.eye(len(logits)) - 1
    return float(np.logaddexp(0.0, -signs * logits).sum() / len(logits))


def check_03_a(answer: Any) -> Feedback:
    """Exercise 03-a: the CLIP loss of ``SIMILARITIES`` at scale s = exp(logit_scale) = 2."""
    expected = info_nce(SIMILARITIES, 2.0)
    one_direction = float(-_log_softmax(2.0 * np.asarray(SIMILARITIES), axis=1).diagonal().mean())
    if is_close(answer, expected, 5e-4):
        return Feedback(True, f"the mean of the image→text and text→image cross-entropies: {expected:.4f}.")
    if is_close(answer, one_direction, 5e-4):
        return Feedback(False, "That is the image→text half only: average it with the columns' softmax.")
    return Feedback(False, "Multiply by s = 2, take each row's softmax (and each column's), "
                           "average -log of the diagonal over both directions.")


def check_03_b(answer: Any) -> Feedback:
    """Exercise 03-b: the SigLIP loss of ``SIMILARITIES`` with t = 10 and b = -5."""
    expected = sigmoid_loss(SIMILARITIES, 10.0, -5.0)
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"{expected:.4f}: every pair is an independent yes/no question.")
    if is_close(answer, expected / len(SIMILARITIES), 2e-3):
        return Feedback(False, "SigLIP divides the sum over all B² pairs by B, not by B².")
    return Feedback(False, "For each of the 4 pairs: logit = 10·s + (-5); loss = -log σ(logit) on the "
                           "diagonal, -log σ(-logit) off it; sum and divide by B = 2.")


EXERCISE_C_CAPTION_IDS = (0, 0, 1, 2, 1)


def check_03_c(answer: Any) -> Feedback:
    """Exercise 03-c: positive columns of row 2 when the batch's caption ids are (0, 0, 1, 2, 1)."""
    expected = {j for j, caption in enumerate(EXERCISE_C_CAPTION_IDS) if caption == EXERCISE_C_CAPTION_IDS[2]}
    try:
        given = {int(value) for value in answer}
    except (TypeError, ValueError):
        return Feedback(False, "Give the column indices as a set or list of integers.")
    if given == expected:
        return Feedback(True, f"columns {sorted(expected)} carry caption 1, so both are correct answers.")
    if given == {2}:
        return Feedback(False, "That is arange labels: column 4 carries the same caption and is a positive too.")
    return Feedback(False, "Row 2 has caption id 1: every column with caption id 1 is a positive.")


SOLUTIONS = {
    "check_03_a": (0.2220, 0.2236),
    "check_03_b": (0.0667, 0.0334),
    "check_03_c": ({2, 4}, {2}),
}
