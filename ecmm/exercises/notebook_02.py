"""Exercise checks for notebook 02 (feature-based and parameter-based transfer).

Conventions: see :mod:`ecmm.exercises.notebook_01`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecmm.exercises import Feedback, feedback, is_close

__all__ = ["check_02_a", "check_02_b", "check_02_c", "SOLUTIONS"]

EXERCISE_A_FEATURES, EXERCISE_A_CLASSES = 256, 104


def check_02_a(answer: Any) -> Feedback:
    """Exercise 02-a: trainable parameters of a linear probe, D = 256 features, K = 104 classes."""
    expected = EXERCISE_A_CLASSES * EXERCISE_A_FEATURES + EXERCISE_A_CLASSES
    if is_close(answer, expected, 0.5):
        return Feedback(True, f"W is K × D and b has K entries: {expected:,} parameters.")
    if is_close(answer, EXERCISE_A_CLASSES * EXERCISE_A_FEATURES, 0.5):
        return Feedback(False, "Almost: the head also has one bias per class.")
    return Feedback(False, "g(z) = softmax(Wz + b): count the entries of W (K × D) and of b (K).")


TRANSFER_KINDS = {
    "linear probe on frozen features": "feature-based",
    "fine-tune the last block and the head": "parameter-based",
    "fine-tune every layer at a low learning rate": "parameter-based",
    "zero-shot classification with the whole pretrained CLIP model": "model-based",
}


def check_02_b(answer: Any) -> Feedback:
    """Exercise 02-b: name the kind of transfer (feature-, parameter- or model-based) of each method."""
    if not isinstance(answer, dict):
        return Feedback(False, "Answer with a dict: method -> 'feature-based', 'parameter-based' or 'model-based'.")
    wrong = [method for method, kind in TRANSFER_KINDS.items()
             if str(answer.get(method, "")).strip().lower() != kind]
    return feedback(not wrong, "frozen features, updated weights, or the whole model reused as it is.",
                    f"look again at: {wrong}. Ask what is trained: only g, the weights of f, or nothing.")


EXERCISE_C_PREDICTIONS, EXERCISE_C_LABELS = (0, 0, 1, 1, 2), (0, 1, 1, 1, 2)


def macro_f1(predictions: Any, labels: Any) -> float:
    """The mean over classes present in ``labels`` of F1 = 2PR / (P + R) (0 when P + R = 0)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    scores = []
    for k in np.unique(labels):
        tp = np.sum((predictions == k) & (labels == k))
        precision = tp / max(np.sum(predictions == k), 1)
        recall = tp / np.sum(labels == k)
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def check_02_c(answer: Any) -> Feedback:
    """Exercise 02-c: macro-F1 of predictions [0, 0, 1, 1, 2] against labels [0, 1, 1, 1, 2]."""
    expected = macro_f1(EXERCISE_C_PREDICTIONS, EXERCISE_C_LABELS)
    accuracy = float(np.mean(np.asarray(EXERCISE_C_PREDICTIONS) == np.asarray(EXERCISE_C_LABELS)))
    if is_close(answer, expected, 2e-3):
        return Feedback(True, f"F1 per class 0.667, 0.8, 1.0; their mean is {expected:.4f}.")
    if is_close(answer, accuracy, 2e-3):
        return Feedback(False, "That is the accuracy. Macro-F1 averages one F1 per class.")
    return Feedback(False, "Per class: precision = TP / predicted, recall = TP / true, F1 = 2PR/(P+R); then average.")


SOLUTIONS = {
    "check_02_a": (26728, 26624),
    "check_02_b": (dict(TRANSFER_KINDS), {**TRANSFER_KINDS, "linear probe on frozen features": "parameter-based"}),
    "check_02_c": (0.8222, 0.8),
}
